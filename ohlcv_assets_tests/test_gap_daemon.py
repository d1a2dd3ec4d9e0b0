"""With the real daemon (`dagster dev`): a new instrument is registered, scanned, its history
backfilled by the gap sensor through a backfill, re-scanned, and its downtime confirmed empty."""

import datetime as dt
import os
import shutil

import pandas as pd
import yaml

from ohlcv_assets.exchange.simulator import SimulatorConfig
from ohlcv_assets.exchange.market import SimulatedMarket
from ohlcv_assets.intervals import HOUR_MS, day_bounds_ms
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.processes import free_port, running, wait_until


def test_new_instrument_history_is_backfilled_and_downtime_confirmed(tmp_path):
    today = dt.datetime.now(dt.timezone.utc).date()
    yesterday, first = today - dt.timedelta(days=1), today - dt.timedelta(days=2)
    outage = day_bounds_ms(yesterday)[0] + 2 * HOUR_MS
    sim_config = {"symbols": [{"base": "GAP", "quote": "USDT", "listed": "2020-01-01", "price": 10}],
                  "downtime": [{"start": f"{yesterday}T02:00:00Z", "end": f"{yesterday}T03:00:00Z"}]}
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump(sim_config))
    sim_port, ui_port = free_port(), free_port()
    (tmp_path / "universe.yaml").write_text(f"""
exchanges:
  binance: {{ccxt_id: binance, api_url: "http://127.0.0.1:{sim_port}/api/v3", retry_base_seconds: 0.1}}
instruments:
  - {{exchange: binance, symbol: GAP/USDT, intervals: [1h], start: {first}}}
""")
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    env = {**os.environ, "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(tmp_path / "universe.yaml"),
           "OHLCV_WAREHOUSE_URL": warehouse_url}
    simulator = ["-m", "ohlcv_assets.exchange.simulator", "--port", str(sim_port), "--config", str(tmp_path / "sim.yaml")]
    dagster = ["-m", "dagster", "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(ui_port)]
    with running(simulator, env, str(REPO), str(tmp_path / "sim.log")), \
         running(dagster, env, str(REPO), str(tmp_path / "dagster.log")):
        warehouse = Warehouse(warehouse_url)

        def settled():
            if not os.path.exists(tmp_path / "warehouse.db"):
                return None
            try:
                records = gap_records.instrument_gaps(warehouse, "binance", "GAP/USDT", "1h")
            except Exception:  # tables not migrated yet
                return None
            closed = [r for r in records if r.reason == "fillable" and r.status in ("filled", "superseded")]
            confirmed = [r for r in records if r.status == "confirmed_empty"]
            return records if closed and confirmed else None

        records = wait_until(settled, timeout_seconds=600, interval=5, what="gaps filled and downtime confirmed")

    log = (tmp_path / "dagster.log").read_text()
    assert [(r.start_ms, r.end_ms) for r in records if r.status == "confirmed_empty"] == [(outage, outage + HOUR_MS)]
    config = SimulatorConfig.from_mapping(sim_config)
    market = SimulatedMarket(config.symbols, config.downtime, config.seed)
    for day in (first, yesterday):
        start, end = day_bounds_ms(day)
        expected = pd.DataFrame(market.candles(market.symbols["GAPUSDT"], HOUR_MS, start, end, end + HOUR_MS).as_floats())
        assert warehouse.read_candles("binance", "GAP/USDT", "1h", start, end).equals(expected), log[-5000:]
    assert len(expected) == 23
    warehouse.dispose()
