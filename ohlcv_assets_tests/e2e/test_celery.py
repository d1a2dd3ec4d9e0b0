"""Runs on other hosts: the production topology with the Celery run launcher
(deploy/run_launchers/celery.yaml), Debian's redis-server as the broker on loopback, and two Celery
worker processes (deploy/celery-worker.yaml), each leaving from its own loopback address
(127.0.0.2, 127.0.0.3) and so drawing on its own rate budget. Backfills are launched through
GraphQL as the UI does; the daemon queues the runs and the workers execute them."""

import contextlib
import os
import shutil
import sys
from pathlib import Path

import dagster as dg
import pytest

from ohlcv_assets.cli.dagster_api import launch_backfill, wait_for_backfills
from ohlcv_assets.core.names import venue_pool
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.processes import missing_part, running, running_redis
from ohlcv_assets_tests.e2e.test_production import DAYS, assert_exact, names, production_topology
from ohlcv_assets.simulator.client import read_stats

pytestmark = [pytest.mark.e2e, pytest.mark.daemon]  # minutes each, through a real dagster-daemon

WORKER_ADDRESSES = ("127.0.0.2", "127.0.0.3")


@pytest.fixture
def redis_url(tmp_path):
    server = shutil.which("redis-server")
    if server is None:
        missing_part("Debian's redis-server is not installed (scripts/test.sh installs it as root)")
    with running_redis(server, tmp_path) as url:
        yield url


def test_backfill_runs_execute_on_two_celery_workers_with_their_own_egress(tmp_path, new_postgres_database, monkeypatch, redis_url):
    broker = {"DAGSTER_CELERY_BROKER": f"{redis_url}/0", "DAGSTER_CELERY_BACKEND": f"{redis_url}/1"}
    launcher = "\n" + (REPO / "deploy" / "run_launchers" / "celery.yaml").read_text()
    with production_topology(tmp_path, new_postgres_database, monkeypatch, launcher, broker) as topology:
        webserver, instance = topology["webserver"], topology["instance"]
        assert type(instance.run_launcher).__name__ == "CeleryRunLauncher"
        env = {**topology["env"], "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        with contextlib.ExitStack() as stack:
            for n, address in enumerate(WORKER_ADDRESSES):
                worker = ["-m", "dagster_celery.cli", "worker", "start", "-A", "dagster_celery.app", "-n", f"ohlcv{n}",
                          "-y", str(REPO / "deploy" / "celery-worker.yaml"), "-q", "dagster", "--", "--concurrency=1", "--prefetch-multiplier=1"]
                stack.enter_context(running(worker, {**env, "OHLCV_EGRESS_ADDRESS": address}, REPO, tmp_path / f"worker{n}.log"))
            stack.enter_context(running(topology["daemon"], env, REPO, tmp_path / "daemon.log"))
            backfills = [launch_backfill(webserver, ["candles", interval], names(DAYS), title=f"celery {interval}")
                         for interval in ("1m", "1h")]
            assert wait_for_backfills(webserver, backfills, timeout_seconds=600) == {b: "COMPLETED_SUCCESS" for b in backfills}
        for interval in ("1m", "1h"):
            assert_exact(topology["warehouse"], interval, DAYS)
        runs = [r for b in backfills for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": b}))]
        assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        assert all("dagster-celery/task_id" in r.tags for r in runs)  # launched as Celery tasks, not as local processes
        weight = read_stats(topology['sim'])
        used = {address: weight.get(f"weight_by_client.{address}", 0) for address in WORKER_ADDRESSES}
        assert all(used.values()), used  # both workers ran runs, each from its own address
        pools = instance.event_log_storage.get_concurrency_keys()
        assert {venue_pool("binance", a) for a in WORKER_ADDRESSES} <= pools, pools  # and in its own address's pool
        assert weight.get("weight_by_client.127.0.0.1", 0) <= 20 * 2  # the webserver's and daemon's markets loads at most
