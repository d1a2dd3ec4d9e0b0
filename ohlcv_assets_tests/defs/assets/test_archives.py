"""Archives as a candle source: real Dagster runs reading the simulator's Binance and Kraken
archives over HTTP, with REST filling what the files do not hold, on both warehouses."""

import datetime as dt
import re

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.core.intervals import HOUR_MS, MINUTE_MS, day_bounds_ms, interval_ms, now_ms, utc_day
from ohlcv_assets.defs.monitoring import health, instrument_rows
from ohlcv_assets.core.names import RANGE_END_TAG, RANGE_START_TAG, candles_key
from ohlcv_assets.defs.partitions import sync_instrument_partitions
from ohlcv_assets.core.universe import UniverseError, parse_universe
from ohlcv_assets.warehouse import provenance
from ohlcv_assets.warehouse.schema import source_files
from ohlcv_assets.warehouse.store import Warehouse

TODAY = utc_day(now_ms())
ARCHIVE_CONFIG = {
    "seed": 9,
    "symbols": [
        {"base": "BTC", "quote": "USDT", "listed": "2024-12-10", "price": 60000},
        {"base": "BTC", "quote": "USD", "listed": "2024-12-10", "price": 60000, "quiet": 0.05, "venues": ["kraken"]},
    ],
    "venues": {"kraken": {"counter_max": 1000}, "kraken_archive": {"start": "2026-06-01", "intervals": [60]}},
}


def archive_universe(url: str) -> str:
    common = "timeout_seconds: 2, retry_base_seconds: 0.05, weight_limit: 100000, weight_window_seconds: 60"
    return f"""
exchanges:
  binance: {{ccxt_id: binance, api_url: "{url}/api/v3", {common}, archive: {{url: "{url}/archive/binance"}}}}
  kraken: {{ccxt_id: kraken, api_url: "{url}/kraken", {common}, archive: {{url: "{url}/archive/kraken/Kraken_OHLCVT.zip"}}}}
instruments:
  - {{exchange: binance, symbol: BTC/USDT, intervals: [1m, 1h], start: 2024-12-15}}
  - {{exchange: kraken, symbol: BTC/USD, intervals: [1h], start: 2024-12-15}}
"""


def rest_source_of_today() -> str | None:
    """Today's source in a 1h run: REST, once its first hour closed (before that, nothing to fetch)."""
    return "rest" if now_ms() - day_bounds_ms(TODAY)[0] >= HOUR_MS else None


def newest_daily_file_day(sim) -> dt.date:
    """The newest day whose daily file the archive has published: yesterday, once
    ``daily_delay_minutes`` (an hour) have passed since it ended; in that first hour, the day before."""
    delay = float(sim.config.venue("binance_archive").get("daily_delay_minutes", 60)) * MINUTE_MS
    yesterday = TODAY - dt.timedelta(days=1)
    return yesterday if now_ms() >= day_bounds_ms(yesterday)[1] + delay else yesterday - dt.timedelta(days=1)


@pytest.fixture(scope="module")
def archive_sim(simulators):
    return simulators(ARCHIVE_CONFIG)


@pytest.fixture
def archive_setup(archive_sim, tmp_path, warehouse_url):
    archive_sim.reconfigure({"faults": [], "archive_faults": [], "reset_stats": True})
    path = tmp_path / "universe.yaml"
    path.write_text(archive_universe(archive_sim.url))
    universe = parse_universe(path.read_text(), str(path))
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        yield universe, build_definitions(str(path), warehouse_url), instance


def run_range(defs, instance, interval: str, instrument: str, first: dt.date, last: dt.date) -> tuple[dict, dict]:
    """One ranged run; each day's materialization metadata and check evaluations."""
    result = dg.materialize([defs.get_assets_def(candles_key(interval))], instance=instance, resources=defs.resources,
                            tags={RANGE_START_TAG: f"{first}|{instrument}", RANGE_END_TAG: f"{last}|{instrument}"})
    meta = {dt.date.fromisoformat(m.partition.split("|")[0]): {k: v.value for k, v in m.metadata.items()}
            for m in (ev.event_specific_data.materialization for ev in result.get_asset_materialization_events())}
    checks: dict = {}
    for evaluation in result.get_asset_check_evaluations():
        checks.setdefault(dt.date.fromisoformat(evaluation.partition.split("|")[0]), {})[evaluation.check_name] = evaluation
    return meta, checks


