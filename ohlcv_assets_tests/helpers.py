"""Test data shared by the test modules: the simulated market, the universe, the reference candles."""

import contextlib
import datetime as dt

import dagster as dg
import pandas as pd

from ohlcv_assets.core.names import candles_key
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.defs.partitions import partition_key, sync_instrument_partitions
from ohlcv_assets.ingest.days import ingest_days
from ohlcv_assets.core.intervals import day_bounds_ms, interval_ms
from ohlcv_assets.simulator.server import ExchangeSimulator
from ohlcv_assets.warehouse.schema import candles

SIMULATOR_CONFIG = {
    "seed": 11,
    "weight_limit": 100_000,
    "ban_seconds": 600,
    "symbols": [
        {"base": "BTC", "quote": "USDT", "listed": "2020-01-01", "price": 60000},
        {"base": "ETH", "quote": "USDT", "listed": "2020-01-01", "price": 2500},
        {"base": "LATE", "quote": "USDT", "listed": "2026-10-12", "price": 3},
    ],
    "downtime": [{"start": "2026-10-10T05:00:00Z", "end": "2026-10-10T06:30:00Z"}],
}
PERP_SIMULATOR_CONFIG = {  # perpetuals (binanceusdm) whose funding interval changes over their life
    "seed": 13,
    "weight_limit": 100_000,
    "venues": {"binanceusdm": {"weight_limit": 100_000, "funding_limit": 10_000}},
    "symbols": [
        {"base": "BTC", "quote": "USDT", "listed": "2026-01-01", "price": 60000, "venues": ["binanceusdm"],
         "funding": [{"from": "2026-01-01", "hours": 8}, {"from": "2026-10-05T08:00", "hours": 4}],
         "funding_missing": ["2026-10-08T08:00"]},  # a settlement the venue never made
        {"base": "ETH", "quote": "USDT", "listed": "2026-01-01", "price": 2500, "venues": ["binanceusdm"],
         "funding": [{"from": "2026-01-01", "hours": 8}, {"from": "2026-10-04T00:00", "hours": 1},
                     {"from": "2026-10-06T00:00", "hours": 8}]},
    ],
}
FUNDING_CHANGE = dt.datetime(2026, 10, 5, 8, tzinfo=dt.timezone.utc)  # BTCUSDT: 8 h -> 4 h
FUNDING_NEVER = dt.datetime(2026, 10, 8, 8, tzinfo=dt.timezone.utc)  # BTCUSDT: the venue has no settlement there
DOWNTIME_DAY = dt.date(2026, 10, 10)
PLAIN_DAY = dt.date(2026, 10, 8)


def universe_yaml(api_url: str, extra_instruments: str = "") -> str:
    return f"""
exchanges:
  binance:
    ccxt_id: binance
    api_url: {api_url}/api/v3
    timeout_seconds: 2
    weight_limit: 100000
    retry_base_seconds: 0.05
instruments:
  - {{exchange: binance, symbol: BTC/USDT, intervals: [1m, 1h, 1d], start: 2026-10-01}}
  - {{exchange: binance, symbol: ETH/USDT, intervals: [1m, 5m], start: 2026-10-01}}
  - {{exchange: binance, symbol: LATE/USDT, intervals: [1m], start: 2026-10-01}}
{extra_instruments}"""


def simulator_candles(sim: ExchangeSimulator, symbol: str, interval: str, day: dt.date, now_ms: int) -> pd.DataFrame:
    """The simulator's own generator: the reference every stored day is compared with."""
    start, end = day_bounds_ms(day)
    step = interval_ms(interval)
    arrays = sim.market.candles(sim.config.symbols[symbol.replace("/", "")], step, start, min(end, now_ms // step * step), now_ms)
    return pd.DataFrame(arrays.as_floats())


def ingest_day(source, warehouse, instrument, interval: str, day: dt.date, now_ms: int):
    """One instrument-day through the pipeline's ingestion; its report."""
    (_, report), = [r for batch in ingest_days(source, warehouse, instrument, interval, [day], now_ms) for r in batch]
    return report


def merge_candles(warehouse, exchange: str, symbol: str, timeframe: str, frame: pd.DataFrame, start_ms: int, end_ms: int,
                  fetched_at_ms: int):
    """Candles written straight into the warehouse (as a manual import would)."""
    return warehouse.merge_partition(candles, exchange, symbol, timeframe, frame, start_ms, end_ms, fetched_at_ms)


def materialize_day(defs, instance, interval, instrument, day):
    """One candles partition materialized in process: its metadata (values) and the run's result."""
    result = dg.materialize([defs.get_assets_def(candles_key(interval))], partition_key=partition_key(instrument, day),
                            instance=instance, resources=defs.resources)
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}, result


@contextlib.contextmanager
def universe_definitions(text: str, directory, warehouse_url: str):
    """A universe file written in ``directory``, its definitions on ``warehouse_url`` and a test
    instance with its partitions registered: (universe, definitions, instance)."""
    path = directory / "universe.yaml"
    path.write_text(text)
    universe = parse_universe(text, str(path))
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        yield universe, build_definitions(str(path), warehouse_url), instance
