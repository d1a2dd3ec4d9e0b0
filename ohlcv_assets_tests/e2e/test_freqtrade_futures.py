"""freqtrade reads our futures export: two USDⓈ-M perpetuals backfilled through Dagster from the
simulator (trade candles, mark, index and premium index klines, funding settlements across a funding
interval change, and open interest of the last two days: REST's 30-day reach), exported by
``candle_export``, then loaded by freqtrade 2026.9's own data handler in
its own virtual environment (a subprocess), every file equal to the warehouse, row by row and value by
value; its backtester's join of funding with mark candles keeps every settlement; and a futures
backtest runs on the files (its markets from the simulator) and charges each trade exactly the
funding the warehouse's settlements and mark prices make."""

import datetime as dt
import json
import subprocess
import zipfile

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ohlcv_assets import load_candles, load_funding, load_open_interest
from ohlcv_assets.core.intervals import HOUR_MS, day_bounds_ms, now_ms, utc_day
from ohlcv_assets.core.names import EXPORT_KEY, RANGE_END_TAG, RANGE_START_TAG, candles_key, funding_key, open_interest_key
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.defs.partitions import sync_instrument_partitions
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.helpers import FUNDING_CHANGE, PERP_SIMULATOR_CONFIG

pytestmark = pytest.mark.e2e  # freqtrade's venv (built once per checkout), a dozen Dagster runs, freqtrade's imports

FIRST, LAST = dt.date(2026, 10, 4), dt.date(2026, 10, 6)  # BTCUSDT's funding goes 8 h -> 4 h on the 5th; ETHUSDT runs at 1 h
TYPES = {"1h": "futures", "mark_1h": "mark", "idx_1h": "index", "prem_1h": "premiumIndex"}  # freqtrade's candle types
TIMEFRAME = {"open_interest": "5m"}  # the timeframe freqtrade loads a candle type under, where not 1h: open interest as stored

# Run by freqtrade's python: loads every file the way freqtrade does and prints what it got.
FREQTRADE_LOADER = """
import json, sys
from pathlib import Path
from freqtrade.data.history import get_datahandler
from freqtrade.enums import CandleType, TradingMode
from freqtrade.exchange import Exchange

datadir, wanted, timeframes = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
handler = get_datahandler(Path(datadir), "feather")
out = {"available": sorted(f"{p} {tf} {t}" for p, tf, t in handler.ohlcv_get_available_data(Path(datadir), TradingMode.FUTURES))}
for pair, types in wanted.items():
    frames = {}
    for candle_type in types:
        frame = handler.ohlcv_load(pair, timeframes.get(candle_type, "1h"), candle_type=CandleType(candle_type), fill_missing=False,
                                   warn_no_data=False)
        frames[candle_type] = frame
        out[f"{pair} {candle_type}"] = {"dates": frame["date"].dt.as_unit("ms").astype("int64").tolist(),
                                        "columns": {c: frame[c].tolist() for c in frame.columns if c != "date"}}
    joined = Exchange.combine_funding_and_mark(frames["funding_rate"], frames["mark"])  # what its backtester pays funding on
    out[f"{pair} joined"] = {"dates": joined["date"].dt.as_unit("ms").astype("int64").tolist(), "open_fund": joined["open_fund"].tolist()}
print(json.dumps(out))
"""


STRATEGY = """
from freqtrade.strategy import IStrategy


class EveryDay(IStrategy):
    \"\"\"Long from 01:00 to 21:00 UTC each day: every trade holds through settlements.\"\"\"
    timeframe = "1h"
    minimal_roi = {"0": 100}
    stoploss = -0.99

    def populate_indicators(self, dataframe, metadata):
        return dataframe

    def populate_entry_trend(self, dataframe, metadata):
        dataframe.loc[dataframe["date"].dt.hour == 0, "enter_long"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe, metadata):
        dataframe.loc[dataframe["date"].dt.hour == 20, "exit_long"] = 1
        return dataframe
"""


def _backtest_config(sim_url: str) -> dict:
    """freqtrade's futures backtest of both pairs; the markets (ccxt's binance, linear only) from the simulator."""
    ccxt = {"options": {"fetchMarkets": {"types": ["linear"]}}, "urls": {"api": {"fapiPublic": f"{sim_url}/fapi/v1"}}}
    pricing = {"price_side": "same", "use_order_book": True, "order_book_top": 1}  # binance futures tickers have no price
    return {"trading_mode": "futures", "margin_mode": "isolated", "stake_currency": "USDT", "stake_amount": 100,
            "dry_run": True, "dry_run_wallet": 1000, "max_open_trades": 2, "timeframe": "1h", "dataformat_ohlcv": "feather",
            "entry_pricing": pricing, "exit_pricing": pricing, "pairlists": [{"method": "StaticPairList"}],
            "exchange": {"name": "binance", "pair_whitelist": ["BTC/USDT:USDT", "ETH/USDT:USDT"],
                         "ccxt_config": ccxt, "ccxt_async_config": ccxt}}


def _backtest_trades(freqtrade_python: str, sim_url: str, datadir, work) -> list[dict]:
    """freqtrade backtesting over the export; its trades as its result file holds them."""
    (work / "user_data" / "strategies").mkdir(parents=True)
    (work / "user_data" / "strategies" / "every_day.py").write_text(STRATEGY)
    (work / "results").mkdir()
    (work / "config.json").write_text(json.dumps(_backtest_config(sim_url)))
    ran = subprocess.run([freqtrade_python, "-m", "freqtrade", "backtesting", "--userdir", str(work / "user_data"),
                          "-c", str(work / "config.json"), "--datadir", str(datadir), "--strategy", "EveryDay",
                          "--timerange", f"{FIRST:%Y%m%d}-{LAST + dt.timedelta(days=1):%Y%m%d}", "--export", "trades",
                          "--backtest-directory", str(work / "results"), "--cache", "none"],
                         capture_output=True, text=True, timeout=600, cwd=work)
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-4000:]
    [archive] = (work / "results").glob("*.zip")
    with zipfile.ZipFile(archive) as z:
        return json.loads(z.read(f"{archive.stem}.json"))["strategy"]["EveryDay"]["trades"]


