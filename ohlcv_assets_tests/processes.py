"""Starting the real processes (simulator, dagster dev) for end-to-end tests: each in its own
process group, stopped with it (``ohlcv_assets.cli.processes``, as the demo does)."""

import os
import socket
import time

import pytest

from ohlcv_assets.cli.processes import running

__all__ = ["free_port", "missing_part", "running", "wait_until"]


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
