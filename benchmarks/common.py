"""What the benchmarks share: free ports, fresh PostgreSQL databases, the simulator and `dagster dev`
as child processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_database(admin_url: str, name: str) -> str:
    """Drops and creates database ``name`` on the server of ``admin_url``; returns its URL."""
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def running_simulator(config: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """The exchange simulator in its own process, as an exchange would be; yields (url, process)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "ohlcv_assets.simulator", "--port", str(port),
                                "--config", str(config)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/sim/stats", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the simulator did not start") from None
                time.sleep(0.2)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def running_dagster_dev(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`dagster dev` on the project's workspace with ``env`` (DAGSTER_HOME, universe, warehouse);
    yields the webserver's URL once it answers."""
    from ohlcv_assets.cli.dagster_api import wait_for_webserver
    from ohlcv_assets.cli.processes import running

    port = free_port()
    with running(["-m", "dagster", "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
                 env, log_path.parent, log_path):
        webserver = f"http://127.0.0.1:{port}"
        wait_for_webserver(webserver, timeout_seconds=180)
        yield webserver


def backfill_through_dagster(warehouse_url: str, universe_text: str, asset_path: list[str], partitions: list[str],
                             title: str = "benchmark") -> dict:
    """A backfill of ``partitions`` launched over GraphQL into `dagster dev` on the production
    instance config (deploy/dagster.yaml, Dagster's storage in PostgreSQL too); its wall time from
    launch to done (the daemon's ticks included), the runs' own span and the run workers' peak RSS."""
    import shutil
    import tempfile

    from dagster import AssetKey, DagsterInstance, RunsFilter

    from ohlcv_assets.cli.dagster_api import launch_backfill, wait_for_backfills
    from ohlcv_assets.instance_storage import storage_env
    from ohlcv_assets.partitions import sync_instrument_partitions
    from ohlcv_assets.universe import load_universe
    from ohlcv_assets.warehouse.store import Warehouse

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        shutil.copyfile(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
        storage = fresh_database(warehouse_url.rsplit("/", 1)[0] + "/postgres", "bench_dagster_storage")
        universe_file = Path(tmp) / "universe.yaml"
        universe_file.write_text(universe_text)
        env = {**os.environ, "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(universe_file), "OHLCV_WAREHOUSE_URL": warehouse_url,
               **storage_env(storage)}
        os.environ.update(env)
        subprocess.run([sys.executable, "-m", "dagster", "instance", "migrate"], env=env, check=True, capture_output=True)
        Warehouse(warehouse_url).migrate()
        with DagsterInstance.get() as instance:
            sync_instrument_partitions(instance, load_universe(universe_file))
        with running_dagster_dev(env, Path(tmp) / "dagster.log") as webserver:
            peak = RunWorkerPeak()
            launched_at = time.time()
            began = time.perf_counter()
            backfill = launch_backfill(webserver, asset_path, partitions, title)
            status = wait_for_backfills(webserver, [backfill], timeout_seconds=7200)[backfill]
            seconds = time.perf_counter() - began
            peak.stop()
            with DagsterInstance.get() as instance:
                runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill}))
                stats = [instance.get_run_stats(run.run_id) for run in runs]
                runs_span = max(s.end_time for s in stats) - min(s.start_time for s in stats)
                [last] = instance.fetch_materializations(AssetKey(asset_path), limit=1).records
    with Warehouse(warehouse_url).engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT count(*) FROM candles").scalar()
    return {"seconds": seconds, "candles": stored, "status": status, "run_worker_peak_rss_mb": peak.mb, "requests": None,
            "runs": len(runs), "runs_span_seconds": runs_span,
            # launch to: the first run enqueued (a backfill-daemon tick), its worker started, every day materialized
            "first_run_queued_seconds": min(s.enqueued_time or s.launch_time for s in stats) - launched_at,
            "first_run_started_seconds": min(s.start_time for s in stats) - launched_at,
            "all_green_seconds": last.timestamp - launched_at}


class RunWorkerPeak:
    """Peak RSS of any Dagster run worker, polled from /proc while the backfill runs."""

    def __init__(self):
        self.mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if b"execute_run" not in cmdline and b"spawn_main" not in cmdline:
                        continue
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.mb = max(self.mb, int(line.split()[1]) / 1024)
                except OSError:
                    continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
