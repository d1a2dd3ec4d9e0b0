"""A perpetual's archive files and answers, no I/O: the monthly funding CSV, the daily metrics CSV,
open interest rows."""

import numpy as np
import pytest
from ccxt.base.errors import BadResponse

from ohlcv_assets.archive import ArchiveUnavailable
from ohlcv_assets.archive.binance_vision import parse_funding_csv, parse_metrics_csv
from ohlcv_assets.venues.ccxt_candles import open_interest_rows

METRICS_HEADER = (b"create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
                  b"sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio\n")


def test_funding_csv_with_or_without_header_and_nothing_but_three_columns():
    rows = b"1704067200001,8,0.00037409\n1704096000000,8,-0.00010000\n"
    for data in (b"calc_time,funding_interval_hours,last_funding_rate\n" + rows, rows):
        frame = parse_funding_csv(data, "f")
        assert frame["raw_time"].tolist() == [1704067200001, 1704096000000] and frame["rate"].tolist() == [0.00037409, -0.0001]
        assert frame["interval_hours"].tolist() == [8, 8]
    with pytest.raises(Exception, match="Expected 3 columns"):
        parse_funding_csv(b"1704067200001,8,0.1,0\n", "f")
    with pytest.raises(ArchiveUnavailable, match="empty cells"):
        parse_funding_csv(b"1704067200001,8,\n", "f")


def test_metrics_csv_datetimes_to_ms_and_empty_cells_null():
    frame = parse_metrics_csv(METRICS_HEADER + b"2026-10-04 00:00:00,BTCUSDT,33.333,2000000.12345,1.5,1.5,1.2,0.95\n"
                                               b"2026-10-04 00:05:00,BTCUSDT,,1,,,,\n", "m")
    assert frame["open_time"].tolist() == [1791072000000, 1791072300000]
    assert frame["amount"].iloc[0] == 33.333 and np.isnan(frame["amount"].iloc[1]) and frame["value"].iloc[1] == 1.0
    with pytest.raises(Exception, match="Expected 8 columns"):
        parse_metrics_csv(METRICS_HEADER + b"2026-10-04 00:00:00,BTCUSDT,1,1,1,1,1,1,0\n", "m")


def test_open_interest_rows_keep_a_missing_figure_as_nan_and_refuse_garbage():
    rows = open_interest_rows([(1, "2.5", "100"), (2, None, "90")], "x")
    assert rows[0].tolist() == [1, 2.5, 100] and np.isnan(rows[1, 1])
    for bad in ([(1, None, None)], [(2, "1", "1"), (1, "1", "1")], [(1, "-1", "1")], [(None, "1", "1")]):
        with pytest.raises(BadResponse):
            open_interest_rows(bad, "x")
