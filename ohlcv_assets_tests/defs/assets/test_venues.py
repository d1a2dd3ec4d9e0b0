"""Kraken, Coinbase Exchange and Polygon beside Binance: real Dagster runs and real gap scans over
HTTP against the simulator speaking each venue's protocol (ccxt's own code for the crypto venues,
plain HTTP for Polygon), on both warehouses."""

import datetime as dt
import logging
import threading
import time

import dagster as dg
import pandas as pd
import pytest

from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.exchange.registry import build_source
from ohlcv_assets.quality.gap_scan import scan
from ohlcv_assets.core.gaps import BEYOND_HISTORY, EXCHANGE_DOWNTIME, FILLABLE, NO_TRADES
from ohlcv_assets.ingest.days import ingest_days
from ohlcv_assets.defs.monitoring import health, instrument_rows
from ohlcv_assets.core.intervals import HOUR_MS, MINUTE_MS, day_bounds_ms, interval_ms, now_ms, utc_day
from ohlcv_assets.defs.assets.features import warmup_mapping
from ohlcv_assets.core.names import DAY, RANGE_END_TAG, RANGE_START_TAG, candles_key, features_key
from ohlcv_assets.defs.partitions import partition_key
from ohlcv_assets.quality.checks import check_stored_days
from ohlcv_assets.warehouse import delistings
from ohlcv_assets.warehouse.schema import candle_features
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.helpers import materialize_day, universe_definitions

POLYGON_KEY = "pk-test-6f1c9d2e8a"
KEY_ENV = "OHLCV_TEST_POLYGON_KEY"
TODAY = utc_day(now_ms())
OUTAGE_DAY = TODAY - dt.timedelta(days=3)
PLAIN_DAY = TODAY - dt.timedelta(days=5)
EARLY_CLOSE = dt.date(2025, 11, 28)  # the Friday after Thanksgiving: NYSE closes at 13:00 New York
THANKSGIVING = dt.date(2025, 11, 27)
DELIST_DAY = TODAY - dt.timedelta(days=6)  # OLD/USD stops trading at noon
VENUE_CONFIG = {
    "seed": 5,
    "symbols": [
        {"base": "BTC", "quote": "USD", "listed": "2020-01-01", "price": 60000, "quiet": 0.05},
        {"base": "AAPL", "listed": "2020-01-01", "price": 200, "calendar": "XNYS", "quiet": 0.03},
        {"base": "OLD", "quote": "USD", "listed": "2020-01-01", "price": 3, "delisted": f"{DELIST_DAY}T12:00:00Z"},
        {"base": "GONE", "listed": "2020-01-01", "price": 50, "calendar": "XNYS", "delisted": "2025-11-26T16:00:00Z"},
        {"base": "SPLT", "listed": "2020-01-01", "price": 100, "calendar": "XNYS", "split": {"day": "2025-11-28", "ratio": 4}},
        {"base": "FRESH", "quote": "USD", "listed": str(TODAY - dt.timedelta(days=4)), "price": 7, "venues": ["coinbase"]},
    ],
    "downtime": [{"start": f"{OUTAGE_DAY}T02:00:00Z", "end": f"{OUTAGE_DAY}T03:30:00Z"}],
    "venues": {"kraken": {"counter_max": 1000}, "coinbase": {"requests_per_second": 1000},
               "polygon": {"api_key": POLYGON_KEY, "requests_per_minute": 100_000}},
}


def venue_universe(url: str) -> str:
    common = "timeout_seconds: 2, retry_base_seconds: 0.05, weight_limit: 100000, weight_window_seconds: 60"
    return f"""
exchanges:
  kraken: {{ccxt_id: kraken, api_url: "{url}/kraken", {common}}}
  coinbase: {{ccxt_id: coinbaseexchange, api_url: "{url}/coinbase", {common}}}
  polygon: {{venue: polygon, api_url: "{url}/polygon", api_key_env: {KEY_ENV}, {common}}}
instruments:
  - {{exchange: kraken, symbol: BTC/USD, intervals: [1h], start: {TODAY - dt.timedelta(days=40)}}}
  - {{exchange: coinbase, symbol: BTC/USD, intervals: [1m, 1h], start: {PLAIN_DAY}}}
  - {{exchange: polygon, symbol: AAPL, intervals: [1m, 1h], start: 2025-11-26}}
  - {{exchange: kraken, symbol: OLD/USD, intervals: [1h], start: {TODAY - dt.timedelta(days=10)}}}
  - {{exchange: coinbase, symbol: OLD/USD, intervals: [1h], start: {TODAY - dt.timedelta(days=10)}}}
  - {{exchange: polygon, symbol: GONE, intervals: [1h], start: 2025-11-24}}
  - {{exchange: coinbase, symbol: FRESH/USD, intervals: [1h], start: {TODAY - dt.timedelta(days=6)}}}
"""


