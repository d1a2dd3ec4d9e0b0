"""Keeping today fresh for many instruments (200 by default) on this machine: `dagster dev` with the project's
schedules (one ranged run per interval per tick, `refresh_minutes: 1`), sampled every 10 s.

Staleness of an instrument = now - close time of its latest stored 1m candle. The table gives its
percentiles over all samples after the first refresh, the runs launched, and the CPU used by
everything but the simulator (Dagster webserver, daemon, run workers, PostgreSQL), in cores.

    python benchmarks/freshness.py --postgres postgresql://postgres@127.0.0.1:5432/postgres [--minutes 6] [--instruments 1000] [--instance postgres] [--first-refresh-minutes 5]

``--instance postgres`` keeps Dagster's own storage in PostgreSQL too (deploy/dagster.yaml, as in
production) instead of the embedded SQLite instance: creating a run that covers 1,000 partitions writes
one planned event per partition and check, which SQLite takes about a minute to store.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
import contextlib

from common import REPO, fresh_database, production_dagster_dev, running_dagster_dev, running_simulator
from dagster import DagsterInstance

from ohlcv_assets.defs.partitions import sync_instrument_partitions
from ohlcv_assets.core.universe import load_universe
from ohlcv_assets.warehouse.store import Warehouse

def cpu_seconds(pid: int | None = None) -> float:
    """Busy CPU seconds of one process, or of the whole machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    if pid is not None:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / ticks


def event_log_rows(storage_url: str) -> int:
    with psycopg.connect(storage_url, autocommit=True) as connection:
        return connection.execute("SELECT count(*) FROM event_logs").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, help="administrative URL of a PostgreSQL server")
    parser.add_argument("--minutes", type=float, default=6)
    parser.add_argument("--instruments", type=int, default=200)
    parser.add_argument("--first-refresh-minutes", type=float, default=5,
                        help="give up when the first refresh has not stored every instrument within this time")
    parser.add_argument("--instance", choices=["sqlite", "postgres"], default="sqlite",
                        help="where Dagster keeps runs and events (default: the embedded SQLite instance)")
    args = parser.parse_args()
    instruments = args.instruments
    bases = [f"C{n:04d}" for n in range(instruments)]
    today = dt.datetime.now(dt.timezone.utc).date()
    warehouse_url = fresh_database(args.postgres, "bench_fresh")
    Warehouse(warehouse_url).migrate()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        tmp = Path(tmp)
        (tmp / "sim.yaml").write_text("weight_limit: 6000\nsymbols:\n" + "".join(
            f"  - {{base: {b}, quote: USDT, listed: 2024-01-01, price: {10 + n}}}\n" for n, b in enumerate(bases)))
        with running_simulator(tmp / "sim.yaml") as (simulator, sim):
            universe_text = (
                f"refresh_minutes: 1\nexchanges:\n  binance: {{ccxt_id: binance, api_url: '{simulator}/api/v3'}}\n"
                "instruments:\n" + "".join(f"  - {{exchange: binance, symbol: {b}/USDT, intervals: [1m], start: {today}}}\n" for b in bases))
            storage_url = None
            with contextlib.ExitStack() as stack:
                if args.instance == "postgres":
                    storage_url = fresh_database(args.postgres, "bench_fresh_instance")
                    stack.enter_context(production_dagster_dev(tmp, universe_text, warehouse_url, storage_url))
                    home = tmp / "dagster_home"
                else:
                    (tmp / "universe.yaml").write_text(universe_text)
                    home = tmp / "dagster_home"
                    home.mkdir()
                    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
                    env = {**os.environ, "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(tmp / "universe.yaml"),
                           "OHLCV_WAREHOUSE_URL": warehouse_url}
                    with DagsterInstance.from_config(str(home)) as instance:
                        sync_instrument_partitions(instance, load_universe(tmp / "universe.yaml"))
                    stack.enter_context(running_dagster_dev(env, tmp / "dagster.log"))
                samples: list[np.ndarray] = []
                connection = stack.enter_context(psycopg.connect(warehouse_url, autocommit=True))
                started = time.monotonic()
                reported = started
                while True:  # until the first refresh has stored every instrument
                    stored = connection.execute("SELECT count(DISTINCT symbol) FROM candles").fetchone()[0]
                    waited = time.monotonic() - started
                    if stored >= instruments:
                        break
                    if waited > args.first_refresh_minutes * 60:
                        with DagsterInstance.from_config(str(home)) as instance:
                            statuses = collections.Counter(r.status.value for r in instance.get_runs())
                        raise SystemExit(f"the first refresh stored {stored} of the {instruments} instruments in "
                                         f"{args.first_refresh_minutes:g} minutes (runs: {dict(statuses)})")
                    if time.monotonic() - reported >= 30:
                        reported = time.monotonic()
                        print(f"first refresh: {stored} of {instruments} instruments stored after {waited:.0f} s", flush=True)
                    time.sleep(2)
                print(f"first refresh: all {instruments} instruments stored after {time.monotonic() - started:.0f} s", flush=True)
                events0 = event_log_rows(storage_url) if storage_url else None
                machine0, sim0, began = cpu_seconds(), cpu_seconds(sim.pid), time.monotonic()
                while time.monotonic() - began < args.minutes * 60:
                    now_ms = time.time() * 1000
                    rows = connection.execute("SELECT max(open_time) FROM candles WHERE timeframe = '1m' GROUP BY symbol").fetchall()
                    samples.append((now_ms - (np.array([r[0] for r in rows], dtype=np.float64) + 60_000)) / 1000)
                    time.sleep(10)
                elapsed = time.monotonic() - began
                cores = (cpu_seconds() - machine0 - (cpu_seconds(sim.pid) - sim0)) / elapsed
                sim_cores = (cpu_seconds(sim.pid) - sim0) / elapsed
                events_per_minute = (event_log_rows(storage_url) - events0) / (elapsed / 60) if storage_url else None
                with DagsterInstance.from_config(str(home)) as instance:
                    runs = instance.get_runs_count()
    staleness = np.concatenate(samples)
    p50, p95, p99 = np.percentile(staleness, [50, 95, 99])
    print(f"\n### 4. Freshness: {instruments} instruments of 1m, refreshed every minute, {args.minutes:g} min sampled\n")
    print("| instruments | samples | staleness p50 (s) | p95 (s) | p99 (s) | max (s) | runs in total | CPU (cores of 2, without simulator) | simulator CPU (cores) | event-log rows per minute |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    events = "" if events_per_minute is None else f"{events_per_minute:,.0f}"
    print(f"| {instruments} | {len(staleness):,} | {p50:.0f} | {p95:.0f} | {p99:.0f} | {staleness.max():.0f} | {runs} | {cores:.2f} | {sim_cores:.2f} | {events} |")


if __name__ == "__main__":
    main()
