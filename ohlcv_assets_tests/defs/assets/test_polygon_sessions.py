"""Polygon's daily bars and each equity's session window (regular or extended hours): real Dagster
runs and real gap scans over HTTP against the simulator, which answers as the vendor documents
(daily bars stamped at midnight New York with the official figures; pre-market and after-hours
minutes served by default), on both warehouses."""

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import requests

from ohlcv_assets.exchange.registry import build_source
from ohlcv_assets.quality.gap_scan import scan
from ohlcv_assets.core.gaps import FILLABLE
from ohlcv_assets.ingest.days import ingest_days
from ohlcv_assets.core.intervals import HOUR_MS, day_bounds_ms, now_ms
from ohlcv_assets.core.universe import UniverseError, parse_universe
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.helpers import materialize_day as materialize
from ohlcv_assets_tests.helpers import universe_definitions

KEY = "pk-test-sessions-41d7"
KEY_ENV = "OHLCV_TEST_POLYGON_SESSIONS_KEY"
NEW_YORK = ZoneInfo("America/New_York")
WEEK = [dt.date(2025, 11, 24) + dt.timedelta(days=i) for i in range(7)]  # Thursday the 27th a holiday, Friday closes at 13:00
SESSIONS = {dt.date(2025, 11, 24), dt.date(2025, 11, 25), dt.date(2025, 11, 26), dt.date(2025, 11, 28)}
PLAIN, EARLY_CLOSE = dt.date(2025, 11, 26), dt.date(2025, 11, 28)
SUMMER = dt.date(2025, 7, 1)  # New York on daylight time: midnight is 04:00 UTC
CONFIG = {
    "seed": 11,
    "symbols": [{"base": "AAPL", "listed": "2020-01-01", "price": 200, "calendar": "XNYS", "quiet": 0.03, "extended_hours": True}],
    "venues": {"polygon": {"api_key": KEY, "requests_per_minute": 100_000}},
}


def universe_text(url: str) -> str:
    common = "timeout_seconds: 2, retry_base_seconds: 0.05, weight_limit: 100000, weight_window_seconds: 60"  # the simulator allows it
    return f"""
exchanges:
  polygon: {{venue: polygon, api_url: "{url}/polygon", api_key_env: {KEY_ENV}, {common}}}
  polygonx: {{venue: polygon, api_url: "{url}/polygon", api_key_env: {KEY_ENV}, {common}}}
instruments:
  - {{exchange: polygon, symbol: AAPL, intervals: [1m, 1h, 1d], start: 2025-06-30}}
  - {{exchange: polygonx, symbol: AAPL, intervals: [1m, 1h], start: 2025-06-30, session: extended}}
"""


@pytest.fixture
def sim(simulators):
    return simulators(CONFIG)


@pytest.fixture
def setup(sim, tmp_path, warehouse_url, monkeypatch):
    sim.reconfigure({"faults": [], "frozen_now_ms": None, "reset_stats": True})
    monkeypatch.setenv(KEY_ENV, KEY)
    with universe_definitions(universe_text(sim.url), tmp_path, warehouse_url) as made:
        yield made


def vendor(sim, span: str, lo: str, hi: str) -> list[dict]:
    """The vendor's raw answer, as any client gets it."""
    answer = requests.get(f"{sim.url}/polygon/v2/aggs/ticker/AAPL/range/1/{span}/{lo}/{hi}?adjusted=true&sort=asc&limit=50000",
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    answer.raise_for_status()
    return answer.json().get("results", [])


def as_frame(bars: list[dict], open_times) -> pd.DataFrame:
    return pd.DataFrame({"open_time": np.asarray(open_times, dtype=np.int64), "open": [b["o"] for b in bars],
                         "high": [b["h"] for b in bars], "low": [b["l"] for b in bars], "close": [b["c"] for b in bars],
                         "volume": [b["v"] for b in bars]})


def stored(warehouse_url, exchange, interval, lo, hi) -> pd.DataFrame:
    wh = Warehouse(warehouse_url)
    try:
        return wh.read_candles(exchange, "AAPL", interval, lo, hi, extras=True)
    finally:
        wh.dispose()


def ny_midnight_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).timestamp() * 1000)


def test_the_simulator_stamps_daily_bars_as_polygon_documents(sim):
    """Polygon's documented example: the bar of 2023-01-09 is stamped 1673240400000 (midnight New York)."""
    [bar] = vendor(sim, "day", "2023-01-09", "2023-01-09")
    assert bar["t"] == 1673240400000 == ny_midnight_ms(dt.date(2023, 1, 9))
    assert [b["t"] for b in vendor(sim, "day", "2025-11-24", "2025-11-30")] == [ny_midnight_ms(d) for d in sorted(SESSIONS)]
    assert [b["t"] for b in vendor(sim, "day", str(SUMMER), str(SUMMER))] == [day_bounds_ms(SUMMER)[0] + 4 * HOUR_MS]


