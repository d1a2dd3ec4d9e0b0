"""Ranged ingestion: a range of days is one stream of concurrent page windows written in batches,
exact day by day, and a failure leaves the batches before it written."""

import datetime as dt

import pytest

from ohlcv_assets.exchange.ccxt_source import CcxtCandleSource
from ohlcv_assets.exchange.source import PermanentFetchError
from ohlcv_assets.ingest import days as ingest
from ohlcv_assets.ingest.days import ingest_days, page_windows
from ohlcv_assets.core.intervals import DAY_MS, MINUTE_MS, day_bounds_ms
from ohlcv_assets_tests.helpers import DOWNTIME_DAY, simulator_candles

FIRST = dt.date(2026, 10, 1)
DAYS = [FIRST + dt.timedelta(days=n) for n in range(20)]  # includes DOWNTIME_DAY


def test_windows_cover_a_range_exactly_once():
    windows = page_windows(0, 2500 * MINUTE_MS, MINUTE_MS, 1000)
    assert windows == [(0, 1000 * MINUTE_MS), (1000 * MINUTE_MS, 2000 * MINUTE_MS), (2000 * MINUTE_MS, 2500 * MINUTE_MS)]


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(ingest, "BATCH_CANDLES", 10_000)  # 6 days of 1m a batch: 20 days are 4 batches


def test_a_range_is_stored_exactly_in_batches_of_whole_days(simulator, universe, warehouse, small_batches):
    instrument = universe.instrument("binance.BTC-USDT")
    source = CcxtCandleSource("binance", universe.exchanges["binance"])
    now = day_bounds_ms(DAYS[-1])[1] + DAY_MS
    progress = []
    batches = list(ingest_days(source, warehouse, instrument, "1m", DAYS, now, workers=4, on_progress=progress.append))
    assert [day for batch in batches for day, _ in batch] == DAYS
    assert all(len(batch) <= 10_000 // 1440 for batch in batches) and len(batches) == 4
    for day in DAYS:
        stored = warehouse.read_candles("binance", "BTC/USDT", "1m", *day_bounds_ms(day))
        assert stored.equals(simulator_candles(simulator, "BTC/USDT", "1m", day, now)), day
    reports = {day: report for batch in batches for day, report in batch}
    assert reports[DOWNTIME_DAY].missing_candles == 90 and "not returned" in reports[DOWNTIME_DAY].note
    windows = len(page_windows(day_bounds_ms(DAYS[0])[0], day_bounds_ms(DAYS[-1])[1], MINUTE_MS, 1000))
    assert windows <= simulator.stats["requests.klines"] <= windows + 3  # contiguous days share windows
    assert progress[-1].pages_done == progress[-1].pages_total == windows
    assert progress[-1].candles == 20 * 1440 - 90 and progress[-1].percent == 100.0


def test_a_batch_is_reported_once_written_while_the_next_batch_is_still_being_fetched(simulator, universe, warehouse, small_batches):
    """A long ranged run shows its days materialized as it goes: the first batch (days 1-6, pages
    1-9) is reported as soon as it is written, not when the second batch (its pages slowed to a
    second each, under the client's 2 s timeout) is complete too."""
    instrument = universe.instrument("binance.BTC-USDT")
    source = CcxtCandleSource("binance", universe.exchanges["binance"])
    second = [day_bounds_ms(DAYS[6])[0], day_bounds_ms(DAYS[12])[0]]
    simulator.reconfigure({"faults": [{"kind": "slow", "endpoint": "klines", "every": 1, "seconds": 1.0, "start_between": second}]})
    now = day_bounds_ms(DAYS[-1])[1] + DAY_MS
    pages_when_reported = []
    batches = list(ingest_days(source, warehouse, instrument, "1m", DAYS, now, workers=2,
                               on_progress=lambda p: pages_when_reported.append(p.pages_done)))
    assert [day for batch in batches for day, _ in batch][:6] == DAYS[:6]
    second_batch_pages = -(-12 * 1440 // 1000)  # the windows up to the end of day 12
    assert pages_when_reported[0] < second_batch_pages, pages_when_reported


def test_a_failure_keeps_the_batches_written_before_it(simulator, universe, warehouse, small_batches):
    instrument = universe.instrument("binance.ETH-USDT")
    source = CcxtCandleSource("binance", universe.exchanges["binance"])
    late = day_bounds_ms(DAYS[15])[0]
    simulator.reconfigure({"faults": [{"kind": "status", "status": 404, "count": 100, "start_between": [late, late + DAY_MS]}]})
    now = day_bounds_ms(DAYS[-1])[1] + DAY_MS
    written = []
    with pytest.raises(PermanentFetchError):
        for batch in ingest_days(source, warehouse, instrument, "1m", DAYS, now, workers=4):
            written.extend(day for day, _ in batch)
    assert written and written[-1] < DAYS[15]
    for day in written:
        stored = warehouse.read_candles("binance", "ETH/USDT", "1m", *day_bounds_ms(day))
        assert stored.equals(simulator_candles(simulator, "ETH/USDT", "1m", day, now))
    assert warehouse.read_candles("binance", "ETH/USDT", "1m", *day_bounds_ms(DAYS[-1])).empty
