"""The README's first-hour tour and the all-venues demo of docs/venues.md, run as written.

The commands are extracted from the Markdown: the fenced ```bash block after each
``<!-- tour ... -->`` comment of README.md (and ``<!-- all-venues -->`` of docs/venues.md), in order;
each ``<!-- expect: TEXT -->`` after a block is text the block's output must contain, and the page
must show it too (in its sample output), so the docs say what the commands print. They run in a fresh
copy of the checkout with a fresh HOME, as a newcomer would type them, with three substitutions, each
checked against the page:

- the install command (``python3 -m venv .venv && .venv/bin/pip install -e .``) is not run: the copy
  gets a link to this checkout's installed venv instead;
- ``ohlcv-demo`` gets free ports (``--port``, ``--simulator-port``) instead of 3000 and 8765, which
  other tests may hold, and the second terminal gets the matching ``OHLCV_SIMULATOR_URL``, which the
  demo prints in its ``In another terminal:`` line (checked);
- the tour's demo, which a user leaves running in the first terminal and stops with Ctrl-C, is
  started as a background job would be (``exec``'d, SIGINT ignored, no stdin) and stopped with
  SIGTERM, which the demo treats as Ctrl-C.

The all-venues demo runs beside the tour (its docs run it with ``--once``), so the suite pays for the
two demos' waits on Dagster's daemon ticks once. This module replaces test_demo.py and
test_all_venues_demo.py: every assertion of both is here.
"""

import dataclasses
import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.definitions.freshness import FreshnessState

from ohlcv_assets.core.intervals import HOUR_MS, day_bounds_ms, interval_ms
from ohlcv_assets.defs.monitoring import failing_checks
from ohlcv_assets.core.names import candles_key, gap_report_key
from ohlcv_assets.simulator.market import SimulatedMarket
from ohlcv_assets.simulator.server import SimulatorConfig
from ohlcv_assets.core.universe import load_universe
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.processes import free_port

pytestmark = pytest.mark.e2e

INSTALL = "python3 -m venv .venv && .venv/bin/pip install -e ."
VENUES_UNIVERSE = REPO / "examples" / "all_venues_universe.yaml"
VENUES_SIMULATOR = REPO / "examples" / "all_venues_simulator.yaml"
STEP_SECONDS = 300
DEMO_SECONDS = 900


@dataclasses.dataclass
class Step:
    marker: str  # what follows "tour" / "all-venues" in the comment
    command: str
    expect: list[str]


def steps(markdown: str, tag: str) -> list[Step]:
    """The bash blocks after ``<!-- {tag}... -->`` comments, with the ``<!-- expect: ... -->`` after each."""
    found: list[Step] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if (m := re.fullmatch(rf"<!-- {tag}(?::\s*(.*?))?\s*-->", line)) is not None:
            j = i + 1
            while not lines[j].strip():
                j += 1
            assert lines[j].strip() == "```bash", f"<!-- {tag} --> at line {i + 1} is not followed by a ```bash block"
            end = lines.index("```", j + 1)
            found.append(Step(m.group(1) or "", "\n".join(lines[j + 1:end]), []))
            i = end
        elif (m := re.fullmatch(r"<!-- expect: (.*) -->", line)) is not None and found:
            found[-1].expect.append(m.group(1))
        i += 1
    return found


def visible(markdown: str) -> str:
    return re.sub(r"<!--.*?-->", "", markdown, flags=re.DOTALL)


def fresh_clone(tmp_path: Path) -> Path:
    """A copy of the checkout (what a clone holds) with the installed venv linked in."""
    clone = tmp_path / "clone"
    shutil.copytree(REPO, clone, ignore=shutil.ignore_patterns(".git", ".venv", ".demo*", "artifacts", "__pycache__",
                                                                 "*.egg-info", ".pytest_cache"))
    (clone / ".venv").symlink_to(REPO / ".venv")
    return clone


