"""The perpetual's warnings, no I/O: a mark far from the last price, a premium far from the basis."""

import pandas as pd

from ohlcv_assets.quality.checks import mark_vs_last, premium_vs_basis


def candles(closes, start=0):
    return pd.DataFrame({"open_time": [start + 3_600_000 * i for i in range(len(closes))], "close": closes})


def test_a_mark_more_than_1_percent_from_the_last_price_is_named():
    outcome = mark_vs_last(candles([100.0, 101.5, 100.0]), candles([100.0, 100.0, 99.5]))
    assert not outcome.passed and outcome.offending["open_time"].tolist() == [3_600_000] and outcome.checked == 3
    assert mark_vs_last(candles([100.0]), candles([100.9])).passed
    assert mark_vs_last(candles([100.0]), None).detail.startswith("skipped")
    assert mark_vs_last(candles([100.0]), candles([])).passed  # nothing stored to compare with


def test_a_premium_far_from_mark_minus_index_over_index_is_named():
    index = candles([100.0, 100.0])
    mark = candles([100.1, 100.1])  # basis 0.001
    outcome = premium_vs_basis(candles([0.0012, 0.0071]), mark, index)
    assert outcome.offending["open_time"].tolist() == [3_600_000] and outcome.checked == 2
    assert premium_vs_basis(candles([0.0012]), None, index).detail.startswith("skipped")
