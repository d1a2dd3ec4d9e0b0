"""With the real daemon (`dagster dev`): new instruments are registered, scanned, their history
backfilled by the gap sensor, downtime confirmed, a late listing left unfillable, deleted rows found
by a scan a user launches and filled again; then the loop converges: no more gap runs and no more
requests while nothing changes."""

import datetime as dt
import os
import shutil
import time

import dagster as dg
import pandas as pd
import pytest
import yaml

from ohlcv_assets.cli.dagster_api import launch_backfill, wait_for_backfills, wait_for_webserver
from ohlcv_assets.core.intervals import HOUR_MS, day_bounds_ms
from ohlcv_assets.defs.dagster_internals import backfill_state, backfills_tagged
from ohlcv_assets.core.names import REASON_TAG, REQUEST_TAG
from ohlcv_assets.simulator.market import SimulatedMarket
from ohlcv_assets.simulator.server import SimulatorConfig
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.schema import candles
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets.simulator.client import read_stats
from ohlcv_assets_tests.processes import free_port, quick_daemon_ticks, running, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.daemon]  # minutes each, through a real dagster-daemon

QUIET_SECONDS = 25  # several ticks of every sensor that launches runs (sensor_seconds: 5)
SETTLED = ("filled", "superseded", "confirmed_empty", "unfillable")


def sim_stats(port: int) -> dict:
    return read_stats(f"http://127.0.0.1:{port}")


