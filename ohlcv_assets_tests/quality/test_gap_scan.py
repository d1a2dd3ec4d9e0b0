"""Scanning stored candles against the simulator: each gap classified, recorded, and never re-asked
when the exchange confirmed it empty."""

import datetime as dt

import numpy as np

from ohlcv_assets.archive.formats import archive_signature
from ohlcv_assets.exchange.ccxt_source import CcxtCandleSource
from ohlcv_assets.quality.gap_scan import scan
from ohlcv_assets.core.gaps import BEFORE_LISTING, BEYOND_HISTORY, EXCHANGE_DOWNTIME, FILLABLE, Gap, fillable_from_archive
from ohlcv_assets.core.intervals import MINUTE_MS, day_bounds_ms
from ohlcv_assets.core.universe import ArchiveConfig, ExchangeConfig, parse_universe
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.schema import candles, gaps
from ohlcv_assets_tests.helpers import DOWNTIME_DAY, PLAIN_DAY, ingest_day

PLAIN_DAY_AFTER = PLAIN_DAY + dt.timedelta(days=10)

HOUR = 60 * MINUTE_MS
DAY_PLUS_HALF = 36 * HOUR + 30_000  # "now": the middle of the day after the downtime day
REFRESH_MINUTES = 10


def store_days(source, warehouse, instrument, interval, days, now):
    for day in days:
        ingest_day(source, warehouse, instrument, interval, day, now)


def delete(warehouse, symbol, interval, start, end):
    with warehouse.engine.begin() as conn:
        conn.execute(candles.delete().where(candles.c.symbol == symbol, candles.c.timeframe == interval,
                                            candles.c.open_time >= start, candles.c.open_time < end))


def test_deleted_rows_and_downtime_are_told_apart_and_the_forming_candle_is_not_expected(simulator, universe, warehouse):
    instrument = universe.instrument("binance.BTC-USDT").model_copy(update={"start": DOWNTIME_DAY - dt.timedelta(days=1)})
    source = CcxtCandleSource("binance", universe.exchanges["binance"])
    day_start = day_bounds_ms(DOWNTIME_DAY)[0]
    now = day_start + DAY_PLUS_HALF
    simulator.reconfigure({"frozen_now_ms": now})
    store_days(source, warehouse, instrument, "1m", [DOWNTIME_DAY - dt.timedelta(days=1), DOWNTIME_DAY, DOWNTIME_DAY + dt.timedelta(days=1)], now)
    delete(warehouse, "BTC/USDT", "1m", day_start + 10 * HOUR, day_start + 10 * HOUR + 7 * MINUTE_MS)
    delete(warehouse, "BTC/USDT", "1m", day_start - HOUR, day_start - HOUR + MINUTE_MS)

    result = scan(source, warehouse, instrument, "1m", now, REFRESH_MINUTES)
    found = [(g.start_ms, g.end_ms, g.reason) for g in result.gaps]
    assert found == [
        (day_start - HOUR, day_start - HOUR + MINUTE_MS, FILLABLE),
        (day_start + 5 * HOUR, day_start + 6 * HOUR + 30 * MINUTE_MS, EXCHANGE_DOWNTIME),
        (day_start + 10 * HOUR, day_start + 10 * HOUR + 7 * MINUTE_MS, FILLABLE),
    ]
    assert result.expected - result.present == 1 + 90 + 7
    records = gap_records.instrument_gaps(warehouse, "binance", "BTC/USDT", "1m")
    assert [(r.reason, r.status, r.candles) for r in records] == [
        (FILLABLE, "detected", 1), (EXCHANGE_DOWNTIME, "confirmed_empty", 90), (FILLABLE, "detected", 7)]

    store_days(source, warehouse, instrument, "1m", [DOWNTIME_DAY - dt.timedelta(days=1), DOWNTIME_DAY], now)
    before = simulator.stats["requests.klines"]
    again = scan(CcxtCandleSource("binance", universe.exchanges["binance"]), warehouse, instrument, "1m", now,
                 REFRESH_MINUTES)
    assert simulator.stats["requests.klines"] - before == 1  # the listing question only: downtime is never re-asked
    assert [g.reason for g in again.gaps] == [EXCHANGE_DOWNTIME]
    statuses = {(r.reason, r.candles): r.status for r in gap_records.instrument_gaps(warehouse, "binance", "BTC/USDT", "1m")}
    assert statuses == {(FILLABLE, 1): "filled", (EXCHANGE_DOWNTIME, 90): "confirmed_empty", (FILLABLE, 7): "filled"}



