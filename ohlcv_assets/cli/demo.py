"""One command to see the pipeline work offline: the bundled exchange simulator, a project-local
Dagster instance on SQLite, `dagster dev`, a backfill of every partition the demo universe declares
launched through the webserver (as the UI's "Materialize" button does), then a gap scan of every
instrument, so the partitions, the gap reports and the checks fill in the UI while you watch.

    ohlcv-demo               # UI on http://127.0.0.1:3000, Ctrl-C stops everything
    ohlcv-demo --once        # run to the end, print the summary, stop everything, exit

Each demo keeps its own home: the bundled one ``.demo``, one of another universe (``OHLCV_UNIVERSE``)
or simulated market (``--simulator-config``) ``.demo/<file name>``. A home records which universe
and market made it (``demo.json``): a demo of another one is refused there, naming both, since
candles of two simulated markets under one name disagree.

The demo owns every process it starts: each child runs in its own process group with SIGINT at
its default (a demo started in the background inherits SIGINT ignored, which `dagster dev` would
then ignore too); on the way out, runs still in flight are given time to finish, then the groups
are interrupted and killed, runs that did not finish are marked canceled, and the simulator stops
last.
"""

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg

from ohlcv_assets.cli import check_warehouse, failure_cause, one_line_errors, universe_or_exit
from ohlcv_assets.cli.dagster_api import (
    DagsterApiError,
    launch_backfill,
    launch_run,
    wait_for_backfills,
    wait_for_runs,
    wait_for_webserver,
)
from ohlcv_assets.cli.processes import spawn, stop_group
from ohlcv_assets.defs.monitoring import failing_checks
from ohlcv_assets.core.names import REASON_TAG, instruments_partitions_name, partition_key_string, scan_job_name
from ohlcv_assets.defs.partitions import sync_instrument_partitions
from ohlcv_assets.core.errors import ConfigurationError
from ohlcv_assets.core.settings import DAGSTER_HOME_ENV, WAREHOUSE_URL_ENV, warehouse_url
from ohlcv_assets.core.universe import UNIVERSE_ENV, Universe, universe_in_use, universe_path
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.store import Warehouse

SIMULATOR_URL_ENV = "OHLCV_SIMULATOR_URL"
PROJECT = Path(__file__).resolve().parents[2]  # dagster.yaml and workspace.yaml of the checkout
DRAIN_SECONDS = 90
RECHECK_SECONDS = 240
DEMO_HOME = Path(".demo")
DEMO_RECORD = "demo.json"
BUNDLED_SIMULATOR = Path(__file__).resolve().parents[1] / "demo_simulator.yaml"


def default_home(universe: Path | None, simulator_config: Path | None) -> Path:
    """``.demo`` for the bundled demo; ``.demo/<universe file name>`` (else the market's) for another."""
    chosen = universe or simulator_config
    return DEMO_HOME if chosen is None else DEMO_HOME / chosen.stem


def demo_record(universe: Path, simulator_config: Path | None) -> dict[str, str]:
    """What makes a demo's candles: its universe file and its simulated market (by content: an
    edited market serves other candles)."""
    market = simulator_config or BUNDLED_SIMULATOR
    return {"universe": str(universe), "simulator": str(market), "simulator_sha256": hashlib.sha256(market.read_bytes()).hexdigest()}


def claim_home(home: Path, record: dict[str, str], own: Path | None = None) -> None:
    """Records which demo the home holds; refuses a home another demo made (``own``: this demo's
    default home, suggested instead)."""
    path = home / DEMO_RECORD
    if path.is_file():
        held = json.loads(path.read_text())
        if (held.get("universe"), held.get("simulator_sha256")) != (record["universe"], record["simulator_sha256"]):
            raise ConfigurationError(
                f"{home.resolve()} holds the demo of the universe {held.get('universe')} on the simulated market "
                f"{held.get('simulator')}; this demo is the universe {record['universe']} on {record['simulator']}, "
                "whose candles would disagree with those stored: "
                + (f"leave out --home (this demo's own is {own}), give another, " if own and own != home else "give it another --home, ")
                + f"or delete {home.resolve()} to start over")
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")


def declared_partitions(universe: Universe, interval: str, today: dt.date) -> list[str]:
    """Every candles partition the universe declares for an interval, up to today."""
    return [partition_key_string(inst.key, inst.start + dt.timedelta(days=n))
            for inst in universe.instruments_for(interval) for n in range((today - inst.start).days + 1)]


