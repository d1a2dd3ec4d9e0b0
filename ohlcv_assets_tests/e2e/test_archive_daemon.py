"""With the real daemon (`dagster dev` on the production instance config, Dagster's storage and the
warehouse in PostgreSQL): instruments added with a long history are registered, scanned, and
their whole history backfilled by the gap sensor; they end exact. On Binance (four years) from its
archive (monthly files, daily files) and REST for the days not published yet; on Kraken (740 days of
1d), whose REST serves only its latest 720 candles (the scan's `beyond_history`), from its OHLCVT zip
and REST."""

import datetime as dt
import os
import shutil
import subprocess
import sys
from collections import Counter

import pandas as pd
import pytest
import yaml

from ohlcv_assets.defs.instance_storage import storage_env
from ohlcv_assets.core.intervals import DAY_MS, HOUR_MS, day_bounds_ms, now_ms
from ohlcv_assets.simulator.market import SimulatedMarket
from ohlcv_assets.simulator.server import SimulatorConfig
from ohlcv_assets.warehouse import gap_records, provenance
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.conftest import REPO
from ohlcv_assets.simulator.client import read_stats
from ohlcv_assets_tests.processes import free_port, quick_daemon_ticks, running, stop_features_automation, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.daemon]  # minutes each, through a real dagster-daemon

YEARS = 4
SETTLED = ("filled", "superseded", "confirmed_empty", "unfillable")