@pytest.fixture(scope="module")
def venues_sim(simulators):
    return simulators(VENUE_CONFIG)


@pytest.fixture
def venue_setup(venues_sim, tmp_path, warehouse_url, monkeypatch):
    venues_sim.reconfigure({"faults": [], "frozen_now_ms": None, "reset_stats": True, "venues": VENUE_CONFIG["venues"],
                            "unlisted": []})
    monkeypatch.setenv(KEY_ENV, POLYGON_KEY)
    with universe_definitions(venue_universe(venues_sim.url), tmp_path, warehouse_url) as made:
        yield made


def truth(sim, venue: str, symbol: str, interval: str, day: dt.date, now: int) -> pd.DataFrame:
    """What the venue serves for the day: its closed candles, intervals without trades left out."""
    start, end = day_bounds_ms(day)
    step = interval_ms(interval)
    arrays = sim.market.candles(sim.config.symbols[symbol.replace("/", "")], step, start, min(end, now // step * step), now,
                                omit_empty=True, venue=venue)
    return pd.DataFrame(arrays.as_floats())


def stored(warehouse_url, exchange, symbol, interval, day):
    wh = Warehouse(warehouse_url)
    try:
        return wh.read_candles(exchange, symbol, interval, *day_bounds_ms(day))
    finally:
        wh.dispose()


def materialize(defs, instance, interval, instrument, day):
    return materialize_day(defs, instance, interval, instrument, day)[0]


CASES = [  # exchange (as the universe names it), symbol, interval, day
    ("kraken", "BTC/USD", "1h", PLAIN_DAY),
    ("coinbase", "BTC/USD", "1m", PLAIN_DAY),
    ("polygon", "AAPL", "1m", EARLY_CLOSE),
    ("polygon", "AAPL", "1h", dt.date(2025, 11, 26)),
]


@pytest.mark.parametrize("exchange,symbol,interval,day", CASES)
def test_a_materialized_day_is_exactly_what_the_venue_serves(venues_sim, venue_setup, warehouse_url, exchange, symbol, interval, day):
    universe, defs, instance = venue_setup
    meta = materialize(defs, instance, interval, f"{exchange}.{symbol.replace('/', '-')}", day)
    venue = "coinbase" if exchange == "coinbase" else exchange
    expected = truth(venues_sim, venue, symbol, interval, day, now_ms())
    assert stored(warehouse_url, exchange, symbol, interval, day).equals(expected)
    sessions = universe.exchanges[exchange].sessions
    grid = sessions.count(*day_bounds_ms(day), interval_ms(interval))
    assert meta["expected_candles"] == grid and meta["candles_new"] == len(expected)
    assert meta["no_trade_candles"] == grid - len(expected)
    assert meta["no_trade_candles"] > 0 or interval == "1h"  # minutes without trades are left out; hours always hold one
    assert meta["missing_candles"] == meta["no_trade_candles"]  # every absence is explained as no trades
    assert meta["quality_completeness"] == meta["quality_validity"] == 1.0
    requests = {k: v for k, v in venues_sim.stats.items() if k.startswith(f"requests.{venue}.")}
    assert sum(requests.values()) >= 1 and venues_sim.stats[f"{venue}.ban"] == 0


def test_an_early_close_and_a_holiday_expect_only_their_session(venues_sim, venue_setup, warehouse_url):
    universe, defs, instance = venue_setup
    assert materialize(defs, instance, "1m", "polygon.AAPL", EARLY_CLOSE)["expected_candles"] == 210
    holiday = materialize(defs, instance, "1m", "polygon.AAPL", THANKSGIVING)
    assert holiday["expected_candles"] == holiday["candles_fetched"] == 0 and holiday["quality_completeness"] == 1.0


def test_polygon_weekend_and_early_close_are_neither_gaps_nor_stale(venues_sim, venue_setup, warehouse_url):
    """Stored Wednesday to Friday (Thursday a holiday, Friday closing early); on Sunday the scan
    finds no gap but the minutes nobody traded, and the instrument is fresh."""
    universe, _, _ = venue_setup
    sunday = day_bounds_ms(dt.date(2025, 11, 30))[0] + 15 * HOUR_MS
    venues_sim.reconfigure({"frozen_now_ms": sunday})
    instrument = universe.instrument("polygon.AAPL")
    source = build_source("polygon", universe.exchanges["polygon"])
    wh = Warehouse(warehouse_url)
    wh.migrate()
    try:
        days = [dt.date(2025, 11, 26) + dt.timedelta(days=i) for i in range(5)]
        reports = [r for batch in ingest_days(source, wh, instrument, "1m", days, sunday) for r in batch]
        assert [report.expected_candles for _, report in reports] == [390, 0, 210, 0, 0]
        result = scan(source, wh, instrument, "1m", sunday, universe.refresh_minutes)
        assert {g.reason for g in result.gaps} == {NO_TRADES}
        assert result.expected == 600 and result.present + sum(g.candles(MINUTE_MS) for g in result.gaps) == 600
        checked = check_stored_days(wh, instrument, "1m", {dt.date(2025, 11, 28): 210}, sunday,
                                    (30 * MINUTE_MS, 60 * MINUTE_MS), universe.exchanges["polygon"].sessions)
        outcomes, score = checked[dt.date(2025, 11, 28)]
        assert score.freshness == 1.0 and score.completeness == 1.0
        assert all(o.passed for o in outcomes)
    finally:
        wh.dispose()


def test_an_outage_is_downtime_and_quiet_minutes_are_no_trades(venues_sim, venue_setup, warehouse_url):
    universe, defs, instance = venue_setup
    meta = materialize(defs, instance, "1m", "coinbase.BTC-USD", OUTAGE_DAY)
    outage = day_bounds_ms(OUTAGE_DAY)[0] + 2 * HOUR_MS
    served = truth(venues_sim, "coinbase", "BTC/USD", "1m", OUTAGE_DAY, now_ms())["open_time"].to_numpy()
    before, after = served[served < outage].max(), served[served >= outage + 90 * MINUTE_MS].min()
    # the outage waits for the scan (it asks twice), with any quiet minute next to it: the run of missing minutes is one
    assert meta["missing_candles"] == meta["no_trade_candles"] + (after - before) // MINUTE_MS - 1 >= meta["no_trade_candles"] + 90
    source = build_source("coinbase", universe.exchanges["coinbase"])
    wh = Warehouse(warehouse_url)
    try:
        instrument = universe.instrument("coinbase.BTC-USD").model_copy(update={"start": OUTAGE_DAY})
        scan_now = day_bounds_ms(OUTAGE_DAY)[1] + 2 * HOUR_MS
        venues_sim.reconfigure({"frozen_now_ms": scan_now})
        result = scan(source, wh, instrument, "1m", scan_now, universe.refresh_minutes)
    finally:
        wh.dispose()
    by_reason = result.candles_by_reason(MINUTE_MS)
    # the outage's run of missing minutes (a quiet minute next to it cannot be told apart: the venue omits both)
    assert [(g.start_ms, g.end_ms) for g in result.gaps if g.reason == EXCHANGE_DOWNTIME] == [(before + MINUTE_MS, after)]
    assert by_reason[NO_TRADES] >= meta["no_trade_candles"] > 0  # the day's, and those of the next hours asked about
    assert set(by_reason) <= {NO_TRADES, EXCHANGE_DOWNTIME, FILLABLE}  # fillable: the days after, not stored here
    assert all(g.start_ms >= day_bounds_ms(OUTAGE_DAY)[1] for g in result.gaps if g.reason == FILLABLE)


def test_kraken_history_beyond_720_candles_is_reported_without_requests(venues_sim, venue_setup, warehouse_url):
    universe, defs, instance = venue_setup
    old_day = TODAY - dt.timedelta(days=35)
    meta = materialize(defs, instance, "1h", "kraken.BTC-USD", old_day)
    assert "beyond history" in meta["note"] and meta.get("requests", 0) == 0
    assert venues_sim.stats["requests.kraken.OHLC"] == 0
    source = build_source("kraken", universe.exchanges["kraken"])
    wh = Warehouse(warehouse_url)
    try:
        now = now_ms()
        result = scan(source, wh, universe.instrument("kraken.BTC-USD"), "1h", now, universe.refresh_minutes)
    finally:
        wh.dispose()
    horizon = (now // HOUR_MS - 720 + 1) * HOUR_MS
    [beyond] = [g for g in result.gaps if g.reason == BEYOND_HISTORY]
    assert beyond.start_ms == day_bounds_ms(TODAY - dt.timedelta(days=40))[0] and beyond.end_ms == horizon
    assert venues_sim.stats["requests.kraken.OHLC"] <= 4  # the listing probe and a page or two, not a loop


@pytest.mark.parametrize("venue,fault", [
    ("kraken", {"kind": "rate_limit", "endpoint": "OHLC", "venue": "kraken", "count": 2}),
    ("kraken", {"kind": "status", "status": 502, "endpoint": "OHLC", "venue": "kraken", "count": 2}),
    ("coinbase", {"kind": "rate_limit", "endpoint": "candles", "venue": "coinbase", "every": 3}),
    ("coinbase", {"kind": "truncated", "endpoint": "candles", "venue": "coinbase", "every": 4}),
    ("polygon", {"kind": "rate_limit", "endpoint": "aggs", "venue": "polygon", "count": 2}),
    ("polygon", {"kind": "status", "status": 503, "endpoint": "aggs", "venue": "polygon", "count": 2}),
])
def test_faults_in_each_venues_own_format_end_exact(venues_sim, venue_setup, warehouse_url, venue, fault):
    universe, defs, instance = venue_setup
    exchange, symbol, interval, day = next(c for c in CASES if c[0] == venue)
    venues_sim.reconfigure({"faults": [fault]})
    meta = materialize(defs, instance, interval, f"{exchange}.{symbol.replace('/', '-')}", day)
    assert stored(warehouse_url, exchange, symbol, interval, day).equals(truth(venues_sim, venue, symbol, interval, day, now_ms()))
    assert meta["retries"] >= 1 and venues_sim.stats[f"{venue}.ban"] == 0
    if fault["kind"] == "rate_limit":
        assert meta["rate_limit_waits"] >= 1


def test_the_polygon_key_appears_in_no_log_event_or_error(venues_sim, venue_setup, warehouse_url, caplog):
    universe, defs, instance = venue_setup
    venues_sim.reconfigure({"faults": [{"kind": "status", "status": 503, "endpoint": "aggs", "venue": "polygon", "count": 1}]})
    caplog.set_level(logging.DEBUG)
    materialize(defs, instance, "1m", "polygon.AAPL", EARLY_CLOSE)
    wrong = universe.exchanges["polygon"].model_copy(update={"api_key_env": "OHLCV_TEST_WRONG_KEY"})
    import os
    os.environ["OHLCV_TEST_WRONG_KEY"] = POLYGON_KEY + "-revoked"
    try:
        with pytest.raises(Exception) as failed:
            build_source("polygon", wrong).check_symbol("AAPL")
    finally:
        del os.environ["OHLCV_TEST_WRONG_KEY"]
    assert "401" in str(failed.value) and POLYGON_KEY not in str(failed.value)
    records = instance.get_event_records(dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION))
    everything = [str(r.event_log_entry) for r in records]
    everything += [str(e) for e in instance.all_logs(instance.get_runs()[0].run_id)]
    everything += [r.getMessage() for r in caplog.records]
    assert everything and not any(POLYGON_KEY in text for text in everything)


@pytest.mark.parametrize("warehouse_url", ["postgresql"], indirect=True)  # about pools, not the warehouse: a minute of CI each
def test_one_run_over_several_venues_holds_each_venues_pool_only_while_calling_it(venues_sim, venue_setup, warehouse_url):
    """Today's run covers every venue's instruments; with Kraken's pool full it writes Coinbase's
    day, waits for a Kraken slot without holding Coinbase's, and ends exact once one frees."""
    universe, defs, instance = venue_setup
    storage = instance.event_log_storage
    storage.set_concurrency_slots("exchange/kraken", 1)
    storage.set_concurrency_slots("exchange/coinbase", 1)
    assert storage.claim_concurrency_slot("exchange/kraken", "another-run", "candles_1h").is_claimed
    first, last = partition_key("kraken.BTC-USD", PLAIN_DAY), partition_key("polygon.AAPL", PLAIN_DAY)  # in registration order
    results = []
    runner = threading.Thread(target=lambda: results.append(dg.materialize(
        [defs.get_assets_def(candles_key("1h"))], instance=instance, resources=defs.resources,
        tags={RANGE_START_TAG: first, RANGE_END_TAG: last})))
    runner.start()
    deadline = time.monotonic() + 180  # a loaded CI machine took a minute to get there
    while not storage.get_concurrency_info("exchange/kraken").pending_step_count and time.monotonic() < deadline:
        time.sleep(0.2)
    assert storage.get_concurrency_info("exchange/kraken").pending_step_count == 1  # the run waits for Kraken
    assert len(stored(warehouse_url, "coinbase", "BTC/USD", "1h", PLAIN_DAY)) > 0  # after writing Coinbase's day
    assert stored(warehouse_url, "kraken", "BTC/USD", "1h", PLAIN_DAY).empty
    assert storage.get_concurrency_info("exchange/coinbase").active_slot_count == 0  # and holding no Coinbase slot
    storage.free_concurrency_slot_for_step("another-run", "candles_1h")
    runner.join(300)
    assert results and results[0].success
    for exchange, symbol in (("coinbase", "BTC/USD"), ("kraken", "BTC/USD")):
        assert stored(warehouse_url, exchange, symbol, "1h", PLAIN_DAY).equals(truth(venues_sim, exchange, symbol, "1h", PLAIN_DAY, now_ms()))
    assert storage.get_concurrency_info("exchange/kraken").active_slot_count == 0


@pytest.mark.parametrize("exchange", ["kraken", "coinbase"])
def test_a_delisted_instrument_keeps_its_history_and_expects_nothing_after_its_last_candle(venues_sim, venue_setup, warehouse_url, exchange):
    """The venue marks OLD/USD inactive (ccxt ``active: False``): the days it traded are still
    fetched exact, the delisting day expects its first 12 hours, later days ask nothing and pass,
    and nothing (freshness, status, alerts) waits for new candles."""
    universe, defs, instance = venue_setup
    before = materialize(defs, instance, "1h", f"{exchange}.OLD-USD", DELIST_DAY - dt.timedelta(days=1))
    assert before["delisted"] == f"{DELIST_DAY}T12:00:00Z" and before["candles_new"] == 24
    day = materialize(defs, instance, "1h", f"{exchange}.OLD-USD", DELIST_DAY)
    for d in (DELIST_DAY - dt.timedelta(days=1), DELIST_DAY):
        assert stored(warehouse_url, exchange, "OLD/USD", "1h", d).equals(truth(venues_sim, exchange, "OLD/USD", "1h", d, now_ms()))
    assert day["expected_candles"] == day["candles_fetched"] == 12 and day["quality_completeness"] == 1.0
    candles_endpoint = f"requests.{exchange}." + ("OHLC" if exchange == "kraken" else "candles")
    candle_requests = venues_sim.stats[candles_endpoint]
    after = materialize(defs, instance, "1h", f"{exchange}.OLD-USD", DELIST_DAY + dt.timedelta(days=2))
    assert "delisted" in after["note"] and after["expected_candles"] == 0 and after.get("candles_fetched", 0) == 0
    assert after["quality_freshness"] == 1.0 and after["quality_completeness"] == 1.0
    assert venues_sim.stats[candles_endpoint] == candle_requests + 1  # the last candle served, asked once per run
    wh = Warehouse(warehouse_url)
    try:
        [row] = [r for r in instrument_rows(universe, wh, None, now_ms()) if (r["exchange"], r["symbol"]) == (exchange, "OLD/USD")]
        result = scan(build_source(exchange, universe.exchanges[exchange]), wh, universe.instrument(f"{exchange}.OLD-USD"), "1h",
                      now_ms(), universe.refresh_minutes)
    finally:
        wh.dispose()
    assert row["freshness"] == "delisted" and row["delisted"] == f"{DELIST_DAY}T12:00:00Z"
    assert not row["open_gaps"]  # nothing after the last candle is missing
    assert all(g.end_ms <= day_bounds_ms(DELIST_DAY)[0] + 12 * HOUR_MS for g in result.gaps)


def test_an_instrument_gone_from_the_venues_markets_keeps_its_candles_and_stops_failing(venues_sim, venue_setup, warehouse_url):
    universe, defs, instance = venue_setup
    materialize(defs, instance, "1h", "kraken.OLD-USD", DELIST_DAY)
    venues_sim.reconfigure({"unlisted": ["OLDUSD"]})
    kept = stored(warehouse_url, "kraken", "OLD/USD", "1h", DELIST_DAY)
    for day in (DELIST_DAY + dt.timedelta(days=1), DELIST_DAY - dt.timedelta(days=2)):
        meta = materialize(defs, instance, "1h", "kraken.OLD-USD", day)
        assert "no longer lists it" in meta["note"] and meta["delisted"] == f"{DELIST_DAY}T12:00:00Z"
    assert stored(warehouse_url, "kraken", "OLD/USD", "1h", DELIST_DAY).equals(kept) and len(kept) == 12
    with pytest.raises(dg.Failure, match="does not list"):  # never stored: a wrong symbol
        materialize(defs, instance, "1h", "coinbase.OLD-USD", DELIST_DAY)


def test_a_delisted_ticker_ends_at_polygons_delisted_utc(venues_sim, venue_setup, warehouse_url):
    universe, defs, instance = venue_setup
    day = materialize(defs, instance, "1h", "polygon.GONE", dt.date(2025, 11, 26))
    assert day["delisted"] == "2025-11-26T16:00:00Z"
    assert day["expected_candles"] == day["candles_fetched"] == 2  # the session opened 14:30 UTC: the 14:00 and 15:00 hours
    assert materialize(defs, instance, "1h", "polygon.GONE", dt.date(2025, 12, 1))["expected_candles"] == 0


@pytest.mark.parametrize("exchange,symbol,day,hours", [
    ("coinbase", "BTC/USD", PLAIN_DAY, 24),
    ("polygon", "AAPL", dt.date(2025, 11, 26), 7),  # 14:30-21:00 UTC: the 14:00 hour holds the session's first half hour
])
def test_hours_are_compared_with_the_minutes_a_venue_that_omits_quiet_ones_aggregates(venues_sim, venue_setup, exchange, symbol, day, hours):
    """Kraken, Coinbase and Polygon build an hour from the minutes that traded: every hour whose
    minutes are all stored or confirmed without trades (or outside the session) is compared."""
    universe, defs, instance = venue_setup
    key = f"{exchange}.{symbol.replace('/', '-')}"
    materialize(defs, instance, "1m", key, day)
    result = dg.materialize([defs.get_assets_def(candles_key("1h"))], partition_key=partition_key(key, day),
                            instance=instance, resources=defs.resources)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "consistent_with_1m"]
    assert check.passed and check.metadata["detail"].value == f"{hours} candles compared"


