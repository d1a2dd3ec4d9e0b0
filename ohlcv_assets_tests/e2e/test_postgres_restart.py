"""PostgreSQL restarted (fast shutdown: every session cut) while `ohlcv backfill` runs, the warehouse
and the Dagster instance (the production storage, ``deploy/dagster.yaml``) on that one server: the
run retries what failed, stores every candle exactly once, records its own end and every event,
and the command exits 0. The test has a server of its own to restart (never the shared one)."""

import datetime as dt
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

import dagster as dg
import pytest
import requests
import sqlalchemy as sa

from ohlcv_assets.cli.dagster_api import launch_backfill
from ohlcv_assets.defs.instance_storage import storage_env
from ohlcv_assets.core.intervals import day_bounds_ms, now_ms
from ohlcv_assets.core.names import candles_key
from ohlcv_assets.quality.checks import checks_for
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets.warehouse.urls import normalise_url
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.helpers import PLAIN_DAY, simulator_candles
from ohlcv_assets_tests.processes import missing_part, running, wait_until

BIN = os.path.dirname(sys.executable)
SCRIPT = str(REPO / "scripts" / "postgres.sh")

pytestmark = pytest.mark.e2e  # a PostgreSQL of its own, restarted under a backfill


def _as_owner(command: list[str]) -> list[str]:
    """As scripts/postgres.sh runs the server: as `postgres` when root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of this test's own: (URL of its ohlcv_test database, restart())."""
    parent = tempfile.mkdtemp(prefix="ohlcv-pg-restart-")
    os.chmod(parent, 0o755)  # the server may run as `postgres`
    data_dir = os.path.join(parent, "data")
    started = subprocess.run([SCRIPT, "start", data_dir], capture_output=True, text=True)
    if started.returncode != 0:
        shutil.rmtree(parent, ignore_errors=True)
        missing_part(f"no PostgreSQL server binaries to start a server of the test's own: {started.stderr.strip()}")
    bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in p.split("/")[-2].split(".")])[-1]

    def restart() -> None:
        # -l: the restarted server logs to its file, not to this pipe (which would never close)
        subprocess.run(_as_owner([f"{bindir}/pg_ctl", "-D", data_dir, "-l", os.path.join(data_dir, "server.log"),
                                  "-m", "fast", "-w", "restart"]), check=True, capture_output=True, timeout=120)

    try:
        yield started.stdout.strip().splitlines()[-1], restart
    finally:
        subprocess.run([SCRIPT, "stop", data_dir], capture_output=True)
        shutil.rmtree(parent, ignore_errors=True)