def test_gap_loop_fills_explains_and_converges(tmp_path):
    today = dt.datetime.now(dt.timezone.utc).date()
    yesterday, first = today - dt.timedelta(days=1), today - dt.timedelta(days=2)
    outage = day_bounds_ms(yesterday)[0] + 2 * HOUR_MS
    sim_config = {"symbols": [{"base": "GAP", "quote": "USDT", "listed": "2020-01-01", "price": 10},
                              {"base": "LATE", "quote": "USDT", "listed": f"{yesterday}", "price": 3}],
                  "downtime": [{"start": f"{yesterday}T02:00:00Z", "end": f"{yesterday}T03:00:00Z"}]}
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump(sim_config))
    sim_port, ui_port = free_port(), free_port()
    (tmp_path / "universe.yaml").write_text(f"""
exchanges:
  binance: {{ccxt_id: binance, api_url: "http://127.0.0.1:{sim_port}/api/v3", retry_base_seconds: 0.1}}
instruments:
  - {{exchange: binance, symbol: GAP/USDT, intervals: [1h], start: {first}}}
  - {{exchange: binance, symbol: LATE/USDT, intervals: [1h], start: {first}}}
refresh_minutes: 60
sensor_seconds: 5
""")
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    env = quick_daemon_ticks({**os.environ, "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(tmp_path / "universe.yaml"),
                              "OHLCV_WAREHOUSE_URL": warehouse_url})
    simulator = ["-m", "ohlcv_assets.simulator", "--port", str(sim_port), "--config", str(tmp_path / "sim.yaml")]
    dagster = ["-m", "dagster", "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(ui_port)]
    with running(simulator, env, str(REPO), str(tmp_path / "sim.log")), \
         running(dagster, env, str(REPO), str(tmp_path / "dagster.log")):
        warehouse = Warehouse(warehouse_url)

        def records(symbol):
            try:
                return gap_records.instrument_gaps(warehouse, "binance", symbol, "1h")
            except Exception:  # tables not migrated yet
                return []

        def settled():
            if not os.path.exists(tmp_path / "warehouse.db"):
                return None
            gap, late = records("GAP/USDT"), records("LATE/USDT")
            closed = [r for r in gap if r.reason == "fillable" and r.status == "filled"]
            confirmed = [r for r in gap if r.status == "confirmed_empty"]
            done = gap and late and all(r.status in SETTLED for r in gap + late)
            return (gap, late) if closed and confirmed and done else None

        gap, late = wait_until(settled, timeout_seconds=600, interval=1, what="gaps filled and downtime confirmed")
        assert [(r.start_ms, r.end_ms) for r in gap if r.status == "confirmed_empty"] == [(outage, outage + HOUR_MS)]
        assert all(r.attempts <= 1 for r in gap + late)  # each gap backfilled at most once
        assert [(r.reason, r.status) for r in late if r.reason == "before_listing"] == [("before_listing", "unfillable")]

        # A user deletes rows by mistake, then scans: the sensor fills exactly them, once.
        day_start = day_bounds_ms(first)[0]
        with warehouse.engine.begin() as conn:
            conn.execute(candles.delete().where(candles.c.symbol == "GAP/USDT", candles.c.open_time.in_(
                [day_start + 3 * HOUR_MS, day_start + 7 * HOUR_MS, day_start + 8 * HOUR_MS])))
        webserver = f"http://127.0.0.1:{ui_port}"
        wait_for_webserver(webserver, 120)
        scan = launch_backfill(webserver, ["gap_report", "1h"], ["binance.GAP-USDT"], title="user scan")
        assert wait_for_backfills(webserver, [scan], 300) == {scan: "COMPLETED_SUCCESS"}

        def deleted_refilled():
            fresh = [r for r in records("GAP/USDT") if r.start_ms in (day_start + 3 * HOUR_MS, day_start + 7 * HOUR_MS)]
            return fresh if len(fresh) == 2 and all(r.status == "filled" for r in fresh) else None

        refilled = wait_until(deleted_refilled, timeout_seconds=300, interval=1, what="deleted rows filled again")
        assert sorted(r.candles for r in refilled) == [1, 2] and all(r.attempts == 0 for r in refilled)

        # Convergence: once the refill's backfill has ended and been followed (one re-scan of the
        # instrument, unless a scan already saw the rows stored before the backfill ended and closed the
        # gaps itself), nothing but the today schedule (and features after it) may run.
        with dg.DagsterInstance.from_config(str(home)) as instance:
            request_id = refilled[0].request_id
            wait_until(lambda: [b for b in backfills_tagged(instance, {REQUEST_TAG: request_id}) if not backfill_state(b)[0]],
                       180, what="the refill's backfill to end")
            if all(r.note.startswith("stored:") for r in refilled):  # settled by the sensor, which asks for the re-scan
                rescan_key = f"rescan-{request_id}-binance.GAP-USDT"
                wait_until(lambda: [r for r in instance.get_runs() if r.tags.get("dagster/run_key") == rescan_key and r.is_finished],
                           180, what="the re-scan after the refill")
            else:  # closed by the user's scan: the sensor has nothing left to follow
                assert all(r.note == "" for r in refilled), [r.note for r in refilled]
            wait_until(lambda: not [r for r in instance.get_runs() if not r.is_finished], 120, what="runs finished")
            before_runs = {r.run_id for r in instance.get_runs()}
            before = sim_stats(sim_port)
            time.sleep(QUIET_SECONDS)
            new = [r for r in instance.get_runs() if r.run_id not in before_runs]
            today_runs = [r for r in new if r.tags.get(REASON_TAG) == "keep-today-fresh"]
            looping = [r for r in new if r not in today_runs and not r.job_name.startswith("candle_features")
                       and not any(k.path[0] == "candle_features" for k in (r.asset_selection or []))]
            assert looping == [], [(r.job_name, r.tags.get(REASON_TAG), r.asset_selection) for r in looping]
            after = sim_stats(sim_port)
            if not today_runs:
                assert after.get("requests.klines", 0) == before.get("requests.klines", 0)

    log = (tmp_path / "dagster.log").read_text()
    config = SimulatorConfig.from_mapping(sim_config)
    market = SimulatedMarket(config.symbols, config.downtime, config.seed)
    for day in (first, yesterday):
        start, end = day_bounds_ms(day)
        expected = pd.DataFrame(market.candles(market.symbols["GAPUSDT"], HOUR_MS, start, end, end + HOUR_MS).as_floats())
        assert warehouse.read_candles("binance", "GAP/USDT", "1h", start, end).equals(expected), log[-5000:]
    assert len(expected) == 23
    warehouse.dispose()