def test_equity_features_across_the_night_and_a_warm_up_that_spans_a_week(venues_sim, venue_setup, warehouse_url):
    """Across a session boundary features behave as across a crypto gap: the session's first
    candle counts the night's grid minutes in ``gap_candles`` and its ``return_1`` spans the night;
    ``vwap_day`` starts again with the session. 1,000 1m candles of NYSE reach back up to 7 days, so
    a features day depends on the candles of that many days (the automation recomputes them all)."""
    universe, defs, instance = venue_setup
    night_before, day = dt.date(2025, 11, 26), EARLY_CLOSE  # Thanksgiving between them
    for d in (night_before, day):
        materialize(defs, instance, "1m", "polygon.AAPL", d)
    result = dg.materialize([defs.get_assets_def(features_key("1m"))], partition_key=partition_key("polygon.AAPL", day),
                            instance=instance, resources=defs.resources)
    assert result.success
    wh = Warehouse(warehouse_url)
    try:
        features = wh.read_rows(candle_features, "polygon", "AAPL", "1m", *day_bounds_ms(day))
        candles = wh.read_candles("polygon", "AAPL", "1m", day_bounds_ms(night_before)[0], day_bounds_ms(day)[1])
    finally:
        wh.dispose()
    first = features.iloc[0]
    before = candles[candles["open_time"] < first["open_time"]].iloc[-1]
    opening = candles[candles["open_time"] == first["open_time"]].iloc[0]
    assert first["gap_candles"] == (first["open_time"] - before["open_time"]) // MINUTE_MS - 1 > 17 * 60
    assert first["return_1"] == pytest.approx(opening["close"] / before["close"] - 1, rel=1e-12)
    assert first["vwap_day"] == pytest.approx((opening["high"] + opening["low"] + opening["close"]) / 3, rel=1e-12)
    assert (features["gap_candles"].iloc[1:] <= 2).all()  # inside the session only a quiet minute or two
    def lookback(universe) -> int:
        days = warmup_mapping(universe, "1m").downstream_mappings_by_upstream_dimension[DAY].partition_mapping
        return -days.start_offset

    assert lookback(universe) == 7  # polygon's sessions decide for the 1m features of this universe
    crypto = universe.model_copy(update={"instruments": [i for i in universe.instruments if i.exchange != "polygon"]})
    assert lookback(crypto) == 1


