"""Deep history of one instrument (1m) into PostgreSQL from the simulator's Binance archive on
loopback, against the REST path and the machine's limit, each variant in its own process (so
peak RSS is its own) and a fresh database:

  archive   the pipeline's archive path (``ingest_days`` with the archive: monthly files,
            checksums, vectorised parse, reconciliation against what is stored, COPY + merge)
  rest      the pipeline's REST path over the same days (no rate limit on loopback)
  dagster   the archive path inside one real Dagster run (``dg.materialize`` of the day range,
            per-partition metadata and checks; an in-process run on the production instance storage,
            ``deploy/dagster.yaml`` on a fresh PostgreSQL database, not a daemon backfill)
  backfill  the same days launched as a backfill over GraphQL into ``dagster dev`` with the
            production instance (PostgreSQL storage), launch to done, daemon ticks included;
            ``--instruments N`` backfills N instruments at once (the multi-run policy, 8 runs at a time;
            the features automation stopped, as the README advises for a deep backfill), ``--days D``
            only the last D days of each; both print what grows with scale (event log, database sizes,
            each process's peak RSS, the partitions page in Chromium)
  cli       the same instruments and days through ``ohlcv backfill 1m all FIRST LAST``: ranged Dagster
            runs executed one after the other in that one process (no daemon, no run worker to
            start per run), recorded in the production instance storage (PostgreSQL); start to exit
  raw       the limit: the same monthly zips downloaded, unzipped, parsed and binary-COPYed into
            an unindexed, unlogged table, one after the other, nothing else
  raw_candles  the same, COPYed straight into the warehouse's ``candles`` table (its key index,
            its partitions, all columns): the least any write of these candles costs

    python benchmarks/archives.py --postgres postgresql://postgres@127.0.0.1:5432/postgres [--years 1 4]

The simulator builds each file once and then serves it from memory, as a static archive would;
the files are fetched once before the timed runs so that their building is not counted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import REPO, fresh_database, running_simulator

from ohlcv_assets.core.intervals import day_bounds_ms

LAST_DAY = dt.date(2026, 10, 31)
MAX_INSTRUMENTS = 200
SIMULATOR_YAML = "weight_limit: 1000000000\nsymbols:\n  - {base: BTC, quote: USDT, listed: 2017-08-17, price: 90000}\n" + "".join(
    f"  - {{base: S{n:03d}, quote: USDT, listed: 2017-08-17, price: {10 + n}}}\n" for n in range(MAX_INSTRUMENTS))


def span(years: int) -> list[dt.date]:
    first = dt.date(LAST_DAY.year - years, LAST_DAY.month + 1, 1) if LAST_DAY.month < 12 else dt.date(LAST_DAY.year - years + 1, 1, 1)
    return [first + dt.timedelta(days=n) for n in range((LAST_DAY - first).days + 1)]


def universe_text(simulator: str, first: dt.date) -> str:
    return f"""
exchanges:
  binance: {{ccxt_id: binance, api_url: "{simulator}/api/v3", weight_limit: 1000000000, archive: {{url: "{simulator}/archive/binance"}}}}
instruments:
  - {{exchange: binance, symbol: BTC/USDT, intervals: [1m], start: {first}}}
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def month_urls(simulator: str, days: list[dt.date], symbol: str = "BTCUSDT") -> list[str]:
    months = sorted({(d.year, d.month) for d in days})
    root = f"{simulator}/archive/binance/data/spot/monthly/klines/{symbol}/1m"
    return [f"{root}/{symbol}-1m-{y:04d}-{m:02d}.zip" for y, m in months]


