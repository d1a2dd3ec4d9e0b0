"""Each data-quality check fails on purpose on bad candles and passes on good ones."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ohlcv_assets.exchange.market import SimSymbol, SimulatedMarket
from ohlcv_assets.intervals import DAY_MS, HOUR_MS, MINUTE_MS, day_bounds_ms
from ohlcv_assets.quality import CHECKS, check_candles

MARKET = SimulatedMarket({"X": SimSymbol("X", "USDT", dt.date(2020, 1, 1), 100.0)})
START = day_bounds_ms(dt.date(2026, 9, 1))[0]
NOW = START + 2 * DAY_MS


def candles(step: int) -> pd.DataFrame:
    return pd.DataFrame(MARKET.candles(MARKET.symbols["X"], step, START, START + DAY_MS, NOW).as_floats())


def outcome(frame, name, step=MINUTE_MS, expected=1440, explained=0, minutes=None):
    [result] = [o for o in check_candles(frame, step, NOW, expected, explained, minutes) if o.name == name]
    return result


def test_good_candles_pass_every_check():
    minutes = candles(MINUTE_MS)
    assert all(o.passed for o in check_candles(minutes, MINUTE_MS, NOW, 1440, 0))
    assert all(o.passed for o in check_candles(candles(HOUR_MS), HOUR_MS, NOW, 24, 0, minutes))
    assert {o.name for o in check_candles(minutes, MINUTE_MS, NOW, 1440, 0)} == {c.name for c in CHECKS}


@pytest.mark.parametrize("name,corrupt", [
    ("ohlc_valid", lambda f: f.assign(high=np.where(f.index == 7, f["low"] - 1, f["high"]))),
    ("ohlc_valid", lambda f: f.assign(low=np.where(f.index == 7, -1.0, f["low"]))),
    ("volume_non_negative", lambda f: f.assign(volume=np.where(f.index == 7, -0.5, f["volume"]))),
    ("open_times_on_grid", lambda f: f.assign(open_time=np.where(f.index == 7, f["open_time"] + 1000, f["open_time"]))),
    ("open_times_on_grid", lambda f: pd.concat([f, f.iloc[[7]]], ignore_index=True)),
    ("only_closed_candles", lambda f: f.assign(open_time=np.where(f.index == 7, NOW, f["open_time"]))),
    ("price_spikes", lambda f: f.assign(close=np.where(f.index == 7, f["close"] * 1.5, f["close"]))),
])
def test_each_check_names_the_candle_that_breaks_it(name, corrupt):
    bad = corrupt(candles(MINUTE_MS))
    result = outcome(bad, name)
    assert not result.passed
    assert (bad["open_time"].iloc[7] if len(bad) == 1440 else bad["open_time"].iloc[-1]) in result.offending["open_time"].tolist()


def test_completeness_counts_confirmed_downtime_as_explained():
    holed = candles(MINUTE_MS).drop(index=range(100, 190))
    assert not outcome(holed, "completeness").passed
    assert outcome(holed, "completeness", explained=90).passed


def test_candles_disagreeing_with_their_1m_candles_are_named():
    minutes, hours = candles(MINUTE_MS), candles(HOUR_MS)
    hours.loc[5, "high"] += 0.01
    result = outcome(hours, "consistent_with_1m", step=HOUR_MS, expected=24, minutes=minutes)
    assert not result.passed and result.offending["open_time"].tolist() == [START + 5 * HOUR_MS]
