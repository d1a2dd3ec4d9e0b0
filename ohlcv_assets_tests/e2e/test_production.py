"""The production topology without Docker: PostgreSQL for Dagster's storage and the warehouse, the
simulator, `dagster code-server` (gRPC), `dagster-daemon run` and `dagster-webserver` as separate
processes, using deploy/dagster.yaml and deploy/workspace.yaml. Backfills are launched through the
webserver's GraphQL API as the UI does; the daemon is killed mid-backfill and restarted; the UI is
checked in headless Chromium."""

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys

import dagster as dg
import pandas as pd
import pytest
import requests
import yaml

from ohlcv_assets.cli.dagster_api import graphql, launch_backfill, wait_for_backfills, wait_for_webserver
from ohlcv_assets.defs.instance_storage import storage_env
from ohlcv_assets.core.intervals import day_bounds_ms, interval_ms
from ohlcv_assets.defs.partitions import sync_instrument_partitions
from ohlcv_assets.simulator.market import SimulatedMarket
from ohlcv_assets.simulator.server import SimulatorConfig
from ohlcv_assets.core.universe import load_universe
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.processes import free_port, missing_part, quick_daemon_ticks, running, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.daemon]  # minutes each, through a real dagster-daemon

SCREENSHOT = REPO / "artifacts" / "ui-candles-1h-partitions.png"
PARTITION_STATS = """
query Stats($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode { partitionStats { numMaterialized numFailed numMaterializing } }
  }
}
"""
SIM_CONFIG = {
    "symbols": [{"base": "BTC", "quote": "USDT", "listed": "2020-01-01", "price": 60000},
                {"base": "ETH", "quote": "USDT", "listed": "2020-01-01", "price": 2500}],
    "downtime": [{"start": "2026-10-05T01:00:00Z", "end": "2026-10-05T02:00:00Z"}],
}
DAYS = [dt.date(2026, 10, 4) + dt.timedelta(days=n) for n in range(3)]
KILL_DAYS = [dt.date(2026, 10, 10) + dt.timedelta(days=n) for n in range(6)]
INSTRUMENTS = ["binance.BTC-USDT", "binance.ETH-USDT"]


def names(days):
    return [f"{day}|{key}" for day in days for key in INSTRUMENTS]


def assert_exact(warehouse: Warehouse, interval: str, days):
    config = SimulatorConfig.from_mapping(SIM_CONFIG)
    market = SimulatedMarket(config.symbols, config.downtime, config.seed)
    step = interval_ms(interval)
    for day in days:
        start, end = day_bounds_ms(day)
        for symbol in ("BTC/USDT", "ETH/USDT"):
            expected = pd.DataFrame(market.candles(market.symbols[symbol.replace("/", "")], step, start, end, end + step).as_floats())
            assert warehouse.read_candles("binance", symbol, interval, start, end).equals(expected), (interval, day, symbol)