def test_coinbase_listing_is_searched_so_days_before_it_are_before_listing(venues_sim, venue_setup, warehouse_url):
    """Coinbase answers only fixed 300-candle windows, so the listing is searched (daily pages from
    2015): days before it are reported without candle requests and scanned as before_listing, not
    as an outage."""
    universe, defs, instance = venue_setup
    listed = TODAY - dt.timedelta(days=4)
    early = materialize(defs, instance, "1h", "coinbase.FRESH-USD", TODAY - dt.timedelta(days=5))
    assert "before listing" in early["note"] and f"{listed}T00:00:00Z" in early["note"]
    assert venues_sim.stats["requests.coinbase.candles"] <= 16  # the search: 15 daily pages (2015 to now) and an hourly one
    first = materialize(defs, instance, "1h", "coinbase.FRESH-USD", listed)
    assert first["candles_new"] == first["expected_candles"] == 24, first
    asked = venues_sim.stats["requests.coinbase.candles"]
    materialize(defs, instance, "1h", "coinbase.FRESH-USD", listed + dt.timedelta(days=1))
    assert venues_sim.stats["requests.coinbase.candles"] == asked + 1  # stored candles prove the listing: one page, no search
    source = build_source("coinbase", universe.exchanges["coinbase"])
    wh = Warehouse(warehouse_url)
    try:
        result = scan(source, wh, universe.instrument("coinbase.FRESH-USD"), "1h", now_ms(), universe.refresh_minutes)
    finally:
        wh.dispose()
    start = day_bounds_ms(TODAY - dt.timedelta(days=6))[0]
    assert [(g.start_ms, g.end_ms, g.reason) for g in result.gaps if g.start_ms < day_bounds_ms(listed)[0]] == [
        (start, day_bounds_ms(listed)[0], "before_listing")]


