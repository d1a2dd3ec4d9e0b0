"""Export for backtests through Dagster on both warehouses: Parquet read back by pandas, polars and
DuckDB, freqtrade's feather read the way freqtrade reads it, all equal to the warehouse, and only
changed months written again."""

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import polars as pl

from ohlcv_assets import load_candles
from ohlcv_assets.defs.assets.maintenance import build_export_asset
from ohlcv_assets.core.intervals import HOUR_MS, MINUTE_MS
from ohlcv_assets.defs.resources import WarehouseResource
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets_tests.helpers import merge_candles, universe_yaml

JAN_31_22H = 1_738_360_800_000  # 2025-01-31T22:00Z: four hours of 1m candles cross into February
FEB_2 = 1_738_454_400_000


def _frame(start: int, n: int, step: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 + rng.normal(size=n).cumsum()
    return pd.DataFrame({"open_time": start + np.arange(n, dtype=np.int64) * step, "open": close + 0.1,
                         "high": close + 1, "low": close - 1, "close": close, "volume": rng.random(n) * 10})


def _export(universe, warehouse_url) -> dict:
    result = dg.materialize([build_export_asset(universe)], resources={"warehouse": WarehouseResource(url=warehouse_url)})
    assert result.success
    (materialization,) = result.asset_materializations_for_node("candle_export")
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def _expected(warehouse, symbol: str, interval: str) -> pd.DataFrame:
    frame = load_candles("binance", symbol, interval, 0, 2**53, warehouse=warehouse).reset_index(drop=True)
    frame["open_time"] = pd.to_datetime(frame["open_time"], unit="ms", utc=True)
    return frame


def test_exports_read_back_equal_in_every_reader_and_only_changed_months_are_rewritten(simulator, warehouse, tmp_path):
    directory = tmp_path / "export"
    universe = parse_universe(universe_yaml(simulator.url) + f"export: {{formats: [parquet, freqtrade], directory: {directory}}}\n")
    btc = _frame(JAN_31_22H, 240, MINUTE_MS, 1)
    merge_candles(warehouse, "binance", "BTC/USDT", "1m", btc, JAN_31_22H, JAN_31_22H + 4 * HOUR_MS, 1)
    merge_candles(warehouse, "binance", "BTC/USDT", "1h", _frame(JAN_31_22H - 22 * HOUR_MS, 48, HOUR_MS, 2), 0, 2**53, 1)
    merge_candles(warehouse, "binance", "ETH/USDT", "1m", _frame(FEB_2, 90, MINUTE_MS, 3), 0, 2**53, 1)

    first = _export(universe, warehouse.url)
    parquet = directory / "parquet"
    files = sorted(str(p.relative_to(parquet)) for p in parquet.rglob("*.parquet"))
    assert files == [
        "exchange=binance/symbol=BTC-USDT/interval=1h/month=2025-01/candles.parquet",
        "exchange=binance/symbol=BTC-USDT/interval=1h/month=2025-02/candles.parquet",
        "exchange=binance/symbol=BTC-USDT/interval=1m/month=2025-01/candles.parquet",
        "exchange=binance/symbol=BTC-USDT/interval=1m/month=2025-02/candles.parquet",
        "exchange=binance/symbol=ETH-USDT/interval=1m/month=2025-02/candles.parquet",
    ]
    assert first["files_written"] == 5 + 3 and first["rows_written"] == 2 * (240 + 48 + 90)
    assert not list(directory.rglob("*.tmp"))

    for symbol, key, interval in (("BTC/USDT", "BTC-USDT", "1m"), ("BTC/USDT", "BTC-USDT", "1h"), ("ETH/USDT", "ETH-USDT", "1m")):
        expected = _expected(warehouse, symbol, interval)
        stored = load_candles("binance", symbol, interval, 0, 2**53, warehouse=warehouse).reset_index(drop=True)
        with_pandas = pd.read_parquet(parquet, filters=[("symbol", "==", key), ("interval", "==", interval)])
        with_pandas = with_pandas.sort_values("open_time")[expected.columns].reset_index(drop=True)
        assert with_pandas.equals(expected.astype({"open_time": with_pandas["open_time"].dtype})), (symbol, interval)
        with_polars = (pl.read_parquet(f"{parquet}/**/*.parquet", hive_partitioning=True)
                       .filter((pl.col("symbol") == key) & (pl.col("interval") == interval)).sort("open_time"))
        assert with_polars["close"].to_list() == expected["close"].tolist()
        assert with_polars["open_time"].dt.epoch("ms").to_list() == stored["open_time"].tolist()
        with_duckdb = duckdb.sql(
            f"SELECT epoch_ms(open_time) AS t, open, high, low, close, volume FROM read_parquet('{parquet}/**/*.parquet', "
            f"hive_partitioning = true) WHERE symbol = '{key}' AND interval = '{interval}' ORDER BY open_time").df()
        assert with_duckdb["t"].tolist() == stored["open_time"].tolist()
        assert with_duckdb[["open", "high", "low", "close", "volume"]].equals(stored[["open", "high", "low", "close", "volume"]])

        # What freqtrade's FeatherDataHandler._ohlcv_load does with <datadir>/<pair>-<timeframe>.feather.
        feather = directory / "freqtrade" / "binance" / f"{symbol.replace('/', '_')}-{interval}.feather"
        pairdata = pd.read_feather(feather)
        pairdata.columns = ["date", "open", "high", "low", "close", "volume"]
        pairdata["date"] = pd.to_datetime(pairdata["date"], unit="ms", utc=True)
        assert pairdata["date"].tolist() == expected["open_time"].tolist()
        assert pairdata[["open", "high", "low", "close", "volume"]].equals(stored[["open", "high", "low", "close", "volume"]])

    january = parquet / files[2]
    january_mtime = january.stat().st_mtime_ns
    again = _export(universe, warehouse.url)
    assert (again["files_written"], again["files_unchanged"]) == (0, 8)

    revised = btc.iloc[200:201].assign(close=lambda f: f["close"] + 0.5, high=lambda f: f["high"] + 0.5)
    merge_candles(warehouse, "binance", "BTC/USDT", "1m", revised, JAN_31_22H, JAN_31_22H + 4 * HOUR_MS, 2)
    third = _export(universe, warehouse.url)
    assert third["files_written"] == 2 and third["rows_written"] == 120 + 240
    assert "month=2025-02" in third["written"] and "BTC_USDT-1m.feather" in third["written"]
    assert january.stat().st_mtime_ns == january_mtime
    february = pd.read_parquet(parquet / files[3])
    assert february["close"].iloc[200 - 120] == revised["close"].iloc[0]
