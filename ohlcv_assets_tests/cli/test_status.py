"""`ohlcv-status` reads the warehouse and the Dagster instance and says what a user needs to know;
it never creates a warehouse, and never says "none" about candles nobody has explained."""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys

import dagster as dg
import numpy as np
import pandas as pd

from ohlcv_assets.cli.status import main as status_main
from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.core.gaps import EXCHANGE_DOWNTIME, FILLABLE, Gap
from ohlcv_assets.core.intervals import MINUTE_MS, day_bounds_ms, now_ms
from ohlcv_assets.core.names import candles_key
from ohlcv_assets.defs.partitions import partition_key, sync_instrument_partitions
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.schema import candles
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets.warehouse.urls import public_url
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.helpers import DOWNTIME_DAY, merge_candles
from ohlcv_assets_tests.processes import in_process

DOWNTIME_DAY_MS = day_bounds_ms(DOWNTIME_DAY)[0]


def status(env, *args, returncode=0):
    """``ohlcv-status --json`` in this process (``processes.in_process``: the command's imports
    are already paid); ``test_relative_paths_...`` starts it as a process, as a shell does."""
    code, stdout, stderr = in_process(status_main, ["--json", *args], env)
    assert code == returncode, stdout[-2000:] + stderr[-2000:]
    return json.loads(stdout)


def instance_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    return home


def test_status_and_health_report_what_is_stored_and_running(simulator, universe, universe_file, tmp_path):
    home = instance_home(tmp_path)
    warehouse_url = f"sqlite:///{tmp_path / 'w.db'}"
    today = dt.datetime.now(dt.timezone.utc).date()
    defs = build_definitions(str(universe_file), warehouse_url)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        sync_instrument_partitions(instance, universe)
        dg.materialize([defs.get_assets_def(candles_key("1m"))], partition_key=partition_key("binance.BTC-USDT", today),
                       instance=instance, resources=defs.resources)
    wh = Warehouse(warehouse_url)
    gap_records.reconcile(wh, "binance", "BTC/USDT", "1m", [Gap(0, 90 * 60_000, EXCHANGE_DOWNTIME),
                                                            Gap(10**8, 10**8 + 7 * 60_000, FILLABLE)], 60_000, 1)
    wh.dispose()
    env = {**os.environ, "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(universe_file), "OHLCV_WAREHOUSE_URL": warehouse_url}

    rows = {(r["symbol"], r["interval"]): r for r in status(env)}
    btc = rows[("BTC/USDT", "1m")]
    assert btc["freshness"] == "fresh" and btc["candles"] > 0
    assert btc["coverage_pct"] == 100  # the grid ends at the settled horizon: minutes closing after the run are not missing
    assert btc["last_run"] is not None and btc["failing_checks"] == []
    assert 0.75 <= btc["quality_score"] <= 1.0  # complete, valid, consistent; freshness depends on the clock
    assert rows[("ETH/USDT", "5m")]["freshness"] == "no data" and rows[("ETH/USDT", "5m")]["last_run"] is None
    assert btc["open_gaps"] == {"fillable": 7}  # confirmed downtime is explained, not open
    assert rows[("BTC/USDT", "1d")]["open_gaps"] == {}

    report = status(env, "--health", returncode=1)  # no daemon runs: not healthy
    stored = sum(1 for r in rows.values() if r["candles"])
    assert 0 < stored < len(rows) and report["warehouse"].startswith(f"ok ({stored} of {len(rows)} instrument-intervals stored")
    assert report["exchange binance"] == "ok"
    assert report["daemon"].startswith("FAIL no heartbeat")


def test_a_missing_warehouse_is_an_error_naming_its_url_and_nothing_is_created(universe_file, tmp_path):
    home = instance_home(tmp_path)
    for env_extra, where in (({"DAGSTER_HOME": str(home)}, home / "warehouse.db"),
                             ({"OHLCV_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'elsewhere.db'}"}, tmp_path / "elsewhere.db")):
        env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "OHLCV_WAREHOUSE_URL")}
        env.update({"OHLCV_UNIVERSE": str(universe_file), **env_extra})
        code, _, stderr = in_process(status_main, [], env, cwd=tmp_path)
        assert code == 2 and f"no warehouse at sqlite:///{where}" in stderr, stderr
        assert not where.exists() and not (tmp_path / "warehouse.db").exists()


