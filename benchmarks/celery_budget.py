"""Celery workers on two egress addresses against a venue that allows 1,200 weight/min per address:
how much of each address's budget the runs use, how many 429s and 418s, and one worker's throughput
against two workers'.

`dagster dev` on deploy/dagster.yaml (Dagster's storage in PostgreSQL) with the Celery run launcher
(deploy/run_launchers/celery.yaml), Debian's redis-server as the broker, and Celery workers
(deploy/celery-worker.yaml, four runs at a time each, as many as its address's venue pool admits, no task
reserved beyond those) whose venue requests leave from 127.0.0.2 and
127.0.0.3 (OHLCV_EGRESS_ADDRESS). The simulator counts weight per client address. Phase 1 backfills
the REST history (1m, no archive) of four instruments with the worker on 127.0.0.2 alone; phase 2
eight other instruments with both workers. Budget used = weight the simulator served to an address /
(1,200 x the minutes from the phase's first run start to its last run end).

    python benchmarks/celery_budget.py --postgres postgresql://postgres@127.0.0.1:5432/postgres [--days 280]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from dagster import DagsterInstance, RunsFilter

from common import REPO, fresh_database, production_dagster_dev, running_simulator

from ohlcv_assets.cli.dagster_api import launch_backfill, wait_for_backfills
from ohlcv_assets.cli.processes import running
from ohlcv_assets.core.names import partition_key_string
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.processes import running_redis
from ohlcv_assets.simulator.client import read_stats

LIMIT = 1200  # weight per minute per address, as the issue asks
ADDRESSES = ("127.0.0.2", "127.0.0.3")
PHASES = {"one worker": ("A", ADDRESSES[:1], 4), "two workers": ("B", ADDRESSES, 8)}  # twice the work for twice the budget


def sim_stats(simulator: str) -> dict:
    return read_stats(simulator)


class WeightTimeline:
    """Samples the simulator's weight per address every half second while a phase runs: when each
    address first and last drew weight (its active span)."""

    def __init__(self, simulator: str):
        self.simulator, self.first, self.last = simulator, {}, {}
        self._stop = threading.Event()
        self._before = sim_stats(simulator)
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        seen = dict(self._before)
        while not self._stop.wait(0.5):
            now, stats = time.time(), sim_stats(self.simulator)
            for address in ADDRESSES:
                key = f"weight_by_client.{address}"
                if stats.get(key, 0) != seen.get(key, 0):
                    self.first.setdefault(address, now - 0.5)
                    self.last[address] = now
            seen = stats

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {a: self.last[a] - self.first[a] for a in self.first}


@contextlib.contextmanager
def redis(tmp: Path):
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    with running_redis(server, tmp) as url:
        yield url


def celery_worker(n: int, address: str, env: dict, tmp: Path):
    worker = ["-m", "dagster_celery.cli", "worker", "start", "-A", "dagster_celery.app", "-n", f"bench{n}",
              "-y", str(REPO / "deploy" / "celery-worker.yaml"), "-q", "dagster", "--", "--concurrency=4", "--prefetch-multiplier=1"]
    return running(worker, {**env, "OHLCV_EGRESS_ADDRESS": address}, REPO, tmp / f"worker{n}.log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, help="administrative URL of a PostgreSQL server")
    parser.add_argument("--days", type=int, default=280, help="days of 1m history per instrument")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stopped, it stops its processes as on Ctrl-C
    last_day = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=2)
    first_day = last_day - dt.timedelta(days=args.days - 1)
    bases = {phase: [f"{letter}{n}" for n in range(count)] for phase, (letter, _, count) in PHASES.items()}
    every = [b for names in bases.values() for b in names]
    warehouse_url = fresh_database(args.postgres, "bench_celery_warehouse")
    storage_url = fresh_database(args.postgres, "bench_celery_storage")
    rows = []
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        tmp = Path(tmp)
        (tmp / "sim.yaml").write_text(f"weight_limit: {LIMIT}\nban_seconds: 120\nsymbols:\n" + "".join(
            f"  - {{base: {b}, quote: USDT, listed: 2020-01-01, price: {10 + n}}}\n" for n, b in enumerate(every)))
        with running_simulator(tmp / "sim.yaml") as (simulator, _), redis(tmp) as redis_url:
            universe = (f"exchanges:\n  binance: {{ccxt_id: binance, api_url: '{simulator}/api/v3', weight_limit: {LIMIT}, "
                        "retry_base_seconds: 0.2}\ninstruments:\n"
                        + "".join(f"  - {{exchange: binance, symbol: {b}/USDT, intervals: [1m], start: {first_day}}}\n" for b in every)
                        + "refresh_minutes: 60\n")
            broker = {"DAGSTER_CELERY_BROKER": f"{redis_url}/0", "DAGSTER_CELERY_BACKEND": f"{redis_url}/1",
                      "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
            launcher = (REPO / "deploy" / "run_launchers" / "celery.yaml").read_text()
            # The features automation would follow the candles with runs of its own on the same workers:
            # not what is measured here.
            with production_dagster_dev(tmp, universe, warehouse_url, storage_url, launcher, broker, features=False) as (webserver, env), \
                    contextlib.ExitStack() as workers:
                started = 0
                for phase, (_, addresses, _) in PHASES.items():
                    while started < len(addresses):
                        workers.enter_context(celery_worker(started, addresses[started], env, tmp))
                        started += 1
                    before, timeline = sim_stats(simulator), WeightTimeline(simulator)
                    partitions = [partition_key_string(f"binance.{b}-USDT", first_day + dt.timedelta(days=d))
                                  for b in bases[phase] for d in range(args.days)]
                    backfill = launch_backfill(webserver, ["candles", "1m"], partitions, title=f"celery budget: {phase}")
                    status = wait_for_backfills(webserver, [backfill], timeout_seconds=3600)[backfill]
                    after, active = sim_stats(simulator), timeline.stop()
                    with DagsterInstance.get() as instance:
                        runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill}))
                        stats = [instance.get_run_stats(r.run_id) for r in runs]
                        celery = sum("dagster-celery/task_id" in r.tags for r in runs)
                    span = max(s.end_time for s in stats) - min(s.start_time for s in stats)
                    with Warehouse(warehouse_url).engine.connect() as connection:
                        candles = connection.exec_driver_sql(
                            "SELECT count(*) FROM candles WHERE symbol = ANY(%(s)s)", {"s": [f"{b}/USDT" for b in bases[phase]]}).scalar()
                    delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
                    use = {a: delta.get(f"weight_by_client.{a}", 0) / (LIMIT * span / 60) for a in ADDRESSES}
                    active_use = {a: delta.get(f"weight_by_client.{a}", 0) / (LIMIT * active[a] / 60) for a in active}
                    rows.append((phase, status, f"{len(runs)} ({celery} as Celery tasks)", candles, span, delta, use, active, active_use))
    print(f"\n### Celery workers and per-address budgets: 4 instruments x {args.days} days of 1m on one worker, 8 on two, "
          f"{LIMIT} weight/min per address\n")
    print("| phase | backfill | runs | candles | span (s) | candles/s | weight 127.0.0.2 | use of .2's budget | weight 127.0.0.3 "
          "| use of .3's budget | 429s | 418s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for phase, status, runs, candles, span, delta, use, _, _ in rows:
        print(f"| {phase} | {status} | {runs} | {candles:,} | {span:.1f} | {candles / span:,.0f} | "
              f"{delta.get('weight_by_client.127.0.0.2', 0):,} | {use['127.0.0.2']:.1%} | {delta.get('weight_by_client.127.0.0.3', 0):,} | "
              f"{use['127.0.0.3']:.1%} | {delta.get('status.429', 0)} | {delta.get('status.418', 0)} |")
    print("\nWhile each address was drawing weight (its first to its last request, sampled every 0.5 s):\n")
    print("| phase | address | active (s) | weight | use of its budget |")
    print("|---|---|---:|---:|---:|")
    for phase, _, _, _, _, delta, _, active, active_use in rows:
        for address in sorted(active):
            print(f"| {phase} | {address} | {active[address]:.1f} | {delta.get(f'weight_by_client.{address}', 0):,} | "
                  f"{active_use[address]:.1%} |")
    one, two = rows[0], rows[1]
    print(f"\nthroughput of two workers / one worker: {(two[3] / two[4]) / (one[3] / one[4]):.2f}x")


if __name__ == "__main__":
    main()
