"""One command to see the pipeline work offline: the bundled exchange simulator, a project-local
Dagster instance on SQLite, `dagster dev`, and a backfill of the demo universe's last days
launched through the webserver (as the UI's "Materialize" button does), so the partitions fill
in the UI while you watch.

    ohlcv-demo               # UI on http://127.0.0.1:3000, Ctrl-C stops everything
    ohlcv-demo --once        # run the backfill to the end, print the summary, exit
"""

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from dagster import DagsterInstance

from ohlcv_assets.cli.dagster_api import launch_backfill, wait_for_backfills, wait_for_webserver
from ohlcv_assets.partitions import sync_instrument_partitions
from ohlcv_assets.universe import load_universe

SIMULATOR_URL_ENV = "OHLCV_SIMULATOR_URL"


def demo_partitions(universe, interval: str, days: int, today: dt.date) -> list[str]:
    first = max(universe.start_date(interval), today - dt.timedelta(days=days))
    span = [first + dt.timedelta(days=n) for n in range((today - first).days + 1)]
    return [f"{day.isoformat()}|{inst.key}" for day in span for inst in universe.instruments_for(interval) if day >= inst.start]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the ohlcv_assets demo offline.")
    parser.add_argument("--days", type=int, default=7, help="days of history to backfill before today")
    parser.add_argument("--port", type=int, default=3000, help="Dagster UI port")
    parser.add_argument("--simulator-port", type=int, default=8765)
    parser.add_argument("--home", default=".demo", help="where the demo keeps its Dagster instance and warehouse")
    parser.add_argument("--once", action="store_true", help="exit when the backfill has finished")
    args = parser.parse_args(argv)

    root = Path.cwd()
    home = (root / args.home).resolve()
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "OHLCV_WAREHOUSE_URL": os.environ.get("OHLCV_WAREHOUSE_URL", f"sqlite:///{home / 'warehouse.db'}"),
        SIMULATOR_URL_ENV: f"http://127.0.0.1:{args.simulator_port}",
    }
    os.environ.update(env)
    children: list[subprocess.Popen] = []

    def stop(*_):
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    try:
        children.append(subprocess.Popen([sys.executable, "-m", "ohlcv_assets.exchange.simulator", "--port", str(args.simulator_port)], env=env))
        universe = load_universe()
        with DagsterInstance.get() as instance:
            sync_instrument_partitions(instance, universe)
        children.append(subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", str(root / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(args.port)],
            env=env, cwd=root,
        ))
        webserver = f"http://127.0.0.1:{args.port}"
        wait_for_webserver(webserver, timeout_seconds=180)
        today = dt.datetime.now(dt.timezone.utc).date()
        backfills = []
        for interval in universe.intervals:
            names = demo_partitions(universe, interval, args.days, today)
            backfills.append(launch_backfill(webserver, ["candles", interval], names, title=f"demo: last {args.days} days of {interval}"))
            print(f"backfill {backfills[-1]}: {len(names)} partitions of candles/{interval}", flush=True)
        print(f"\n  Dagster UI: {webserver}/assets/candles  (Ctrl-C stops the demo)\n", flush=True)
        if args.once:
            statuses = wait_for_backfills(webserver, backfills, timeout_seconds=1800)
            print(f"backfills finished: {statuses}", flush=True)
            sys.exit(0 if all(s == "COMPLETED_SUCCESS" for s in statuses.values()) else 1)
        while all(child.poll() is None for child in children):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop()


if __name__ == "__main__":
    main()
