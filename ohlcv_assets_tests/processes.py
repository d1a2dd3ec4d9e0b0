"""Starting the real processes (simulator, dagster dev) for end-to-end tests: each in its own
process group, stopped with it (``ohlcv_assets.cli.processes``, as the demo does)."""

import socket
import time

from ohlcv_assets.cli.processes import running

__all__ = ["free_port", "running", "wait_until"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout_seconds: float, interval: float = 2.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_seconds}s waiting for {what}")
        time.sleep(interval)