def test_polygon_bars_are_split_adjusted_unless_the_universe_asks_for_bars_as_traded(venues_sim, venue_setup):
    universe, _, _ = venue_setup
    adjusted = build_source("polygon", universe.exchanges["polygon"])
    traded = build_source("polygon", universe.exchanges["polygon"].model_copy(update={"options": {"adjusted": False}}))
    for day, ratio in ((dt.date(2025, 11, 26), 4), (dt.date(2025, 12, 1), 1)):  # a 4:1 split on 2025-11-28
        start, end = day_bounds_ms(day)
        a, t = (s.fetch_page("SPLT", "1h", start, end - HOUR_MS) for s in (adjusted, traded))
        assert len(a) == len(t) > 0 and (a[:, 0] == t[:, 0]).all()
        assert t[:, 4] == pytest.approx(ratio * a[:, 4], rel=1e-12)  # closes


@pytest.mark.parametrize("exchange,symbol,interval,day", CASES[:3])
def test_what_each_venue_gives_beyond_ohlcv_is_stored(venues_sim, venue_setup, warehouse_url, exchange, symbol, interval, day):
    """Kraken's vwap and trade count and Polygon's vw and n are kept; Coinbase gives neither (NULL)."""
    universe, defs, instance = venue_setup
    materialize(defs, instance, interval, f"{exchange}.{symbol.replace('/', '-')}", day)
    wh = Warehouse(warehouse_url)
    try:
        stored_rows = wh.read_candles(exchange, symbol, interval, *day_bounds_ms(day), extras=True)
    finally:
        wh.dispose()
    start, end = day_bounds_ms(day)
    now = now_ms()
    step = interval_ms(interval)
    sim = venues_sim.market.candles(venues_sim.config.symbols[symbol.replace("/", "")], step, start, min(end, now // step * step),
                                    now, omit_empty=True, venue=exchange)
    assert len(stored_rows) == len(sim) > 0
    if exchange == "coinbase":
        assert stored_rows[["quote_volume", "trades", "vwap"]].isna().all().all()
        return
    assert (stored_rows["trades"].to_numpy() == sim.trades).all()
    assert stored_rows["vwap"].to_numpy() == pytest.approx(sim.vwap_ticks() / 100, abs=1e-4)
    assert stored_rows[["quote_volume", "taker_buy_volume"]].isna().all().all()  # Binance's columns


@pytest.mark.parametrize("exchange,symbol", [("kraken", "BTC/USD"), ("coinbase", "BTC/USD")])
def test_today_stores_only_closed_candles_though_the_venue_sends_the_forming_one(venues_sim, venue_setup, warehouse_url, exchange, symbol):
    universe, defs, instance = venue_setup
    today = utc_day(now_ms())
    meta = materialize(defs, instance, "1h", f"{exchange}.{symbol.replace('/', '-')}", today)
    now = now_ms()
    rows = stored(warehouse_url, exchange, symbol, "1h", today)
    assert rows.equals(truth(venues_sim, exchange, symbol, "1h", today, now))
    assert len(rows) > 0 or now - day_bounds_ms(today)[0] < HOUR_MS  # in the day's first hour, none is closed yet
    assert len(rows) == 0 or rows["open_time"].iloc[-1] + HOUR_MS <= now  # the forming hour was served and left out
    assert "day still in progress" in meta["note"]


REFUSALS = [  # exchange, symbol, interval, a day stored before, the day asked with the key refused, simulator change, the venue's words
    ("kraken", "BTC/USD", "1h", PLAIN_DAY, PLAIN_DAY + dt.timedelta(days=1),
     {"faults": [{"kind": "auth", "venue": "kraken", "endpoint": "*", "every": 1}]}, "EAPI:Invalid key"),
    ("coinbase", "BTC/USD", "1h", PLAIN_DAY, PLAIN_DAY + dt.timedelta(days=1),
     {"faults": [{"kind": "auth", "venue": "coinbase", "endpoint": "*", "every": 1}]}, "Unauthorized."),
    ("polygon", "AAPL", "1h", dt.date(2025, 11, 26), EARLY_CLOSE,  # the key revoked: Polygon no longer knows it
     {"venues": {"polygon": {"api_key": POLYGON_KEY + "-rotated"}}}, "Unknown API Key"),
    ("polygon", "AAPL", "1h", dt.date(2025, 11, 26), EARLY_CLOSE,  # the key valid, its plan not entitled to the data
     {"faults": [{"kind": "auth", "status": 403, "venue": "polygon", "endpoint": "*", "every": 1}]}, "not entitled"),
]


@pytest.mark.parametrize("exchange,symbol,interval,stored_day,day,change,words", REFUSALS)
def test_a_refused_key_fails_the_run_at_once_and_is_never_a_delisting(venues_sim, venue_setup, warehouse_url, tmp_path,
                                                                       exchange, symbol, interval, stored_day, day, change, words):
    """An instrument with stored candles, asked with credentials the venue refuses (each venue's
    own form: Kraken's EAPI:Invalid key with HTTP 200, Coinbase's 401, Polygon's 401 and its 403
    NOT_AUTHORIZED): the run fails on its first attempt, after one request, with the venue's
    words and no key; it writes no candle and no delisting, tells run retries not to relaunch it,
    and the health report says authentication failed."""
    universe, defs, instance = venue_setup
    instrument = f"{exchange}.{symbol.replace('/', '-')}"
    materialize(defs, instance, interval, instrument, stored_day)
    venues_sim.reconfigure({**change, "reset_stats": True})
    fresh = build_definitions(str(tmp_path / "universe.yaml"), warehouse_url)  # a new process would load the markets again
    result = dg.materialize([fresh.get_assets_def(candles_key(interval))], partition_key=partition_key(instrument, day),
                            instance=instance, resources=fresh.resources, raise_on_error=False)
    assert not result.success
    kinds = [e.event_type for e in result.all_events]
    assert kinds.count(dg.DagsterEventType.STEP_FAILURE) == 1 and dg.DagsterEventType.STEP_UP_FOR_RETRY not in kinds
    venue = "coinbase" if exchange == "coinbase" else exchange
    assert sum(v for k, v in venues_sim.stats.items() if k.startswith(f"requests.{venue}.")) == 1  # no request retried
    [failure] = [e.step_failure_data for e in result.all_events if e.is_step_failure]
    cause = failure.user_failure_data.description
    assert cause.startswith(f"{exchange}: authentication failed:") and words in cause, cause
    assert instance.get_run_by_id(result.run_id).tags.get("dagster/retry_on_asset_or_op_failure") == "false"
    wh = Warehouse(warehouse_url)
    try:
        assert delistings.delisted(wh) == {}
        assert wh.read_candles(exchange, symbol, interval, *day_bounds_ms(day)).empty
        assert len(wh.read_candles(exchange, symbol, interval, *day_bounds_ms(stored_day))) > 0
        report = health(universe, wh, None, None)
    finally:
        wh.dispose()
    assert report[f"exchange {exchange}"].startswith("FAIL authentication failed:") and words in report[f"exchange {exchange}"]
    everything = [cause, *report.values(), *(str(e) for e in instance.all_logs(result.run_id))]
    assert not any(POLYGON_KEY in text for text in everything)