def test_a_backfill_survives_a_fast_restart_of_its_postgresql(simulator, universe_file, own_postgres, tmp_path):
    instance_url, restart = own_postgres
    admin = sa.create_engine(normalise_url(instance_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE warehouse")
    admin.dispose()
    warehouse_url = sa.make_url(normalise_url(instance_url)).set(database="warehouse").render_as_string(hide_password=False)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, **storage_env(instance_url), "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(universe_file),
           "OHLCV_WAREHOUSE_URL": warehouse_url}
    first, last = PLAIN_DAY - dt.timedelta(days=5), PLAIN_DAY
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    # slow pages: the run is still fetching (and writing its first events) when the server restarts
    simulator.reconfigure({"faults": [{"kind": "slow", "seconds": 0.7, "every": 1, "endpoint": "klines"}]})
    process = subprocess.Popen([f"{BIN}/ohlcv", "backfill", "1m", "binance.BTC-USDT", str(first), str(last)], env=env,
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: simulator.stats["requests.klines"] >= 2 or process.poll() is not None, 120, 0.2, "the run's first pages")
        assert process.poll() is None, "the run ended before the restart"
        restart()
        time.sleep(1)
        restart()  # twice: a second restart finds the connections re-opened after the first one dead again
        simulator.reconfigure({"faults": []})
        stdout, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stdout[-3000:] + stderr[-5000:]
    assert "Traceback" not in stderr and "Logging error" not in stderr, stderr[-5000:]
    assert f"{first}..{last}: run " in stdout and "succeeded, 6 partitions" in stdout, stdout

    warehouse = Warehouse(warehouse_url)
    try:
        for day in days:
            stored = warehouse.read_candles("binance", "BTC/USDT", "1m", *day_bounds_ms(day))
            assert stored.equals(simulator_candles(simulator, "BTC/USDT", "1m", day, now_ms())), day
    finally:
        warehouse.dispose()
    os.environ.update(storage_env(instance_url))  # what deploy/dagster.yaml reads, for the instance opened here
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs()
            assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS], [(r.run_id, r.status) for r in runs]
            run_id = runs[0].run_id
            kinds = [e.dagster_event_type for e in instance.all_logs(run_id) if e.is_dagster_event]
            assert kinds.count(dg.DagsterEventType.RUN_SUCCESS) == 1 and dg.DagsterEventType.RUN_FAILURE not in kinds
            partitions = {f"{day}|binance.BTC-USDT" for day in days}
            assert instance.get_materialized_partitions(candles_key("1m")) == partitions
            # every day's materialization and its checks' evaluations (a step attempt cut short may have logged some before)
            materialized = [e.dagster_event.partition for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)]
            assert set(materialized) == partitions
            evaluations = [e.dagster_event.event_specific_data for e in
                           instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
            for spec in checks_for("1m"):
                assert {e.partition for e in evaluations if e.check_name == spec.name} == partitions, spec.name
    finally:
        for key in storage_env(instance_url):
            os.environ.pop(key, None)


@pytest.mark.daemon
def test_a_daemon_backfill_survives_a_fast_restart_of_its_postgresql(own_postgres, tmp_path, monkeypatch):
    """The production processes (code server, webserver, daemon, run workers; deploy/dagster.yaml)
    on the test's own server, which restarts while the backfill's run fetches: the backfill
    completes, every run records its end (none left STARTED), the candles are exact."""
    from ohlcv_assets_tests.e2e.test_production import assert_exact, names, production_topology

    instance_url, restart = own_postgres
    admin = sa.create_engine(normalise_url(instance_url), isolation_level="AUTOCOMMIT")

    def new_database() -> str:
        name = f"t_{os.urandom(6).hex()}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        return sa.make_url(normalise_url(instance_url)).set(database=name).render_as_string(hide_password=False)

    days = [dt.date(2026, 10, 12) + dt.timedelta(days=n) for n in range(4)]
    try:
        with production_topology(tmp_path, new_database, monkeypatch) as topology:
            webserver, instance = topology["webserver"], topology["instance"]
            requests.post(f"{topology['sim']}/sim/config", timeout=5,
                          json={"faults": [{"kind": "slow", "endpoint": "klines", "every": 1, "seconds": 1.0}]}).raise_for_status()
            with running(topology["daemon"], topology["env"], str(REPO), str(tmp_path / "daemon.log")):
                backfill = launch_backfill(webserver, ["candles", "1m"], names(days), title="restart")
                wait_until(lambda: [r for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill}))
                                    if r.status == dg.DagsterRunStatus.STARTED], 300, 0.5, "a run of the backfill started")
                time.sleep(2)
                restart()
                requests.post(f"{topology['sim']}/sim/config", timeout=5, json={"faults": []}).raise_for_status()

                def finished():
                    try:  # a poll that meets the restart's end is asked again
                        status = instance.get_backfill(backfill).status.value
                    except Exception:  # noqa: BLE001
                        return None
                    return status if status not in ("REQUESTED", "CANCELING", "FAILING") else None

                assert wait_until(finished, 600, 2, "the backfill to end") == "COMPLETED_SUCCESS"
                runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill}))
                assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [(r.run_id, r.status) for r in runs]
            assert_exact(topology["warehouse"], "1m", days)
            topology["warehouse"].dispose()
    finally:
        admin.dispose()