def fresh_env(home: Path) -> dict[str, str]:
    drop = ("OHLCV_UNIVERSE", "OHLCV_WAREHOUSE_URL", "DAGSTER_HOME", "OHLCV_SIMULATOR_URL", "OHLCV_DEMO_POLYGON_KEY",
            "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO / ".venv")))
    env["HOME"] = str(home)
    return env


def with_ports(command: str, port: int, simulator_port: int) -> str:
    assert re.search(r"^(\S+=\S+ )*ohlcv-demo\b", command, re.MULTILINE), command
    return re.sub(r"\bohlcv-demo\b", f"ohlcv-demo --port {port} --simulator-port {simulator_port}", command)


class Shell:
    """Runs blocks one after the other as one terminal would: exports, activation and the working
    directory carry over from block to block."""

    def __init__(self, cwd: Path, env: dict[str, str], state: Path):
        self.cwd, self.env, self.state = cwd, dict(env), state

    def run(self, step: Step) -> str:
        """The block in its own process group: one that overruns is stopped with everything it started
        (SIGTERM first, which the demo treats as Ctrl-C)."""
        script = f"set -e\n{step.command}\nenv -0 > {self.state}.env\npwd > {self.state}.pwd\n"
        seconds = DEMO_SECONDS if "ohlcv-demo" in step.command else STEP_SECONDS
        proc = subprocess.Popen(["bash", "-c", script], cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            stdout, stderr = proc.communicate()
            raise AssertionError(f"$ {step.command}\ndid not end within {seconds}s\n{stdout[-3000:]}\n{stderr[-3000:]}") from None
        shown = f"$ {step.command}\n--- stdout\n{stdout[-3000:]}\n--- stderr\n{stderr[-3000:]}"
        assert proc.returncode == 0, shown
        self.env = dict(e.split("=", 1) for e in Path(f"{self.state}.env").read_text().split("\0") if "=" in e)
        self.cwd = Path(Path(f"{self.state}.pwd").read_text().strip())
        for text in step.expect:
            assert text in stdout + stderr, f"expected {text!r}\n{shown}"
        return stdout + stderr


def stop_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 300), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def check_expectations_are_shown(markdown: str, found: list[Step]) -> None:
    shown = visible(markdown)
    for step in found:
        for text in step.expect:
            assert text in shown, f"the page expects {text!r} but does not show it"


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


def start_demo(step: Step, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """The first terminal's block, its last line exec'd so that the signal reaches the demo itself."""
    *before, last = step.command.splitlines()
    assert last.startswith("ohlcv-demo"), step.command
    script = "\n".join([*before, f"exec {last}"])
    with open(log, "w") as out:
        return subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def wait_for_text(proc: subprocess.Popen, log: Path, text: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        output = log.read_text()
        if text in output:
            return output
        assert proc.poll() is None, f"the demo exited ({proc.returncode}) before printing {text!r}:\n{output[-3000:]}"
        time.sleep(2)
    raise AssertionError(f"the demo did not print {text!r} within {seconds}s:\n{log.read_text()[-3000:]}")


class Background(threading.Thread):
    """Runs a page's blocks in order in another thread; join() re-raises what failed."""

    def __init__(self, shell: Shell, found: list[Step]):
        super().__init__(daemon=True)
        self.shell, self.found, self.outputs, self.error = shell, found, [], None

    def run(self) -> None:
        try:
            self.outputs = [self.shell.run(step) for step in self.found]
        except BaseException as err:  # noqa: BLE001 - reported by the test's thread
            self.error = err

    def result(self, seconds: float) -> list[str]:
        self.join(seconds)
        assert not self.is_alive(), f"the all-venues demo's commands did not end within {seconds}s"
        if self.error is not None:
            raise AssertionError(f"the all-venues demo (docs/venues.md) failed: {self.error}") from self.error
        return self.outputs


def test_the_readme_tour_and_the_all_venues_demo_run_as_written(tmp_path, monkeypatch):
    readme = (REPO / "README.md").read_text()
    tour = steps(readme, "tour")
    check_expectations_are_shown(readme, tour)
    kinds = [s.marker.split(",")[0] for s in tour]
    assert kinds[:2] == ["install", "demo"] and set(kinds[2:]) == {""}, kinds
    assert tour[0].command == INSTALL, "the README's install command changed: update INSTALL and what the test substitutes"
    venues_page = (REPO / "docs" / "venues.md").read_text()
    venues = steps(venues_page, "all-venues")
    check_expectations_are_shown(venues_page, venues)
    assert venues

    home = tmp_path / "home"
    home.mkdir()
    clone = fresh_clone(tmp_path)
    env = fresh_env(home)

    # The all-venues demo, beside the tour: its page's commands in a terminal with the venv on PATH.
    venues_env = {**env, "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"}
    venues_ports = free_port(), free_port()
    venues_steps = [dataclasses.replace(s, command=with_ports(s.command, *venues_ports)) if "ohlcv-demo" in s.command else s
                    for s in venues]
    venues_run = Background(Shell(clone, venues_env, tmp_path / "venues-shell"), venues_steps)
    venues_run.start()
    try:
        run_the_tour(tour, clone, env, tmp_path)
    finally:
        outputs = venues_run.result(DEMO_SECONDS)  # the all-venues demo (--once) ends by itself
    monkeypatch.setenv("OHLCV_DEMO_POLYGON_KEY", "demo-key")  # the universe names the key's variable
    check_the_all_venues_demo(outputs, str(clone / ".demo-venues" / "dagster_home"))


def run_the_tour(tour: list[Step], clone: Path, env: dict[str, str], tmp_path: Path) -> None:
    # Terminal 1: the demo, left running.
    port, simulator_port = free_port(), free_port()
    demo_step = dataclasses.replace(tour[1], command=with_ports(tour[1].command, port, simulator_port))
    wait_text = re.search(r'waits for "(.*)"', tour[1].marker).group(1)
    demo_log = tmp_path / "demo.log"
    demo = start_demo(demo_step, clone, env, demo_log)
    dagster_home = str(clone / ".demo" / "dagster_home")
    try:
        wait_for_text(demo, demo_log, wait_text, DEMO_SECONDS)
        printed = demo_log.read_text()
        for text in tour[1].expect:
            assert text in printed, (text, printed[-3000:])
        simulator_url = f"http://127.0.0.1:{simulator_port}"
        assert f"export DAGSTER_HOME={dagster_home} OHLCV_SIMULATOR_URL={simulator_url}" in printed, printed[-3000:]

        # Terminal 2: the tour's commands, in order, as written.
        second = Shell(clone, {**env, "OHLCV_SIMULATOR_URL": simulator_url}, tmp_path / "shell")
        for step in tour[2:]:
            second.run(step)
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGTERM)  # Ctrl-C in the first terminal
        try:
            demo.wait(timeout=300)
        finally:
            if demo.poll() is None:
                demo.kill()
    output = demo_log.read_text()
    assert processes_with_home(dagster_home) == []
    assert demo.returncode == 0, output[-3000:]
    assert "Traceback" not in output and "Warning" not in output, output[-3000:]
    summary = output[output.index("Demo backfill finished"):]
    assert re.search(r"partitions backfilled: \d+ \(COMPLETED_SUCCESS\)\n", summary), summary
    assert re.search(r"gap scans: +\d+ runs \(SUCCESS\)\n", summary), summary
    assert "checks failing:        none" in summary
    check_the_demo_filled_what_the_universe_declares(output, dagster_home)


def check_the_demo_filled_what_the_universe_declares(output: str, dagster_home: str) -> None:
    """test_demo.py's assertions: every declared partition stored as the simulator serves it, the
    outage confirmed, every run finished and none failed, several partitions per run, no check failing,
    every instrument scanned, freshness evaluated."""
    universe = load_universe(REPO / "ohlcv_assets" / "demo_universe.yaml")
    config = SimulatorConfig.from_yaml()
    market = SimulatedMarket(config.symbols, config.downtime, config.seed)
    warehouse = Warehouse(f"sqlite:///{dagster_home}/warehouse.db")  # where the README says it is
    today = dt.datetime.now(dt.timezone.utc).date()
    yesterday = today - dt.timedelta(days=1)
    declared = 0
    try:
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
    finally:
        warehouse.dispose()

    with dg.DagsterInstance.from_config(dagster_home) as instance:
        demo_backfills = set(re.findall(r"^backfill (\w+): ", output, re.MULTILINE))
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


def check_the_all_venues_demo(outputs: list[str], dagster_home: str) -> None:
    """test_all_venues_demo.py's assertions: every venue's stored candles equal what that venue
    serves, every absence explained by its venue's rules, no run failed, no check failing, the key
    never printed, nothing left running."""
    demo = outputs[0]
    assert processes_with_home(dagster_home) == []
    assert "Traceback" not in demo and "demo-key" not in "\n".join(outputs)
    assert "checks failing:        none" in demo
    universe = load_universe(VENUES_UNIVERSE)
    config = SimulatorConfig.from_yaml(VENUES_SIMULATOR)
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
