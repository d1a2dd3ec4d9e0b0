"""Test support, on PYTHONPATH only in the environment of the processes an e2e test starts
(``processes.quick_daemon_ticks``): Dagster's backfill daemon evaluates backfills every
``OHLCV_TEST_BACKFILL_DAEMON_SECONDS`` seconds instead of its hard-coded 30
(``dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS``, not a dagster.yaml setting).

Each backfill otherwise waits up to a tick to launch its runs and up to another to be seen
complete: most of a daemon test's time was these waits. The daemon, its sensors, backfills and runs
are the real ones; only the backfill daemon's sleep between iterations is shorter. Dagster's
``execute_backfill_iteration_loop`` reads the constant at each call, so it is set as the module
is imported. If an upgrade removes it, the daemon fails to start here, loudly."""

import importlib.abc
import importlib.util
import os
import sys

_MODULE = "dagster._daemon.controller"
_NAME = "DEFAULT_DAEMON_INTERVAL_SECONDS"


class _SetBackfillTick(importlib.abc.MetaPathFinder):
    def __init__(self, seconds: int):
        self.seconds = seconds

    def find_spec(self, name, path, target=None):
        if name != _MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def exec_and_set(module):
            exec_module(module)
            if not isinstance(getattr(module, _NAME, None), int):
                raise RuntimeError(f"{_MODULE}.{_NAME} is gone: update ohlcv_assets_tests/daemon_ticks/sitecustomize.py")
            setattr(module, _NAME, self.seconds)

        spec.loader.exec_module = exec_and_set
        return spec


if os.environ.get("OHLCV_TEST_BACKFILL_DAEMON_SECONDS"):
    sys.meta_path.insert(0, _SetBackfillTick(int(os.environ["OHLCV_TEST_BACKFILL_DAEMON_SECONDS"])))
