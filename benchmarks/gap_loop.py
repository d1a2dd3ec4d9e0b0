"""What the gap loop costs under `dagster dev`: 3 instruments x 12 days of 1m, registered by the
sensor while a user backfills the same days; once that has settled, 500 rows are deleted and a scan
launched. Counts runs (by reason) and klines requests until every gap is settled, then watches for
more (a loop), and counts how many of the deleted candles are stored again.

    python benchmarks/gap_loop.py                      # this checkout
    python benchmarks/gap_loop.py --code /tmp/old      # Dagster runs another checkout's code (e.g. a git
                                                       # worktree) in the same venv; the simulator stays this one

Prints one table row per run of the script.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import random
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, free_port  # noqa: E402

from ohlcv_assets.cli.processes import running  # noqa: E402
from ohlcv_assets.simulator.client import read_stats

SYMBOLS = ("AAA", "BBB", "CCC")
DAYS = 12
DELETED = 500
QUIET_SECONDS = 180
SETTLE_TIMEOUT = 1200
GRAPHQL_LAUNCH = """mutation L($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
GRAPHQL_STATUS = """query S($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }"""


def graphql(webserver: str, query: str, variables: dict) -> dict:
    request = urllib.request.Request(f"{webserver}/graphql", data=json.dumps({"query": query, "variables": variables}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["data"]


def launch(webserver: str, path: list[str], partitions: list[str]) -> str:
    result = graphql(webserver, GRAPHQL_LAUNCH, {"p": {"assetSelection": [{"path": path}], "partitionNames": partitions}})
    return result["launchPartitionBackfill"]["backfillId"]


def wait_backfill(webserver: str, backfill_id: str, timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = graphql(webserver, GRAPHQL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]["status"]
        if status in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"):
            return status
        time.sleep(2)
    raise SystemExit(f"backfill {backfill_id} not finished in {timeout}s")


def sim_stats(url: str) -> dict:
    return read_stats(url)


def wait_http(url: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=3).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer") from None
            time.sleep(0.5)


def open_gaps(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("gaps"):
            return -1
        return conn.execute(sa.text("SELECT count(*) FROM gaps WHERE status IN ('detected', 'backfill_requested')")).scalar_one()


def wait_settled(engine: sa.Engine, instance: dg.DagsterInstance, deadline: float) -> bool:
    """Until no gap is open and no run unfinished, three polls in a row (or the deadline)."""
    quiet = 0
    while quiet < 3 and time.monotonic() < deadline:
        busy = open_gaps(engine) != 0 or any(not r.is_finished for r in instance.get_runs())
        quiet = 0 if busy else quiet + 1
        time.sleep(20)
    return quiet >= 3


def reason(run: dg.DagsterRun) -> str:
    selection = {k.path[0] for k in (run.asset_selection or [])}
    if run.tags.get("dagster/backfill") and "ohlcv/reason" not in run.tags and "candles" in selection:
        return "user backfill"
    if "candle_features" in selection:
        return "features"
    return run.tags.get("ohlcv/reason") or ("scan" if "gap_report" in selection else "other")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", help="checkout whose ohlcv_assets the simulator and dagster dev import")
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, instance, warehouse)")
    parser.add_argument("--settle-timeout", type=float, default=SETTLE_TIMEOUT, help="give up waiting for settled gaps after this")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gap-loop-"))
    home = work / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    today = dt.datetime.now(dt.timezone.utc).date()
    first = today - dt.timedelta(days=DAYS - 1)
    sim_port, ui_port = free_port(), free_port()
    (work / "sim.yaml").write_text(json.dumps({"symbols": [{"base": s, "quote": "USDT", "listed": "2020-01-01", "price": 10}
                                                           for s in SYMBOLS]}))
    (work / "universe.yaml").write_text(json.dumps({
        "exchanges": {"binance": {"ccxt_id": "binance", "api_url": f"http://127.0.0.1:{sim_port}/api/v3", "retry_base_seconds": 0.1}},
        "instruments": [{"exchange": "binance", "symbol": f"{s}/USDT", "intervals": ["1m"], "start": str(first)} for s in SYMBOLS],
    }))
    warehouse_url = f"sqlite:///{work / 'warehouse.db'}"
    env = {**os.environ, "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(work / "universe.yaml"), "OHLCV_WAREHOUSE_URL": warehouse_url}
    code_env = {**env, "PYTHONPATH": os.pathsep.join([args.code, env.get("PYTHONPATH", "")])} if args.code else env
    sim = f"http://127.0.0.1:{sim_port}"
    webserver = f"http://127.0.0.1:{ui_port}"
    started = time.monotonic()
    with running(["-m", "ohlcv_assets.simulator", "--port", str(sim_port), "--config", str(work / "sim.yaml")], env, work, work / "sim.log"), \
         running(["-m", "dagster", "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(ui_port)], code_env, home,
                 home / "dagster.log"), \
         dg.DagsterInstance.from_config(str(home)) as instance:
        wait_http(f"{sim}/sim/stats")
        wait_http(f"{webserver}/server_info")
        keys = [f"binance.{s}-USDT" for s in SYMBOLS]
        deadline = time.monotonic() + 180
        while set(instance.get_dynamic_partitions("instruments_1m")) != set(keys):  # the sensor registers them
            if time.monotonic() > deadline:
                raise SystemExit("instruments were not registered")
            time.sleep(1)
        days = [first + dt.timedelta(days=n) for n in range(DAYS)]
        user = launch(webserver, ["candles", "1m"], [f"{d}|{k}" for d in days for k in keys])
        print(f"user backfill {user}: {wait_backfill(webserver, user)}", flush=True)
        engine = sa.create_engine(warehouse_url)
        first_settle = wait_settled(engine, instance, time.monotonic() + args.settle_timeout)
        print(f"history settled after {time.monotonic() - started:.0f} s: {first_settle}", flush=True)
        rng = random.Random(3)
        with engine.begin() as conn:
            rows = conn.execute(sa.text("SELECT symbol, open_time FROM candles WHERE open_time < :end"),
                                {"end": (int(time.time()) // 86400 - 1) * 86_400_000}).all()
            deleted = rng.sample(rows, DELETED)
            for symbol, open_time in deleted:
                conn.execute(sa.text("DELETE FROM candles WHERE symbol = :s AND open_time = :t"), {"s": symbol, "t": open_time})
        scans = launch(webserver, ["gap_report", "1m"], keys)
        print(f"user scan {scans}: {wait_backfill(webserver, scans)}", flush=True)
        wait_settled(engine, instance, time.monotonic() + args.settle_timeout)
        settle_seconds = time.monotonic() - started
        runs_at_settle = {r.run_id for r in instance.get_runs()}
        klines_at_settle = sim_stats(sim).get("requests.klines", 0)
        time.sleep(QUIET_SECONDS)
        runs = list(instance.get_runs())
        after = [r for r in runs if r.run_id not in runs_at_settle and reason(r) not in ("keep-today-fresh", "features")]
        klines = sim_stats(sim).get("requests.klines", 0)
        with engine.connect() as conn:
            attempts = conn.execute(sa.text("SELECT max(attempts) FROM gaps")).scalar_one()
            statuses = dict(conn.execute(sa.text("SELECT status, count(*) FROM gaps GROUP BY status")).all())
            stored = conn.execute(sa.text("SELECT count(*) FROM candles")).scalar_one()
            deleted_back = conn.execute(sa.text(
                "SELECT count(*) FROM candles WHERE " + " OR ".join(f"(symbol = '{sym}' AND open_time = {t})" for sym, t in deleted))
            ).scalar_one()
    by_reason = collections.Counter(reason(r) for r in runs)
    print()
    print("| code | seconds to settle | runs (by reason) | klines requests to settle | gap records | max attempts | runs / requests in the next "
          f"{QUIET_SECONDS} s (not today/features) | candles stored | deleted candles stored again |")
    print("|---|---:|---|---:|---|---:|---|---:|---:|")
    print(f"| {args.label} | {settle_seconds:.0f} | {dict(sorted(by_reason.items()))} | {klines_at_settle} | {statuses} | {attempts} "
          f"| {len(after)} / {klines - klines_at_settle} | {stored:,} | {deleted_back} of {DELETED} |")
    if open_gaps(engine) != 0:
        print(f"NOT SETTLED within {args.settle_timeout:.0f}s: {open_gaps(engine)} gaps open")
    if args.keep:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
