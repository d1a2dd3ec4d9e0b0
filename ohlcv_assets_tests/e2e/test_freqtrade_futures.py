"""freqtrade reads our futures export: two USDⓈ-M perpetuals backfilled through Dagster from the
simulator (trade candles, mark, index and premium index klines, funding settlements across a funding
interval change), exported by ``candle_export``, then loaded by freqtrade 2026.9's own data handler in
its own virtual environment (a subprocess), every file equal to the warehouse, row by row and value by
value; and its backtester's join of funding with mark candles keeps every settlement."""

import datetime as dt
import json
import subprocess

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ohlcv_assets import load_candles, load_funding
from ohlcv_assets.core.intervals import HOUR_MS, day_bounds_ms
from ohlcv_assets.core.names import EXPORT_KEY, RANGE_END_TAG, RANGE_START_TAG, candles_key, funding_key
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.defs.partitions import sync_instrument_partitions
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.helpers import FUNDING_CHANGE, PERP_SIMULATOR_CONFIG

pytestmark = pytest.mark.e2e  # freqtrade's venv (built once per checkout), a dozen Dagster runs, freqtrade's imports

FIRST, LAST = dt.date(2026, 10, 4), dt.date(2026, 10, 6)  # BTCUSDT's funding goes 8 h -> 4 h on the 5th; ETHUSDT runs at 1 h
TYPES = {"1h": "futures", "mark_1h": "mark", "idx_1h": "index", "prem_1h": "premiumIndex"}  # freqtrade's candle types

# Run by freqtrade's python: loads every file the way freqtrade does and prints what it got.
FREQTRADE_LOADER = """
import json, sys
from pathlib import Path
from freqtrade.data.history import get_datahandler
from freqtrade.enums import CandleType, TradingMode
from freqtrade.exchange import Exchange

datadir, wanted = sys.argv[1], json.loads(sys.argv[2])
handler = get_datahandler(Path(datadir), "feather")
out = {"available": sorted(f"{p} {tf} {t}" for p, tf, t in handler.ohlcv_get_available_data(Path(datadir), TradingMode.FUTURES))}
for pair, types in wanted.items():
    frames = {}
    for candle_type in types:
        frame = handler.ohlcv_load(pair, "1h", candle_type=CandleType(candle_type), fill_missing=False, warn_no_data=False)
        frames[candle_type] = frame
        out[f"{pair} {candle_type}"] = {"dates": frame["date"].dt.as_unit("ms").astype("int64").tolist(),
                                        "columns": {c: frame[c].tolist() for c in frame.columns if c != "date"}}
    joined = Exchange.combine_funding_and_mark(frames["funding_rate"], frames["mark"])  # what its backtester pays funding on
    out[f"{pair} joined"] = {"dates": joined["date"].dt.as_unit("ms").astype("int64").tolist(), "open_fund": joined["open_fund"].tolist()}
print(json.dumps(out))
"""


def _materialize_range(defs, instance, key: dg.AssetKey, instrument: str) -> None:
    result = dg.materialize([defs.get_assets_def(key)], instance=instance, resources=defs.resources,
                            tags={RANGE_START_TAG: f"{FIRST}|{instrument}", RANGE_END_TAG: f"{LAST}|{instrument}"})
    assert result.success


def test_freqtrade_loads_the_exported_futures_files_equal_to_the_warehouse(simulators, freqtrade_python, postgres_url, tmp_path):
    sim = simulators(PERP_SIMULATOR_CONFIG)
    sim.reconfigure({"faults": [], "reset_stats": True, "venues": PERP_SIMULATOR_CONFIG["venues"]})
    directory = tmp_path / "export"
    path = tmp_path / "universe.yaml"
    path.write_text(f"""
exchanges:
  perps: {{ccxt_id: binanceusdm, api_url: "{sim.url}/fapi/v1", timeout_seconds: 2, retry_base_seconds: 0.05}}
instruments:
  - {{exchange: perps, symbol: BTC/USDT:USDT, intervals: [1h], start: 2026-10-01, series: [mark, index, premium, funding]}}
  - {{exchange: perps, symbol: ETH/USDT:USDT, intervals: [1h], start: 2026-10-01, series: [mark, funding]}}
export: {{formats: [freqtrade], directory: {directory}}}
""")
    universe = parse_universe(path.read_text(), str(path))
    defs = build_definitions(str(path), postgres_url)
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        for instrument in universe.instruments:
            for code in (*instrument.intervals, *instrument.series_codes):
                key = funding_key() if code == "funding" else candles_key(code)
                _materialize_range(defs, instance, key, instrument.key)
        result = dg.materialize([defs.get_assets_def(EXPORT_KEY)], instance=instance, resources=defs.resources)
        assert result.success

    wanted = {"BTC/USDT:USDT": ["futures", "mark", "index", "premiumIndex", "funding_rate"],
              "ETH/USDT:USDT": ["futures", "mark", "funding_rate"]}
    loaded = subprocess.run([freqtrade_python, "-c", FREQTRADE_LOADER, str(directory / "freqtrade" / "perps"), json.dumps(wanted)],
                            capture_output=True, text=True, timeout=600)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    got = json.loads(loaded.stdout.strip().splitlines()[-1])
    # what freqtrade lists (list-data) from the file names: every pair, timeframe and candle type written, nothing else
    assert got["available"] == sorted(f"{pair} 1h {t}" for pair, types in wanted.items() for t in types)

    lo, hi = day_bounds_ms(FIRST)[0], day_bounds_ms(LAST)[1]
    warehouse = Warehouse(postgres_url)
    try:
        for pair, types in wanted.items():
            for code, candle_type in TYPES.items():
                if candle_type not in types:
                    continue
                stored = load_candles("perps", pair, code, lo, hi, warehouse=warehouse)
                assert len(stored) == 3 * 24, (pair, code)  # the whole range, backfilled
                frame = got[f"{pair} {candle_type}"]
                assert frame["dates"] == stored["open_time"].tolist(), (pair, candle_type)
                for column in ("open", "high", "low", "close", "volume"):
                    assert frame["columns"][column] == stored[column].tolist(), (pair, candle_type, column)
            settlements = load_funding("perps", pair, lo, hi, warehouse=warehouse)
            frame = got[f"{pair} funding_rate"]
            assert frame["dates"] == settlements["funding_time"].tolist()
            assert frame["columns"]["funding_rate"] == settlements["rate"].tolist()
            assert (settlements["raw_time"] != settlements["funding_time"]).any()  # the venue's ms late; the file's on the hour
            joined = got[f"{pair} joined"]
            assert joined["dates"] == settlements["funding_time"].tolist()  # every settlement met its 1h mark candle
            assert joined["open_fund"] == settlements["rate"].tolist()
    finally:
        warehouse.dispose()
    btc = np.diff(got["BTC/USDT:USDT funding_rate"]["dates"])
    change = int(pd.Timestamp(FUNDING_CHANGE).value // 10**6)
    assert set(btc) == {4 * HOUR_MS, 8 * HOUR_MS} and change in got["BTC/USDT:USDT funding_rate"]["dates"]
    assert len(got["ETH/USDT:USDT funding_rate"]["dates"]) == 24 + 24 + 3  # 1 h on the 4th and 5th, 8 h on the 6th
