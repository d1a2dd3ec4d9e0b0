"""`ohlcv-metrics`: the Prometheus exporter. Serves the Prometheus text format on ``/metrics``,
read at each scrape from the warehouse (``OHLCV_WAREHOUSE_URL``, as everywhere: see settings) and
the Dagster instance (``DAGSTER_HOME``); the universe from ``OHLCV_UNIVERSE``. A long-running
service: a warehouse that does not exist yet (or cannot be read) is reported as
``ohlcv_warehouse_up 0`` and asked again at the next scrape.

    ohlcv-metrics                          listens on 0.0.0.0:9464
    ohlcv-metrics --host 127.0.0.1 --port 9100
    ohlcv-metrics --once                   prints one scrape and exits (exit 1 if a part cannot be read)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from ohlcv_assets.cli import universe_or_exit
from ohlcv_assets.core.settings import DAGSTER_HOME_ENV, describe_warehouse_setting, warehouse_url

DEFAULT_PORT = 9464


class Sources:
    """The warehouse and the Dagster instance, opened at the first scrape that finds them and kept."""

    def __init__(self):
        self._lock = threading.Lock()
        self._warehouse = None
        self._instance = None

    def warehouse(self):
        from ohlcv_assets.warehouse.store import Warehouse, WarehouseMissing

        with self._lock:
            if self._warehouse is None:
                try:
                    self._warehouse = Warehouse.open_existing(warehouse_url())
                except WarehouseMissing as err:
                    raise WarehouseMissing(f"{err} ({describe_warehouse_setting()})") from None
            return self._warehouse

    def instance(self):
        import dagster as dg

        with self._lock:
            if self._instance is None:
                self._instance = dg.DagsterInstance.get()
            return self._instance

    def close(self) -> None:
        if self._warehouse is not None:
            self._warehouse.dispose()
        if self._instance is not None:
            self._instance.dispose()


class Collector:
    """prometheus_client collector: reads everything at scrape time. A problem is logged once, not
    at every scrape while it lasts."""

    def __init__(self, universe, sources: Sources):
        self.universe, self.sources = universe, sources
        self.last_samples: list = []
        self._logged: set[str] = set()

    def collect(self):
        from ohlcv_assets.defs.metrics import metric_families, read_samples

        instance = self.sources.instance if os.environ.get(DAGSTER_HOME_ENV) else None
        problems: list[str] = []
        self.last_samples = read_samples(self.universe, self.sources.warehouse, instance, log=problems.append)
        for message in problems:
            if message not in self._logged:
                print(message, file=sys.stderr, flush=True)
        self._logged = set(problems)
        return metric_families(self.last_samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ohlcv-metrics", description="Prometheus exporter of the warehouse and the Dagster instance.")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--once", action="store_true", help="print one scrape to stdout and exit")
    args = parser.parse_args(argv)
    universe = universe_or_exit("ohlcv-metrics")
    if not os.environ.get(DAGSTER_HOME_ENV):
        print(f"ohlcv-metrics: {DAGSTER_HOME_ENV} is not set: runs, checks and the daemon are not exported", file=sys.stderr)

    from prometheus_client import CollectorRegistry, generate_latest, start_http_server

    sources = Sources()
    collector = Collector(universe, sources)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if args.once:
        try:
            sys.stdout.write(generate_latest(registry).decode())
        finally:
            sources.close()
        down = [s for s in collector.last_samples if s.metric in ("ohlcv_warehouse_up", "ohlcv_dagster_up") and s.value == 0]
        return 1 if down else 0
    try:
        server, thread = start_http_server(args.port, addr=args.host, registry=registry)
    except OSError as err:
        print(f"ohlcv-metrics: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 2
    print(f"ohlcv-metrics: serving http://{args.host}:{args.port}/metrics", file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    sources.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
