"""Child processes that are owned, not orphaned: each in its own process group with SIGINT at its
default (a parent started in the background has SIGINT ignored, and its children would inherit
that: `dagster dev` would then ignore the interrupt meant to stop it), stopped group by group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

STOP_SECONDS = 30


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(args: list[str], env: dict[str, str], cwd: str | Path, log: str | Path) -> subprocess.Popen:
    """``python ARGS`` in its own process group, output appended to ``log``, no stdin."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, *args], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_sigint_default)


def stop_group(child: subprocess.Popen, seconds: float = STOP_SECONDS) -> None:
    """SIGINT to the whole group (as a terminal's Ctrl-C), then SIGKILL to whatever is left in it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=seconds)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], cwd: str | Path, log: str | Path) -> Iterator[subprocess.Popen]:
    child = spawn(args, env, cwd, log)
    try:
        yield child
    finally:
        stop_group(child)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server about to start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
