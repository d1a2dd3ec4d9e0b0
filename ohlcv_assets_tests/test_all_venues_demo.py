"""A universe of all four venues in one `dagster dev` with the daemon (the README's command for
examples/all_venues_*.yaml): backfills and gap scans launched through the UI's API end exact per
venue, every absence explained by its venue's rules, no run failed and no check failing."""

import datetime as dt
import os
import signal
import subprocess
import sys

import dagster as dg
import pandas as pd
import pytest

from ohlcv_assets.intervals import HOUR_MS, day_bounds_ms
from ohlcv_assets.monitoring import failing_checks
from ohlcv_assets.names import gap_report_key
from ohlcv_assets.simulator.market import SimulatedMarket
from ohlcv_assets.simulator.server import SimulatorConfig
from ohlcv_assets.universe import load_universe
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.processes import free_port
from ohlcv_assets_tests.test_demo import processes_with_home

pytestmark = [pytest.mark.e2e, pytest.mark.daemon]  # minutes each, through a real dagster-daemon

UNIVERSE = REPO / "examples" / "all_venues_universe.yaml"
SIMULATOR = REPO / "examples" / "all_venues_simulator.yaml"


def test_all_four_venues_run_under_the_daemon_and_end_exact(tmp_path, monkeypatch):
    env = {k: v for k, v in os.environ.items() if k not in ("OHLCV_WAREHOUSE_URL", "DAGSTER_HOME")}
    # as the README writes it: paths relative to the checkout, where `dagster dev` (started in the
    # demo's home) must still find them
    env.update({"OHLCV_UNIVERSE": str(UNIVERSE.relative_to(REPO)), "OHLCV_DEMO_POLYGON_KEY": "demo-key"})
    home = tmp_path / "venues"
    demo = subprocess.run(
        [sys.executable, "-m", "ohlcv_assets.cli.demo", "--once", "--port", str(free_port()),
         "--simulator-port", str(free_port()), "--home", str(home), "--simulator-config", str(SIMULATOR.relative_to(REPO))],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    dagster_home = str(home / "dagster_home")
    assert processes_with_home(dagster_home) == []
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "Traceback" not in demo.stdout + demo.stderr and "demo-key" not in demo.stdout + demo.stderr
    assert "checks failing:        none" in demo.stdout

    monkeypatch.setenv("OHLCV_DEMO_POLYGON_KEY", "demo-key")
    universe = load_universe(UNIVERSE)
    config = SimulatorConfig.from_yaml(SIMULATOR)
    market = SimulatedMarket(config.symbols, config.downtime, config.seed)
    warehouse = Warehouse(f"sqlite:///{dagster_home}/warehouse.db")
    yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    outage_hour = day_bounds_ms(yesterday - dt.timedelta(days=2))[0] + 2 * HOUR_MS
    try:
        assert {i.exchange for i in universe.instruments_for("1h")} == {"binance", "kraken", "coinbase", "polygon"}
        for inst in universe.instruments_for("1h"):
            profile = universe.exchanges[inst.exchange].profile
            start, end = day_bounds_ms(inst.start)[0], day_bounds_ms(yesterday)[1]
            stored = warehouse.read_candles(inst.exchange, inst.symbol, "1h", start, end)
            symbol = market.symbols[inst.symbol.replace("/", "")]
            truth = pd.DataFrame(market.candles(symbol, HOUR_MS, start, end, end + HOUR_MS, omit_empty=profile.omits_empty,
                                                venue=inst.exchange).as_floats())
            assert len(stored) and stored.equals(truth), inst.key
            explained = {(r.reason, r.start_ms, r.end_ms) for r in gap_records.instrument_gaps(warehouse, inst.exchange, inst.symbol, "1h")
                         if r.status == "confirmed_empty"}
            if profile.calendar is None:  # the 02:00 hour of the outage; the equity was closed then
                assert ("exchange_downtime", outage_hour, outage_hour + HOUR_MS) in explained, inst.key
            else:
                assert not [r for r in gap_records.instrument_gaps(warehouse, inst.exchange, inst.symbol, "1h")
                            if r.reason != "no_trades"], "nights and weekends are no gaps"
    finally:
        warehouse.dispose()
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        runs = list(instance.get_runs())
        assert runs and not [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
        assert failing_checks(instance, universe, "1h") == {}
        assert instance.get_materialized_partitions(gap_report_key("1h")) == {i.key for i in universe.instruments_for("1h")}