def truth(sim, venue: str, symbol: str, interval: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    step, now = interval_ms(interval), now_ms()
    lo, hi = day_bounds_ms(first)[0], min(day_bounds_ms(last)[1], now // step * step)
    arrays = sim.market.candles(sim.config.symbols[symbol.replace("/", "")], step, lo, hi, now, omit_empty=venue not in ("binance", "binanceusdm"),
                                venue=venue)
    return pd.DataFrame(arrays.as_floats())


def stored(warehouse_url: str, exchange: str, symbol: str, interval: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    wh = Warehouse(warehouse_url)
    try:
        return wh.read_candles(exchange, symbol, interval, day_bounds_ms(first)[0], day_bounds_ms(last)[1])
    finally:
        wh.dispose()


def test_history_to_today_is_daily_files_monthly_files_and_rest_and_exact(archive_sim, archive_setup, warehouse_url):
    """The rest of December 2024 from daily files (millisecond times), January and February 2025
    from monthly files (microseconds from 2025); this month's published days from daily files and
    today from REST. Every candle equals the venue's, and each day says where it came from."""
    _, defs, instance = archive_setup
    first, last = dt.date(2024, 12, 15), dt.date(2025, 2, 28)
    meta, _ = run_range(defs, instance, "1h", "binance.BTC-USDT", first, last)
    published, rest = newest_daily_file_day(archive_sim), rest_source_of_today()
    recent, _ = run_range(defs, instance, "1h", "binance.BTC-USDT", TODAY - dt.timedelta(days=2), TODAY)
    for a, b in ((first, last), (TODAY - dt.timedelta(days=2), TODAY)):
        assert stored(warehouse_url, "binance", "BTC/USDT", "1h", a, b).equals(truth(archive_sim, "binance", "BTC/USDT", "1h", a, b))
    assert meta[dt.date(2024, 12, 20)]["archive_file"] == "data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-12-20.zip"
    assert meta[dt.date(2025, 1, 1)]["archive_file"] == "data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2025-01.zip"
    assert len(meta[dt.date(2025, 1, 1)]["archive_sha256"]) == 64
    assert all(m["source"] == "archive" and m["candles_new"] == 24 for m in meta.values())
    assert recent[published]["source"] == "archive" and recent[published]["archive_file"].endswith(f"-{published}.zip")
    assert all(recent[day].get("source") == (rest if day == TODAY else "rest") and "archive_file" not in recent[day]
               for day in recent if day > published)
    assert archive_sim.stats["requests.klines"] == 2  # the listing probe of the first run, and today's page
    wh = Warehouse(warehouse_url)
    try:
        recorded = provenance.sources_of(wh, "binance", "BTC/USDT", "1h")
    finally:
        wh.dispose()
    assert recorded.get(TODAY) == (provenance.DaySource("rest") if rest else None)  # no source before a candle closed
    assert recorded[dt.date(2025, 2, 3)].file.endswith("2025-02.zip")


def test_every_archive_fault_ends_exact_and_says_so(archive_sim, archive_setup, warehouse_url):
    """A file not published, a holey file, a checksum that never matches, one that matches on the
    second download, a truncated zip, a CSV of another format and one holding a candle whose high is
    below its low (both with matching checksums): REST fills each hole, a damaged, unreadable or
    impossible file is never loaded."""
    _, defs, instance = archive_setup
    first, last = dt.date(2025, 3, 3), dt.date(2025, 3, 10)
    archive_sim.reconfigure({"archive_faults": [
        {"kind": "missing", "file": "BTCUSDT-1m-2025-03-03"},
        {"kind": "holey", "file": "BTCUSDT-1m-2025-03-04"},
        {"kind": "bad_checksum", "file": "BTCUSDT-1m-2025-03-05"},
        {"kind": "bad_checksum", "file": "BTCUSDT-1m-2025-03-06", "count": 1},
        {"kind": "truncated", "file": "BTCUSDT-1m-2025-03-07"},
        {"kind": "malformed", "file": "BTCUSDT-1m-2025-03-08"},
        {"kind": "impossible", "file": "BTCUSDT-1m-2025-03-09"},
    ]})
    meta, checks = run_range(defs, instance, "1m", "binance.BTC-USDT", first, last)
    assert stored(warehouse_url, "binance", "BTC/USDT", "1m", first, last).equals(truth(archive_sim, "binance", "BTC/USDT", "1m", first, last))
    assert meta[dt.date(2025, 3, 3)]["source"] == "rest" and "not_published" in meta[dt.date(2025, 3, 3)]["note"]
    assert meta[dt.date(2025, 3, 4)]["source"] == "rest" and "holds 1410 of the day's 1440 candles" in meta[dt.date(2025, 3, 4)]["note"]
    for day in (dt.date(2025, 3, 5), dt.date(2025, 3, 7)):
        assert meta[day]["source"] == "rest" and "checksum_mismatch" in meta[day]["note"]
    assert meta[dt.date(2025, 3, 6)]["source"] == "archive"  # the second download matched
    malformed = meta[dt.date(2025, 3, 8)]
    assert malformed["source"] == "rest" and "unreadable" in malformed["note"] and "13" in malformed["note"]
    impossible = meta[dt.date(2025, 3, 9)]
    assert impossible["source"] == "rest" and "invalid_candles" in impossible["note"] and "high is below" in impossible["note"]
    assert meta[dt.date(2025, 3, 10)]["source"] == "archive" and "note" not in meta[dt.date(2025, 3, 10)]
    assert all(m["candles_new"] == 1440 for m in meta.values())
    assert all(c["completeness"].passed and c["sources_agree"].passed for c in checks.values())
    # six days from REST in two stretches, 3 and 3 days (5 and 5 pages of 1,000), and the listing probe
    assert archive_sim.stats["requests.klines"] == 5 + 5 + 1


def test_a_monthly_file_that_disagrees_with_the_daily_files_is_recorded_and_reported(archive_sim, archive_setup, warehouse_url):
    """April 2025 first from daily files, then the whole month again from its monthly file, which
    differs on five candles: the disagreement is recorded and fails the (warning) sources_agree
    check of that day only; the day is old, so the rule keeps the archive's monthly values."""
    universe, defs, instance = archive_setup
    run_range(defs, instance, "1m", "binance.BTC-USDT", dt.date(2025, 4, 1), dt.date(2025, 4, 29))
    archive_sim.reconfigure({"archive_faults": [{"kind": "disagree", "file": "BTCUSDT-1m-2025-04.zip"}]})
    meta, checks = run_range(defs, instance, "1m", "binance.BTC-USDT", dt.date(2025, 4, 1), dt.date(2025, 4, 30))
    day = dt.date(2025, 4, 1)
    assert meta[day]["archive_file"].endswith("BTCUSDT-1m-2025-04.zip") and meta[day]["sources_disagreeing"] == 5
    assert "kept the archive values" in meta[day]["note"]
    failing = {d for d, c in checks.items() if not c["sources_agree"].passed}
    assert failing == {day} and checks[day]["sources_agree"].severity == dg.AssetCheckSeverity.WARN
    assert meta[dt.date(2025, 4, 30)]["candles_new"] == 1440 and meta[dt.date(2025, 4, 2)]["candles_unchanged"] == 1440
    wh = Warehouse(warehouse_url)
    try:
        [row] = provenance.disagreements(wh, "binance", "BTC/USDT", "1m").to_dict("records")
        held = wh.read_candles("binance", "BTC/USDT", "1m", *day_bounds_ms(day))
        status = {(r["symbol"], r["interval"]): r for r in instrument_rows(universe, wh, None, now_ms())}[("BTC/USDT", "1m")]
    finally:
        wh.dispose()
    assert row["day"] == "2025-04-01" and row["other"].endswith("BTCUSDT-1m-2025-04-01.zip") and row["kept"] == "archive"
    assert row["candles"] == 5 and 1.9 < row["max_diff_pct"] < 2.1
    api = truth(archive_sim, "binance", "BTC/USDT", "1m", day, day)
    assert (held["volume"] != api["volume"]).sum() == 5  # the monthly file's values, as the rule says
    assert status["disagreeing_candles"] == 5 and status["day_sources"] == {"archive": 30}  # what ohlcv-status shows


def test_an_archive_that_cannot_be_reached_is_a_hole_rest_fills_and_is_asked_once_per_run(archive_sim, tmp_path, warehouse_url):
    """The archives' host refuses every connection. Binance: every day from REST, exact, each saying
    why; the host is tried with retries for one file only, the other 22 files are holes at once, not
    another round of retries each. Kraken: the run still ends, its older days beyond history with the
    archive named, not a failed run."""
    archive_sim.reconfigure({"faults": [], "archive_faults": [], "reset_stats": True})
    path = tmp_path / "universe.yaml"
    path.write_text(archive_universe(archive_sim.url).replace(f"{archive_sim.url}/archive/", "http://127.0.0.1:1/archive/"))
    universe = parse_universe(path.read_text(), str(path))
    first, last = dt.date(2025, 5, 20), dt.date(2025, 7, 10)  # 12 daily files, June's monthly file, 10 daily files
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        defs = build_definitions(str(path), warehouse_url)
        meta, checks = run_range(defs, instance, "1h", "binance.BTC-USDT", first, last)
        kraken, _ = run_range(defs, instance, "1h", "kraken.BTC-USD", TODAY - dt.timedelta(days=40), TODAY - dt.timedelta(days=1))
    assert stored(warehouse_url, "binance", "BTC/USDT", "1h", first, last).equals(truth(archive_sim, "binance", "BTC/USDT", "1h", first, last))
    assert all(m["source"] == "rest" and "download_failed" in m["note"] and "127.0.0.1:1" in m["note"] for m in meta.values())
    assert all(c["completeness"].passed for c in checks.values())
    files = {m["note"].split(":")[0] for m in meta.values()}
    retried = {m["note"].split(":")[0] for m in meta.values() if "not tried" not in m["note"]}
    assert len(files) == 23 and len(retried) == 1, retried
    assert all("127.0.0.1:1 is not asked again in this run" in m["note"] and m["note"].endswith("; fetched from REST")
               for m in meta.values())
    assert all("(it could not be connected to: ConnectionError on each of 5 attempts)" in m["note"]
               for m in meta.values() if "not tried" in m["note"])
    beyond = [m for m in kraken.values() if "beyond history" in m.get("note", "")]
    assert beyond and all("Kraken_OHLCVT.zip: download_failed" in m["note"] and "REST" not in m["note"] for m in beyond)
    assert any(m.get("source") == "rest" for m in kraken.values())


def test_a_file_that_times_out_is_its_days_from_rest_and_the_other_files_still_the_archive(archive_sim, archive_setup, warehouse_url):
    """February 2025's monthly file answers only after the client's timeout, every time. Its days
    come from REST, saying why; the host served January's file and still serves March's and April's,
    so those months come from their files, not from REST. Every candle exact."""
    _, defs, instance = archive_setup
    first, last = dt.date(2025, 1, 1), dt.date(2025, 4, 30)
    archive_sim.reconfigure({"archive_faults": [{"kind": "slow", "file": "BTCUSDT-1h-2025-02.zip", "seconds": 3}]})
    meta, checks = run_range(defs, instance, "1h", "binance.BTC-USDT", first, last)
    assert stored(warehouse_url, "binance", "BTC/USDT", "1h", first, last).equals(truth(archive_sim, "binance", "BTC/USDT", "1h", first, last))
    february = [m for d, m in meta.items() if d.month == 2]
    assert len(february) == 28 and all(
        m["source"] == "rest" and m["note"].startswith("archive data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2025-02.zip: "
                                                       "download_failed (") and "ReadTimeout after 5 attempts)" in m["note"]
        and m["note"].endswith("; fetched from REST") and "not asked again" not in m["note"] for m in february), february[0]
    others = {d: m for d, m in meta.items() if d.month != 2}
    assert len(others) == 31 + 31 + 30 and all(m["source"] == "archive" and m["archive_file"].endswith(f"-2025-{d.month:02d}.zip")
                                           and m["candles_new"] == 24 for d, m in others.items())
    assert all(c["completeness"].passed for c in checks.values())
    assert archive_sim.stats["requests.klines"] == 2  # the listing probe and February's one page: no other month from REST


def test_a_day_keeping_its_stored_candles_against_a_file_counts_them_and_is_recorded_as_mixed(archive_sim, archive_setup,
                                                                                             warehouse_url):
    """A recent day first from REST (its daily file not published yet), then from its daily file,
    which differs on five candles: the day is young, so the stored (REST) values are kept. All 1,440
    candles are stored, exact and counted as present (none missing, no note saying the exchange did
    not return some); the day is recorded as archive+rest with how many candles came from each."""
    universe, defs, instance = archive_setup
    day = TODAY - dt.timedelta(days=3)
    name = f"data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-{day}.zip"
    archive_sim.reconfigure({"archive_faults": [{"kind": "missing", "file": name}]})
    before, _ = run_range(defs, instance, "1m", "binance.BTC-USDT", day, day)
    assert before[day]["source"] == "rest" and before[day]["candles_new"] == 1440
    archive_sim.reconfigure({"archive_faults": [{"kind": "disagree", "file": name}]})
    meta, checks = run_range(defs, instance, "1m", "binance.BTC-USDT", day, day)
    report = meta[day]
    assert report["source"] == "archive+rest" and report["archive_file"] == name and report["sources_disagreeing"] == 5
    assert report["candles_fetched"] == report["expected_candles"] == report["candles_unchanged"] == 1440
    assert report["missing_candles"] == 0 and report["candles_new"] == report["candles_revised"] == 0
    assert report["note"] == f"5 candle(s) differ between {name} and the stored candles; kept the stored values (from rest)"
    assert checks[day]["completeness"].passed and not checks[day]["sources_agree"].passed
    assert stored(warehouse_url, "binance", "BTC/USDT", "1m", day, day).equals(truth(archive_sim, "binance", "BTC/USDT", "1m", day, day))
    wh = Warehouse(warehouse_url)
    try:
        recorded = provenance.sources_of(wh, "binance", "BTC/USDT", "1m", [day])[day]
        status = {(r["symbol"], r["interval"]): r for r in instrument_rows(universe, wh, None, now_ms())}[("BTC/USDT", "1m")]
    finally:
        wh.dispose()
    assert (recorded.source, recorded.file, recorded.candles, recorded.kept_from, recorded.kept_candles) == (
        "archive+rest", name, 1435, "rest", 5)
    assert status["day_sources"] == {"archive+rest": 1}
    again, _ = run_range(defs, instance, "1m", "binance.BTC-USDT", day, day)  # the same file again: known, not read again
    assert again[day]["source"] == "archive+rest" and again[day]["note"].startswith("unchanged")


def test_a_kraken_zip_serving_two_intervals_keeps_a_record_for_each(archive_sim, tmp_path, warehouse_url):
    """Kraken's zip holds the pair's 1h and 4h members; a 1h run and then a 4h run read the same zip:
    source_files keeps one record per interval, each with its own candle count."""
    url = archive_sim.url
    archive_sim.reconfigure({"faults": [], "archive_faults": [], "reset_stats": True, "venues": {"kraken_archive": {"intervals": [60, 240]}}})
    try:
        path = tmp_path / "universe.yaml"
        path.write_text(archive_universe(url).replace("{exchange: kraken, symbol: BTC/USD, intervals: [1h]",
                                                      "{exchange: kraken, symbol: BTC/USD, intervals: [1h, 4h]"))
        universe = parse_universe(path.read_text(), str(path))
        quarter_end = dt.date(TODAY.year, 3 * ((TODAY.month - 1) // 3) + 1, 1)
        first, last = quarter_end - dt.timedelta(days=5), quarter_end - dt.timedelta(days=1)
        with dg.instance_for_test() as instance:
            sync_instrument_partitions(instance, universe)
            defs = build_definitions(str(path), warehouse_url)
            for interval in ("1h", "4h"):
                meta, _ = run_range(defs, instance, interval, "kraken.BTC-USD", first, last)
                assert all(m.get("archive_file") == "Kraken_OHLCVT.zip" for m in meta.values()), meta
        counts = {i: len(stored(warehouse_url, "kraken", "BTC/USD", i, first, last)) for i in ("1h", "4h")}
        wh = Warehouse(warehouse_url)
        try:
            with wh.engine.connect() as conn:
                rows = conn.execute(sa.select(source_files).where(source_files.c.file == "Kraken_OHLCVT.zip")).all()
        finally:
            wh.dispose()
        assert sorted((r.symbol, r.timeframe, r.candles, r.revisions) for r in rows) == [
            ("BTC/USD", "1h", counts["1h"], 0), ("BTC/USD", "4h", counts["4h"], 0)]
        assert counts["1h"] > counts["4h"] > 0
    finally:
        archive_sim.reconfigure({"venues": {"kraken_archive": {"intervals": [60]}}})


def test_a_kraken_day_beyond_rest_whose_zip_is_unreadable_is_not_said_to_come_from_rest(archive_sim, archive_setup, warehouse_url):
    """Kraken's zip is cut short on every download: days beyond the 720 candles REST serves say the
    zip was unreadable and that nothing was fetched; only the days REST did fetch say so."""
    _, defs, instance = archive_setup
    archive_sim.reconfigure({"archive_faults": [{"kind": "truncated", "file": "Kraken_OHLCVT.zip"}]})
    first, last = TODAY - dt.timedelta(days=33), TODAY - dt.timedelta(days=1)
    meta, _ = run_range(defs, instance, "1h", "kraken.BTC-USD", first, last)
    horizon = (now_ms() // HOUR_MS - 719) * HOUR_MS
    beyond = {d: m for d, m in meta.items() if day_bounds_ms(d)[1] <= horizon}
    fetched = {d: m for d, m in meta.items() if day_bounds_ms(d)[1] > horizon}
    assert len(beyond) >= 2 and fetched
    assert all(m["note"].startswith("nothing to do: beyond history (") and "archive Kraken_OHLCVT.zip: unreadable (" in m["note"]
               and "REST" not in m["note"] and "source" not in m for m in beyond.values()), beyond
    assert all(m["source"] == "rest" and "archive Kraken_OHLCVT.zip: unreadable (" in m["note"] and "; fetched from REST" in m["note"]
               for m in fetched.values())
    served = truth(archive_sim, "kraken", "BTC/USD", "1h", first, last)
    assert stored(warehouse_url, "kraken", "BTC/USD", "1h", first, last).equals(served[served["open_time"] >= horizon].reset_index(drop=True))


def test_rerunning_an_unchanged_month_downloads_and_writes_nothing(archive_sim, archive_setup, warehouse_url):
    _, defs, instance = archive_setup
    month = (dt.date(2025, 7, 1), dt.date(2025, 7, 31))
    first, _ = run_range(defs, instance, "1m", "binance.BTC-USDT", *month)
    assert all(m["candles_new"] == 1440 for m in first.values())
    served, asked = archive_sim.stats["archive.files_served"], archive_sim.stats["requests.klines"]
    again, _ = run_range(defs, instance, "1m", "binance.BTC-USDT", *month)
    assert archive_sim.stats["archive.files_served"] == served  # only the .CHECKSUM was asked for
    assert all(m["candles_new"] == m["candles_revised"] == m["candles_unchanged"] == 0 and m["note"].startswith("unchanged")
               for m in again.values())
    assert archive_sim.stats["requests.klines"] == asked  # and REST nothing (the stored days prove the listing)


def test_a_file_published_again_with_other_bytes_is_ingested_again_and_its_revision_counted(archive_sim, archive_setup,
                                                                                          warehouse_url):
    """August 2025 from its monthly file; then the venue publishes that file again with five candles
    changed (another sha256): the next run downloads and ingests it again, says so on each day, keeps
    the archive's values on an old day (recorded as a disagreement) and counts one revision."""
    _, defs, instance = archive_setup
    month = (dt.date(2025, 8, 1), dt.date(2025, 8, 31))
    first, _ = run_range(defs, instance, "1m", "binance.BTC-USDT", *month)
    archive_sim.reconfigure({"archive_faults": [{"kind": "disagree", "file": "BTCUSDT-1m-2025-08.zip"}]})
    again, _ = run_range(defs, instance, "1m", "binance.BTC-USDT", *month)
    day = dt.date(2025, 8, 1)
    assert again[day]["archive_sha256"] != first[day]["archive_sha256"]
    assert all("changed since it was ingested" in m["note"] for m in again.values())
    assert again[day]["candles_revised"] == 5 and again[day]["sources_disagreeing"] == 5
    assert all(m["candles_revised"] == 0 for d, m in again.items() if d != day)
    wh = Warehouse(warehouse_url)
    try:
        with wh.engine.connect() as conn:
            row = conn.execute(sa.select(source_files).where(source_files.c.file.endswith("BTCUSDT-1m-2025-08.zip"))).one()
        held = wh.read_candles("binance", "BTC/USDT", "1m", *day_bounds_ms(day))
    finally:
        wh.dispose()
    assert row.revisions == 1 and row.sha256 == again[day]["archive_sha256"] and row.candles == 31 * 1440
    api = truth(archive_sim, "binance", "BTC/USDT", "1m", day, day)
    assert (held["volume"] != api["volume"]).sum() == 5  # the file's new values: an old day keeps the archive's


def test_kraken_history_beyond_its_720_candles_comes_from_its_archive(archive_sim, archive_setup, warehouse_url):
    """Kraken's REST serves only its latest 720 hours; the OHLCVT archive (to the end of the last
    complete quarter) fills older days; days between the two are beyond history, asked of nobody."""
    _, defs, instance = archive_setup
    quarter_end = dt.date(TODAY.year, 3 * ((TODAY.month - 1) // 3) + 1, 1)
    first, last = quarter_end - dt.timedelta(days=5), TODAY - dt.timedelta(days=1)
    meta, _ = run_range(defs, instance, "1h", "kraken.BTC-USD", first, last)
    archived = sorted(d for d, m in meta.items() if m.get("source") == "archive")
    assert archived == [first + dt.timedelta(days=i) for i in range(5)]
    assert stored(warehouse_url, "kraken", "BTC/USD", "1h", first, quarter_end - dt.timedelta(days=1)).equals(
        truth(archive_sim, "kraken", "BTC/USD", "1h", first, quarter_end - dt.timedelta(days=1)))
    horizon = (now_ms() // HOUR_MS - 719) * HOUR_MS
    beyond = [d for d, m in meta.items() if "beyond history" in m.get("note", "")]
    assert beyond and all(day_bounds_ms(d)[1] <= horizon for d in beyond)
    assert all("archive does not hold this day" in meta[d]["note"] for d in beyond)
    rest_days = sorted(d for d, m in meta.items() if m.get("source") == "rest")
    assert rest_days and all(day_bounds_ms(d)[1] > horizon for d in rest_days)
    served = truth(archive_sim, "kraken", "BTC/USD", "1h", rest_days[0], last)
    served = served[served["open_time"] >= horizon].reset_index(drop=True)
    assert stored(warehouse_url, "kraken", "BTC/USD", "1h", rest_days[0], last).equals(served)
    assert archive_sim.stats["requests.kraken.OHLC"] <= 3  # the listing probe and one 720-candle page, no loop


def test_a_kraken_archive_listed_as_files_reads_each_of_them(archive_sim, tmp_path, warehouse_url):
    """The universe lists Kraken's full zip (published when June 2026 ended) and the quarterly zip
    published after it: June's days come from the first, July's from the second, as the venue's."""
    url = archive_sim.url
    archive_sim.reconfigure({"faults": [], "archive_faults": [], "reset_stats": True,
                             "venues": {"kraken_archive": {"end": "2026-07-01"}}})
    try:
        path = tmp_path / "universe.yaml"
        path.write_text(archive_universe(url).replace(
            f'archive: {{url: "{url}/archive/kraken/Kraken_OHLCVT.zip"}}',
            f'archive: {{url: ["{url}/archive/kraken/Kraken_OHLCVT.zip", "{url}/archive/kraken/Kraken_OHLCVT_2026Q3.zip"]}}'))
        universe = parse_universe(path.read_text(), str(path))
        with dg.instance_for_test() as instance:
            sync_instrument_partitions(instance, universe)
            first, last = dt.date(2026, 6, 28), dt.date(2026, 7, 2)
            meta, _ = run_range(build_definitions(str(path), warehouse_url), instance, "1h", "kraken.BTC-USD", first, last)
        assert {d: (m.get("source"), m.get("archive_file")) for d, m in meta.items()} == {
            **{dt.date(2026, 6, d): ("archive", "Kraken_OHLCVT.zip") for d in (28, 29, 30)},
            **{dt.date(2026, 7, d): ("archive", "Kraken_OHLCVT_2026Q3.zip") for d in (1, 2)}}
        assert stored(warehouse_url, "kraken", "BTC/USD", "1h", first, last).equals(truth(archive_sim, "kraken", "BTC/USD", "1h", first, last))
        report = health(universe, None, "not asked", None)["archive kraken"]
        assert report.startswith("ok (") and report.count("answered 200") == 2, report
    finally:
        archive_sim.reconfigure({"venues": {"kraken_archive": {"end": "9999-01-01"}}})  # the last complete quarter again


def test_a_usdm_perpetual_comes_from_the_futures_tree_and_the_futures_api_and_is_exact(archive_sim, tmp_path, warehouse_url):
    """A Binance USDⓈ-M perpetual: February 2025 from the futures/um tree's monthly file (headered,
    millisecond times), the range's edges and yesterday from its daily files, today from the futures
    API (/fapi/v1). The spot market is down for three hours on a day of the range and the perpetual
    is not: its candles are the futures market's, and neither the spot API nor the spot tree is asked."""
    url = archive_sim.url
    outage = {"start": "2025-02-10T02:00:00Z", "end": "2025-02-10T05:00:00Z", "venue": "binance"}
    archive_sim.reconfigure({"faults": [], "archive_faults": [], "reset_stats": True, "downtime": [outage]})
    try:
        path = tmp_path / "universe.yaml"
        path.write_text(f"""
exchanges:
  perps: {{ccxt_id: binanceusdm, api_url: "{url}/fapi/v1", timeout_seconds: 2, retry_base_seconds: 0.05,
          archive: {{url: "{url}/archive/binance"}}}}
instruments:
  - {{exchange: perps, symbol: BTC/USDT:USDT, intervals: [1h], start: 2024-12-15}}
""")
        universe = parse_universe(path.read_text(), str(path))
        first, last, published = dt.date(2025, 1, 30), dt.date(2025, 3, 1), newest_daily_file_day(archive_sim)
        rest = rest_source_of_today()
        with dg.instance_for_test() as instance:
            sync_instrument_partitions(instance, universe)
            defs = build_definitions(str(path), warehouse_url)
            meta, checks = run_range(defs, instance, "1h", "perps.BTC-USDT_USDT", first, last)
            recent, _ = run_range(defs, instance, "1h", "perps.BTC-USDT_USDT", published, TODAY)
        for a, b in ((first, last), (published, TODAY)):
            assert stored(warehouse_url, "perps", "BTC/USDT:USDT", "1h", a, b).equals(truth(archive_sim, "binanceusdm", "BTC/USDT", "1h", a, b))
        assert meta[dt.date(2025, 2, 10)]["candles_new"] == 24  # the spot outage is not the perpetual's
        assert len(truth(archive_sim, "binance", "BTC/USDT", "1h", dt.date(2025, 2, 10), dt.date(2025, 2, 10))) == 21
        tree = "data/futures/um/{}/klines/BTCUSDT/1h/BTCUSDT-1h-{}.zip"
        assert {meta[d]["archive_file"] for d in (dt.date(2025, 2, 1), dt.date(2025, 2, 28))} == {tree.format("monthly", "2025-02")}
        assert [meta[d]["archive_file"] for d in (first, last)] == [tree.format("daily", first), tree.format("daily", last)]
        assert recent[published]["archive_file"] == tree.format("daily", published) and recent[TODAY].get("source") == rest
        assert all(e.passed for day in checks.values() for e in day.values())
        assert archive_sim.stats["requests.fapi.klines"] >= 1 and archive_sim.stats["requests.fapi.exchangeInfo"] >= 1
        assert archive_sim.stats["requests.klines"] == 0 and archive_sim.stats["requests.exchangeInfo"] == 0
    finally:
        archive_sim.reconfigure({"downtime": []})


def test_only_a_file_archive_may_be_a_list_of_files():
    for venue, listed, problem in (("kraken", "[]", "the list of archive files is empty"),
                                   ("binance", '["http://127.0.0.1:1/a"]', "binance's archive is one root URL, not a list of files")):
        with pytest.raises(UniverseError, match=re.escape(problem)):
            parse_universe(f"""
exchanges:
  {venue}: {{ccxt_id: {venue}, archive: {{url: {listed}}}}}
instruments:
  - {{exchange: {venue}, symbol: BTC/USD, intervals: [1h], start: 2025-01-01}}
""", "universe.yaml")


def test_a_kraken_archive_cut_short_is_downloaded_again_not_kept(archive_sim, archive_setup, warehouse_url):
    """The first download of Kraken's zip is cut short (a 200 answer with half the bytes; Kraken
    publishes no checksum): unreadable, so the cached copy is dropped and the zip fetched again."""
    _, defs, instance = archive_setup
    quarter_end = dt.date(TODAY.year, 3 * ((TODAY.month - 1) // 3) + 1, 1)
    first, last = quarter_end - dt.timedelta(days=3), quarter_end - dt.timedelta(days=1)
    archive_sim.reconfigure({"archive_faults": [{"kind": "truncated", "file": "Kraken_OHLCVT.zip", "count": 1}]})
    meta, _ = run_range(defs, instance, "1h", "kraken.BTC-USD", first, last)
    assert all(m.get("source") == "archive" and m.get("archive_file") == "Kraken_OHLCVT.zip" for m in meta.values()), meta
    assert stored(warehouse_url, "kraken", "BTC/USD", "1h", first, last).equals(truth(archive_sim, "kraken", "BTC/USD", "1h", first, last))
    assert archive_sim.stats["archive.files_served"] == 2


def test_health_says_whether_each_archive_answers_where_its_files_must_be(archive_sim, tmp_path):
    """`ohlcv-status --health`: the checksum of a daily file that must be published (Binance) and
    the zip (Kraken) answer; an instrument without files (delisted, say) is passed over for the
    next; a wrong archive path answers 404 and a host that is down not at all."""
    def archive_report(text: str) -> dict:
        report = health(parse_universe(text, str(tmp_path / "universe.yaml")), None, "not asked", None)
        return {k: v for k, v in report.items() if k.startswith("archive ")}

    good = archive_report(archive_universe(archive_sim.url))
    assert good["archive binance"].startswith("ok (") and ".zip.CHECKSUM answered 200" in good["archive binance"]
    assert good["archive kraken"] == f"ok ({archive_sim.url}/archive/kraken/Kraken_OHLCVT.zip answered 200)"
    delisted_first = archive_universe(archive_sim.url).replace(
        "instruments:\n", "instruments:\n  - {exchange: binance, symbol: OLD/USDT, intervals: [1h], start: 2024-12-15}\n")
    assert archive_report(delisted_first)["archive binance"] == good["archive binance"]  # no file of OLD: the next instrument's
    wrong = archive_report(archive_universe(archive_sim.url).replace("/archive/binance", "/archive/binanc"))
    assert wrong["archive binance"].startswith("FAIL not_published:") and "answered 404" in wrong["archive binance"]
    down = archive_report(archive_universe(archive_sim.url).replace(f"{archive_sim.url}/archive/", "http://127.0.0.1:1/archive/"))
    assert all(v.startswith("FAIL download_failed:") and "ConnectionError" in v for v in down.values()) and len(down) == 2


def test_a_kraken_archive_republished_with_more_history_is_fetched_again(archive_sim, archive_setup, warehouse_url):
    """May 2026 is older than the kept Kraken zip (it starts 2026-06-01): beyond history. Kraken then
    publishes the full zip again from 2026-05-01: the next run sees another size, fetches it again
    and fills May from it; while the size stays the same the kept copy is used."""
    _, defs, instance = archive_setup
    first, last = dt.date(2026, 5, 10), dt.date(2026, 5, 12)
    before, _ = run_range(defs, instance, "1h", "kraken.BTC-USD", first, last)
    assert all("beyond history" in m["note"] for m in before.values())
    archive_sim.reconfigure({"venues": {"kraken_archive": {"start": "2026-05-01"}}})
    try:
        served = archive_sim.stats["archive.files_served"]
        after, _ = run_range(defs, instance, "1h", "kraken.BTC-USD", first, last)
        assert all(m.get("source") == "archive" for m in after.values()), after
        assert stored(warehouse_url, "kraken", "BTC/USD", "1h", first, last).equals(truth(archive_sim, "kraken", "BTC/USD", "1h", first, last))
        downloads = archive_sim.stats["archive.files_served"] - served
        run_range(defs, instance, "1h", "kraken.BTC-USD", first, last)
        assert archive_sim.stats["archive.files_served"] - served == downloads + 1  # the size asked, the zip not fetched
    finally:
        archive_sim.reconfigure({"venues": {"kraken_archive": {"start": "2026-06-01"}}})
