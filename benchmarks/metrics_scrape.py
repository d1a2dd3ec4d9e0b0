"""How long a scrape of the Prometheus exporter takes with many instruments: a fresh PostgreSQL
warehouse holding ``--instruments`` instruments (1m and 1h, ``--days`` days of each, written by
SQL), a gap record of every class per instrument-interval, the per-venue counters; the exporter's
whole reading (``metrics.read_samples``, with an empty Dagster instance) and its text rendering,
timed ``--scrapes`` times. Prints the median and the worst.

    python benchmarks/metrics_scrape.py --postgres postgresql://postgres@127.0.0.1:5432/postgres [--instruments 500] [--days 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import dagster as dg
import sqlalchemy as sa
from common import fresh_database, synthetic_universe
from prometheus_client import CollectorRegistry, generate_latest

from ohlcv_assets.cli.metrics import Collector, Sources
from ohlcv_assets.exchange.source import FetchStats
from ohlcv_assets.core.intervals import DAY_MS, HOUR_MS, MINUTE_MS, now_ms
from ohlcv_assets.defs.metrics import GAP_CLASSES, read_samples
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.warehouse import venue_counters
from ohlcv_assets.warehouse.schema import gaps
from ohlcv_assets.warehouse.store import Warehouse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, help="administrative URL of a PostgreSQL server")
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scrapes", type=int, default=7)
    args = parser.parse_args()
    text, symbols = synthetic_universe(args.instruments, args.days)
    universe = parse_universe(text)
    url = fresh_database(args.postgres, "bench_metrics_scrape")
    warehouse = Warehouse(url)
    warehouse.migrate()
    end = now_ms() // MINUTE_MS * MINUTE_MS
    first = end - args.days * DAY_MS
    loaded = time.perf_counter()
    for interval, step in (("1m", MINUTE_MS), ("1h", HOUR_MS)):
        warehouse.ensure_partitions("candles", interval, first, end)
        with warehouse.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO candles (exchange, symbol, timeframe, open_time, open, high, low, close, volume, fetched_at) "
                "SELECT 'binance', s, :interval, t, 1, 1, 1, 1, 1, :now FROM unnest(CAST(:symbols AS text[])) AS s, "
                "generate_series(CAST(:first AS bigint), CAST(:last AS bigint), CAST(:step AS bigint)) AS t"),
                {"interval": interval, "now": end, "symbols": symbols, "first": first // step * step, "last": end - step, "step": step})
    with warehouse.engine.begin() as conn:
        conn.execute(sa.insert(gaps), [dict(exchange="binance", symbol=s, timeframe=i, start_ms=first, end_ms=first + HOUR_MS,
                                            candles=60, reason=reason, status="detected", attempts=0, detected_ms=end,
                                            updated_ms=end, note="") for s in symbols for i in ("1m", "1h") for reason in GAP_CLASSES])
        conn.exec_driver_sql("ANALYZE")
    venue_counters.add(warehouse, "binance", None, FetchStats(requests=1000, http_429=3), 10**6, end)
    with warehouse.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM candles")).scalar()
    print(f"{stored:,} candles of {args.instruments} instruments x 2 intervals written in {time.perf_counter() - loaded:.0f} s")

    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.from_config(home) as instance:
        read, rendered = [], []
        for _ in range(args.scrapes):
            began = time.perf_counter()
            samples = read_samples(universe, lambda: warehouse, lambda: instance)
            read.append(time.perf_counter() - began)
        sources = Sources()
        sources._warehouse, sources._instance = warehouse, instance
        registry = CollectorRegistry(auto_describe=False)
        registry.register(Collector(universe, sources))
        for _ in range(args.scrapes):
            began = time.perf_counter()
            text = generate_latest(registry)
            rendered.append(time.perf_counter() - began)
    print(f"{len(samples):,} samples, {len(text):,} bytes of text")
    print(f"read_samples: median {statistics.median(read):.3f} s, worst {max(read):.3f} s")
    print(f"whole scrape (read + text): median {statistics.median(rendered):.3f} s, worst {max(rendered):.3f} s")
    warehouse.dispose()


if __name__ == "__main__":
    main()
