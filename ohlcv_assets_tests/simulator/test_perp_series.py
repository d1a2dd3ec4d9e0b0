"""The simulator serves a perpetual's other series as Binance USDⓈ-M documents them, so that
ccxt's own binanceusdm code runs against it unmodified: mark, index and premium index klines,
funding rates (across a funding-interval change) and fundingInfo, with faults and their budget."""

import datetime as dt

import ccxt
import numpy as np
import pytest
import requests

from ohlcv_assets.core.intervals import DAY_MS, HOUR_MS, MINUTE_MS, day_bounds_ms
from ohlcv_assets_tests.helpers import FUNDING_CHANGE, PERP_SIMULATOR_CONFIG

DAY = dt.date(2026, 10, 5)
SCALE = {"mark": 100, "index": 100, "premium": 10**8}  # the market's integer units per exchange unit


@pytest.fixture
def perp_sim(simulators):
    sim = simulators(PERP_SIMULATOR_CONFIG)
    sim.reconfigure({"faults": [], "frozen_now_ms": None, "reset_stats": True, "venues": PERP_SIMULATOR_CONFIG["venues"]})
    return sim


@pytest.fixture
def usdm(perp_sim):
    exchange = ccxt.binanceusdm({"enableRateLimit": False, "timeout": 5000})
    exchange.urls["api"]["fapiPublic"] = f"{perp_sim.url}/fapi/v1"
    exchange.load_markets()
    return exchange


def reference(sim, symbol: str, series: str, step: int, start: int, end: int):
    c = sim.market.candles(sim.config.symbols[symbol], step, start, end, sim.now(), venue="binanceusdm", series=series)
    return np.column_stack([c.open_time, *(getattr(c, f) / SCALE[series] for f in ("open", "high", "low", "close"))])


@pytest.mark.parametrize("method,series", [("fetch_mark_ohlcv", "mark"), ("fetch_index_ohlcv", "index"),
                                           ("fetch_premium_index_ohlcv", "premium")])
