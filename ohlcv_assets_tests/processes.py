"""Starting the real processes (simulator, dagster dev) for end-to-end tests: each in its own
process group, stopped with it (``ohlcv_assets.cli.processes``, as the demo does)."""

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ohlcv_assets.cli.processes import free_port, running

__all__ = ["TAG_ENV", "free_port", "in_process", "missing_part", "processes_started_by", "quick_daemon_ticks", "running", "running_redis",
           "stop_features_automation", "stop_leftovers", "wait_until"]

BACKFILL_DAEMON_SECONDS = 5  # Dagster's own: 30, hard-coded


def missing_part(message: str) -> None:
    """A system part a test needs is not there: under CI that fails the test (CI installs it),
    elsewhere it skips it."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def quick_daemon_ticks(env: dict[str, str]) -> dict[str, str]:
    """``env`` for the processes of a test that runs the daemon, whose backfill daemon then evaluates
    backfills every ``BACKFILL_DAEMON_SECONDS`` instead of every 30 s (``daemon_ticks/sitecustomize.py``):
    each backfill a test waits for cost up to two of Dagster's 30 s ticks, to start and to be seen done."""
    path = os.pathsep.join(p for p in (str(Path(__file__).parent / "daemon_ticks"), env.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": path, "OHLCV_TEST_BACKFILL_DAEMON_SECONDS": str(BACKFILL_DAEMON_SECONDS)}


def wait_until(condition, timeout_seconds: float, interval: float = 2.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_seconds}s waiting for {what}")
        time.sleep(interval)


def in_process(main, args: list[str], env: dict[str, str], cwd=None) -> tuple[int, str, str]:
    """A command-line tool's ``main(args)`` run in this process as its console script would run it,
    with exactly ``env`` as the environment and ``cwd`` as the working directory (both restored
    after): (exit status, stdout, stderr). A new interpreter costs each call ~2 CPU-s of imports
    (Dagster, pandas, the definitions) that this process has already paid; tests about the process
    itself (signals, exit paths, what a shell sees) still start one."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.clear()
        os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit_:
                code = exit_.code
                if isinstance(code, str):  # as the interpreter does: the message on stderr, status 1
                    print(code, file=sys.stderr)
                    code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    return (0 if code is None else code), out.getvalue(), err.getvalue()


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


# Every process a test starts carries TAG_ENV (set in os.environ per test by conftest, inherited by
# children, kept by the tests' env copies, which drop only DAGSTER_*/OHLCV_* names): "<session> <test id>".
TAG_ENV = "PYTEST_PROCESS_TAG"
RESOURCE_TRACKER = "from multiprocessing.resource_tracker import main"


def _proc_read(pid: str, name: str) -> bytes:
    with open(f"/proc/{pid}/{name}", "rb") as f:
        return f.read()


def _stat(pid: str) -> tuple[str, int]:
    """(state, parent pid) of a process, from /proc/PID/stat (the command may hold spaces and parentheses)."""
    fields = _proc_read(pid, "stat").rsplit(b")", 1)[1].split()
    return fields[0].decode(), int(fields[1])


def processes_started_by(session: str, root: int, test: str | None = None) -> dict[int, str]:
    """Live processes (zombies are not) tagged with ``session``, or descendants of ``root``, but not
    ``root`` itself nor its ancestors: pid -> "cmdline (started during <test id>)". With ``test``:
    only those tagged with that test's id."""
    parents, found = {}, {}
    prefix = f"{TAG_ENV}={session} ".encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            state, ppid = _stat(pid)
            if state in ("Z", "X"):
                continue
            parents[int(pid)] = ppid
            tag = next((e for e in _proc_read(pid, "environ").split(b"\0") if e.startswith(prefix)), None)
            if tag is not None and (test is None or tag[len(prefix):].decode(errors="replace") == test):
                found[int(pid)] = f"(started during {tag[len(prefix):].decode(errors='replace')})"
        except (OSError, IndexError, ValueError):
            continue
    ancestors, pid = set(), root
    while pid > 1 and pid not in ancestors:
        ancestors.add(pid)
        pid = parents.get(pid, 0)
    for pid in parents if test is None else ():
        p = parents[pid]
        while p > 1 and p != root and p in parents:
            p = parents[p]
        if p == root and pid not in found:
            found[pid] = f"(a descendant of pytest {root})"
    described = {}
    for pid, origin in found.items():
        if pid in ancestors:
            continue
        try:
            command = _proc_read(str(pid), "cmdline").replace(b"\0", b" ").decode(errors="replace").strip()[:200]
        except OSError:
            continue
        if parents.get(pid) == root and RESOURCE_TRACKER in command:
            continue  # this process's multiprocessing helper: it ends with it (at the end of its pipe)
        described[pid] = f"{command} {origin}"
    return described


def stop_leftovers(session: str, root: int, grace_seconds: float = 15.0, test: str | None = None) -> dict[int, str]:
    """Waits up to ``grace_seconds`` for the processes the session (or its ``test``) started to be
    gone; SIGKILLs and returns those still alive then (nothing else: the shared PostgreSQL carries no tag)."""
    deadline = time.monotonic() + grace_seconds
    while (left := processes_started_by(session, root, test)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return left