def _location_loaded(webserver: str) -> bool:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError { __typename } } } } }"
    entries = graphql(webserver, query, {})["workspaceOrError"]["locationEntries"]
    return bool(entries) and all((e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation" for e in entries)


@contextlib.contextmanager
def production_topology(tmp_path, new_postgres_database, monkeypatch, run_launcher: str = "", extra_env: dict | None = None):
    """The production processes on deploy/dagster.yaml (with ``run_launcher`` appended, if given)."""
    storage_url = new_postgres_database()
    warehouse_url = new_postgres_database()
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text() + run_launcher)
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    code_port, ui_port, sim_port = free_port(), free_port(), free_port()
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=code_port)
    (tmp_path / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump(SIM_CONFIG))
    (tmp_path / "universe.yaml").write_text(f"""
exchanges:
  binance: {{ccxt_id: binance, api_url: "http://127.0.0.1:{sim_port}/api/v3", retry_base_seconds: 0.1}}
instruments:
  - {{exchange: binance, symbol: BTC/USDT, intervals: [1m, 1h], start: 2026-10-01}}
  - {{exchange: binance, symbol: ETH/USDT, intervals: [1m, 1h], start: 2026-10-01}}
""")
    env = quick_daemon_ticks({**{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "OHLCV_"))},
                              "DAGSTER_HOME": str(home), **storage_env(storage_url),
                              "OHLCV_UNIVERSE": str(tmp_path / "universe.yaml"), "OHLCV_WAREHOUSE_URL": warehouse_url,
                              **(extra_env or {})})
    ws = str(tmp_path / "workspace.yaml")
    commands = {
        "simulator": ["-m", "ohlcv_assets.simulator", "--port", str(sim_port), "--config", str(tmp_path / "sim.yaml")],
        "code": ["-m", "dagster", "code-server", "start", "-h", "127.0.0.1", "-p", str(code_port), "-m", "ohlcv_assets.definitions"],
        "webserver": ["-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(ui_port), "-w", ws],
    }
    daemon = ["-m", "dagster._daemon", "run", "-w", ws]  # the dagster-daemon command, as `dagster dev` starts it
    # As docker-compose.yml's `migrate` service: create Dagster's storage once, before the services
    # race to create it.
    subprocess.run([sys.executable, "-m", "dagster", "instance", "migrate"], env=env, check=True, capture_output=True)
    with contextlib.ExitStack() as stack:
        for name, args in commands.items():
            stack.enter_context(running(args, env, str(REPO), str(tmp_path / f"{name}.log")))
        webserver = f"http://127.0.0.1:{ui_port}"
        wait_for_webserver(webserver, timeout_seconds=180)
        wait_until(lambda: _location_loaded(webserver), 180, what="the code location to load")
        for key in ("DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", *(extra_env or {})):
            monkeypatch.setenv(key, env[key])
        with dg.DagsterInstance.from_config(str(home)) as instance:
            sync_instrument_partitions(instance, load_universe(tmp_path / "universe.yaml"))
            yield {"webserver": webserver, "instance": instance, "env": env, "daemon": daemon, "tmp": tmp_path,
                   "warehouse": Warehouse(warehouse_url), "sim": f"http://127.0.0.1:{sim_port}"}


@pytest.fixture
def topology(tmp_path, new_postgres_database, monkeypatch):
    with production_topology(tmp_path, new_postgres_database, monkeypatch) as parts:
        yield parts


def test_backfills_survive_a_daemon_kill_and_days_turn_materialized_while_a_long_ranged_run_is_in_flight(topology):
    """One production topology for both (starting and stopping one took 40-45 s of each of the two
    tests, on a loaded machine): the backfills across a daemon kill, then the long ranged run
    watched while in flight."""
    backfills_through_graphql_survive_a_daemon_kill(topology)
    days_turn_materialized_while_a_long_ranged_run_is_in_flight(topology)


def backfills_through_graphql_survive_a_daemon_kill(topology):
    webserver, instance, tmp = topology["webserver"], topology["instance"], topology["tmp"]
    with running(topology["daemon"], topology["env"], str(REPO), str(tmp / "daemon-1.log")) as daemon:
        first = launch_backfill(webserver, ["candles", "1h"], names(DAYS), title="e2e 1h")
        assert wait_for_backfills(webserver, [first], timeout_seconds=400) == {first: "COMPLETED_SUCCESS"}
        assert_exact(topology["warehouse"], "1h", DAYS)
        stats = partition_stats(webserver)
        # the today schedules may have materialized today's partitions too
        assert stats["numMaterialized"] >= len(names(DAYS)) and stats["numFailed"] == 0

        # The next backfill's first klines request answers 404: that run fails for good (no step
        # retry for what cannot succeed) and the instance's run retries launch it again.
        window = [day_bounds_ms(KILL_DAYS[0])[0], day_bounds_ms(KILL_DAYS[-1])[1]]  # not today's schedule runs
        requests.post(f"{topology['sim']}/sim/config", timeout=5,
                      json={"faults": [{"kind": "status", "status": 404, "count": 1, "start_between": window}]})
        second = launch_backfill(webserver, ["candles", "1m"], names(KILL_DAYS), title="e2e 1m, daemon killed")
        wait_until(lambda: instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": second})), 300, what="a first run")
        os.killpg(daemon.pid, signal.SIGKILL)  # mid-backfill, no chance to clean up
        daemon.wait()
    assert instance.get_backfill(second).status.value == "REQUESTED"
    with running(topology["daemon"], topology["env"], str(REPO), str(tmp / "daemon-2.log")):
        assert wait_for_backfills(webserver, [second], timeout_seconds=600) == {second: "COMPLETED_SUCCESS"}
    assert_exact(topology["warehouse"], "1m", KILL_DAYS)
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": second}))
    assert any(r.status == dg.DagsterRunStatus.FAILURE for r in runs)
    assert any(r.tags.get("dagster/retry_number") for r in runs), "the failed run was retried by run retries"
    check_ui_in_browser(webserver, partition_stats(webserver)["numMaterialized"])


def partition_stats(webserver: str) -> dict:
    return graphql(webserver, PARTITION_STATS, {"path": ["candles", "1h"]})["assetNodeOrError"]["partitionStats"]


def check_ui_in_browser(webserver: str, materialized: int | None, path: tuple = ("candles", "1h"), screenshot=SCREENSHOT,
                        credentials: tuple[str, str] | None = None) -> dict[str, int]:
    """Headless Chromium (Debian's) shows the asset's partitions as materialized, as GraphQL says
    (``materialized`` None: whatever count, as in the middle of a run). ``credentials``: the basic-auth
    login of a proxy in front of the webserver. Returns the frames received per websocket the page opened."""
    chromium = shutil.which("chromium")
    if chromium is None:
        missing_part("Debian's chromium is not installed (scripts/test.sh installs it as root)")
    from playwright.sync_api import sync_playwright

    screenshot.parent.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        login = {"http_credentials": {"username": credentials[0], "password": credentials[1]}} if credentials else {}
        page = browser.new_page(viewport={"width": 1600, "height": 1000}, **login)
        frames: dict[str, int] = {}

        def count_frames(socket):
            frames[socket.url] = 0
            socket.on("framereceived", lambda _payload: frames.__setitem__(socket.url, frames[socket.url] + 1))
        page.on("websocket", count_frames)
        page.goto(f"{webserver}/assets/{'/'.join(path)}?view=partitions", wait_until="networkidle")
        page.get_by_text(f"Materialized ({'' if materialized is None else materialized}", exact=False).first.wait_for(timeout=60_000)
        skip = page.get_by_role("button", name="Skip")  # the first-visit newsletter dialog
        if skip.count():
            skip.click()
            page.get_by_text("Join the Dagster community").wait_for(state="hidden", timeout=10_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(screenshot), full_page=True)
        text = page.inner_text("body")
        browser.close()
    assert "Failed (0)" in text and (materialized is None or f"Materialized ({materialized})" in text)
    return frames


MATERIALIZED_PARTITIONS = """
query Materialized($path: [String!]!, $partitions: [String!]) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations(partitions: $partitions) { partition runId } }
  }
}
"""
RUN_STATUS = """
query Run($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }
"""
PROGRESS_DAYS = [dt.date(2026, 10, 1) + dt.timedelta(days=n) for n in range(60)]
MID_RUN_SCREENSHOT = REPO / "artifacts" / "ui-candles-1m-mid-run.png"


def days_turn_materialized_while_a_long_ranged_run_is_in_flight(topology):
    """A 60-day ranged run of 1m candles, slowed by the simulator: GraphQL shows some of its days
    materialized (by that very run) while the run is still STARTED, as the UI's partitions view
    does; a screenshot of that view is taken mid-run."""
    webserver, instance, tmp = topology["webserver"], topology["instance"], topology["tmp"]
    late = [int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp() * 1000) for d in (PROGRESS_DAYS[40], PROGRESS_DAYS[-1] + dt.timedelta(days=1))]
    requests.post(f"{topology['sim']}/sim/config", timeout=5, json={"faults": [
        {"kind": "slow", "endpoint": "klines", "every": 1, "seconds": 6.0, "start_between": late},
        {"kind": "slow", "endpoint": "klines", "every": 1, "seconds": 2.0}]}).raise_for_status()
    # 87 pages, 4 in flight, 2 s each, the last 20 days' pages 6 s (under the 10 s client timeout): the
    # first batch (34 days, 51 pages) is written about 45 s before the last page arrives. With 2 s
    # for every page that window was ~18 s, which a CI machine busy with another e2e test missed once.
    partitions = [f"{day}|binance.BTC-USDT" for day in PROGRESS_DAYS]
    with running(topology["daemon"], topology["env"], str(REPO), str(tmp / "daemon-progress.log")):
        backfill = launch_backfill(webserver, ["candles", "1m"], partitions, title="progress")

        def in_flight():
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill}))
            if not runs:
                return None
            events = graphql(webserver, MATERIALIZED_PARTITIONS, {"path": ["candles", "1m"], "partitions": partitions})
            done = {e["partition"] for e in events["assetOrError"]["assetMaterializations"] if e["runId"] == runs[0].run_id}
            status = graphql(webserver, RUN_STATUS, {"id": runs[0].run_id})["runOrError"]["status"]
            return (runs[0].run_id, done) if status == "STARTED" and 0 < len(done) < len(partitions) else None

        run_id, done = wait_until(in_flight, 300, interval=0.3, what="some days materialized while the run is in flight")
        check_ui_in_browser(webserver, None, ["candles", "1m"], MID_RUN_SCREENSHOT)
        assert wait_for_backfills(webserver, [backfill], timeout_seconds=600) == {backfill: "COMPLETED_SUCCESS"}
    requests.post(f"{topology['sim']}/sim/config", timeout=5, json={"faults": []}).raise_for_status()
    final = graphql(webserver, MATERIALIZED_PARTITIONS, {"path": ["candles", "1m"], "partitions": partitions})
    by_run = [e["partition"] for e in final["assetOrError"]["assetMaterializations"] if e["runId"] == run_id]
    assert sorted(by_run) == sorted(partitions)  # each day once, none twice
    assert set(done) < set(partitions)