class ProcessGroups:
    """Children started in their own process groups, stopped group by group in reverse order."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
        child = spawn(args, env, cwd, log)
        self.children.append((name, child))
        return child

    def dead(self) -> list[str]:
        return [name for name, child in self.children if child.poll() is not None]

    def stop(self, name: str) -> None:
        for child_name, child in self.children:
            if child_name == name:
                stop_group(child)

    def stop_all(self) -> None:
        for _, child in reversed(self.children):
            stop_group(child)


def unfinished_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    statuses = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    return list(instance.get_runs(filters=dg.RunsFilter(statuses=statuses)))


def drain(instance: dg.DagsterInstance, seconds: float) -> None:
    """Waits (bounded) until no run is queued or in flight, twice in a row."""
    deadline, quiet = time.monotonic() + seconds, 0
    while time.monotonic() < deadline and quiet < 2:
        quiet = quiet + 1 if not unfinished_runs(instance) else 0
        time.sleep(1)


def wait_for_simulator(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/v3/ping", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise DagsterApiError(f"the simulator at {url} did not answer within {seconds}s") from None
            time.sleep(0.3)


def terminal_env(environ: dict | None = None) -> str:
    """The settings another terminal needs to reach this demo's instance, warehouse and venues, as
    ``NAME=value`` words, paths absolute."""
    env = os.environ if environ is None else environ
    words = [f"{DAGSTER_HOME_ENV}={env[DAGSTER_HOME_ENV]}", f"{SIMULATOR_URL_ENV}={env[SIMULATOR_URL_ENV]}"]
    if env.get(UNIVERSE_ENV):
        words.append(f"{UNIVERSE_ENV}={Path(env[UNIVERSE_ENV]).resolve()}")
    return " ".join(words)


def second_terminal(universe: Universe, environ: dict | None = None) -> str:
    """What to type in another terminal to use the command-line tools on this demo (secrets by name)."""
    venv = f". {Path(sys.prefix) / 'bin' / 'activate'} && " if sys.prefix != sys.base_prefix else ""
    secrets = [WAREHOUSE_URL_ENV, *sorted({e.api_key_env for e in universe.exchanges.values() if e.api_key_env})]
    kept = [k for k in secrets if (os.environ if environ is None else environ).get(k)]
    also = f"  (and {', '.join(kept)} as set here)" if kept else ""
    return f"  In another terminal:  {venv}export {terminal_env(environ)}{also}"


def summary(universe: Universe, instance: dg.DagsterInstance, partitions: int, statuses: dict[str, str],
            scan_statuses: dict[str, str]) -> tuple[str, bool]:
    warehouse = Warehouse.open_existing(warehouse_url())
    try:
        stored = sum(len(warehouse.read_open_times(i.exchange, i.symbol, interval, 0, 2**62))
                     for interval in universe.intervals for i in universe.instruments_for(interval))
        by_status: dict[str, int] = {}
        for interval in universe.intervals:
            for inst in universe.instruments_for(interval):
                for record in gap_records.instrument_gaps(warehouse, inst.exchange, inst.symbol, interval):
                    label = f"{record.reason} ({record.status})"
                    by_status[label] = by_status.get(label, 0) + record.candles
    finally:
        warehouse.dispose()
    failing = {f"candles/{i} {name}": days for i in universe.intervals for name, days in failing_checks(instance, universe, i).items()}
    ok = (all(s == "COMPLETED_SUCCESS" for s in statuses.values()) and all(s == "SUCCESS" for s in scan_statuses.values())
          and not failing)
    lines = [
        "", "Demo backfill finished:",
        f"  partitions backfilled: {partitions} ({', '.join(sorted(set(statuses.values())))})",
        f"  gap scans:             {len(scan_statuses)} runs ({', '.join(sorted(set(scan_statuses.values())))})",
        f"  candles stored:        {stored:,}",
        "  missing candles found: " + (", ".join(f"{k}: {v}" for k, v in sorted(by_status.items())) or "none"),
        "  checks failing:        " + ("; ".join(f"{k} for {', '.join(v)}" for k, v in failing.items()) or "none"),
        "", "  Inspect with:  " + inspect_command(universe), "",
    ]
    return "\n".join(lines), ok


def inspect_command(universe: Universe) -> str:
    """The status command for this demo, as typed from anywhere: ohlcv-status reads the universe
    and warehouse the instance recorded; API keys the universe names must be set as for the demo."""
    keys = sorted({e.api_key_env for e in universe.exchanges.values() if e.api_key_env})
    needs = f"   (with {', '.join(keys)} set as for the demo)" if keys else ""
    return f"DAGSTER_HOME={os.environ[DAGSTER_HOME_ENV]} {Path(sys.executable).parent / 'ohlcv-status'}{needs}"


def failed_runs(instance: dg.DagsterInstance, since: dt.datetime) -> dict[str, int]:
    """The causes of the runs created since ``since`` that failed, each with how many runs it failed."""
    causes: dict[str, int] = {}
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], created_after=since)):
        events = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        cause = failure_cause(e.dagster_event for e in events if e.dagster_event is not None)
        causes[cause] = causes.get(cause, 0) + 1
    return causes


@one_line_errors("ohlcv-demo")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the ohlcv_assets demo offline.")
    parser.add_argument("--port", type=int, default=3000, help="Dagster UI port")
    parser.add_argument("--simulator-port", type=int, default=8765)
    parser.add_argument("--home", help="where the demo keeps its Dagster instance and warehouse (default: .demo for the "
                                       "bundled demo, .demo/<universe file name> for another universe)")
    parser.add_argument("--once", action="store_true", help="exit when the backfill and the gap scans have finished")
    parser.add_argument("--simulator-config", help="the simulated market and venues (default: the bundled Binance market); "
                                                   "pair it with OHLCV_UNIVERSE, e.g. examples/all_venues_*.yaml")
    args = parser.parse_args(argv)

    simulator_url = f"http://127.0.0.1:{args.simulator_port}"
    os.environ[SIMULATOR_URL_ENV] = simulator_url  # before the universe: its api_url may refer to it
    universe = universe_or_exit("ohlcv-demo", dagster_home=False)  # relative paths made absolute: children run elsewhere
    simulator_config = Path(args.simulator_config).resolve() if args.simulator_config else None
    home = Path(args.home) if args.home else default_home(universe_path(), simulator_config)
    try:
        if simulator_config is not None and not simulator_config.is_file():
            raise ConfigurationError(f"--simulator-config: {args.simulator_config} ({simulator_config}) does not exist")
        claim_home(home, demo_record(universe_in_use(), simulator_config), default_home(universe_path(), simulator_config))
    except ConfigurationError as err:
        print(f"ohlcv-demo: {err}", file=sys.stderr)
        return 2
    dagster_home = (home / "dagster_home").resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT / "dagster.yaml", dagster_home / "dagster.yaml")
    os.environ[DAGSTER_HOME_ENV] = str(dagster_home)
    env = dict(os.environ)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as on Ctrl-C
    children = ProcessGroups()
    code = 1
    with dg.DagsterInstance.get() as instance:
        try:
            check_warehouse(warehouse_url())
            print(f"warehouse: {warehouse_url()}\nDagster instance: {dagster_home}\nlogs: {dagster_home}/*.log", flush=True)
            market = ["--config", str(simulator_config)] if simulator_config else []
            children.start("simulator", ["-m", "ohlcv_assets.simulator", "--port", str(args.simulator_port), *market],
                           env, dagster_home, dagster_home / "simulator.log")
            wait_for_simulator(simulator_url)
            sync_instrument_partitions(instance, universe)
            children.start("dagster", ["-m", "dagster", "dev", "-w", str(PROJECT / "workspace.yaml"), "-h", "127.0.0.1",
                                       "-p", str(args.port)], env, dagster_home, dagster_home / "dagster.log")
            webserver = f"http://127.0.0.1:{args.port}"
            wait_for_webserver(webserver, timeout_seconds=180)
            code = run_demo(universe, instance, webserver, children, once=args.once)
        except KeyboardInterrupt:
            print("\nstopping the demo…", flush=True)
            code = 0
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            shut_down(instance, children)
    return code


def run_demo(universe: Universe, instance: dg.DagsterInstance, webserver: str, children: ProcessGroups, once: bool) -> int:
    started = dt.datetime.now(dt.timezone.utc)
    today = started.date()
    backfills, partitions = [], 0
    for interval in universe.intervals:
        names = declared_partitions(universe, interval, today)
        partitions += len(names)
        backfills.append(launch_backfill(webserver, ["candles", interval], names, title=f"demo: candles/{interval}"))
        print(f"backfill {backfills[-1]}: {len(names)} partitions of candles/{interval}", flush=True)
    print(f"\n  Dagster UI: {webserver}/assets/candles  (Ctrl-C stops the demo)\n{second_terminal(universe)}\n", flush=True)
    statuses = wait_for_backfills(webserver, backfills, timeout_seconds=1800, alive=lambda: not children.dead())
    scans = []
    for interval in universe.intervals:
        registered = instance.get_dynamic_partitions(instruments_partitions_name(interval))
        scans.append(launch_run(webserver, scan_job_name(interval), registered[0], registered[-1], {REASON_TAG: "demo: gap scan"}))
    print(f"gap scans: {len(scans)} runs of {', '.join(scan_job_name(i) for i in universe.intervals)} check every "
          "instrument's history for missing candles", flush=True)
    scan_statuses = wait_for_runs(webserver, scans, timeout_seconds=600, alive=lambda: not children.dead())
    # Each scan re-checks the days whose missing candles it confirmed as downtime.
    deadline = time.monotonic() + RECHECK_SECONDS
    while any(failing_checks(instance, universe, i) for i in universe.intervals) and time.monotonic() < deadline:
        time.sleep(3)
    drain(instance, DRAIN_SECONDS)
    text, ok = summary(universe, instance, partitions, statuses, scan_statuses)
    print(text, flush=True)
    causes = failed_runs(instance, started)
    if causes:  # the closing line says why
        print("ohlcv-demo: runs failed: " + "; ".join(f"{c} ({n} runs)" for c, n in causes.items()), file=sys.stderr, flush=True)
    if once:
        return 0 if ok else 1
    while not children.dead():
        time.sleep(1)
    print(f"stopped: {', '.join(children.dead())} exited", file=sys.stderr)
    return 1


def shut_down(instance: dg.DagsterInstance, children: ProcessGroups) -> None:
    """In-flight runs first (they need the simulator), then Dagster, then the simulator."""
    if "dagster" not in children.dead():
        drain(instance, DRAIN_SECONDS)
    children.stop("dagster")
    for run in unfinished_runs(instance):
        instance.report_run_canceled(run, message="the demo stopped before this run finished")
    children.stop_all()


if __name__ == "__main__":
    sys.exit(main())