def test_before_listing_and_beyond_history_are_unfillable(simulator, universe, warehouse):
    """A venue serving only its latest N candles (Kraken: 720) shows the listing only while it is
    within reach; older candles are beyond its history, whenever the symbol listed."""
    instrument = universe.instrument("binance.LATE-USDT").model_copy(update={"start": dt.date(2026, 10, 11)})
    now = day_bounds_ms(dt.date(2026, 10, 12))[0] + 5 * HOUR
    simulator.reconfigure({"frozen_now_ms": now})
    listed = day_bounds_ms(dt.date(2026, 10, 12))[0]
    reach = CcxtCandleSource("binance", universe.exchanges["binance"].model_copy(update={"history_candles": 8}))
    result = scan(reach, warehouse, instrument, "1h", now, REFRESH_MINUTES)
    assert [(g.start_ms, g.end_ms, g.reason) for g in result.gaps] == [
        (day_bounds_ms(dt.date(2026, 10, 11))[0], listed, BEFORE_LISTING),
        (listed, now - HOUR, FILLABLE),  # the candle that closed at `now` is not settled yet
    ]
    assert result.expected == 4
    assert {r.reason: r.status for r in gap_records.instrument_gaps(warehouse, "binance", "LATE/USDT", "1h")} == {
        BEFORE_LISTING: "unfillable", FILLABLE: "detected"}
    short = CcxtCandleSource("binance", universe.exchanges["binance"].model_copy(update={"history_candles": 3}))
    result = scan(short, warehouse, instrument.model_copy(update={"start": dt.date(2026, 10, 12)}), "1h", now, REFRESH_MINUTES)
    assert [(g.start_ms, g.end_ms, g.reason) for g in result.gaps] == [
        (listed, now - 2 * HOUR, BEYOND_HISTORY),  # the latest 3 candles (the forming one counts) open from now - 2h
        (now - 2 * HOUR, now - HOUR, FILLABLE),
    ]
    assert BEYOND_HISTORY in {r.reason for r in gap_records.instrument_gaps(warehouse, "binance", "LATE/USDT", "1h")
                              if r.status == "unfillable"}


def test_beyond_history_is_one_record_as_the_horizon_moves_and_settled_once_stored(simulator, universe, warehouse):
    """Each hour the venue's history starts an hour later: the scan's beyond-history range grows and
    its record is replaced, not added to (the status sums the records), and once those candles are
    stored (an archive, an import) the record is settled as filled."""
    instrument = universe.instrument("binance.LATE-USDT").model_copy(update={"start": dt.date(2026, 10, 12)})
    short = CcxtCandleSource("binance", universe.exchanges["binance"].model_copy(update={"history_candles": 3}))
    listed = day_bounds_ms(dt.date(2026, 10, 12))[0]
    for hours in (5, 6, 7):
        now = listed + hours * HOUR
        simulator.reconfigure({"frozen_now_ms": now})
        scan(short, warehouse, instrument, "1h", now, REFRESH_MINUTES)
    unfillable = [r for r in gap_records.instrument_gaps(warehouse, "binance", "LATE/USDT", "1h") if r.status == "unfillable"]
    assert [(r.reason, r.start_ms, r.end_ms) for r in unfillable] == [(BEYOND_HISTORY, listed, now - 2 * HOUR)]
    ingest_day(CcxtCandleSource("binance", universe.exchanges["binance"]), warehouse, instrument, "1h", dt.date(2026, 10, 12), now)
    scan(short, warehouse, instrument, "1h", now, REFRESH_MINUTES)
    records = gap_records.instrument_gaps(warehouse, "binance", "LATE/USDT", "1h")
    assert not [r for r in records if r.status == "unfillable"]
    assert [r.status for r in records if (r.reason, r.start_ms, r.end_ms) == (BEYOND_HISTORY, listed, now - 2 * HOUR)] == ["filled"]


