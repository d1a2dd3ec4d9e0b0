"""load_candles, the one read path, and its siblings for a perpetual's funding settlements
(load_funding) and open interest (load_open_interest), on both warehouses."""

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest

from ohlcv_assets import load_candles, load_funding, load_open_interest
from ohlcv_assets.core.intervals import DAY_MS, HOUR_MS, MINUTE_MS
from ohlcv_assets.warehouse.funding import merge_funding
from ohlcv_assets.warehouse.open_interest import merge_open_interest
from ohlcv_assets.warehouse.schema import candles
from ohlcv_assets.warehouse.read import OutsideStoredRange
from ohlcv_assets.warehouse.store import NotInWarehouse, Warehouse, WarehouseMissing

JAN_31 = 1_738_281_600_000  # 2025-01-31T00:00Z: the rows cross a month (and, on PostgreSQL, a partition)


def _store(warehouse: Warehouse, symbol: str, n: int) -> pd.DataFrame:
    times = JAN_31 + np.arange(n, dtype=np.int64) * MINUTE_MS
    frame = pd.DataFrame({"open_time": times, "open": 1.0 + np.arange(n), "high": 2.0 + np.arange(n),
                          "low": 0.5 + np.arange(n), "close": 1.5 + np.arange(n), "volume": 0.001 * np.arange(n)})
    frame = frame.drop(index=range(100, min(n, 110))).reset_index(drop=True)  # a hole stays a hole
    warehouse.merge_partitions(candles, "binance", symbol, "1m", frame, [(JAN_31, JAN_31 + 2 * DAY_MS)], 1)
    return frame


def test_load_candles_equals_the_stored_rows(warehouse):
    frame = _store(warehouse, "BTC/USDT", 2 * 1440)
    _store(warehouse, "ETH/USDT", 50)
    got = load_candles("binance", "BTC/USDT", "1m", "2025-01-31", dt.datetime(2025, 2, 2, tzinfo=dt.timezone.utc),
                       warehouse=warehouse)
    assert got.reset_index(drop=True).equals(frame)
    assert got.index.name == "time" and str(got.index.tz) == "UTC"
    assert got.index[0] == pd.Timestamp("2025-01-31T00:00Z")

    feb = load_candles("binance", "BTC/USDT", "1m", dt.date(2025, 2, 1), "2025-02-01T12:00", warmup=30, warehouse=warehouse)
    assert len(feb) == 30 + 720
    assert feb["open_time"].iloc[30] == JAN_31 + DAY_MS
    assert feb.reset_index(drop=True).equals(frame.iloc[1440 - 10 - 30:1440 - 10 + 720].reset_index(drop=True))


def test_load_candles_opens_the_configured_warehouse_and_never_invents_one(warehouse_url, monkeypatch, tmp_path):
    wh = Warehouse(warehouse_url)
    wh.migrate()
    frame = _store(wh, "BTC/USDT", 300)
    wh.dispose()
    monkeypatch.setenv("OHLCV_WAREHOUSE_URL", warehouse_url)
    assert load_candles("binance", "BTC/USDT", "1m", JAN_31, JAN_31 + DAY_MS).reset_index(drop=True).equals(frame)

    missing = tmp_path / "nothing-here.db"
    monkeypatch.setenv("OHLCV_WAREHOUSE_URL", f"sqlite:///{missing}")
    with pytest.raises(WarehouseMissing, match="does not exist"):
        load_candles("binance", "BTC/USDT", "1m", JAN_31, JAN_31 + DAY_MS)
    assert not missing.exists()
    with pytest.raises(ValueError, match="interval"):
        load_candles("binance", "BTC/USDT", "7m", JAN_31, JAN_31 + DAY_MS)
    with pytest.raises(ValueError, match="before start"):
        load_candles("binance", "BTC/USDT", "1m", "2025-02-01", "2025-01-01")


def test_load_candles_names_what_the_warehouse_holds_for_an_instrument_it_never_held(warehouse):
    _store(warehouse, "BTC/USDT", 300)
    _store(warehouse, "ETH/USDT", 50)
    for exchange, symbol, interval in (("binance", "DOGE/USDT", "1m"), ("binnace", "BTC/USDT", "1m"), ("binance", "BTC/USDT", "1h")):
        with pytest.raises(NotInWarehouse) as raised:
            load_candles(exchange, symbol, interval, JAN_31, JAN_31 + DAY_MS, warehouse=warehouse)
        message = str(raised.value)
        assert f"holds no {interval} candles of {exchange} {symbol}" in message, message
        assert "it holds binance BTC/USDT (1m); binance ETH/USDT (1m)" in message, message
    # the pipeline's own reads (an instrument with no candles yet is normal there): an empty frame
    assert load_candles("binance", "DOGE/USDT", "1m", JAN_31, JAN_31 + DAY_MS, warehouse=warehouse, strict=False).empty


