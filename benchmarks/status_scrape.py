"""What ``ohlcv-status`` and a ``/metrics`` scrape cost with many instruments and candles, the old
way (a count of every candle) against the new (the per-day counts of ``candle_days``), in one run.

A fresh PostgreSQL warehouse gets ``--instruments`` instruments of 1m and 1h over ``--days`` days
(written by SQL, then ``candle_days`` counted once from them, as migration 0013 does), then each of
these is timed ``--repeats`` times (median shown):

- old: the per-instrument count, first and last open time over the candles (the query
  ``monitoring.instrument_rows`` ran before ``candle_days``);
- new: the same figures from ``candle_days`` (``Warehouse.stored_counts``); both must agree;
- the status's whole warehouse reading (``instrument_rows``, no Dagster instance) and the
  exporter's (``metrics.read_samples``, an empty instance), both on the new way.

    python benchmarks/status_scrape.py --postgres postgresql://postgres@127.0.0.1:5432/postgres [--instruments 300] [--days 60]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import dagster as dg
import sqlalchemy as sa
from common import fresh_database, synthetic_universe

from ohlcv_assets.core.intervals import DAY_MS, HOUR_MS, MINUTE_MS, now_ms
from ohlcv_assets.defs.metrics import read_samples
from ohlcv_assets.defs.monitoring import instrument_rows
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.warehouse import candle_days
from ohlcv_assets.warehouse.candle_days import Stored
from ohlcv_assets.warehouse.store import Warehouse

OLD_COUNT = ("SELECT exchange, symbol, timeframe, count(*), min(open_time), max(open_time) "
             "FROM candles GROUP BY exchange, symbol, timeframe")


def timed(repeats: int, call) -> tuple[float, object]:
    seconds, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, help="administrative URL of a PostgreSQL server")
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    text, symbols = synthetic_universe(args.instruments, args.days)
    universe = parse_universe(text)
    warehouse = Warehouse(fresh_database(args.postgres, "bench_status_scrape"))
    warehouse.migrate()
    end = now_ms() // MINUTE_MS * MINUTE_MS
    first = end - args.days * DAY_MS
    loaded = time.perf_counter()
    for interval, step in (("1m", MINUTE_MS), ("1h", HOUR_MS)):
        warehouse.ensure_partitions("candles", interval, first, end)
        for chunk in range(0, len(symbols), 25):  # a transaction per 25 instruments: no huge one
            with warehouse.engine.begin() as conn:
                conn.execute(sa.text(
                    "INSERT INTO candles (exchange, symbol, timeframe, open_time, open, high, low, close, volume, fetched_at) "
                    "SELECT 'binance', s, :interval, t, 1, 1, 1, 1, 1, :now FROM unnest(CAST(:symbols AS text[])) AS s, "
                    "generate_series(CAST(:first AS bigint), CAST(:last AS bigint), CAST(:step AS bigint)) AS t"),
                    {"interval": interval, "now": end, "symbols": symbols[chunk:chunk + 25], "first": first // step * step,
                     "last": end - step, "step": step})
    with warehouse.engine.begin() as conn:
        candle_days.recount(conn, None, None, None)
    with warehouse.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        stored = conn.exec_driver_sql("SELECT sum(candles) FROM candle_days").scalar()
        days = conn.exec_driver_sql("SELECT count(*) FROM candle_days").scalar()
    print(f"{stored:,} candles of {args.instruments} instruments x 2 intervals ({days:,} instrument-days) "
          f"written and counted in {time.perf_counter() - loaded:.0f} s")

    def old_counts():
        with warehouse.engine.connect() as conn:
            return {(e, s, i): Stored(int(n), int(lo), int(hi)) for e, s, i, n, lo, hi in conn.exec_driver_sql(OLD_COUNT)}

    old_seconds, old = timed(args.repeats, old_counts)
    new_seconds, new = timed(args.repeats, warehouse.stored_counts)
    if old != new:
        raise SystemExit("the per-day counts differ from a count of the candles")
    now = now_ms()
    status_seconds, rows = timed(args.repeats, lambda: instrument_rows(universe, warehouse, None, now))
    assert sum(r["candles"] for r in rows) == stored
    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.from_config(home) as instance:
        scrape_seconds, _ = timed(args.repeats, lambda: read_samples(universe, lambda: warehouse, lambda: instance))
    print()
    print(f"| {'counts per instrument-interval':<48} | {'seconds':>8} |")
    print(f"|{'-' * 50}|{'-' * 10}|")
    print(f"| {'old: COUNT(*), min, max over the candles':<48} | {old_seconds:8.3f} |")
    print(f"| {'new: sum, min, max over candle_days':<48} | {new_seconds:8.3f} |")
    print(f"| {'ratio old / new':<48} | {old_seconds / new_seconds:7.0f}x |")
    print(f"| {'status: instrument_rows (whole, new way)':<48} | {status_seconds:8.3f} |")
    print(f"| {'/metrics: read_samples (whole)':<48} | {scrape_seconds:8.3f} |")
    warehouse.dispose()


if __name__ == "__main__":
    main()