def test_daily_bars_are_the_vendors_own_under_their_trading_date(sim, setup, warehouse_url):
    """A week of 1d days: one bar per session (the holiday and the weekend expect none, the early
    close one), each exactly the vendor's bar, stored at 00:00 UTC of its trading date; through
    Dagster the early close's partition is complete and valid."""
    universe, defs, instance = setup
    source = build_source("polygon", universe.exchanges["polygon"])
    instrument = universe.instrument("polygon.AAPL")
    wh = Warehouse(warehouse_url)
    wh.migrate()
    try:
        reports = dict(r for batch in ingest_days(source, wh, instrument, "1d", WEEK + [SUMMER], now_ms()) for r in batch)
    finally:
        wh.dispose()
    assert {day: reports[day].expected_candles for day in WEEK} == {day: int(day in SESSIONS) for day in WEEK}
    assert all(reports[day].missing_candles == 0 for day in WEEK)
    bars = vendor(sim, "day", "2025-11-24", "2025-11-30")
    expected = as_frame(bars, [day_bounds_ms(dt.datetime.fromtimestamp(b["t"] / 1000, NEW_YORK).date())[0] for b in bars])
    got = stored(warehouse_url, "polygon", "1d", day_bounds_ms(WEEK[0])[0], day_bounds_ms(WEEK[-1])[1])
    assert got[expected.columns].equals(expected)
    assert list(got["open_time"]) == [day_bounds_ms(d)[0] for d in sorted(SESSIONS)]
    assert list(got["vwap"]) == [b["vw"] for b in bars] and list(got["trades"]) == [b["n"] for b in bars]
    # summer: the bar stamped 04:00 UTC is the same trading date's
    assert reports[SUMMER].candles_fetched == reports[SUMMER].expected_candles == 1
    assert list(stored(warehouse_url, "polygon", "1d", *day_bounds_ms(SUMMER))["open_time"]) == [day_bounds_ms(SUMMER)[0]]
    meta, _ = materialize(defs, instance, "1d", "polygon.AAPL", EARLY_CLOSE)
    assert meta["expected_candles"] == 1 and meta["missing_candles"] == 0
    assert meta["quality_completeness"] == meta["quality_validity"] == 1.0


def test_a_daily_bar_is_not_a_roll_up_of_the_minutes_and_is_not_checked_against_one(sim, setup, warehouse_url):
    """The official open and close (auctions) and the volume with off-exchange prints differ from
    the minute bars' roll-up; the cross-interval check says why it does not compare them."""
    universe, defs, instance = setup
    materialize(defs, instance, "1m", "polygon.AAPL", PLAIN)
    meta, result = materialize(defs, instance, "1d", "polygon.AAPL", PLAIN)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "consistent_with_1m"]
    assert check.passed and "official figures" in check.metadata["detail"].value
    [daily] = stored(warehouse_url, "polygon", "1d", *day_bounds_ms(PLAIN)).to_dict("records")
    minutes = vendor(sim, "minute", str(ny_midnight_ms(PLAIN)), str(ny_midnight_ms(PLAIN + dt.timedelta(days=1)) - 1))
    regular = [m for m in minutes if dt.time(9, 30) <= dt.datetime.fromtimestamp(m["t"] / 1000, NEW_YORK).time() < dt.time(16)]
    assert daily["volume"] > sum(m["v"] for m in minutes) * 1.01
    assert (daily["open"], daily["close"]) != (regular[0]["o"], regular[-1]["c"])


def test_polygon_snaps_a_day_request_to_new_york_days_and_the_client_keeps_only_the_days_asked(sim, setup):
    """Asked from 00:00 UTC of Thanksgiving (19:00 New York the day before), Polygon answers from
    Wednesday's midnight; the client returns nothing for the holiday, Wednesday's bar for Wednesday."""
    universe, _, _ = setup
    holiday, wednesday = day_bounds_ms(dt.date(2025, 11, 27)), day_bounds_ms(PLAIN)
    assert [b["t"] for b in vendor(sim, "day", str(holiday[0]), str(holiday[1] - 1))] == [ny_midnight_ms(PLAIN)]
    source = build_source("polygon", universe.exchanges["polygon"])
    assert len(source.fetch_page("AAPL", "1d", holiday[0], holiday[1] - 1)) == 0
    assert source.fetch_page("AAPL", "1d", wednesday[0], wednesday[1] - 1)[:, 0].tolist() == [wednesday[0]]


def test_a_missing_daily_bar_is_a_gap_and_a_weekend_is_not(sim, setup, warehouse_url):
    universe, defs, instance = setup
    instrument = universe.instrument("polygon.AAPL").model_copy(update={"start": WEEK[0]})
    source = build_source("polygon", universe.exchanges["polygon"])
    now = day_bounds_ms(dt.date(2025, 12, 1))[0] + 15 * HOUR_MS  # the Monday after
    sim.reconfigure({"frozen_now_ms": now})
    wh = Warehouse(warehouse_url)
    wh.migrate()
    try:
        days = [d for d in WEEK if d != dt.date(2025, 11, 25)]
        reports = dict(r for batch in ingest_days(source, wh, instrument, "1d", days, now) for r in batch)
        assert [reports[d].candles_new for d in days] == [int(d in SESSIONS) for d in days]
        result = scan(source, wh, instrument, "1d", now, universe.refresh_minutes)
        assert result.expected == 4 and result.present == 3
        assert [(g.start_ms, g.end_ms, g.reason) for g in result.gaps] == [(*day_bounds_ms(dt.date(2025, 11, 25)), FILLABLE)]
    finally:
        wh.dispose()