def run_ingest(warehouse_url: str, simulator: str, years: int, archive: bool) -> dict:
    from ohlcv_assets.archive.formats import build_archive
    from ohlcv_assets.exchange.sources import build_source
    from ohlcv_assets.ingest.days import ingest_days
    from ohlcv_assets.core.intervals import now_ms
    from ohlcv_assets.core.universe import parse_universe
    from ohlcv_assets.warehouse.store import Warehouse

    days = span(years)
    universe = parse_universe(universe_text(simulator, days[0]), "benchmark")
    config = universe.exchanges["binance"]
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    source = build_source("binance", config)
    began = time.perf_counter()
    written = 0
    for batch in ingest_days(source, warehouse, universe.instruments[0], "1m", days, now_ms(), workers=config.fetch_concurrency,
                             archive=build_archive(config) if archive else None):
        written += sum(report.written for _, report in batch)
    return {"seconds": time.perf_counter() - began, "candles": written, "requests": source.stats.requests}


def run_dagster(warehouse_url: str, simulator: str, years: int) -> dict:
    import dagster as dg

    from ohlcv_assets.definitions import build_definitions
    from ohlcv_assets.defs.instance_storage import storage_env
    from ohlcv_assets.core.names import RANGE_END_TAG, RANGE_START_TAG, candles_key
    from ohlcv_assets.defs.partitions import sync_instrument_partitions
    from ohlcv_assets.core.universe import parse_universe
    from ohlcv_assets.warehouse.store import Warehouse

    days = span(years)
    storage = fresh_database(warehouse_url.rsplit("/", 1)[0] + "/postgres", "bench_archive_dagster_storage")
    os.environ.update(storage_env(storage))
    with tempfile.TemporaryDirectory() as home:
        path = Path(home) / "universe.yaml"
        path.write_text(universe_text(simulator, days[0]))
        Path(home, "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text())
        Warehouse(warehouse_url).migrate()
        defs = build_definitions(str(path), warehouse_url)
        with dg.DagsterInstance.from_config(home) as instance:
            sync_instrument_partitions(instance, parse_universe(path.read_text(), str(path)))
            began = time.perf_counter()
            result = dg.materialize([defs.get_assets_def(candles_key("1m"))], instance=instance, resources=defs.resources,
                                    tags={RANGE_START_TAG: f"{days[0]}|binance.BTC-USDT", RANGE_END_TAG: f"{days[-1]}|binance.BTC-USDT"})
            seconds = time.perf_counter() - began
            written = sum(int(e.event_specific_data.materialization.metadata["candles_new"].value)
                          for e in result.get_asset_materialization_events())
    return {"seconds": seconds, "candles": written, "requests": 0}


def run_backfill(warehouse_url: str, simulator: str, years: int, instruments: int, last_days: int | None) -> dict:
    from common import backfill_through_dagster

    days = span(years)[-last_days:] if last_days else span(years)
    symbols = [f"S{n:03d}/USDT" for n in range(instruments)] if instruments > 1 else ["BTC/USDT"]
    universe = instruments_universe(simulator, days, instruments)
    partitions = [f"{d}|binance.{s.replace('/', '-')}" for s in symbols for d in days]
    return backfill_through_dagster(warehouse_url, universe, ["candles", "1m"], partitions, title="archive benchmark",
                                    scale=instruments > 1, features=instruments == 1)


_RUN_LINE = re.compile(r": run \S+ succeeded, \d+ partitions, ([\d,]+) candles written")  # one per run ohlcv backfill ran


def run_cli(warehouse_url: str, simulator: str, years: int, instruments: int) -> dict:
    from ohlcv_assets.defs.instance_storage import storage_env

    days = span(years)
    storage = fresh_database(warehouse_url.rsplit("/", 1)[0] + "/postgres", "bench_archive_cli_storage")
    with tempfile.TemporaryDirectory() as home:
        path = Path(home) / "universe.yaml"
        path.write_text(instruments_universe(simulator, days, instruments))
        Path(home, "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text())
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "OHLCV_"))}, "DAGSTER_HOME": home,
               "OHLCV_UNIVERSE": str(path), "OHLCV_WAREHOUSE_URL": warehouse_url, **storage_env(storage)}
        subprocess.run([sys.executable, "-m", "dagster", "instance", "migrate"], env=env, check=True, capture_output=True)
        began = time.perf_counter()
        answer = subprocess.run([str(Path(sys.executable).parent / "ohlcv"), "backfill", "1m", "all", str(days[0]), str(days[-1])],
                                env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - began
    if answer.returncode:
        raise SystemExit(f"ohlcv backfill failed:\n{answer.stdout[-2000:]}{answer.stderr[-2000:]}")
    candles = sum(int(m.group(1).replace(",", "")) for m in _RUN_LINE.finditer(answer.stdout))
    return {"seconds": seconds, "candles": candles, "requests": 0,
            "run_worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def instruments_universe(simulator: str, days: list[dt.date], instruments: int) -> str:
    symbols = [f"S{n:03d}/USDT" for n in range(instruments)] if instruments > 1 else ["BTC/USDT"]
    return universe_text(simulator, days[0]).split("instruments:")[0] + "instruments:\n" + "".join(
        f"  - {{exchange: binance, symbol: {s}, intervals: [1m], start: {days[0]}}}\n" for s in symbols)


def run_raw(warehouse_url: str, simulator: str, years: int, into_candles: bool) -> dict:
    """The limit: download, unzip, parse, one binary COPY per file, nothing else; into an unindexed
    unlogged table, or (``into_candles``) straight into the warehouse's own ``candles`` table (its
    key index and partitions), which is what the pipeline's write of new candles costs at least."""
    import numpy as np
    import psycopg
    import sqlalchemy as sa

    from ohlcv_assets.archive.binance_vision import parse_klines_csv, unzip_single
    from ohlcv_assets.warehouse.schema import candles
    from ohlcv_assets.warehouse.store import Warehouse, pg_binary_copy

    columns = ["open_time", "open", "high", "low", "close", "volume"]
    if into_candles:
        warehouse = Warehouse(warehouse_url)
        warehouse.migrate()
        days = span(years)
        warehouse.ensure_partitions("candles", "1m", day_bounds_ms(days[0])[0], day_bounds_ms(days[-1])[1])
        warehouse.dispose()
        table = candles
    else:
        table = sa.Table("raw_candles", sa.MetaData(), sa.Column("open_time", sa.BigInteger),
                         *(sa.Column(c, sa.Float(53)) for c in columns[1:]))
    with psycopg.connect(warehouse_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as connection:
        if not into_candles:
            connection.execute("CREATE UNLOGGED TABLE raw_candles (open_time bigint, open float8, high float8, low float8, "
                               "close float8, volume float8)")
        began = time.perf_counter()
        rows = 0
        for url in month_urls(simulator, span(years)):
            with urllib.request.urlopen(url, timeout=60) as answer:
                frame = parse_klines_csv(unzip_single(answer.read(), url))
            if into_candles:
                frame = frame.assign(exchange="binance", symbol="BTC/USDT", timeframe="1m", fetched_at=np.int64(0))
            frame = frame[[c.name for c in table.columns]]
            with connection.cursor().copy(f"COPY {table.name} FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(pg_binary_copy(table, frame))
            rows += len(frame)
        seconds = time.perf_counter() - began
    return {"seconds": seconds, "candles": rows, "requests": 0}


def child(args) -> None:
    if args.variant in ("raw", "raw_candles"):
        out = run_raw(args.warehouse, args.simulator, args.years, into_candles=args.variant == "raw_candles")
    elif args.variant == "dagster":
        out = run_dagster(args.warehouse, args.simulator, args.years)
    elif args.variant == "backfill":
        out = run_backfill(args.warehouse, args.simulator, args.years, args.instruments, args.days)
    elif args.variant == "cli":
        out = run_cli(args.warehouse, args.simulator, args.years, args.instruments)
    else:
        out = run_ingest(args.warehouse, args.simulator, args.years, archive=args.variant == "archive")
    print(json.dumps({**out, "peak_rss_mb": peak_rss_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="administrative URL of a PostgreSQL server")
    parser.add_argument("--years", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--variants", default="archive,rest,dagster,raw,raw_candles")
    parser.add_argument("--dagster-years", type=int, default=1, help="the Dagster variants only up to this many years")
    parser.add_argument("--instruments", type=int, default=1, help="instruments of the backfill variant")
    parser.add_argument("--days", type=int, help="the backfill variant: only the last DAYS days of the span")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", help=argparse.SUPPRESS)
    parser.add_argument("--simulator", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        child(argparse.Namespace(**{**vars(args), "years": args.years[0]}))
        return
    if not args.postgres:
        parser.error("--postgres is required")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "simulator.yaml"
        config.write_text(SIMULATOR_YAML)
        with running_simulator(config) as (simulator, _):
            symbols = [f"S{n:03d}USDT" for n in range(args.instruments)] if args.instruments > 1 else []
            for symbol in ["BTCUSDT", *symbols]:  # built once, then served from memory
                days = span(max(args.years))
                for url in month_urls(simulator, days[-args.days:] if args.days and symbol != "BTCUSDT" else days, symbol):
                    urllib.request.urlopen(url, timeout=60).read()
            for years in args.years:
                for variant in args.variants.split(","):
                    if variant in ("dagster", "backfill", "cli") and years > args.dagster_years:
                        continue
                    database = fresh_database(args.postgres, f"bench_archive_{variant}")
                    answer = subprocess.run([sys.executable, __file__, "--variant", variant, "--years", str(years),
                                             "--instruments", str(args.instruments), *(["--days", str(args.days)] if args.days else []),
                                             "--warehouse", database, "--simulator", simulator],
                                            capture_output=True, text=True, cwd=REPO)
                    if answer.returncode:
                        raise SystemExit(f"{variant} ({years} years) failed:\n{answer.stderr[-3000:]}")
                    label = f"{variant} × {args.instruments}" if variant in ("backfill", "cli") and args.instruments > 1 else variant
                    if variant == "backfill" and args.days:
                        label += f" ({args.days} days)"
                    results.append({"years": years, "variant": label, **json.loads(answer.stdout.strip().splitlines()[-1])})
    print_table(results)


def print_table(results: list[dict]) -> None:
    print("| years | variant | seconds | candles | candles/s | vs raw | vs raw_candles | vs REST | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        same = {x["variant"]: x for x in results if x["years"] == r["years"]}
        rate = r["candles"] / r["seconds"]
        vs_raw = f"{r['seconds'] / same['raw']['seconds']:.2f}×" if "raw" in same else ""
        vs_table = f"{r['seconds'] / same['raw_candles']['seconds']:.2f}×" if "raw_candles" in same else ""
        vs_rest = f"{same['rest']['seconds'] / r['seconds']:.1f}× faster" if "rest" in same and r["variant"] != "rest" else ""
        rss = r.get("run_worker_peak_rss_mb") or r["peak_rss_mb"]
        print(f"| {r['years']} | {r['variant']} | {r['seconds']:.2f} | {r['candles']:,} | {rate:,.0f} | {vs_raw} | {vs_table} | {vs_rest} | "
              f"{rss:.0f} |")
    for r in results:
        if "runs_span_seconds" in r:
            print(f"\n{r['variant']} ({r['years']} year(s)): {r['runs']} run(s), first run queued {r['first_run_queued_seconds']:.1f} s and "
                  f"started {r['first_run_started_seconds']:.1f} s after the launch, every day materialized at "
                  f"{r['all_green_seconds']:.1f} s, runs from first start to last end {r['runs_span_seconds']:.1f} s")
        if "event_log_rows" in r:
            page = "no Chromium" if r["partitions_page_seconds"] is None else f"{r['partitions_page_seconds']:.1f} s"
            peaks = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["process_peak_rss_mb"].items()))
            print(f"scale: {r['event_log_rows']:,} event-log rows, instance database {r['instance_db_mb']:,.0f} MB, warehouse "
                  f"{r['warehouse_db_mb']:,.0f} MB, partitions page in Chromium {page}, peak RSS (MB): run worker "
                  f"{r['run_worker_peak_rss_mb']:.0f}, {peaks}")


if __name__ == "__main__":
    main()
