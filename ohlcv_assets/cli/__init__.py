"""Command-line tools: ohlcv (register, backfill), ohlcv-status, ohlcv-demo."""

import atexit
import contextlib
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable

import dagster as dg

from ohlcv_assets.core.errors import ConfigurationError, HopelessError
from ohlcv_assets.core.settings import resolve_environment
from ohlcv_assets.core.universe import Universe, load_universe
from ohlcv_assets.warehouse.store import Warehouse


def universe_or_exit(prog: str, dagster_home: bool = True) -> Universe:
    """The universe, or a one-line error naming the offending entries and exit status 2. Path
    settings are made absolute first (against the working directory the command was started in),
    and a missing universe file, DAGSTER_HOME or SQLite directory is such an error too."""
    try:
        resolve_environment(dagster_home=dagster_home)
        return load_universe()
    except ConfigurationError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def one_line_errors(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """A command's ``main`` whose configuration errors (and venues' refusals: anything a retry cannot
    heal) end it with one line on stderr, ``<prog>: <cause>``, and exit status 2: no traceback."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except HopelessError as err:
                print(f"{prog}: {err}", file=sys.stderr, flush=True)
                return 2

        return run

    return wrap


def failure_cause(events: Iterable[dg.DagsterEvent], limit: int = 500) -> str:
    """Why a run failed, from its first failed step's event: the step's failure description, or
    the innermost error's message (one line, at most ``limit`` characters)."""
    for event in events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data is not None and data.user_failure_data.description:
                text = data.user_failure_data.description
            else:
                error = data.error
                while error is not None and error.cause is not None:
                    error = error.cause
                text = error.message if error is not None else ""
            line = " ".join(text.split())
            return line if len(line) <= limit else line[:limit - 1] + "…"
    return "see the run's log"


def check_warehouse(url: str) -> None:
    """A warehouse URL that cannot work (unknown scheme, nothing listening at it) is named before
    anything runs; otherwise its schema is brought to the head, as a run would."""
    warehouse = Warehouse(url)
    try:
        warehouse.open_and_migrate()
    finally:
        warehouse.dispose()


@contextlib.contextmanager
def sigterm_kept():
    """Runs Dagster in this process without losing SIGTERM. When an in-process execution ends,
    Dagster restores SIGINT's handler and copies it onto SIGTERM (``setup_interrupt_handlers``):
    started in the background (SIGINT ignored), a command that ran ``dg.materialize`` would ignore
    SIGTERM afterwards, and so would every process it starts (`kill` could no longer stop it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is not handler:
            signal.signal(signal.SIGTERM, handler)


def exit_now(code: int) -> int:
    """Ends a command-line process at once with ``code`` once its work is done: output flushed and
    the exit handlers run (logging, finalizers, multiprocessing), but the interpreter's teardown of
    every imported module (Dagster's, pandas', ccxt's: about 0.8 CPU-s) skipped; nothing it would
    do is needed by a process that is ending. Only for a command's own process, never in a test."""
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