def test_an_empty_range_of_a_held_instrument_warns_only_outside_the_stored_span(warehouse):
    _store(warehouse, "BTC/USDT", 300)  # 00:00-04:59 on Jan 31, minutes 100-109 missing
    with pytest.warns(OutsideStoredRange, match="holds this instrument's 1m candles from 2025-01-31T00:00"):
        assert load_candles("binance", "BTC/USDT", "1m", "2024-01-01", "2024-02-01", warehouse=warehouse).empty
    with pytest.warns(OutsideStoredRange):
        assert load_candles("binance", "BTC/USDT", "1m", JAN_31 + DAY_MS, JAN_31 + 2 * DAY_MS, warehouse=warehouse).empty
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a hole inside the stored span is what is stored: no warning
        assert load_candles("binance", "BTC/USDT", "1m", JAN_31 + 100 * MINUTE_MS, JAN_31 + 110 * MINUTE_MS,
                            warehouse=warehouse).empty
        assert len(load_candles("binance", "BTC/USDT", "1m", JAN_31, JAN_31 + DAY_MS, warehouse=warehouse)) == 290


def _store_funding(warehouse: Warehouse, symbol: str, n: int) -> pd.DataFrame:
    """n settlements 8 h apart from Jan 31 (the third missing), a few ms late, the last without a mark price."""
    nominal = JAN_31 + np.arange(n, dtype=np.int64) * 8 * HOUR_MS
    frame = pd.DataFrame({"open_time": nominal, "raw_time": nominal + 3, "rate": 1e-4 * (np.arange(n) - 2),
                          "mark_price": 100.0 + np.arange(n)})
    frame.loc[n - 1, "mark_price"] = np.nan
    frame = frame.drop(index=2).reset_index(drop=True)
    merge_funding(warehouse, "perps", symbol, frame, [(JAN_31, JAN_31 + 4 * DAY_MS)], 1)
    return frame


def test_a_perpetuals_price_series_and_funding_read_back_equal_to_what_was_stored(warehouse):
    marks = _store(warehouse, "BTC/USDT", 300).assign(volume=0.0)
    warehouse.merge_partitions(candles, "perps", "BTC/USDT:USDT", "mark_1m", marks, [(JAN_31, JAN_31 + DAY_MS)], 1)
    got = load_candles("perps", "BTC/USDT:USDT", "mark_1m", JAN_31, JAN_31 + DAY_MS, warehouse=warehouse)
    assert got.reset_index(drop=True).equals(marks)

    stored = _store_funding(warehouse, "BTC/USDT:USDT", 9)
    funding = load_funding("perps", "BTC/USDT:USDT", "2025-01-31", "2025-02-03", warehouse=warehouse)
    assert list(funding.columns) == ["funding_time", "raw_time", "rate", "mark_price"]
    assert funding.reset_index(drop=True).equals(stored.rename(columns={"open_time": "funding_time"}))
    assert funding.index.name == "time" and funding.index[0] == pd.Timestamp("2025-01-31T00:00Z")
    assert np.isnan(funding["mark_price"].iloc[-1]) and len(funding) == 8  # the missing one stays missing
    assert len(load_funding("perps", "BTC/USDT:USDT", JAN_31 + 8 * HOUR_MS, JAN_31 + 24 * HOUR_MS, warehouse=warehouse)) == 1
    with pytest.raises(ValueError, match="load_funding"):
        load_candles("perps", "BTC/USDT:USDT", "funding", JAN_31, JAN_31 + DAY_MS, warehouse=warehouse)


def test_load_funding_names_what_is_held_and_warns_outside_the_stored_span(warehouse):
    _store_funding(warehouse, "BTC/USDT:USDT", 9)
    _store_funding(warehouse, "ETH/USDT:USDT", 3)
    with pytest.raises(NotInWarehouse) as raised:
        load_funding("perps", "DOGE/USDT:USDT", JAN_31, JAN_31 + DAY_MS, warehouse=warehouse)
    message = str(raised.value)
    assert "holds no funding settlements of perps DOGE/USDT:USDT" in message, message
    assert "it holds those of: perps BTC/USDT:USDT; perps ETH/USDT:USDT" in message, message
    with pytest.warns(OutsideStoredRange, match="settlements from 2025-01-31T00:00"):
        assert load_funding("perps", "ETH/USDT:USDT", "2025-03-01", "2025-04-01", warehouse=warehouse).empty
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a hole inside the stored span: no warning
        assert load_funding("perps", "BTC/USDT:USDT", JAN_31 + 16 * HOUR_MS, JAN_31 + 17 * HOUR_MS, warehouse=warehouse).empty
    assert load_funding("perps", "DOGE/USDT:USDT", JAN_31, JAN_31 + DAY_MS, warehouse=warehouse, strict=False).empty
    with pytest.raises(ValueError, match="before start"):
        load_funding("perps", "BTC/USDT:USDT", "2025-02-01", "2025-01-01", warehouse=warehouse)


