"""One today refresh over many instruments (what the `candles_1m_today` schedule launches every
`refresh_minutes`), timed twice in the same simulator and PostgreSQL server:

  pipeline  the project's own work alone, instrument after instrument: fetch today's closed candles
            (``ingest_days``), validate and write them, and read them back for the checks
            (``check_stored_days``); no Dagster
  dagster   the same instruments' today partitions as one real ranged Dagster run (in process, on
            Dagster's PostgreSQL storage as in production: deploy/dagster.yaml), with its
            materializations and check evaluations

Each is run ``--refreshes`` times in a row: the first refresh also probes each instrument's listing
and writes the whole day; later ones are what a running deployment pays every tick. The ratio says
what Dagster's events cost on top of the pipeline per refresh.

    python benchmarks/today_run.py --postgres postgresql://postgres@127.0.0.1:5432/postgres [--instruments 1000] [--refreshes 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, fresh_database, running_simulator


def universe_text(simulator: str, bases: list[str], today: dt.date) -> str:
    return (f"refresh_minutes: 1\nexchanges:\n  binance: {{ccxt_id: binance, api_url: '{simulator}/api/v3', weight_limit: 1000000000}}\n"
            "instruments:\n" + "".join(f"  - {{exchange: binance, symbol: {b}/USDT, intervals: [1m], start: {today}}}\n" for b in bases))


def time_pipeline(universe_path: Path, warehouse_url: str, refreshes: int) -> list[float]:
    from ohlcv_assets.http.egress import budget_key
    from ohlcv_assets.exchange.rate_budget import SharedRateBudget
    from ohlcv_assets.exchange.sources import build_source
    from ohlcv_assets.ingest.days import ingest_days
    from ohlcv_assets.core.intervals import now_ms
    from ohlcv_assets.core.names import freshness_windows
    from ohlcv_assets.quality.checks import check_stored_days
    from ohlcv_assets.core.universe import load_universe
    from ohlcv_assets.warehouse.store import Warehouse

    universe = load_universe(universe_path)
    config = universe.exchanges["binance"]
    warehouse = Warehouse(warehouse_url)
    source = build_source("binance", config, SharedRateBudget(warehouse.engine, budget_key("binance", None), config))  # as the run's
    windows = tuple(w.total_seconds() * 1000 for w in freshness_windows("1m", universe.refresh_minutes))
    seconds = []
    for _ in range(refreshes):
        began, now = time.perf_counter(), now_ms()
        today = dt.datetime.fromtimestamp(now / 1000, dt.timezone.utc).date()
        for instrument in universe.instruments:
            for batch in ingest_days(source, warehouse, instrument, "1m", [today], now, workers=config.fetch_concurrency):
                check_stored_days(warehouse, instrument, "1m", {day: report.expected_candles for day, report in batch}, now,
                                  windows, config.sessions)
        seconds.append(time.perf_counter() - began)
    warehouse.dispose()
    return seconds


def time_dagster(universe_path: Path, warehouse_url: str, storage_url: str, refreshes: int, home: Path) -> list[float]:
    import dagster as dg

    from ohlcv_assets.definitions import build_definitions
    from ohlcv_assets.defs.instance_storage import storage_env
    from ohlcv_assets.core.names import RANGE_END_TAG, RANGE_START_TAG, candles_key, instruments_partitions_name
    from ohlcv_assets.defs.partitions import partition_key, sync_instrument_partitions
    from ohlcv_assets.core.universe import load_universe

    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text())
    os.environ.update({"DAGSTER_HOME": str(home), **storage_env(storage_url)})
    subprocess.run([sys.executable, "-m", "dagster", "instance", "migrate"], check=True, capture_output=True)
    defs = build_definitions(str(universe_path), warehouse_url)
    job = defs.resolve_implicit_global_asset_job_def()
    seconds = []
    with dg.DagsterInstance.get() as instance:
        sync_instrument_partitions(instance, load_universe(universe_path))
        registered = instance.get_dynamic_partitions(instruments_partitions_name("1m"))
        for _ in range(refreshes):
            today = dt.datetime.now(dt.timezone.utc).date()
            began = time.perf_counter()
            result = job.execute_in_process(instance=instance, asset_selection=[candles_key("1m")], raise_on_error=False, tags={
                RANGE_START_TAG: str(partition_key(registered[0], today)), RANGE_END_TAG: str(partition_key(registered[-1], today))})
            seconds.append(time.perf_counter() - began)
            if not result.success:
                raise SystemExit("the today run failed")
            if len(result.get_asset_materialization_events()) != len(registered):
                raise SystemExit(f"the today run materialized {len(result.get_asset_materialization_events())} of "
                                 f"{len(registered)} partitions")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, help="administrative URL of a PostgreSQL server")
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--refreshes", type=int, default=2)
    args = parser.parse_args()
    if args.instruments < 1 or args.refreshes < 1:
        parser.error("--instruments and --refreshes must be at least 1")
    bases = [f"C{n:04d}" for n in range(args.instruments)]
    today = dt.datetime.now(dt.timezone.utc).date()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        tmp = Path(tmp)
        (tmp / "sim.yaml").write_text("weight_limit: 1000000000\nsymbols:\n" + "".join(
            f"  - {{base: {b}, quote: USDT, listed: 2024-01-01, price: {10 + n}}}\n" for n, b in enumerate(bases)))
        with running_simulator(tmp / "sim.yaml") as (simulator, _):
            (tmp / "universe.yaml").write_text(universe_text(simulator, bases, today))
            from ohlcv_assets.warehouse.store import Warehouse
            pipeline_wh = fresh_database(args.postgres, "bench_today_pipeline")
            dagster_wh = fresh_database(args.postgres, "bench_today_dagster")
            storage = fresh_database(args.postgres, "bench_today_instance")
            for url in (pipeline_wh, dagster_wh):
                Warehouse(url).migrate()
            pipeline = time_pipeline(tmp / "universe.yaml", pipeline_wh, args.refreshes)
            dagster = time_dagster(tmp / "universe.yaml", dagster_wh, storage, args.refreshes, tmp / "dagster_home")
    n = args.instruments
    print(f"\n### A today refresh of {n} instruments of 1m (one ranged run), {today}\n")
    print("| refresh | pipeline alone (s) | ms per instrument | Dagster run (s) | ms per instrument | Dagster run ÷ pipeline |")
    print("|---:|---:|---:|---:|---:|---:|")
    for i, (p, d) in enumerate(zip(pipeline, dagster), 1):
        print(f"| {i} | {p:.1f} | {1000 * p / n:.0f} | {d:.1f} | {1000 * d / n:.0f} | {d / p:.2f}× |")


if __name__ == "__main__":
    main()