def test_with_an_archive_what_rest_no_longer_serves_is_one_fillable_gap(simulator, universe, warehouse):
    """The same venue with an archive: its days beyond the REST history are fillable (a backfill
    reads the archive), joined to the fillable gap they touch, so the record holds still as the
    horizon moves; a beyond-history record of an earlier scan is superseded, not left counting."""
    instrument = universe.instrument("binance.LATE-USDT").model_copy(update={"start": dt.date(2026, 10, 12)})
    config = universe.exchanges["binance"].model_copy(update={"history_candles": 3})
    archived = config.model_copy(update={"archive": ArchiveConfig(url=f"{simulator.url}/archive/binance")})
    listed = day_bounds_ms(dt.date(2026, 10, 12))[0]
    now = listed + 5 * HOUR
    simulator.reconfigure({"frozen_now_ms": now})
    scan(CcxtCandleSource("binance", config), warehouse, instrument, "1h", now, REFRESH_MINUTES)
    for hours in (5, 6):
        now = listed + hours * HOUR
        simulator.reconfigure({"frozen_now_ms": now})
        result = scan(CcxtCandleSource("binance", archived), warehouse, instrument, "1h", now, REFRESH_MINUTES)
        assert [(g.start_ms, g.end_ms, g.reason) for g in result.gaps] == [(listed, now - HOUR, FILLABLE)]
    records = gap_records.instrument_gaps(warehouse, "binance", "LATE/USDT", "1h")
    assert [(r.reason, r.status) for r in records if r.status not in ("superseded", "filled")] == [(FILLABLE, "detected")]
    assert [r.start_ms for r in gap_records.due_for_backfill(warehouse, now, 10)] == [listed]


def give_up(warehouse, now):
    for attempt in range(gap_records.MAX_BACKFILL_ATTEMPTS):
        [record] = gap_records.due_for_backfill(warehouse, now + 10**12, 10)
        gap_records.mark_requested(warehouse, [record.id], f"r{attempt}", now)
        gap_records.mark_backfill_finished(warehouse, gap_records.in_flight(warehouse), True, "days beyond history", now)
    assert gap_records.due_for_backfill(warehouse, now + 10**12, 10) == []


def test_a_gap_given_up_is_tried_again_when_the_archive_setting_changes(simulator, universe, warehouse):
    """Backfills that could not fill a gap from the archive give it up; the same archive setting
    leaves it so, another one (a quarterly zip added, a mirror) makes it due again, once."""
    instrument = universe.instrument("binance.LATE-USDT").model_copy(update={"start": dt.date(2026, 10, 12)})
    config = universe.exchanges["binance"].model_copy(update={"history_candles": 3})
    archived = config.model_copy(update={"archive": ArchiveConfig(url=f"{simulator.url}/archive/binance")})
    mirrored = config.model_copy(update={"archive": ArchiveConfig(url=f"{simulator.url}/archive/binance/")})
    listed = day_bounds_ms(dt.date(2026, 10, 12))[0]
    now = listed + 5 * HOUR
    simulator.reconfigure({"frozen_now_ms": now})
    scan(CcxtCandleSource("binance", archived), warehouse, instrument, "1h", now, REFRESH_MINUTES)
    give_up(warehouse, now)
    [record] = [r for r in gap_records.instrument_gaps(warehouse, "binance", "LATE/USDT", "1h") if r.status == "unfillable"]
    assert (record.reason, record.start_ms) == (FILLABLE, listed) and "gave up" in record.note

    result = scan(CcxtCandleSource("binance", archived), warehouse, instrument, "1h", now, REFRESH_MINUTES)
    assert result.changes["tried_again"] == 0 and gap_records.due_for_backfill(warehouse, now, 10) == []
    result = scan(CcxtCandleSource("binance", mirrored), warehouse, instrument, "1h", now, REFRESH_MINUTES)
    assert result.changes["tried_again"] == 1
    [due] = gap_records.due_for_backfill(warehouse, now, 10)
    assert (due.id, due.status, due.attempts) == (record.id, "detected", 0) and "archive changed" in due.note
    again = scan(CcxtCandleSource("binance", mirrored), warehouse, instrument, "1h", now, REFRESH_MINUTES)
    assert again.changes["tried_again"] == 0 and again.changes["new"] == 0
    assert [r.id for r in gap_records.due_for_backfill(warehouse, now, 10)] == [record.id]


def test_a_gap_given_up_before_archive_signatures_adopts_the_setting_without_a_retry(warehouse):
    gap = Gap(0, 10 * MINUTE_MS, FILLABLE)
    gap_records.reconcile(warehouse, "binance", "BTC/USDT", "1m", [gap], MINUTE_MS, 1000, "a")
    give_up(warehouse, 1000)
    with warehouse.engine.begin() as conn:  # as the migration leaves a record written before it
        conn.execute(gaps.update().values(archive_signature=None))
    assert gap_records.reconcile(warehouse, "binance", "BTC/USDT", "1m", [gap], MINUTE_MS, 2000, "b")["tried_again"] == 0
    [record] = gap_records.instrument_gaps(warehouse, "binance", "BTC/USDT", "1m")
    assert (record.status, record.archive_signature) == ("unfillable", "b")
    assert gap_records.reconcile(warehouse, "binance", "BTC/USDT", "1m", [gap], MINUTE_MS, 3000, "")["tried_again"] == 1


