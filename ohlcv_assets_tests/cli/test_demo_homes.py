"""The demo's homes: each demo universe has its own, another demo's home is refused, and a missing
universe file is named before anything starts (the demo itself runs in ``test_tour.py``)."""

import os
import subprocess
import sys
from pathlib import Path

from ohlcv_assets.cli.demo import BUNDLED_SIMULATOR, claim_home, default_home, demo_record
from ohlcv_assets.core.universe import universe_in_use
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.processes import free_port


def run_demo(args: list[str], environment: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """``ohlcv-demo --once`` on free ports, in the environment without a warehouse URL or Dagster
    home of its own (plus ``environment``), as a user would start it; its answer."""
    env = {k: v for k, v in os.environ.items() if k not in ("OHLCV_WAREHOUSE_URL", "DAGSTER_HOME")}
    env.update(environment)
    return subprocess.run([sys.executable, "-m", "ohlcv_assets.cli.demo", "--once", "--port", str(free_port()),
                           "--simulator-port", str(free_port()), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_each_demo_has_its_own_home_and_a_home_of_another_demo_is_refused(tmp_path):
    """The all-venues demo after the first one: by default in its own home; pointed at the first
    demo's home it is refused before anything starts, naming both (a second simulated market's
    candles would disagree with the stored ones: a failing sources_agree check, minutes later)."""
    universe, market = Path("examples/all_venues_universe.yaml"), Path("examples/all_venues_simulator.yaml")
    assert default_home(None, None) == Path(".demo")
    assert default_home(universe, market) == Path(".demo/all_venues_universe")
    first = tmp_path / "demo"
    claim_home(first, demo_record(universe_in_use(None), None))  # as the bundled demo leaves it

    out = run_demo(["--home", str(first), "--simulator-config", str(market)],
                   {"OHLCV_UNIVERSE": str(universe), "OHLCV_DEMO_POLYGON_KEY": "demo-key"}, REPO)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stdout[-2000:] + out.stderr[-2000:]
    assert (f"holds the demo of the universe {universe_in_use(None)} on the simulated market {BUNDLED_SIMULATOR}; "
            f"this demo is the universe {REPO / universe} on {REPO / market}") in out.stderr, out.stderr
    assert "leave out --home (this demo's own is .demo/all_venues_universe)" in out.stderr, out.stderr
    assert not (first / "dagster_home").exists()


def test_a_missing_universe_file_is_named_before_anything_starts(tmp_path):
    out = run_demo([], {"OHLCV_UNIVERSE": "examples/missing_universe.yaml"}, tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stderr.strip() == (f"ohlcv-demo: OHLCV_UNIVERSE: universe file examples/missing_universe.yaml "
                                  f"(from {tmp_path}: {tmp_path / 'examples/missing_universe.yaml'}) does not exist")
    assert list(tmp_path.iterdir()) == []  # no home, no instance, no process started
