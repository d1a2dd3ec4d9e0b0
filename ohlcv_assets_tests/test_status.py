"""`ohlcv-status` reads the warehouse and the Dagster instance and says what a user needs to know."""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys

import dagster as dg

from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.gaps import EXCHANGE_DOWNTIME, FILLABLE, Gap
from ohlcv_assets.partitions import partition_key, sync_instrument_partitions
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets.names import candles_key


def status(env, *args):
    out = subprocess.run([sys.executable, "-m", "ohlcv_assets.cli.status", "--json", *args], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_status_and_health_report_what_is_stored_and_running(simulator, universe, universe_file, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
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
    assert btc["coverage_pct"] > 99  # minutes keep closing after the run: not exactly 100
    assert btc["last_run"] is not None and btc["failing_checks"] == []
    assert 0.75 <= btc["quality_score"] <= 1.0  # complete, valid, consistent; freshness depends on the clock
    assert rows[("ETH/USDT", "5m")]["freshness"] == "no data" and rows[("ETH/USDT", "5m")]["last_run"] is None
    assert btc["open_gaps"] == {"fillable": 7}  # confirmed downtime is explained, not open
    assert rows[("BTC/USDT", "1d")]["open_gaps"] == {}

    report = status(env, "--health")
    assert report["warehouse"] == "ok" and report["exchange binance"] == "ok"
    assert report["daemon"].startswith("no heartbeat")