def _materialize_range(defs, instance, key: dg.AssetKey, instrument: str, first: dt.date = FIRST, last: dt.date = LAST) -> None:
    result = dg.materialize([defs.get_assets_def(key)], instance=instance, resources=defs.resources,
                            tags={RANGE_START_TAG: f"{first}|{instrument}", RANGE_END_TAG: f"{last}|{instrument}"})
    assert result.success


def test_freqtrade_loads_and_backtests_the_exported_futures_files_equal_to_the_warehouse(simulators, freqtrade_python, postgres_url,
                                                                                       tmp_path):
    sim = simulators(PERP_SIMULATOR_CONFIG)
    sim.reconfigure({"faults": [], "reset_stats": True, "venues": PERP_SIMULATOR_CONFIG["venues"]})
    directory = tmp_path / "export"
    path = tmp_path / "universe.yaml"
    path.write_text(f"""
exchanges:
  perps: {{ccxt_id: binanceusdm, api_url: "{sim.url}/fapi/v1", timeout_seconds: 2, retry_base_seconds: 0.05}}
instruments:
  - {{exchange: perps, symbol: BTC/USDT:USDT, intervals: [1h], start: 2026-10-01, series: [mark, index, premium, funding, open_interest]}}
  - {{exchange: perps, symbol: ETH/USDT:USDT, intervals: [1h], start: 2026-10-01, series: [mark, funding]}}
export: {{formats: [freqtrade], directory: {directory}}}
""")
    universe = parse_universe(path.read_text(), str(path))
    defs = build_definitions(str(path), postgres_url)
    oi_days = (utc_day(now_ms()) - dt.timedelta(days=2), utc_day(now_ms()) - dt.timedelta(days=1))  # what REST still serves
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        for instrument in universe.instruments:
            for code in (*instrument.intervals, *instrument.series_codes):
                if code == "oi_5m":
                    _materialize_range(defs, instance, open_interest_key(), instrument.key, *oi_days)
                    continue
                key = funding_key() if code == "funding" else candles_key(code)
                _materialize_range(defs, instance, key, instrument.key)
        result = dg.materialize([defs.get_assets_def(EXPORT_KEY)], instance=instance, resources=defs.resources)
        assert result.success

    wanted = {"BTC/USDT:USDT": ["futures", "mark", "index", "premiumIndex", "funding_rate", "open_interest"],
              "ETH/USDT:USDT": ["futures", "mark", "funding_rate"]}
    loaded = subprocess.run([freqtrade_python, "-c", FREQTRADE_LOADER, str(directory / "freqtrade" / "perps"), json.dumps(wanted),
                             json.dumps(TIMEFRAME)], capture_output=True, text=True, timeout=600)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    got = json.loads(loaded.stdout.strip().splitlines()[-1])
    # what freqtrade lists (list-data) from the file names: every pair, timeframe and candle type written, nothing else
    assert got["available"] == sorted(f"{pair} {TIMEFRAME.get(t, '1h')} {t}" for pair, types in wanted.items() for t in types)

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
        samples = load_open_interest("perps", "BTC/USDT:USDT", day_bounds_ms(oi_days[0])[0], day_bounds_ms(oi_days[1])[1],
                                     warehouse=warehouse)
        assert len(samples) == 2 * 288  # both days, every 5 minutes
        frame = got["BTC/USDT:USDT open_interest"]
        assert list(frame["columns"]) == ["open_interest_amount", "open_interest_value"]  # freqtrade's own columns, nothing added
        assert frame["dates"] == samples["sample_time"].tolist()
        assert frame["columns"]["open_interest_amount"] == samples["amount"].tolist()
        assert frame["columns"]["open_interest_value"] == samples["value"].tolist()

        trades = _backtest_trades(freqtrade_python, sim.url, directory / "freqtrade" / "perps", tmp_path / "backtest")
        assert sorted((t["pair"], t["open_date"][:10]) for t in trades) == sorted(
            (pair, str(FIRST + dt.timedelta(days=d))) for pair in wanted for d in range(3))  # a trade a day and pair
        for trade in trades:  # a long pays rate x mark price at each settlement it holds through (both ends included)
            settlements = load_funding("perps", trade["pair"], trade["open_timestamp"], trade["close_timestamp"] + 1, warehouse=warehouse)
            marks = load_candles("perps", trade["pair"], "mark_1h", trade["open_timestamp"], trade["close_timestamp"] + 1,
                                 warehouse=warehouse).set_index("open_time")["open"]
            assert len(settlements) >= 2, trade
            paid = -trade["amount"] * sum(settlements["rate"] * marks.loc[settlements["funding_time"]].to_numpy())
            assert trade["funding_fees"] == pytest.approx(paid, rel=1e-9, abs=1e-15), trade
    finally:
        warehouse.dispose()
    btc = np.diff(got["BTC/USDT:USDT funding_rate"]["dates"])
    change = int(pd.Timestamp(FUNDING_CHANGE).value // 10**6)
    assert set(btc) == {4 * HOUR_MS, 8 * HOUR_MS} and change in got["BTC/USDT:USDT funding_rate"]["dates"]
    assert len(got["ETH/USDT:USDT funding_rate"]["dates"]) == 24 + 24 + 3  # 1 h on the 4th and 5th, 8 h on the 6th
