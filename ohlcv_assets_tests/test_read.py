"""load_candles, the one read path, on both warehouses."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ohlcv_assets import load_candles
from ohlcv_assets.intervals import DAY_MS, MINUTE_MS
from ohlcv_assets.warehouse.schema import candles
from ohlcv_assets.warehouse.store import Warehouse, WarehouseMissing

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