def _store_open_interest(warehouse: Warehouse, symbol: str, n: int) -> pd.DataFrame:
    """n samples 5 minutes apart from Jan 31 23:00 (crossing into February), the fourth missing, the
    last without a value in the quote currency."""
    times = JAN_31 + 23 * HOUR_MS + np.arange(n, dtype=np.int64) * 5 * MINUTE_MS
    frame = pd.DataFrame({"open_time": times, "amount": 1000.0 + np.arange(n), "value": 6e7 + 1e4 * np.arange(n)})
    frame.loc[n - 1, "value"] = np.nan
    frame = frame.drop(index=3).reset_index(drop=True)
    merge_open_interest(warehouse, "perps", symbol, frame, [(JAN_31, JAN_31 + DAY_MS), (JAN_31 + DAY_MS, JAN_31 + 2 * DAY_MS)], 1)
    return frame


def test_open_interest_reads_back_equal_to_what_was_stored(warehouse):
    stored = _store_open_interest(warehouse, "BTC/USDT:USDT", 20)
    got = load_open_interest("perps", "BTC/USDT:USDT", "2025-01-31", "2025-02-02", warehouse=warehouse)
    assert list(got.columns) == ["sample_time", "amount", "value"]
    assert got["sample_time"].dtype == np.int64 and got["amount"].dtype == np.float64
    assert got.reset_index(drop=True).equals(stored.rename(columns={"open_time": "sample_time"}))
    assert got.index.name == "time" and str(got.index.tz) == "UTC" and got.index[0] == pd.Timestamp("2025-01-31T23:00Z")
    assert len(got) == 19 and np.isnan(got["value"].iloc[-1])  # the missing sample stays missing
    feb = load_open_interest("perps", "BTC/USDT:USDT", dt.date(2025, 2, 1), JAN_31 + DAY_MS + 10 * MINUTE_MS, warehouse=warehouse)
    assert feb["sample_time"].tolist() == [JAN_31 + DAY_MS, JAN_31 + DAY_MS + 5 * MINUTE_MS]  # [start, end)
    with pytest.raises(ValueError, match="load_open_interest"):
        load_candles("perps", "BTC/USDT:USDT", "oi_5m", JAN_31, JAN_31 + DAY_MS, warehouse=warehouse)


def test_load_open_interest_names_what_is_held_and_warns_outside_the_stored_span(warehouse):
    _store_open_interest(warehouse, "BTC/USDT:USDT", 20)
    _store_open_interest(warehouse, "ETH/USDT:USDT", 5)
    _store_funding(warehouse, "SOL/USDT:USDT", 3)  # funding held is not open interest held
    with pytest.raises(NotInWarehouse) as raised:
        load_open_interest("perps", "SOL/USDT:USDT", JAN_31, JAN_31 + DAY_MS, warehouse=warehouse)
    message = str(raised.value)
    assert "holds no open interest samples of perps SOL/USDT:USDT" in message, message
    assert "it holds those of: perps BTC/USDT:USDT; perps ETH/USDT:USDT" in message, message
    with pytest.warns(OutsideStoredRange, match="open interest samples from 2025-01-31T23:00"):
        assert load_open_interest("perps", "ETH/USDT:USDT", "2025-03-01", "2025-04-01", warehouse=warehouse).empty
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a hole inside the stored span: no warning
        assert load_open_interest("perps", "BTC/USDT:USDT", JAN_31 + 23 * HOUR_MS + 15 * MINUTE_MS,
                                  JAN_31 + 23 * HOUR_MS + 20 * MINUTE_MS, warehouse=warehouse).empty
    empty = load_open_interest("perps", "SOL/USDT:USDT", JAN_31, JAN_31 + DAY_MS, warehouse=warehouse, strict=False)
    assert empty.empty and list(empty.columns) == ["sample_time", "amount", "value"]
    with pytest.raises(ValueError, match="before start"):
        load_open_interest("perps", "BTC/USDT:USDT", "2025-02-01", "2025-01-01", warehouse=warehouse)


def test_load_open_interest_opens_the_configured_warehouse(warehouse_url, monkeypatch):
    """A warehouse holding only open interest (no candle) is read; one holding nothing is refused."""
    wh = Warehouse(warehouse_url)
    wh.migrate()
    monkeypatch.setenv("OHLCV_WAREHOUSE_URL", warehouse_url)
    with pytest.raises(WarehouseMissing, match="holds no candles, funding rates or open interest yet"):
        load_open_interest("perps", "BTC/USDT:USDT", JAN_31, JAN_31 + 2 * DAY_MS)
    stored = _store_open_interest(wh, "BTC/USDT:USDT", 6)
    wh.dispose()
    got = load_open_interest("perps", "BTC/USDT:USDT", JAN_31, JAN_31 + 2 * DAY_MS)
    assert got["sample_time"].tolist() == stored["open_time"].tolist()
