"""Export for backtests through Dagster on both warehouses: Parquet read back by pandas, polars and
DuckDB, freqtrade's feather read the way freqtrade reads it, all equal to the warehouse, and only
changed months written again."""

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import polars as pl

from ohlcv_assets import load_candles, load_open_interest
from ohlcv_assets.defs.assets.maintenance import build_export_asset
from ohlcv_assets.core.intervals import HOUR_MS, MINUTE_MS
from ohlcv_assets.defs.resources import WarehouseResource
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.warehouse.exports import record_export
from ohlcv_assets.warehouse.funding import merge_funding
from ohlcv_assets.warehouse.open_interest import merge_open_interest
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


def _perp_universe(directory) -> object:
    return parse_universe(f"""
exchanges:
  perps: {{ccxt_id: binanceusdm, api_url: "http://127.0.0.1:9/fapi/v1"}}
instruments:
  - {{exchange: perps, symbol: BTC/USDT:USDT, intervals: [1h], start: 2025-01-30, series: [mark, premium, funding]}}
export: {{formats: [parquet, freqtrade], directory: {directory}}}
""")


def test_a_perpetuals_series_are_exported_under_freqtrades_futures_names_and_its_own_parquet_trees(warehouse, tmp_path):
    directory = tmp_path / "export"
    universe = _perp_universe(directory)
    symbol, start = "BTC/USDT:USDT", JAN_31_22H - 22 * HOUR_MS  # Jan 31 00:00: two days, across a month
    merge_candles(warehouse, "perps", symbol, "1h", _frame(start, 48, HOUR_MS, 4), 0, 2**53, 1)
    merge_candles(warehouse, "perps", symbol, "mark_1h", _frame(start, 48, HOUR_MS, 5).assign(volume=0.0), 0, 2**53, 1)
    premium = _frame(start, 48, HOUR_MS, 6).assign(volume=0.0)
    premium[["open", "high", "low", "close"]] = (premium[["open", "high", "low", "close"]] - 100) * 1e-4  # crosses zero
    merge_candles(warehouse, "perps", symbol, "prem_1h", premium, 0, 2**53, 1)
    nominal = start + np.arange(6, dtype=np.int64) * 8 * HOUR_MS
    funding = pd.DataFrame({"open_time": nominal, "raw_time": nominal + 2, "rate": [1e-4, -2e-4, 3e-4, 1e-4, 0.0, 5e-5],
                            "mark_price": [100.0, 101.0, 102.0, 103.0, 104.0, np.nan]})
    merge_funding(warehouse, "perps", symbol, funding, [(start, start + 2 * 86_400_000)], 1)
    # what an export before contracts had their own layout left: the trade candles under the spot name
    spot_layout = directory / "freqtrade/perps/BTC_USDT_USDT-1h.feather"
    spot_layout.parent.mkdir(parents=True)
    spot_layout.write_bytes(b"old")
    record_export(warehouse, "freqtrade", "perps", symbol, "1h", "", "freqtrade/perps/BTC_USDT_USDT-1h.feather", 1, 1, 1)

    first = _export(universe, warehouse.url)
    futures = directory / "freqtrade" / "perps" / "futures"
    assert sorted(p.name for p in futures.iterdir()) == [
        "BTC_USDT_USDT-1h-funding_rate.feather", "BTC_USDT_USDT-1h-futures.feather", "BTC_USDT_USDT-1h-mark.feather",
        "BTC_USDT_USDT-1h-premiumIndex.feather"]
    assert not spot_layout.exists()  # moved, not left beside
    assert sorted(str(p.relative_to(directory)) for p in directory.rglob("*.parquet")) == [
        f"parquet-funding/exchange=perps/symbol=BTC-USDT_USDT/month={m}/funding.parquet" for m in ("2025-01", "2025-02")] + [
        f"parquet/exchange=perps/symbol=BTC-USDT_USDT/interval={code}/month={m}/candles.parquet"
        for code in ("1h", "mark_1h", "prem_1h") for m in ("2025-01", "2025-02")]
    assert first["files_written"] == 4 + 8 and first["rows_written"] == 2 * (3 * 48 + 6)

    for code, name in (("1h", "futures"), ("mark_1h", "mark"), ("prem_1h", "premiumIndex")):
        stored = load_candles("perps", symbol, code, 0, 2**53, warehouse=warehouse).reset_index(drop=True)
        pairdata = pd.read_feather(futures / f"BTC_USDT_USDT-1h-{name}.feather")
        assert list(pairdata.columns) == ["date", "open", "high", "low", "close", "volume"]
        assert str(pairdata["date"].dtype) == "datetime64[ms, UTC]"
        assert pairdata["date"].astype("int64").tolist() == stored["open_time"].tolist()
        assert pairdata[["open", "high", "low", "close", "volume"]].equals(stored[["open", "high", "low", "close", "volume"]])
        parquet = pd.read_parquet(directory / "parquet", filters=[("interval", "==", code)]).sort_values("open_time")
        assert parquet["close"].tolist() == stored["close"].tolist()

    rates = pd.read_feather(futures / "BTC_USDT_USDT-1h-funding_rate.feather")
    assert list(rates.columns) == ["date", "funding_rate"] and str(rates["date"].dtype) == "datetime64[ms, UTC]"
    assert rates["date"].tolist() == list(pd.to_datetime(nominal, unit="ms", utc=True)) and rates["funding_rate"].tolist() == funding["rate"].tolist()
    settlements = pd.read_parquet(directory / "parquet-funding").sort_values("funding_time").reset_index(drop=True)
    assert [str(settlements[c].dtype) for c in ("funding_time", "raw_time", "rate", "mark_price")] == [
        "datetime64[ms, UTC]", "datetime64[ms, UTC]", "float64", "float64"]
    assert (settlements["raw_time"] - settlements["funding_time"]).eq(pd.Timedelta(milliseconds=2)).all()
    assert settlements["mark_price"].equals(funding["mark_price"]) and settlements["rate"].equals(funding["rate"])
    with_duckdb = duckdb.sql(f"SELECT count(*) FROM read_parquet('{directory}/parquet/**/*.parquet', hive_partitioning = true) "
                             "WHERE interval = 'mark_1h'").fetchall()
    assert with_duckdb == [(48,)]  # the price series share the candles tree's keys and schema: one dataset still

    again = _export(universe, warehouse.url)
    assert (again["files_written"], again["files_unchanged"]) == (0, 12)
    merge_funding(warehouse, "perps", symbol, funding.iloc[5:].assign(rate=7e-5), [(start + 86_400_000, start + 2 * 86_400_000)], 2)
    third = _export(universe, warehouse.url)
    assert third["files_written"] == 2 and sorted(third["written"].split("\n")) == [
        "- `freqtrade/perps/futures/BTC_USDT_USDT-1h-funding_rate.feather`",
        "- `parquet-funding/exchange=perps/symbol=BTC-USDT_USDT/month=2025-02/funding.parquet`"]


