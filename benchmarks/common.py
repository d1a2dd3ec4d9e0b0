"""What the benchmarks share: free ports, fresh PostgreSQL databases, the simulator and `dagster dev`
as child processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg

from ohlcv_assets.cli.processes import free_port

REPO = Path(__file__).resolve().parents[1]


def synthetic_universe(instruments: int, days: int) -> tuple[str, list[str]]:
    """A universe's text with ``instruments`` made-up Binance symbols of 1m and 1h from ``days`` ago
    (the API URL answers nothing: these benchmarks write the candles themselves), and the symbols."""
    import datetime as dt

    symbols = [f"S{i:04d}/USDT" for i in range(instruments)]
    start = (dt.date.today() - dt.timedelta(days=days)).isoformat()
    text = ("exchanges:\n  binance: {ccxt_id: binance, api_url: 'http://127.0.0.1:9/api/v3'}\ninstruments:\n"
            + "".join(f"  - {{exchange: binance, symbol: {s}, intervals: [1m, 1h], start: {start}}}\n" for s in symbols))
    return text, symbols


def tree_cpu_seconds(root: int, exclude: set[int]) -> float:
    """Busy CPU seconds (user + system, children already reaped included) of ``root``'s descendants,
    less the subtrees of ``exclude``: the processes this benchmark started, not the rest of a shared
    machine (``/proc/stat`` counts everyone's)."""
    stats: dict[int, tuple[int, float]] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        stats[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / ticks)
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid in exclude:
            continue
        total += stats[pid][1]
        todo.extend(children.get(pid, []))
    return total


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


@contextlib.contextmanager
def production_dagster_dev(tmp: Path, universe_text: str, warehouse_url: str, storage_url: str, extra_yaml: str = "",
                           extra_env: dict[str, str] | None = None, features: bool = True) -> Iterator[tuple[str, dict[str, str]]]:
    """`dagster dev` on the production instance config (deploy/dagster.yaml, plus ``extra_yaml`` such
    as a run launcher) with Dagster's storage in ``storage_url``, the universe's instruments
    registered and both databases migrated; yields (webserver URL, the processes' environment).
    Without ``features`` the features automation sensor is stopped first, so that only the runs
    being measured use the machine."""
    from dagster import DagsterInstance

    from ohlcv_assets.defs.instance_storage import storage_env
    from ohlcv_assets.defs.partitions import sync_instrument_partitions
    from ohlcv_assets.core.universe import load_universe
    from ohlcv_assets.warehouse.store import Warehouse
    from ohlcv_assets_tests.processes import stop_features_automation

    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text() + ("\n" + extra_yaml if extra_yaml else ""))
    (tmp / "universe.yaml").write_text(universe_text)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "OHLCV_"))},
           "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(tmp / "universe.yaml"), "OHLCV_WAREHOUSE_URL": warehouse_url,
           **storage_env(storage_url), **(extra_env or {})}
    os.environ.update(env)
    subprocess.run([sys.executable, "-m", "dagster", "instance", "migrate"], env=env, check=True, capture_output=True)
    if not features:
        stop_features_automation(env, REPO / "workspace.yaml")
    Warehouse(warehouse_url).migrate()
    with DagsterInstance.get() as instance:
        sync_instrument_partitions(instance, load_universe(tmp / "universe.yaml"))
    with running_dagster_dev(env, tmp / "dagster.log") as webserver:
        yield webserver, env


def backfill_through_dagster(warehouse_url: str, universe_text: str, asset_path: list[str], partitions: list[str],
                             title: str = "benchmark", scale: bool = False, features: bool = True) -> dict:
    """A backfill of ``partitions`` launched over GraphQL into ``production_dagster_dev``; its wall
    time from launch to done (the daemon's ticks included), the runs' own span and the run workers'
    peak RSS. With ``scale``, also what grows with it: event-log rows, the instance's and the
    warehouse's database sizes, each long-lived process's peak RSS, and how long the asset's
    partitions page takes to show in headless Chromium."""
    import tempfile

    from dagster import AssetKey, DagsterInstance, RunsFilter

    from ohlcv_assets.cli.dagster_api import launch_backfill, wait_for_backfills
    from ohlcv_assets.warehouse.store import Warehouse

    storage = fresh_database(warehouse_url.rsplit("/", 1)[0] + "/postgres", "bench_dagster_storage")
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        with production_dagster_dev(Path(tmp), universe_text, warehouse_url, storage, features=features) as (webserver, _):
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
            extra = scale_figures(webserver, asset_path, storage, warehouse_url) if scale else {}
    with Warehouse(warehouse_url).engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT count(*) FROM candles").scalar()
    return {**extra, "seconds": seconds, "candles": stored, "status": status, "run_worker_peak_rss_mb": peak.mb, "requests": None,
            "runs": len(runs), "runs_span_seconds": runs_span,
            # launch to: the first run enqueued (a backfill-daemon tick), its worker started, every day materialized
            "first_run_queued_seconds": min(s.enqueued_time or s.launch_time for s in stats) - launched_at,
            "first_run_started_seconds": min(s.start_time for s in stats) - launched_at,
            "all_green_seconds": last.timestamp - launched_at}


def scale_figures(webserver: str, asset_path: list[str], storage_url: str, warehouse_url: str) -> dict:
    """What a big backfill leaves behind and costs the long-lived processes (see backfill_through_dagster)."""
    with psycopg.connect(storage_url, autocommit=True) as connection:
        event_rows = connection.execute("SELECT count(*) FROM event_logs").fetchone()[0]
        instance_mb = connection.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20
    with psycopg.connect(warehouse_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as connection:
        warehouse_mb = connection.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20
    return {"event_log_rows": event_rows, "instance_db_mb": instance_mb, "warehouse_db_mb": warehouse_mb,
            "process_peak_rss_mb": process_peaks(), "partitions_page_seconds": partitions_page_seconds(webserver, asset_path)}


def process_peaks() -> dict[str, float]:
    """Peak RSS (VmHWM) of `dagster dev`'s long-lived processes and PostgreSQL's busiest backend."""
    kinds = {"webserver": b"dagster_webserver", "daemon": b"dagster._daemon", "code server": b"grpc", "postgres backend": b"postgres: "}
    peaks: dict[str, float] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            kind = next((k for k, marker in kinds.items() if marker in cmdline), None)
            if kind is None:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[kind] = max(peaks.get(kind, 0.0), int(line.split()[1]) / 1024)
        except OSError:
            continue
    return peaks


def partitions_page_seconds(webserver: str, asset_path: list[str]) -> float | None:
    """Seconds from opening the asset's partitions page in headless Chromium (Debian's) until it
    shows the materialized count; None without Chromium."""
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None:
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        began = time.perf_counter()
        page.goto(f"{webserver}/assets/{'/'.join(asset_path)}?view=partitions")
        page.get_by_text("Materialized (", exact=False).first.wait_for(timeout=600_000)
        seconds = time.perf_counter() - began
        browser.close()
    return seconds


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
