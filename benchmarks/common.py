"""What the benchmarks share: free ports, fresh PostgreSQL databases, the simulator and `dagster dev`
as child processes."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
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