def kraken_with_archive(url) -> ExchangeConfig:
    text = f"""
exchanges:
  kraken: {{ccxt_id: kraken, archive: {{url: {url!r}}}}}
instruments:
  - {{exchange: kraken, symbol: BTC/USD, intervals: [1h], start: 2024-01-01}}
"""
    return parse_universe(text).exchanges["kraken"]


def test_a_gap_given_up_is_tried_again_when_a_zip_is_added_to_a_listed_directory(tmp_path, warehouse):
    """Kraken publishes a quarterly zip; the user drops it beside the full one. The setting is the
    same, the archive is not: the given-up gap is tried again, once."""
    zips = tmp_path / "kraken"
    zips.mkdir()
    (zips / "Kraken_OHLCVT.zip").write_bytes(b"full")
    config = kraken_with_archive(str(zips))
    gap = Gap(0, 10 * HOUR, FILLABLE)
    gap_records.reconcile(warehouse, "kraken", "BTC/USD", "1h", [gap], HOUR, 1000, archive_signature(config))
    give_up(warehouse, 1000)
    assert gap_records.reconcile(warehouse, "kraken", "BTC/USD", "1h", [gap], HOUR, 2000, archive_signature(config))["tried_again"] == 0
    (zips / "Kraken_OHLCVT_2026Q3.zip").write_bytes(b"quarter")
    assert gap_records.reconcile(warehouse, "kraken", "BTC/USD", "1h", [gap], HOUR, 3000, archive_signature(config))["tried_again"] == 1
    [due] = gap_records.due_for_backfill(warehouse, 3000, 10)
    assert (due.status, due.attempts) == ("detected", 0) and "archive changed" in due.note
    assert gap_records.reconcile(warehouse, "kraken", "BTC/USD", "1h", [gap], HOUR, 4000, archive_signature(config))["tried_again"] == 0


def test_what_changes_an_archive_signature(tmp_path):
    """Kraken: the setting, and each local zip it names (added, replaced, appearing); a zip given as a
    URL by its URL alone (no request is made). Binance: its setting."""
    full = tmp_path / "Kraken_OHLCVT.zip"
    by_path = kraken_with_archive(str(full))
    absent = archive_signature(by_path)
    full.write_bytes(b"one")
    present = archive_signature(by_path)
    assert present != absent and archive_signature(by_path) == present
    full.write_bytes(b"newer, longer")
    assert archive_signature(by_path) not in (absent, present)
    by_url = kraken_with_archive("http://127.0.0.1:9/Kraken_OHLCVT.zip")
    assert archive_signature(by_url) == archive_signature(kraken_with_archive("http://127.0.0.1:9/Kraken_OHLCVT.zip"))
    assert archive_signature(by_url) != archive_signature(kraken_with_archive("http://127.0.0.1:9/Kraken_OHLCVT_2026Q3.zip"))
    binance = ExchangeConfig(ccxt_id="binance", weight_limit=6000, archive=ArchiveConfig(url="http://127.0.0.1:9/archive"))
    assert archive_signature(binance) == binance.archive.signature()
    assert archive_signature(binance.model_copy(update={"archive": None})) == ""


def test_joining_what_rest_no_longer_serves_keeps_other_gaps_apart():
    """Only a converted range joins its fillable neighbours; fillable gaps that merely touch stay two."""
    gaps = [Gap(0, 10, BEFORE_LISTING), Gap(10, 20, BEYOND_HISTORY), Gap(20, 30, FILLABLE), Gap(30, 40, FILLABLE),
            Gap(50, 60, FILLABLE), Gap(60, 70, EXCHANGE_DOWNTIME)]
    assert fillable_from_archive(gaps) == [Gap(0, 10, BEFORE_LISTING), Gap(10, 40, FILLABLE), Gap(50, 60, FILLABLE),
                                           Gap(60, 70, EXCHANGE_DOWNTIME)]
    assert fillable_from_archive([Gap(0, 10, FILLABLE), Gap(10, 20, FILLABLE)]) == [Gap(0, 10, FILLABLE), Gap(10, 20, FILLABLE)]