def test_unexplained_missing_candles_and_failing_days_are_never_none(simulator, universe, universe_file, tmp_path):
    """The downtime day fails completeness before any scan: status says which day, and counts its
    missing candles as unexplained; a later green run of another day does not hide it."""
    home = instance_home(tmp_path)
    warehouse_url = f"sqlite:///{tmp_path / 'w.db'}"
    defs = build_definitions(str(universe_file), warehouse_url)
    asset = defs.get_assets_def(candles_key("1m"))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        sync_instrument_partitions(instance, universe)
        for day in (DOWNTIME_DAY, DOWNTIME_DAY - dt.timedelta(days=1)):
            dg.materialize([asset], partition_key=partition_key("binance.BTC-USDT", day), instance=instance, resources=defs.resources)
    env = {**os.environ, "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(universe_file), "OHLCV_WAREHOUSE_URL": warehouse_url}
    btc = {(r["symbol"], r["interval"]): r for r in status(env)}[("BTC/USDT", "1m")]
    # 90 minutes of downtime, and every settled minute since the last stored day (no today schedule ran)
    since_last_day = (now_ms() - 10 * MINUTE_MS - day_bounds_ms(DOWNTIME_DAY)[1]) // MINUTE_MS
    assert set(btc["open_gaps"]) == {"unexplained"}
    assert abs(btc["open_gaps"]["unexplained"] - (90 + since_last_day)) <= 2
    assert btc["failing_checks"] == [f"completeness ({DOWNTIME_DAY}|binance.BTC-USDT)"]


def test_health_fails_when_the_runs_wrote_to_another_warehouse(simulator, universe, universe_file, tmp_path):
    home = instance_home(tmp_path)
    written, other = f"sqlite:///{tmp_path / 'written.db'}", f"sqlite:///{tmp_path / 'other.db'}"
    defs = build_definitions(str(universe_file), written)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        sync_instrument_partitions(instance, universe)
        dg.materialize([defs.get_assets_def(candles_key("1m"))], partition_key=partition_key("binance.BTC-USDT", DOWNTIME_DAY),
                       instance=instance, resources=defs.resources)
    wh = Warehouse(other)  # a warehouse with candles of an instrument outside the universe
    wh.migrate()
    rows = Warehouse(written).read_candles("binance", "BTC/USDT", "1m", 0, 2**62)
    merge_candles(wh, "binance", "XRP/USDT", "1m", rows, 0, 2**62, 1)
    with wh.engine.connect() as conn:
        assert conn.execute(candles.select().limit(1)).first() is not None
    wh.dispose()
    env = {**os.environ, "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(universe_file), "OHLCV_WAREHOUSE_URL": other}
    report = status(env, "--health", returncode=1)
    assert report["warehouse"].startswith("FAIL") and "another warehouse" in report["warehouse"]


def _materialize_one_day(universe, universe_file, warehouse_url, home):
    defs = build_definitions(str(universe_file), warehouse_url)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        sync_instrument_partitions(instance, universe)
        dg.materialize([defs.get_assets_def(candles_key("1m"))], partition_key=partition_key("binance.BTC-USDT", DOWNTIME_DAY),
                       instance=instance, resources=defs.resources)


def status_fails(env, *args, cwd=None):
    """An exception escaping ``main`` would fail the test here (a process would print its traceback)."""
    code, stdout, stderr = in_process(status_main, list(args), env, cwd=cwd)
    assert code == 2 and "Traceback" not in stderr, stdout[-2000:] + stderr[-2000:]
    return stderr


def test_status_reads_the_universe_the_instance_runs_with_and_refuses_another(simulator, universe, universe_file, tmp_path):
    """Without OHLCV_UNIVERSE it reads the universe the instance's runs recorded (not the bundled
    demo's, which would show other instruments as "no data"); with another one it refuses, naming both."""
    home = instance_home(tmp_path)
    warehouse_url = f"sqlite:///{tmp_path / 'w.db'}"
    _materialize_one_day(universe, universe_file, warehouse_url, home)
    env = {k: v for k, v in os.environ.items() if k != "OHLCV_UNIVERSE"}
    env.update({"DAGSTER_HOME": str(home), "OHLCV_WAREHOUSE_URL": warehouse_url})
    rows = {(r["symbol"], r["interval"]): r for r in status(env)}
    assert set(rows) == {(i.symbol, interval) for interval in universe.intervals for i in universe.instruments_for(interval)}
    assert rows[("BTC/USDT", "1m")]["candles"] == 1440 - 90  # the downtime day

    other = tmp_path / "other_universe.yaml"
    other.write_text(universe_file.read_text().replace("LATE/USDT", "DOGE/USDT"))
    stderr = status_fails({**env, "OHLCV_UNIVERSE": str(other)})
    assert f"runs with the universe {universe_file}" in stderr and f"but OHLCV_UNIVERSE is {other}" in stderr, stderr


def test_status_refuses_a_warehouse_other_than_the_instances(simulator, universe, universe_file, warehouse_url, tmp_path):
    home = instance_home(tmp_path)
    _materialize_one_day(universe, universe_file, warehouse_url, home)
    recorded = Warehouse(warehouse_url)
    rows = recorded.read_candles("binance", "BTC/USDT", "1m", 0, 2**62)
    shown = public_url(recorded.url)
    recorded.dispose()
    wrong = Warehouse(f"sqlite:///{tmp_path / 'wrong.db'}")  # an existing warehouse, with candles of the same instrument
    wrong.migrate()
    merge_candles(wrong, "binance", "BTC/USDT", "1m", rows.iloc[:10], 0, 2**62, 1)
    wrong.dispose()
    env = {k: v for k, v in os.environ.items() if k not in ("OHLCV_UNIVERSE", "OHLCV_WAREHOUSE_URL")}
    env.update({"DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(universe_file)})

    stderr = status_fails({**env, "OHLCV_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'wrong.db'}"})
    assert f"another warehouse: {shown}" in stderr and f"sqlite:///{tmp_path / 'wrong.db'}" in stderr, stderr
    if warehouse_url.startswith("sqlite"):  # none given: the recorded SQLite warehouse is read
        assert {(r["symbol"], r["interval"]): r for r in status(env)}[("BTC/USDT", "1m")]["candles"] == 1440 - 90  # the downtime day
    else:  # none given, and the recorded URL lacks what a password would be: refused, naming it
        assert f"another warehouse: {shown}" in status_fails(env)


def test_status_without_an_instance_refuses_a_warehouse_holding_none_of_the_universe(universe_file, tmp_path):
    wh = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    wh.migrate()
    times = DOWNTIME_DAY_MS + np.arange(5) * MINUTE_MS
    merge_candles(wh, "kraken", "XRP/USD", "1h", pd.DataFrame({"open_time": times, "open": 1.0, "high": 1.0, "low": 1.0,
                                                               "close": 1.0, "volume": 1.0}), 0, 2**62, 1)
    wh.dispose()
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update({"OHLCV_UNIVERSE": str(universe_file), "OHLCV_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'w.db'}"})
    stderr = status_fails(env)
    assert "holds none of the" in stderr and str(universe_file) in stderr and "it holds kraken XRP/USD (1h)" in stderr, stderr


def test_relative_paths_are_resolved_where_the_command_was_typed(simulator, universe, universe_file, tmp_path):
    """DAGSTER_HOME, OHLCV_UNIVERSE and a SQLite path relative to the caller's directory; a SQLite
    directory that does not exist is an error (nothing is created), a missing universe file too."""
    home = instance_home(tmp_path)
    _materialize_one_day(universe, universe_file, f"sqlite:///{tmp_path / 'w.db'}", home)
    env = {k: v for k, v in os.environ.items() if k not in ("OHLCV_UNIVERSE", "OHLCV_WAREHOUSE_URL", "DAGSTER_HOME")}
    env.update({"DAGSTER_HOME": "home", "OHLCV_UNIVERSE": "universe.yaml", "OHLCV_WAREHOUSE_URL": "sqlite:///w.db"})
    out = subprocess.run([sys.executable, "-m", "ohlcv_assets.cli.status", "--json"], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert {(r["symbol"], r["interval"]): r for r in json.loads(out.stdout)}[("BTC/USDT", "1m")]["candles"] == 1440 - 90  # the downtime day

    registered = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ohlcv"), "register"], env=env,
                                capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert registered.returncode == 0 and "instrument partitions already match the universe" in registered.stdout, registered.stderr

    stderr = status_fails({**env, "OHLCV_WAREHOUSE_URL": f"sqlite:///{tmp_path}/nonexistent/dir/w.db"}, cwd=tmp_path)
    assert f"{tmp_path}/nonexistent/dir, which does not exist" in stderr, stderr
    assert not (tmp_path / "nonexistent").exists()
    stderr = status_fails({**env, "OHLCV_UNIVERSE": "missing.yaml"}, cwd=tmp_path)
    assert f"universe file missing.yaml (from {tmp_path}: {tmp_path / 'missing.yaml'}) does not exist" in stderr, stderr
    stderr = status_fails({**env, "DAGSTER_HOME": "nohome"}, cwd=tmp_path)
    assert f"DAGSTER_HOME=nohome: {tmp_path / 'nohome'} is not a directory" in stderr, stderr