def test_new_instruments_with_four_years_of_history_are_backfilled_from_the_archives_and_rest(tmp_path, new_postgres_database):
    today = dt.datetime.now(dt.timezone.utc).date()
    # In a UTC day's first hour today has no closed 1h candle and yesterday's daily file is not published yet
    first_hour = now_ms() < day_bounds_ms(today)[0] + HOUR_MS
    newest = today - dt.timedelta(days=1) if first_hour else today  # the newest day with a closed candle
    start = today.replace(year=today.year - YEARS)
    kraken_start = today - dt.timedelta(days=740)  # 20 days older than Kraken's REST serves: 3 runs, not 4
    sim_config = {"symbols": [{"base": "DEEP", "quote": "USDT", "listed": "2019-01-01", "price": 40},
                              {"base": "DEEP", "quote": "USD", "listed": "2019-01-01", "price": 40, "venues": ["kraken"]}],
                  "venues": {"kraken_archive": {"start": "2019-01-01", "intervals": [1440]}}}
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump(sim_config))
    sim_port, ui_port = free_port(), free_port()
    (tmp_path / "universe.yaml").write_text(f"""
exchanges:
  binance:
    ccxt_id: binance
    api_url: "http://127.0.0.1:{sim_port}/api/v3"
    retry_base_seconds: 0.1
    archive: {{url: "http://127.0.0.1:{sim_port}/archive/binance"}}
  kraken:
    ccxt_id: kraken
    api_url: "http://127.0.0.1:{sim_port}/kraken"
    retry_base_seconds: 0.1
    archive: {{url: "http://127.0.0.1:{sim_port}/archive/kraken/Kraken_OHLCVT.zip"}}
instruments:
  - {{exchange: binance, symbol: DEEP/USDT, intervals: [1h], start: {start}}}
  - {{exchange: kraken, symbol: DEEP/USD, intervals: [1d], start: {kraken_start}}}
refresh_minutes: 10
sensor_seconds: 5
""")
    # refresh_minutes: today's candles younger than a refresh period are the today schedule's, not the scan's;
    # at 60 the scan left today to the next hourly tick for the first two hours of a UTC day (up to an hour's wait)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    warehouse_url = new_postgres_database()
    env = quick_daemon_ticks({**{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "OHLCV_"))},
                              "DAGSTER_HOME": str(home), "OHLCV_UNIVERSE": str(tmp_path / "universe.yaml"),
                              "OHLCV_WAREHOUSE_URL": warehouse_url, "OHLCV_ARCHIVE_CACHE": str(tmp_path / "archive-cache"),
                              **storage_env(new_postgres_database())})
    subprocess.run([sys.executable, "-m", "dagster", "instance", "migrate"], env=env, check=True, capture_output=True)
    # Features of four years would follow the candles (about 50 runs): not what this test is about, and
    # load enough to slow every other test of the suite running beside it.
    stop_features_automation(env, REPO / "workspace.yaml")
    simulator = ["-m", "ohlcv_assets.simulator", "--port", str(sim_port), "--config", str(tmp_path / "sim.yaml")]
    dagster = ["-m", "dagster", "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(ui_port)]
    config = SimulatorConfig.from_mapping(sim_config)
    market = SimulatedMarket(config.symbols, config.downtime, config.seed)
    lo, hi = day_bounds_ms(start)[0], day_bounds_ms(today)[0]
    expected = pd.DataFrame(market.candles(market.symbols["DEEPUSDT"], HOUR_MS, lo, hi, hi + HOUR_MS).as_floats())
    assert len(expected) == (today - start).days * 24
    kraken_lo = day_bounds_ms(kraken_start)[0]
    kraken_expected = pd.DataFrame(market.candles(market.symbols["DEEPUSD"], DAY_MS, kraken_lo, hi, hi + DAY_MS, omit_empty=True,
                                                  venue="kraken").as_floats())
    assert len(kraken_expected) == 740  # more than Kraken's REST serves
    with running(simulator, env, str(REPO), str(tmp_path / "sim.log")), \
         running(dagster, env, str(REPO), str(tmp_path / "dagster.log")):
        warehouse = Warehouse(warehouse_url)

        def history_filled():
            found = []
            for venue, symbol, interval, candles in (("binance", "DEEP/USDT", "1h", expected), ("kraken", "DEEP/USD", "1d", kraken_expected)):
                try:
                    gaps = gap_records.instrument_gaps(warehouse, venue, symbol, interval)
                    stored = len(warehouse.read_open_times(venue, symbol, interval, int(candles["open_time"].iloc[0]), hi))
                except Exception:  # tables not migrated yet
                    return None
                if not (gaps and stored >= len(candles) and all(g.status in SETTLED for g in gaps)):
                    return None
                found += gaps
            return found if provenance.sources_of(warehouse, "binance", "DEEP/USDT", "1h", [newest]) else None

        gaps = wait_until(history_filled, timeout_seconds=900, interval=5, what="four years backfilled by the gap sensor")
        stats = read_stats(f"http://127.0.0.1:{sim_port}")
    log = (tmp_path / "dagster.log").read_text()
    assert all(g.attempts <= 1 for g in gaps), log[-5000:]

    assert warehouse.read_candles("binance", "DEEP/USDT", "1h", lo, hi).equals(expected), log[-5000:]

    by_day = provenance.sources_of(warehouse, "binance", "DEEP/USDT", "1h")
    kinds = Counter(s.file.split("/")[2] if s.file else s.source for s in by_day.values())  # data/spot/{monthly|daily}/…
    assert kinds["monthly"] >= 28 * (YEARS * 12 - 2), kinds  # whole published months from monthly files
    assert kinds["daily"] >= 1, kinds  # the edges of the range: days of months not whole or not published yet
    if first_hour:
        assert by_day[newest].source == "rest" and today not in by_day, kinds  # its daily file not published yet
    else:
        assert "/daily/" in by_day[today - dt.timedelta(days=1)].file  # published the next day
        assert by_day[today].source == "rest", kinds  # not published yet
    assert stats.get("requests.klines", 0) < 60, stats  # REST for a few days only, not four years of pages

    assert warehouse.read_candles("kraken", "DEEP/USD", "1d", kraken_lo, hi).equals(kraken_expected), log[-5000:]
    kraken_days = provenance.sources_of(warehouse, "kraken", "DEEP/USD", "1d")
    quarter_end = dt.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)  # where the simulator's zip ends
    by_source = Counter((s.source, day < quarter_end) for day, s in kraken_days.items() if day < today)  # today: no closed 1d candle
    # the zip's days (the 20 beyond REST's 720 days among them) from it, the days after it from REST
    assert by_source == {("archive", True): (quarter_end - kraken_start).days, ("rest", False): (today - quarter_end).days}, by_source
    assert {s.file for s in kraken_days.values() if s.source == "archive"} == {"Kraken_OHLCVT.zip"}
    warehouse.dispose()
