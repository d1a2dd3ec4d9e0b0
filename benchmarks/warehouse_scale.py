"""The warehouse at scale: the partitioned ``candles`` (migration 0005) against the plain table it
replaced (schema at 0004), each filled with the same synthetic 1m candles generated in bulk by
PostgreSQL (not fetched), then the operations that grow with the table:

  merge day (new)      1,440 new candles of one instrument appended (binary COPY path)
  merge day (revised)  the same day again with every close changed (staging + ON CONFLICT path)
  merge year (new)     525,600 candles of a new instrument
  gap scan year        stored open times of one instrument-year read and searched for gaps
  read month           load_candles of one instrument-month
  retention month      one month of every instrument removed: DROP TABLE of its partition vs DELETE
  export year          one instrument-year to Parquet (zstd) by the export code (partitioned only)

    python benchmarks/warehouse_scale.py --postgres postgresql://postgres@127.0.0.1:54329/postgres \
        [--instruments 200] [--candles 500000]

The server URL is an administrative connection: databases bench_plain and bench_partitioned are
created (and left for inspection; drop them after). Each timing is the best of --repeat runs
where the operation can be repeated without changing the data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from common import fresh_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ohlcv_assets.ops.export import ExportReport, export_instrument  # noqa: E402
from ohlcv_assets.core.gaps import find_gaps  # noqa: E402
from ohlcv_assets.core.intervals import DAY_MS, MINUTE_MS, day_bounds_ms  # noqa: E402
from ohlcv_assets.warehouse.read import load_candles  # noqa: E402
from ohlcv_assets.core.universe import Instrument  # noqa: E402
from ohlcv_assets.warehouse.partitioning import span_of, span_table  # noqa: E402
from ohlcv_assets.warehouse.schema import candles  # noqa: E402
from ohlcv_assets.warehouse.store import Warehouse  # noqa: E402

FIRST_DAY = dt.date(2024, 1, 1)
YEAR = 365 * 1440


def fill(warehouse: Warehouse, instruments: int, per_instrument: int) -> float:
    """Bulk-generates the candles with generate_series, instrument by instrument (index order)."""
    start = day_bounds_ms(FIRST_DAY)[0]
    if warehouse.is_postgres:  # no-op on the plain table
        warehouse.ensure_partitions("candles", "1m", start, start + per_instrument * MINUTE_MS)
    began = time.perf_counter()
    with warehouse.engine.begin() as connection:
        for i in range(instruments):
            connection.execute(sa.text(
                "INSERT INTO candles SELECT 'binance', :symbol, '1m', :start + n * 60000, 100 + (n % 97) * 0.01, "
                "101 + (n % 89) * 0.01, 99 - (n % 83) * 0.01, 100 + (n % 79) * 0.01, (n % 1000) * 0.001 + 1, 0 "
                "FROM generate_series(0::bigint, :count - 1) n"),
                {"symbol": f"S{i:04d}/USDT", "start": start, "count": per_instrument})
            if (i + 1) % max(1, instruments // 10) == 0:
                print(f"  {warehouse.engine.url.database}: {i + 1}/{instruments} instruments, "
                      f"{time.perf_counter() - began:.0f} s", flush=True)
        connection.exec_driver_sql("ANALYZE candles")
    return time.perf_counter() - began


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def day_frame(day_start: int, scale: float = 1.0) -> pd.DataFrame:
    n = np.arange(1440)
    close = (100 + (n % 79) * 0.01) * scale
    return pd.DataFrame({"open_time": day_start + n.astype(np.int64) * MINUTE_MS, "open": close, "high": close + 1,
                         "low": close - 1, "close": close, "volume": 1.0 + n * 0.001})


def sizes(warehouse: Warehouse) -> tuple[int, int, int]:
    """Table bytes, index bytes and partition count of candles (summed over its partitions)."""
    with warehouse.engine.connect() as connection:
        row = connection.execute(sa.text(
            "SELECT coalesce(sum(pg_table_size(relid)), 0), coalesce(sum(pg_indexes_size(relid)), 0), "
            "count(*) FILTER (WHERE isleaf) FROM pg_partition_tree('candles')")).one()
        if not row[2]:  # a plain table is no partition tree
            row = connection.execute(sa.text("SELECT pg_table_size('candles'), pg_indexes_size('candles'), 1")).one()
    return int(row[0]), int(row[1]), int(row[2])


def measure(warehouse: Warehouse, partitioned: bool, instruments: int, per_instrument: int, repeat: int) -> dict[str, float]:
    start = day_bounds_ms(FIRST_DAY)[0]
    out: dict[str, float] = {}
    symbol = f"S{instruments // 2:04d}/USDT"
    next_day = start + (per_instrument // 1440 + 1) * DAY_MS  # a whole day after the stored ones
    began = time.perf_counter()
    warehouse.merge_partitions(candles, "binance", symbol, "1m", day_frame(next_day), [(next_day, next_day + DAY_MS)], 1)
    out["merge day (new)"] = time.perf_counter() - began
    scale = iter(np.linspace(1.01, 1.2, repeat))
    out["merge day (revised)"] = best(lambda: warehouse.merge_partitions(
        candles, "binance", symbol, "1m", day_frame(next_day, next(scale)), [(next_day, next_day + DAY_MS)], 2), repeat)
    year_start = start + 800 * DAY_MS
    year = pd.concat([day_frame(year_start + d * DAY_MS) for d in range(365)], ignore_index=True)
    began = time.perf_counter()
    warehouse.merge_partitions(candles, "binance", "NEW/USDT", "1m", year, [(year_start, year_start + 365 * DAY_MS)], 1)
    out["merge year (new)"] = time.perf_counter() - began
    span_end = start + min(per_instrument, YEAR) * MINUTE_MS
    out["gap scan year"] = best(lambda: find_gaps(
        warehouse.read_open_times("binance", symbol, "1m", start, span_end), start, span_end, MINUTE_MS), repeat)
    month = span_of("1m", start + 40 * DAY_MS)
    out["read month"] = best(lambda: load_candles("binance", symbol, "1m", month.start_ms, month.end_ms, warehouse=warehouse), repeat)
    began = time.perf_counter()
    with warehouse.engine.begin() as connection:
        if partitioned:
            connection.exec_driver_sql(f"DROP TABLE {span_table('candles', '1m', span_of('1m', start))}")
        else:
            first = span_of("1m", start)
            connection.execute(sa.delete(candles).where(candles.c.timeframe == "1m", candles.c.open_time >= first.start_ms,
                                                        candles.c.open_time < first.end_ms))
    out["retention month"] = time.perf_counter() - began
    return out


def export_year(warehouse: Warehouse, per_instrument: int) -> tuple[float, int, int]:
    instrument = Instrument(exchange="binance", symbol="S0001/USDT", intervals=("1m",), start=FIRST_DAY)
    with tempfile.TemporaryDirectory() as directory:
        report = ExportReport()
        began = time.perf_counter()
        export_instrument(warehouse, Path(directory), instrument, "1m", ("parquet",), 0, report)
        seconds = time.perf_counter() - began
    return seconds, report.rows_written, report.bytes_written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", required=True, help="administrative PostgreSQL URL")
    parser.add_argument("--instruments", type=int, default=200)
    parser.add_argument("--candles", type=int, default=500_000, help="1m candles per instrument")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    total = args.instruments * args.candles
    print(f"{args.instruments} instruments x {args.candles:,} 1m candles = {total:,} rows per table")

    results, fills, table_sizes = {}, {}, {}
    for kind, revision in (("plain", "0004"), ("partitioned", "head")):
        warehouse = Warehouse(fresh_database(args.postgres, f"bench_{kind}"))
        warehouse.migrate(revision)
        fills[kind] = fill(warehouse, args.instruments, args.candles)
        table_sizes[kind] = sizes(warehouse)
        if kind == "partitioned":
            exported = export_year(warehouse, args.candles)
        results[kind] = measure(warehouse, kind == "partitioned", args.instruments, args.candles, args.repeat)
        warehouse.dispose()

    print()
    print(f"| operation ({total / 1e6:,.0f} M rows in the table) | plain table | partitioned | partitioned / plain |")
    print("|---|---:|---:|---:|")
    print(f"| bulk fill (generate_series, {total:,} rows) | {fills['plain']:.0f} s | {fills['partitioned']:.0f} s | "
          f"{fills['partitioned'] / fills['plain']:.2f} |")
    for name in results["plain"]:
        p, q = results["plain"][name], results["partitioned"][name]
        print(f"| {name} | {p * 1000:,.1f} ms | {q * 1000:,.1f} ms | {q / p:.2f} |")
    for label, index in (("table size", 0), ("index size", 1)):
        p, q = table_sizes["plain"][index], table_sizes["partitioned"][index]
        print(f"| {label} | {p / 2**30:.2f} GiB | {q / 2**30:.2f} GiB | {q / p:.2f} |")
    print(f"| tables | {table_sizes['plain'][2]} | {table_sizes['partitioned'][2]} partitions | |")
    print()
    seconds, rows, size = exported
    print("| export (partitioned warehouse) | rows | seconds | rows/s | Parquet bytes | bytes per candle |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| one instrument, {rows / 1440:,.0f} days of 1m, zstd | {rows:,} | {seconds:.2f} | {rows / seconds:,.0f} | {size:,} | {size / rows:.1f} |")


if __name__ == "__main__":
    main()