def test_extended_hours_keep_every_minute_the_vendor_serves_in_the_window(sim, setup, warehouse_url):
    """An extended instrument expects 04:00-20:00 New York (its UTC day holds the previous
    session's after-hours tail): every served minute is stored, the quiet ones are no trades."""
    universe, defs, instance = setup
    lo, hi = day_bounds_ms(PLAIN)
    meta, result = materialize(defs, instance, "1m", "polygonx.AAPL", PLAIN)
    served = vendor(sim, "minute", str(PLAIN - dt.timedelta(days=1)), str(PLAIN))
    served = [m for m in served if lo <= m["t"] < hi]
    got = stored(warehouse_url, "polygonx", "1m", lo, hi)
    assert got[["open_time", "open", "high", "low", "close", "volume"]].equals(as_frame(served, [m["t"] for m in served]))
    local = [dt.datetime.fromtimestamp(m["t"] / 1000, NEW_YORK) for m in served]
    assert any(t.date() == PLAIN and t.time() < dt.time(9, 30) for t in local)  # pre-market
    assert any(t.date() == PLAIN and t.time() >= dt.time(16) for t in local)  # after-hours
    assert any(t.date() == PLAIN - dt.timedelta(days=1) for t in local)  # the evening before, after 00:00 UTC
    assert meta["expected_candles"] == 960  # 09:00 UTC to midnight, and 00:00-01:00 UTC of the evening before
    assert meta["candles_fetched"] == len(served) and meta["missing_candles"] == meta["no_trade_candles"] > 0
    assert meta["quality_completeness"] == 1.0
    # the early close: after-hours until 17:00 New York
    early, _ = materialize(defs, instance, "1m", "polygonx.AAPL", EARLY_CLOSE)
    assert early["expected_candles"] == 13 * 60 and early["missing_candles"] == early["no_trade_candles"]


def test_extended_hours_are_hours_too_and_agree_with_the_minutes(sim, setup, warehouse_url):
    universe, defs, instance = setup
    materialize(defs, instance, "1m", "polygonx.AAPL", PLAIN)
    meta, result = materialize(defs, instance, "1h", "polygonx.AAPL", PLAIN)
    assert meta["expected_candles"] == 16 and meta["missing_candles"] == meta["no_trade_candles"]
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "consistent_with_1m"]
    assert check.passed and check.metadata["detail"].value == "16 candles compared"


def test_a_regular_instrument_keeps_only_its_session_though_the_vendor_serves_more(sim, setup, warehouse_url):
    """The default window: 09:30-16:00 New York; the pre-market and after-hours minutes Polygon
    serves are not kept (and said so), nothing inside the window is dropped."""
    universe, defs, instance = setup
    lo, hi = day_bounds_ms(PLAIN)
    meta, _ = materialize(defs, instance, "1m", "polygon.AAPL", PLAIN)
    served = [m for m in vendor(sim, "minute", str(PLAIN - dt.timedelta(days=1)), str(PLAIN)) if lo <= m["t"] < hi]
    inside = [m for m in served if dt.time(9, 30) <= dt.datetime.fromtimestamp(m["t"] / 1000, NEW_YORK).time() < dt.time(16)]
    got = stored(warehouse_url, "polygon", "1m", lo, hi)
    assert list(got["open_time"]) == [m["t"] for m in inside] and list(got["close"]) == [m["c"] for m in inside]
    assert meta["expected_candles"] == 390 and meta["missing_candles"] == meta["no_trade_candles"]
    assert f"{len(served) - len(inside)} candle(s) outside the instrument's regular session" in meta["note"]
    assert meta["quality_completeness"] == meta["quality_validity"] == 1.0


@pytest.mark.parametrize("old,new,message", [
    ("session: extended", "session: moon", r"instruments\[1\] \(polygonx AAPL\)\.session: Input should be 'regular' or 'extended'"),
    ("exchange: polygonx, symbol: AAPL", "exchange: binance, symbol: BTC/USDT",
     r"instruments\[1\] \(binance BTC/USDT\): session 'extended': binance trades around the clock; only venues with "
     r"exchange sessions \(equities\) take a session"),
    ("intervals: [1m, 1h, 1d]", "intervals: [1m, 1h, 4h]",
     r"instruments\[0\] \(polygon AAPL\): interval '4h' is not offered by polygon \(offers: 1m, 5m, 15m, 30m, 1h, 1d\)"),
])
def test_universe_errors_for_sessions_and_intervals_are_clear(old, new, message, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    text = universe_text("http://127.0.0.1:1").replace("exchanges:\n", "exchanges:\n  binance: {ccxt_id: binance}\n")
    assert old in text
    parse_universe(text, today=dt.date(2026, 1, 5))
    with pytest.raises(UniverseError, match=message):
        parse_universe(text.replace(old, new), today=dt.date(2026, 1, 5))
