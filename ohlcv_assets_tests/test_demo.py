"""The README's first command, end to end: simulator, `dagster dev` (webserver + daemon), a backfill
launched through GraphQL and run by the daemon with the multi-run backfill policy."""

import datetime as dt
import os
import re
import subprocess
import sys

import dagster as dg
import pandas as pd

from dagster._core.definitions.freshness import FreshnessState

from ohlcv_assets.exchange.simulator import SimulatorConfig
from ohlcv_assets.exchange.market import SimulatedMarket
from ohlcv_assets.intervals import day_bounds_ms, interval_ms
from ohlcv_assets.universe import load_universe
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.processes import free_port
from ohlcv_assets.names import candles_key


def test_demo_backfills_the_demo_universe_through_the_daemon(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OHLCV_WAREHOUSE_URL", "OHLCV_UNIVERSE", "DAGSTER_HOME")}
    demo = subprocess.run(
        [sys.executable, "-m", "ohlcv_assets.demo", "--once", "--days", "1", "--port", str(free_port()),
         "--simulator-port", str(free_port()), "--home", str(tmp_path / "demo")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "COMPLETED_SUCCESS" in demo.stdout

    yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    config = SimulatorConfig.from_yaml()
    market = SimulatedMarket(config.symbols, config.downtime, config.seed)
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'demo' / 'warehouse.db'}")
    universe = load_universe()
    partitions = 0
    for interval in universe.intervals:
        for inst in universe.instruments_for(interval):
            partitions += 2
            start, end = day_bounds_ms(yesterday)
            stored = warehouse.read_candles(inst.exchange, inst.symbol, interval, start, end)
            step = interval_ms(interval)
            expected = pd.DataFrame(market.candles(market.symbols[inst.symbol.replace("/", "")], step, start, end, end + step).as_floats())
            assert stored.equals(expected), f"{inst.key} {interval}"

    with dg.DagsterInstance.from_config(str(tmp_path / "demo" / "dagster_home")) as instance:
        demo_backfills = set(re.findall(r"^backfill (\w+): ", demo.stdout, re.MULTILINE))
        assert len(demo_backfills) == len(universe.intervals)
        runs = [r for r in instance.get_runs() if r.tags.get("dagster/backfill") in demo_backfills]
        assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        assert len(runs) < partitions  # several partitions per run: the multi-run backfill policy
        # The freshness daemon (dagster.yaml: freshness.enabled) evaluated every candles asset's policy
        # (only it writes these records). The state itself depends on whether its 30 s tick came after
        # the asset's first materialization before the demo exited: UNKNOWN until then.
        states = instance.get_freshness_state_records([candles_key(i) for i in universe.intervals])
        assert set(states) == {candles_key(i) for i in universe.intervals}
        assert all(r.freshness_state != FreshnessState.NOT_APPLICABLE for r in states.values())
