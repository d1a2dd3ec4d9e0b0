"""The README's first command, end to end, started as a background job would be (SIGINT ignored, no
stdin): simulator, `dagster dev` (webserver + daemon), a backfill of every partition the demo
universe declares, gap scans, downtime confirmed and re-checked; then nothing is left running and
no run ended FAILED."""

import datetime as dt
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.definitions.freshness import FreshnessState

from ohlcv_assets.cli.demo import BUNDLED_SIMULATOR, claim_home, default_home, demo_record
from ohlcv_assets.intervals import day_bounds_ms, interval_ms
from ohlcv_assets.monitoring import failing_checks
from ohlcv_assets.names import candles_key, gap_report_key
from ohlcv_assets.simulator.market import SimulatedMarket
from ohlcv_assets.simulator.server import SimulatorConfig
from ohlcv_assets.universe import load_universe, universe_in_use
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.daemon]  # minutes each, through a real dagster-daemon


def processes_with_home(home: str) -> list[str]:
    """Processes whose DAGSTER_HOME is the demo's: anything the demo left behind."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if f"DAGSTER_HOME={home}".encode() in f.read().split(b"\0"):
                    with open(f"/proc/{entry}/cmdline", "rb") as c:
                        command = c.read().replace(b"\0", b" ")[:120].decode()
                    found.append(f"{entry} {command}")
        except OSError:
            continue
    return found


def test_demo_fills_what_the_universe_declares_explains_gaps_and_leaves_nothing_behind(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OHLCV_WAREHOUSE_URL", "OHLCV_UNIVERSE", "DAGSTER_HOME")}
    home = tmp_path / "demo"
    demo = subprocess.run(
        [sys.executable, "-m", "ohlcv_assets.cli.demo", "--once", "--port", str(free_port()),
         "--simulator-port", str(free_port()), "--home", str(home)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    dagster_home = str(home / "dagster_home")
    assert processes_with_home(dagster_home) == []
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "Traceback" not in demo.stdout + demo.stderr and "Warning" not in demo.stdout + demo.stderr
    assert "Demo backfill finished" in demo.stdout and "checks failing:        none" in demo.stdout

    universe = load_universe()
    config = SimulatorConfig.from_yaml()
    market = SimulatedMarket(config.symbols, config.downtime, config.seed)
    warehouse = Warehouse(f"sqlite:///{dagster_home}/warehouse.db")  # where the README says it is
    today = dt.datetime.now(dt.timezone.utc).date()
    yesterday = today - dt.timedelta(days=1)
    declared = 0
    for interval in universe.intervals:
        step = interval_ms(interval)
        for inst in universe.instruments_for(interval):
            declared += (today - inst.start).days + 1
            start, end = day_bounds_ms(inst.start)[0], day_bounds_ms(yesterday)[1]
            stored = warehouse.read_candles(inst.exchange, inst.symbol, interval, start, end)
            expected = pd.DataFrame(market.candles(market.symbols[inst.symbol.replace("/", "")], step, start, end, end + step).as_floats())
            assert stored.equals(expected), f"{inst.key} {interval}"
    downtime = [r for r in gap_records.instrument_gaps(warehouse, "binance", "BTC/USDT", "1m") if r.status == "confirmed_empty"]
    assert [r.candles for r in downtime] == [90]
    warehouse.dispose()

    with dg.DagsterInstance.from_config(dagster_home) as instance:
        demo_backfills = set(re.findall(r"^backfill (\w+): ", demo.stdout, re.MULTILINE))
        assert len(demo_backfills) == len(universe.intervals)
        runs = list(instance.get_runs())
        assert not [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
        assert not [r for r in runs if not r.is_finished]
        backfilled = [r for r in runs if r.tags.get("dagster/backfill") in demo_backfills]
        assert backfilled and len(backfilled) < declared  # several partitions per run: the multi-run backfill policy
        for interval in universe.intervals:
            assert failing_checks(instance, universe, interval) == {}
            scanned = instance.get_materialized_partitions(gap_report_key(interval))
            assert scanned == {i.key for i in universe.instruments_for(interval)}
        # The freshness daemon evaluated every candles asset's policy (UNKNOWN until its first tick).
        states = instance.get_freshness_state_records([candles_key(i) for i in universe.intervals])
        assert set(states) == {candles_key(i) for i in universe.intervals}
        assert all(r.freshness_state != FreshnessState.NOT_APPLICABLE for r in states.values())


def test_each_demo_has_its_own_home_and_a_home_of_another_demo_is_refused(tmp_path):
    """The all-venues demo after the first one: by default in its own home; pointed at the first
    demo's home it is refused before anything starts, naming both (a second simulated market's
    candles would disagree with the stored ones: a failing sources_agree check, minutes later)."""
    universe, market = Path("examples/all_venues_universe.yaml"), Path("examples/all_venues_simulator.yaml")
    assert default_home(None, None) == Path(".demo")
    assert default_home(universe, market) == Path(".demo/all_venues_universe")
    first = tmp_path / "demo"
    claim_home(first, demo_record(universe_in_use(None), None))  # as the bundled demo leaves it

    env = {k: v for k, v in os.environ.items() if k not in ("OHLCV_WAREHOUSE_URL", "DAGSTER_HOME")}
    env.update({"OHLCV_UNIVERSE": str(universe), "OHLCV_DEMO_POLYGON_KEY": "demo-key"})
    out = subprocess.run([sys.executable, "-m", "ohlcv_assets.cli.demo", "--once", "--home", str(first), "--port",
                          str(free_port()), "--simulator-port", str(free_port()), "--simulator-config", str(market)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stdout[-2000:] + out.stderr[-2000:]
    assert (f"holds the demo of the universe {universe_in_use(None)} on the simulated market {BUNDLED_SIMULATOR}; "
            f"this demo is the universe {REPO / universe} on {REPO / market}") in out.stderr, out.stderr
    assert "leave out --home (this demo's own is .demo/all_venues_universe)" in out.stderr, out.stderr
    assert not (first / "dagster_home").exists()


def test_a_missing_universe_file_is_named_before_anything_starts(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OHLCV_WAREHOUSE_URL", "DAGSTER_HOME")}
    env["OHLCV_UNIVERSE"] = "examples/missing_universe.yaml"
    out = subprocess.run([sys.executable, "-m", "ohlcv_assets.cli.demo", "--once", "--port", str(free_port()),
                          "--simulator-port", str(free_port())], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stderr.strip() == (f"ohlcv-demo: OHLCV_UNIVERSE: universe file examples/missing_universe.yaml "
                                  f"(from {tmp_path}: {tmp_path / 'examples/missing_universe.yaml'}) does not exist")
    assert list(tmp_path.iterdir()) == []  # no home, no instance, no process started
