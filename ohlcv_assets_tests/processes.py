"""Starting the real processes (simulator, dagster dev) for end-to-end tests: each in its own
process group, stopped with it (``ohlcv_assets.cli.processes``, as the demo does)."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ohlcv_assets.cli.processes import running

__all__ = ["free_port", "missing_part", "running", "running_redis", "stop_features_automation", "wait_until"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_part(message: str) -> None:
    """A system part a test needs is not there: under CI that fails the test (CI installs it),
    elsewhere it skips it."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def wait_until(condition, timeout_seconds: float, interval: float = 2.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_seconds}s waiting for {what}")
        time.sleep(interval)


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def running_redis(server: str, directory: Path) -> Iterator[str]:
    """``server`` (Debian's redis-server) on a free loopback port, nothing persisted, as the Celery
    broker; yields its URL once it answers PING."""
    port = free_port()
    args = ["-c", "import os, sys; os.execv(sys.argv[1], sys.argv[1:])", server, "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(directory)]
    with running(args, dict(os.environ), directory, directory / "redis.log"):
        wait_until(lambda: _answers_ping(port), 30, interval=0.2, what="redis-server")
        yield f"redis://127.0.0.1:{port}"


def stop_features_automation(env: dict[str, str], workspace: Path) -> None:
    """Stops the features automation sensor in the instance of ``env`` before `dagster dev` starts:
    feature runs following a big backfill's candles are load beside what is being measured or tested."""
    subprocess.run([sys.executable, "-m", "dagster", "sensor", "stop", "automation", "-w", str(workspace)],
                   env=env, check=True, capture_output=True)