def test_failed_backfills_back_off_and_are_given_up(warehouse):
    gap_records.reconcile(warehouse, "binance", "BTC/USDT", "1m", [Gap(0, 10 * MINUTE_MS, FILLABLE)], MINUTE_MS, 1000)
    [record] = gap_records.due_for_backfill(warehouse, 1000, 10)
    now = 1000
    for attempt in range(1, gap_records.MAX_BACKFILL_ATTEMPTS + 1):
        gap_records.mark_requested(warehouse, [record.id], f"r{attempt}", now)
        assert gap_records.due_for_backfill(warehouse, now, 10) == []  # in flight: never requested twice
        [record] = gap_records.in_flight(warehouse)
        gap_records.mark_backfill_finished(warehouse, [record], False, "run failed", now)
        [record] = gap_records.instrument_gaps(warehouse, "binance", "BTC/USDT", "1m")
        if attempt < gap_records.MAX_BACKFILL_ATTEMPTS:
            assert record.status == "detected" and record.next_attempt_ms == now + gap_records.RETRY_BASE_MS * 2 ** (attempt - 1)
            assert gap_records.due_for_backfill(warehouse, record.next_attempt_ms - 1, 10) == []
            now = record.next_attempt_ms
    assert record.status == "unfillable" and "gave up after 5" in record.note
    assert gap_records.due_for_backfill(warehouse, now * 2, 10) == []
    # found again as it is, it stays given up; once its candles are stored (an import, a backfill of
    # its days) it is filled, not left counting as missing
    gap_records.reconcile(warehouse, "binance", "BTC/USDT", "1m", [Gap(0, 10 * MINUTE_MS, FILLABLE)], MINUTE_MS, now)
    assert [r.status for r in gap_records.instrument_gaps(warehouse, "binance", "BTC/USDT", "1m")] == ["unfillable"]
    gap_records.reconcile(warehouse, "binance", "BTC/USDT", "1m", [], MINUTE_MS, now)
    assert [r.status for r in gap_records.instrument_gaps(warehouse, "binance", "BTC/USDT", "1m")] == ["filled"]


def test_each_interval_gets_its_own_due_gaps(warehouse):
    """An interval with many old gaps must not starve another interval's sensor."""
    gap_records.reconcile(warehouse, "binance", "BTC/USDT", "1m", [Gap(n * 10 * MINUTE_MS, (n * 10 + 1) * MINUTE_MS, FILLABLE)
                                                                   for n in range(5)], MINUTE_MS, 1_000)
    gap_records.reconcile(warehouse, "binance", "BTC/USDT", "1h", [Gap(0, HOUR, FILLABLE)], HOUR, 2_000)
    [hourly] = gap_records.due_for_backfill(warehouse, 3_000, 1, "1h")
    assert hourly.timeframe == "1h"
    assert {r.timeframe for r in gap_records.due_for_backfill(warehouse, 3_000, 10, "1m")} == {"1m"}


