"""One 429 stops the whole fleet: six `ohlcv backfill` processes, each with its own Dagster
instance, share one exchange budget in one warehouse, against a simulator that answers every 15th
request 429 and holds (then bans) the address as Binance does. No request may reach the venue
inside a hold (those on the wire when the 429 was answered excepted), none is banned, and the
stored candles equal the venue's."""

import datetime as dt
import os
import re
import shutil
import subprocess
import sys

import pytest

from ohlcv_assets.core.intervals import day_bounds_ms, now_ms
from ohlcv_assets.simulator.server import ExchangeSimulator, SimulatorConfig
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets_tests.helpers import simulator_candles

BIN = os.path.dirname(sys.executable)
SYMBOLS = ["BTC", "ETH", "SOL", "XRP", "ADA", "DOT"]
FIRST_DAY, DAYS = dt.date(2026, 9, 1), 16
LIMIT, WINDOW = 240, 10.0  # 24 weight a second: the budget, not a busy machine, paces the fleet


@pytest.fixture
def fleet_simulator():
    sim = ExchangeSimulator(SimulatorConfig.from_mapping({
        "seed": 5, "weight_limit": LIMIT, "weight_window_seconds": WINDOW,
        "ban_seconds": 2,  # short bans, so that a fleet that gets banned still ends (and fails the test) soon
        "symbols": [{"base": s, "quote": "USDT", "listed": "2020-01-01", "price": 10 + 7 * n} for n, s in enumerate(SYMBOLS)],
        "faults": [{"kind": "rate_limit", "endpoint": "klines", "every": 15}],  # 7 % of the candle requests
    }))
    sim.start()
    yield sim
    sim.stop()


def universe(sim_url: str) -> str:
    instruments = "\n".join(f"  - {{exchange: binance, symbol: {s}/USDT, intervals: [1m], start: {FIRST_DAY}}}" for s in SYMBOLS)
    return (f"exchanges:\n  binance: {{ccxt_id: binance, api_url: '{sim_url}/api/v3', weight_limit: {LIMIT}, "
            f"weight_window_seconds: {WINDOW}, retry_base_seconds: 0.05, timeout_seconds: 5}}\ninstruments:\n{instruments}\n")


def test_a_429_holds_every_process_of_the_fleet(fleet_simulator, warehouse_url, tmp_path):
    Warehouse(warehouse_url).migrate()  # before the runs, so that they do not race to create tables
    (tmp_path / "universe.yaml").write_text(universe(fleet_simulator.url))
    last = FIRST_DAY + dt.timedelta(days=DAYS - 1)
    runs = []
    for symbol in SYMBOLS:
        home = tmp_path / f"home-{symbol}"
        home.mkdir()
        shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(tmp_path / "universe.yaml"),
               "OHLCV_WAREHOUSE_URL": warehouse_url}
        runs.append(subprocess.Popen([f"{BIN}/ohlcv", "backfill", "1m", f"binance.{symbol}-USDT", str(FIRST_DAY), str(last)],
                                     env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL))
    try:
        outputs = [run.communicate(timeout=600) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, out[-2000:] + err[-2000:]
        assert re.search(rf"succeeded, {DAYS} partitions, {DAYS * 1440:,} candles written", out), out[-2000:]

    stats = fleet_simulator.stats
    assert stats["status.429"] >= 8  # the injected 429s fired (one in 15 of the ~150 klines requests)
    assert stats["violations"] == 0, dict(stats)
    assert stats["status.418"] == 0, dict(stats)
    warehouse = Warehouse(warehouse_url)
    try:
        for symbol in SYMBOLS:
            for n in range(DAYS):
                day = FIRST_DAY + dt.timedelta(days=n)
                stored = warehouse.read_candles("binance", f"{symbol}/USDT", "1m", *day_bounds_ms(day))
                assert stored.equals(simulator_candles(fleet_simulator, f"{symbol}/USDT", "1m", day, now_ms())), (symbol, day)
    finally:
        warehouse.dispose()
