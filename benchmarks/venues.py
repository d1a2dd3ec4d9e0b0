"""Per venue: the pipeline (ccxt or Polygon source -> validation -> warehouse) over 30 days of 1m
candles of one instrument, against the simulator speaking each venue's protocol on loopback with
its rate limit lifted; then the wall time the same requests take at the venue's published limit.

    python benchmarks/venues.py [--days 30] [--postgres postgresql://user@host:port/db]

Binance is the baseline (ratio column). Kraken serves only its latest 720 candles, so most of its
days are reported beyond history without a request (its archive fills them: see the README).
"""

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from common import fresh_database

from ohlcv_assets.exchange.sources import build_source
from ohlcv_assets.ingest.days import ingest_days
from ohlcv_assets.core.intervals import now_ms, utc_day
from ohlcv_assets.simulator.server import ExchangeSimulator, SimulatorConfig
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.warehouse.store import Warehouse

KEY_ENV = "OHLCV_BENCH_POLYGON_KEY"
UNLIMITED = {"kraken": {"counter_max": 10**9}, "coinbase": {"requests_per_second": 10**9},
             "polygon": {"api_key": "bench-key", "requests_per_minute": 10**9}}
INSTRUMENTS = [("binance", "BTC/USDT"), ("kraken", "BTC/USD"), ("coinbase", "BTC/USD"), ("polygon", "AAPL")]


def universe_text(url: str, start: dt.date) -> str:
    lifted = "weight_limit: 100000000, weight_window_seconds: 60"
    return f"""
exchanges:
  binance: {{ccxt_id: binance, api_url: "{url}/api/v3", {lifted}}}
  kraken: {{ccxt_id: kraken, api_url: "{url}/kraken", {lifted}}}
  coinbase: {{ccxt_id: coinbaseexchange, api_url: "{url}/coinbase", {lifted}}}
  polygon: {{venue: polygon, api_url: "{url}/polygon", api_key_env: {KEY_ENV}, {lifted}}}
instruments:
""" + "".join(f"  - {{exchange: {e}, symbol: {s}, intervals: [1m], start: {start}}}\n" for e, s in INSTRUMENTS)


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server (a fresh database per venue is created)")
    args = parser.parse_args()
    os.environ[KEY_ENV] = UNLIMITED["polygon"]["api_key"]
    sim = ExchangeSimulator(SimulatorConfig.from_mapping({
        "seed": 11, "weight_limit": 10**9, "venues": UNLIMITED,
        "symbols": [{"base": "BTC", "quote": "USDT", "listed": "2020-01-01", "price": 90000, "venues": ["binance"]},
                    {"base": "BTC", "quote": "USD", "listed": "2020-01-01", "price": 90000, "quiet": 0.05,
                     "venues": ["kraken", "coinbase"]},
                    {"base": "AAPL", "listed": "2020-01-01", "price": 200, "calendar": "XNYS", "quiet": 0.03}],
    }))
    url = sim.start()
    today = utc_day(now_ms())
    days = [today - dt.timedelta(days=n) for n in range(args.days, 0, -1)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        universe = parse_universe(universe_text(url, days[0]), "benchmark universe")
        for exchange, symbol in INSTRUMENTS:
            config = universe.exchanges[exchange]
            target = (fresh_database(args.postgres, f"ohlcv_bench_{exchange}") if args.postgres
                      else f"sqlite:///{Path(tmp) / f'{exchange}.db'}")
            warehouse = Warehouse(target)
            warehouse.migrate()
            source = build_source(exchange, config)
            began = time.perf_counter()
            reports = [r for batch in ingest_days(source, warehouse, universe.instrument(f"{exchange}.{symbol.replace('/', '-')}"),
                                                  "1m", days, now_ms(), workers=config.fetch_concurrency) for _, r in batch]
            wall = time.perf_counter() - began
            warehouse.dispose()
            profile = config.profile
            candles = sum(r.candles_new for r in reports)
            requests = source.stats.requests
            fetched_days = sum(1 for r in reports if r.expected_candles)
            real_seconds = requests * profile.candles_weight * profile.weight_window_seconds / profile.weight_limit
            rows.append((exchange, profile, candles, requests, fetched_days, wall, real_seconds,
                         sum(1 for r in reports if "beyond history" in r.note), sum(r.no_trade_candles for r in reports)))
    sim.stop()
    base = rows[0][2] / rows[0][5]
    print(f"| venue | page | days asked / fetched / beyond history | candles stored | no-trade minutes | requests "
          f"| requests per fetched day | wall (s) | candles/s | vs Binance | wall at the published limit |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for exchange, profile, candles, requests, fetched, wall, real, beyond, quiet in rows:
        rate = candles / wall
        print(f"| {exchange} | {profile.page_limit:,} | {len(days)} / {fetched} / {beyond} | {candles:,} | {quiet:,} | {requests} "
              f"| {requests / max(fetched, 1):.2f} | {wall:.2f} | {rate:,.0f} | {rate / base:.2f} "
              f"| {real:,.1f} s ({profile.weight_limit} per {profile.weight_window_seconds:g} s, weight {profile.candles_weight}) |")


if __name__ == "__main__":
    main()