def test_a_scan_never_chases_the_newest_candle(simulator, universe, warehouse):
    """Minutes that closed after the last write are the today schedule's to fetch: a later scan
    (the clock moved on, nothing written since) finds no new gap, so nothing is backfilled."""
    instrument = universe.instrument("binance.BTC-USDT").model_copy(update={"start": PLAIN_DAY_AFTER})
    source = CcxtCandleSource("binance", universe.exchanges["binance"])
    now = day_bounds_ms(PLAIN_DAY_AFTER)[0] + 9 * HOUR + 30_000
    simulator.reconfigure({"frozen_now_ms": now})
    store_days(source, warehouse, instrument, "1m", [PLAIN_DAY_AFTER], now)
    assert scan(source, warehouse, instrument, "1m", now, REFRESH_MINUTES).gaps == []
    for minutes_later in (1, 5, REFRESH_MINUTES):
        later = now + minutes_later * MINUTE_MS
        simulator.reconfigure({"frozen_now_ms": later})
        assert scan(source, warehouse, instrument, "1m", later, REFRESH_MINUTES).gaps == []
    assert gap_records.instrument_gaps(warehouse, "binance", "BTC/USDT", "1m") == []
    # Once a refresh period has passed with nothing written, the missing candles are real gaps.
    stalled = now + (REFRESH_MINUTES + 3) * MINUTE_MS
    simulator.reconfigure({"frozen_now_ms": stalled})
    result = scan(source, warehouse, instrument, "1m", stalled, REFRESH_MINUTES)
    assert [(g.start_ms, g.end_ms, g.reason) for g in result.gaps] == [
        (now // MINUTE_MS * MINUTE_MS, (stalled - REFRESH_MINUTES * MINUTE_MS) // MINUTE_MS * MINUTE_MS, FILLABLE)]


def test_scattered_gaps_cost_one_request_per_page_and_are_not_asked_twice(simulator, universe, warehouse):
    """500 one-candle gaps over three days: one request per page of candles holding gaps (plus the
    listing question), and a second scan asks nothing about gaps already known to be fillable."""
    first = PLAIN_DAY_AFTER - dt.timedelta(days=3)
    instrument = universe.instrument("binance.BTC-USDT").model_copy(update={"start": first})
    source = CcxtCandleSource("binance", universe.exchanges["binance"])
    now = day_bounds_ms(PLAIN_DAY_AFTER)[0]
    simulator.reconfigure({"frozen_now_ms": now})
    days = [first + dt.timedelta(days=n) for n in range(3)]
    store_days(source, warehouse, instrument, "1m", days, now)
    start = day_bounds_ms(first)[0]
    rng = np.random.default_rng(5)
    deleted = np.sort(rng.choice(3 * 1440, size=500, replace=False)) * MINUTE_MS + start
    with warehouse.engine.begin() as conn:
        conn.execute(candles.delete().where(candles.c.symbol == "BTC/USDT", candles.c.timeframe == "1m",
                                            candles.c.open_time.in_([int(t) for t in deleted])))
    before = simulator.stats["requests.klines"]
    result = scan(source, warehouse, instrument, "1m", now, REFRESH_MINUTES)
    asked = simulator.stats["requests.klines"] - before
    pages_with_gaps = -(-(int(deleted[-1]) - int(deleted[0]) + MINUTE_MS) // (1000 * MINUTE_MS))
    assert {g.reason for g in result.gaps} == {FILLABLE}
    assert sum(g.candles(MINUTE_MS) for g in result.gaps) == 500
    print(f"scan of 500 gaps: {asked} klines requests, {pages_with_gaps} pages hold gaps")
    assert asked <= pages_with_gaps + 1, (asked, pages_with_gaps)  # + 1: the listing question
    before = simulator.stats["requests.klines"]
    again = scan(source, warehouse, instrument, "1m", now, REFRESH_MINUTES)
    assert simulator.stats["requests.klines"] - before <= 1  # at most the listing question (the source may remember it)
    assert again.changes == {"new": 0, "filled": 0, "superseded": 0, "tried_again": 0}


def test_gaps_whose_candles_are_stored_are_settled_without_asking(simulator, universe, warehouse):
    instrument = universe.instrument("binance.BTC-USDT").model_copy(update={"start": PLAIN_DAY_AFTER})
    source = CcxtCandleSource("binance", universe.exchanges["binance"])
    now = day_bounds_ms(PLAIN_DAY_AFTER)[1] + 5 * MINUTE_MS
    simulator.reconfigure({"frozen_now_ms": now})
    store_days(source, warehouse, instrument, "1m", [PLAIN_DAY_AFTER], now)
    day_start = day_bounds_ms(PLAIN_DAY_AFTER)[0]
    delete(warehouse, "BTC/USDT", "1m", day_start + HOUR, day_start + HOUR + 3 * MINUTE_MS)
    delete(warehouse, "BTC/USDT", "1m", day_start + 2 * HOUR, day_start + 2 * HOUR + 2 * MINUTE_MS)
    scan(source, warehouse, instrument, "1m", now, REFRESH_MINUTES)
    records = gap_records.instrument_gaps(warehouse, "binance", "BTC/USDT", "1m")
    assert [r.candles for r in records] == [3, 2]
    before = simulator.stats["weight"]
    store_days(source, warehouse, instrument, "1m", [PLAIN_DAY_AFTER], now)  # e.g. a user's backfill of the day
    delete(warehouse, "BTC/USDT", "1m", day_start + 2 * HOUR, day_start + 2 * HOUR + MINUTE_MS)
    weight_of_ingest = simulator.stats["weight"] - before
    remaining = gap_records.settle_stored(warehouse, records, "test", now)
    assert simulator.stats["weight"] - before == weight_of_ingest  # settling asked the exchange nothing
    assert [r.candles for r in remaining] == [2]
    statuses = [r.status for r in gap_records.instrument_gaps(warehouse, "binance", "BTC/USDT", "1m")]
    assert statuses == ["filled", "detected"]
