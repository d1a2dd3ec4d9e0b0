"""`ohlcv-status` reads the warehouse and the Dagster instance and says what a user needs to know;
it never creates a warehouse, and never says "none" about candles nobody has explained."""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys

import dagster as dg

from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.gaps import EXCHANGE_DOWNTIME, FILLABLE, Gap
from ohlcv_assets.intervals import MINUTE_MS, day_bounds_ms, now_ms
from ohlcv_assets.names import candles_key
from ohlcv_assets.partitions import partition_key, sync_instrument_partitions
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.schema import candles
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.helpers import DOWNTIME_DAY, merge_candles


def status(env, *args, returncode=0):
    out = subprocess.run([sys.executable, "-m", "ohlcv_assets.cli.status", "--json", *args], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == returncode, out.stdout[-2000:] + out.stderr[-2000:]
    return json.loads(out.stdout)


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
        out = subprocess.run([sys.executable, "-m", "ohlcv_assets.cli.status"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and f"no warehouse at sqlite:///{where}" in out.stderr, out.stderr
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