def test_open_interest_is_exported_under_freqtrades_open_interest_name_and_its_own_parquet_tree(warehouse, tmp_path):
    directory = tmp_path / "export"
    universe = parse_universe(f"""
exchanges:
  perps: {{ccxt_id: binanceusdm, api_url: "http://127.0.0.1:9/fapi/v1"}}
instruments:
  - {{exchange: perps, symbol: BTC/USDT:USDT, intervals: [1h], start: 2025-01-30, series: [open_interest]}}
export: {{formats: [parquet, freqtrade], directory: {directory}}}
""")
    symbol, n = "BTC/USDT:USDT", 48  # 4 hours of 5-minute samples from Jan 31 22:00, across a month
    times = JAN_31_22H + np.arange(n, dtype=np.int64) * 5 * MINUTE_MS
    samples = pd.DataFrame({"open_time": times, "amount": 8000.0 + np.arange(n), "value": 5e8 + 1e5 * np.arange(n)})
    samples.loc[n - 1, "value"] = np.nan  # a sample without its value in the quote currency
    samples = samples.drop(index=7).reset_index(drop=True)  # a missing sample stays missing
    bounds = [(JAN_31_22H - 22 * HOUR_MS, FEB_2 - 86_400_000), (FEB_2 - 86_400_000, FEB_2)]
    merge_open_interest(warehouse, "perps", symbol, samples, bounds, 1)

    first = _export(universe, warehouse.url)
    assert sorted(str(p.relative_to(directory)) for p in directory.rglob("*.*")) == [
        "freqtrade/perps/futures/BTC_USDT_USDT-5m-open_interest.feather"] + [
        f"parquet-oi/exchange=perps/symbol=BTC-USDT_USDT/month={m}/open_interest.parquet" for m in ("2025-01", "2025-02")]
    assert first["files_written"] == 3 and first["rows_written"] == 2 * (n - 1)
    stored = load_open_interest("perps", symbol, 0, 2**53, warehouse=warehouse).reset_index(drop=True)
    pairdata = pd.read_feather(directory / "freqtrade/perps/futures/BTC_USDT_USDT-5m-open_interest.feather")
    assert list(pairdata.columns) == ["date", "open_interest_amount", "open_interest_value"]  # freqtrade's candle_columns
    assert str(pairdata["date"].dtype) == "datetime64[ms, UTC]"
    assert pairdata["date"].astype("int64").tolist() == stored["sample_time"].tolist() == samples["open_time"].tolist()
    assert pairdata["open_interest_amount"].equals(samples["amount"]) and pairdata["open_interest_value"].equals(samples["value"])
    parquet = pd.read_parquet(directory / "parquet-oi").sort_values("sample_time").reset_index(drop=True)
    assert [str(parquet[c].dtype) for c in ("sample_time", "amount", "value")] == ["datetime64[ms, UTC]", "float64", "float64"]
    assert parquet["sample_time"].astype("int64").tolist() == samples["open_time"].tolist()
    assert parquet["amount"].equals(samples["amount"]) and parquet["value"].equals(samples["value"])
    assert pl.scan_parquet(f"{directory}/parquet-oi/**/*.parquet", hive_partitioning=True).collect()["month"].unique().sort().to_list() == [
        "2025-01", "2025-02"]

    again = _export(universe, warehouse.url)
    assert (again["files_written"], again["files_unchanged"]) == (0, 3)
    merge_open_interest(warehouse, "perps", symbol, samples.iloc[-3:].assign(amount=1.0), [bounds[1]], 2)  # revised in February
    third = _export(universe, warehouse.url)
    assert sorted(third["written"].split("\n")) == [
        "- `freqtrade/perps/futures/BTC_USDT_USDT-5m-open_interest.feather`",
        "- `parquet-oi/exchange=perps/symbol=BTC-USDT_USDT/month=2025-02/open_interest.parquet`"]
    assert pd.read_feather(directory / "freqtrade/perps/futures/BTC_USDT_USDT-5m-open_interest.feather")[
        "open_interest_amount"].tolist()[-3:] == [1.0, 1.0, 1.0]