@pytest.mark.parametrize("interval,step", [("1m", MINUTE_MS), ("1h", HOUR_MS)])
def test_ccxt_reads_each_price_series_unmodified_and_exact(perp_sim, usdm, method, series, interval, step):
    start = day_bounds_ms(DAY)[0]
    rows = np.array(getattr(usdm, method)("BTC/USDT:USDT", interval, start, 1000, {"until": start + DAY_MS - 1}))
    expected = reference(perp_sim, "BTCUSDT", series, step, start, start + DAY_MS)
    assert len(rows) == min(1000, DAY_MS // step) and len(expected) == DAY_MS // step
    np.testing.assert_array_equal(rows[:, :5], expected[: len(rows)])
    assert (rows[:, 5] == 0).all()  # the volume slot is "Ignore": "0"
    assert (rows[:, 2] >= np.maximum(rows[:, 1], rows[:, 4])).all() and (rows[:, 3] <= np.minimum(rows[:, 1], rows[:, 4])).all()
    assert perp_sim.stats[f"requests.fapi.{ {'mark': 'markPriceKlines', 'index': 'indexPriceKlines', 'premium': 'premiumIndexKlines'}[series]}"] == 1


def test_premium_index_is_signed_and_rows_carry_the_sample_count(perp_sim):
    start = day_bounds_ms(DAY)[0]
    raw = requests.get(f"{perp_sim.url}/fapi/v1/premiumIndexKlines", timeout=5,
                       params={"symbol": "BTCUSDT", "interval": "1h", "startTime": start, "limit": 1000}).json()
    week = reference(perp_sim, "BTCUSDT", "premium", HOUR_MS, start, start + 7 * DAY_MS)
    assert (week[:, 4] < 0).any() and (week[:, 4] > 0).any()  # it crosses zero within a week
    assert raw[0][5] == "0" and raw[0][7] == "0" and raw[0][9:] == ["0", "0", "0"]
    assert raw[0][6] == start + HOUR_MS - 1 and raw[0][8] == 3600  # one sample a second
    negative = requests.get(f"{perp_sim.url}/fapi/v1/premiumIndexKlines", timeout=5, params={
        "symbol": "BTCUSDT", "interval": "1h", "startTime": int(week[np.argmin(week[:, 4]), 0]), "limit": 1}).json()
    assert negative[0][4].startswith("-0.") and len(negative[0][4].split(".")[1]) == 8


def test_index_klines_are_keyed_by_pair(perp_sim):
    url, start = f"{perp_sim.url}/fapi/v1/indexPriceKlines", day_bounds_ms(DAY)[0]
    by_symbol = requests.get(url, params={"symbol": "BTCUSDT", "interval": "1h", "startTime": start}, timeout=5)
    assert by_symbol.status_code == 400 and by_symbol.json()["code"] == -1102 and "'pair'" in by_symbol.json()["msg"]
    unknown = requests.get(url, params={"pair": "NOPEUSDT", "interval": "1h"}, timeout=5)
    assert unknown.status_code == 400 and unknown.json()["code"] == -1121
    assert len(requests.get(url, params={"pair": "BTCUSDT", "interval": "1h", "startTime": start, "limit": 5}, timeout=5).json()) == 5


def test_ccxt_reads_funding_history_across_an_interval_change(perp_sim, usdm):
    change = int(FUNDING_CHANGE.timestamp() * 1000)
    since, until = change - 3 * DAY_MS, change + 3 * DAY_MS
    history = usdm.fetch_funding_rate_history("BTC/USDT:USDT", since, 1000, {"until": until})
    times = np.array([h["timestamp"] for h in history])
    nominal = times // HOUR_MS * HOUR_MS
    assert (times - nominal < 10).all() and (times - nominal > 0).any()  # a few ms late, as the venue's
    diffs = np.diff(nominal)
    assert set(diffs[nominal[1:] <= change]) == {8 * HOUR_MS} and set(diffs[nominal[1:] > change]) == {4 * HOUR_MS}
    truth = perp_sim.market.funding_events(perp_sim.config.symbols["BTCUSDT"], perp_sim.now())
    window = (truth["time"] >= since) & (truth["time"] <= until)
    np.testing.assert_array_equal(times, truth["time"][window])
    np.testing.assert_array_equal([h["fundingRate"] for h in history], truth["rate"][window] / 10**8)
    np.testing.assert_array_equal([float(h["info"]["markPrice"]) for h in history], truth["mark"][window] / 100)
    assert (np.abs(truth["rate"]) <= 2_000_000).all() and (truth["rate"] < 0).any()


def test_funding_rate_follows_the_documented_window_and_limits(perp_sim):
    url = f"{perp_sim.url}/fapi/v1/fundingRate"
    truth = perp_sim.market.funding_events(perp_sim.config.symbols["ETHUSDT"], perp_sim.now())
    t = truth["time"]
    inclusive = requests.get(url, params={"symbol": "ETHUSDT", "startTime": int(t[10]), "endTime": int(t[12])}, timeout=5).json()
    assert [r["fundingTime"] for r in inclusive] == t[10:13].tolist()  # both ends inclusive
    first = requests.get(url, params={"symbol": "ETHUSDT", "startTime": int(t[0])}, timeout=5).json()
    assert [r["fundingTime"] for r in first] == t[:100].tolist()  # 100 by default, from startTime
    latest = requests.get(url, params={"symbol": "ETHUSDT", "limit": 3}, timeout=5).json()
    assert [r["fundingTime"] for r in latest] == t[-3:].tolist()  # without a window: the latest
    assert requests.get(url, params={"symbol": "ETHUSDT", "limit": 1001}, timeout=5).json()["code"] == -1130
    assert requests.get(url, params={"symbol": "NOPEUSDT"}, timeout=5).json()["code"] == -1121
    one_hour = (truth["nominal"] >= day_bounds_ms(dt.date(2026, 10, 4))[0]) & (truth["nominal"] < day_bounds_ms(dt.date(2026, 10, 6))[0])
    assert one_hour.sum() == 48 and set(truth["hours"][one_hour]) == {1}  # ETHUSDT's 1 h stretch


def test_funding_info_lists_adjusted_symbols_with_their_current_interval(perp_sim, usdm):
    info = {row["symbol"]: row for row in usdm.fapiPublicGetFundingInfo()}
    assert info["BTCUSDT"]["fundingIntervalHours"] == 4 and info["BTCUSDT"]["adjustedFundingRateCap"] == "0.02000000"
    assert info["ETHUSDT"]["fundingIntervalHours"] == 8  # back on 8 h, but adjusted during its life


def test_funding_faults_and_their_own_budget(perp_sim):
    url, start = f"{perp_sim.url}/fapi/v1/fundingRate", day_bounds_ms(DAY)[0]
    params = {"symbol": "BTCUSDT", "startTime": start, "limit": 20}
    clean = requests.get(url, params=params, timeout=5).json()
    perp_sim.reconfigure({"faults": [{"kind": "corrupt", "endpoint": "fundingRate", "count": 1},
                                     {"kind": "short", "endpoint": "fundingRate", "count": 1},
                                     {"kind": "status", "endpoint": "fundingRate", "count": 1}]})
    assert requests.get(url, params=params, timeout=5).json()[0]["fundingRate"] is None
    assert len(requests.get(url, params=params, timeout=5).json()) == 2
    assert requests.get(url, params=params, timeout=5).status_code == 503
    assert requests.get(url, params=params, timeout=5).json() == clean
    perp_sim.reconfigure({"faults": [{"kind": "truncated", "endpoint": "fundingRate", "count": 1}]})
    truncated = requests.get(url, params=params, timeout=5)
    assert truncated.status_code == 200 and len(truncated.content) < len(requests.get(url, params=params, timeout=5).content)
    with pytest.raises(ValueError):
        truncated.json()
    perp_sim.reconfigure({"faults": [], "venues": {"binanceusdm": {"funding_limit": 3}}})
    answers = [requests.get(url, params=params, timeout=5) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429] and int(answers[-1].headers["Retry-After"]) >= 1
    mark = requests.get(f"{perp_sim.url}/fapi/v1/markPriceKlines", params={"symbol": "BTCUSDT", "interval": "1h"}, timeout=5)
    assert mark.status_code == 200  # the weight budget is another one: klines keep flowing


def test_price_kline_faults_as_the_klines_endpoint(perp_sim):
    url, start = f"{perp_sim.url}/fapi/v1/premiumIndexKlines", day_bounds_ms(DAY)[0]
    perp_sim.reconfigure({"faults": [{"kind": "corrupt", "endpoint": "premiumIndexKlines", "count": 1},
                                     {"kind": "empty", "endpoint": "premiumIndexKlines", "count": 1}]})
    corrupt = requests.get(url, params={"symbol": "BTCUSDT", "interval": "1m", "startTime": start, "limit": 5}, timeout=5).json()
    assert float(corrupt[0][2]) < float(corrupt[0][3])  # high below low, also where the series is negative
    assert requests.get(url, params={"symbol": "BTCUSDT", "interval": "1m", "startTime": start, "limit": 5}, timeout=5).json() == []


def test_price_series_hours_aggregate_their_minutes_exactly(perp_sim):
    start = day_bounds_ms(DAY)[0]
    for series in ("mark", "index", "premium"):
        minutes = reference(perp_sim, "BTCUSDT", series, MINUTE_MS, start, start + HOUR_MS)
        hour = reference(perp_sim, "BTCUSDT", series, HOUR_MS, start, start + HOUR_MS)
        assert hour.tolist() == [[start, minutes[0, 1], minutes[:, 2].max(), minutes[:, 3].min(), minutes[-1, 4]]]


def oi_truth(sim, period_ms: int, start: int, end: int) -> np.ndarray:
    rows = sim.market.open_interest(sim.config.symbols["BTCUSDT"], period_ms, start, end, sim.now())
    return np.column_stack([rows["time"], rows["amount"] / 1000, rows["value"] / 10**5])


@pytest.mark.parametrize("period,step", [("5m", 5 * MINUTE_MS), ("1h", HOUR_MS)])
def test_ccxt_reads_open_interest_history_of_the_last_30_days_from_futures_data(perp_sim, usdm, period, step):
    """``/futures/data/openInterestHist`` as ccxt's ``fetch_open_interest_history`` reads it (its
    ``fapiData`` URL): rows on the period's grid, a coarser period's the 5-minute series' at its times;
    a ``startTime`` older than 30 days is refused; its own budget, not the klines weight."""
    usdm.urls["api"]["fapiData"] = f"{perp_sim.url}/futures/data"
    start = (perp_sim.now() - 2 * DAY_MS) // step * step
    rows = usdm.fetch_open_interest_history("BTC/USDT:USDT", period, start, 200)
    got = np.array([[r["timestamp"], r["openInterestAmount"], r["openInterestValue"]] for r in rows])
    want = oi_truth(perp_sim, step, start, start + 200 * step)
    assert len(got) == len(want) == min(200, 2 * DAY_MS // step + 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    five = oi_truth(perp_sim, 5 * MINUTE_MS, start, start + 200 * step)
    assert set(map(tuple, want)) <= set(map(tuple, five))  # the 5-minute series sampled at the period
    with pytest.raises(ccxt.BadRequest, match="startTime"):
        usdm.fetch_open_interest_history("BTC/USDT:USDT", period, perp_sim.now() - 31 * DAY_MS, 10)
    assert perp_sim.stats["requests.fapi.data.openInterestHist"] == 2 and perp_sim.stats["fapi.weight"] == 1  # exchangeInfo alone


def test_the_metrics_archive_holds_open_interest_every_5_minutes_a_day(perp_sim):
    """``futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-<day>.zip``: a CSV of 288 rows with the
    venue's header, datetime strings, the open interest REST serves for the same times; its
    CHECKSUM the zip's sha256; no monthly metrics files."""
    import hashlib
    import io
    import zipfile

    day = dt.date(2026, 10, 4)  # older than REST's 30 days
    url = f"{perp_sim.url}/archive/binance/data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-{day}.zip"
    data = requests.get(url, timeout=10).content
    assert requests.get(url + ".CHECKSUM", timeout=10).text.split()[0] == hashlib.sha256(data).hexdigest()
    text = zipfile.ZipFile(io.BytesIO(data)).read(f"BTCUSDT-metrics-{day}.csv").decode().splitlines()
    assert text[0].startswith("create_time,symbol,sum_open_interest,sum_open_interest_value,") and len(text) == 289
    first = text[1].split(",")
    assert first[0] == f"{day} 00:00:00" and first[1] == "BTCUSDT" and len(first) == 8
    rows = np.array([[float(c) for c in line.split(",")[2:4]] for line in text[1:]])
    np.testing.assert_allclose(rows, oi_truth(perp_sim, 5 * MINUTE_MS, *day_bounds_ms(day))[:, 1:], rtol=0, atol=1e-6)
    assert requests.get(url.replace("daily", "monthly").replace(f"-{day}", f"-{day:%Y-%m}"), timeout=10).status_code == 404
