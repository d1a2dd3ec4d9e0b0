"""The simulator behaves like Binance where our client depends on it, over real HTTP."""

import datetime as dt
import socket
import struct
import time

import numpy as np
import pytest
import requests

from ohlcv_assets.core.intervals import DAY_MS, MINUTE_MS, day_bounds_ms
from ohlcv_assets.simulator.market import Downtime, SimSymbol, SimulatedMarket
from ohlcv_assets.simulator.server import SimulatorConfig
from ohlcv_assets_tests.helpers import DOWNTIME_DAY, PLAIN_DAY
from ohlcv_assets.simulator.client import read_stats


def klines(sim, **params):
    return requests.get(f"{sim.url}/api/v3/klines", params=params, timeout=5)


def test_klines_follow_start_end_and_limit(simulator):
    start, end = day_bounds_ms(PLAIN_DAY)
    rows = klines(simulator, symbol="BTCUSDT", interval="1m", startTime=start, endTime=end - 1, limit=1000).json()
    assert len(rows) == 1000
    assert rows[0][0] == start and rows[-1][0] == start + 999 * MINUTE_MS
    assert rows[0][6] == start + MINUTE_MS - 1  # close time, as Binance sends it
    assert isinstance(rows[0][1], str) and rows[0][1].endswith("000000")  # eight-decimal strings
    tail = klines(simulator, symbol="BTCUSDT", interval="1m", endTime=end - 1, limit=10).json()
    assert [r[0] for r in tail] == list(range(end - 10 * MINUTE_MS, end, MINUTE_MS))


def test_bad_requests_answer_binance_errors(simulator):
    bad_symbol = klines(simulator, symbol="NOPEUSDT", interval="1m")
    assert bad_symbol.status_code == 400 and bad_symbol.json()["code"] == -1121
    assert klines(simulator, symbol="BTCUSDT", interval="7m").json()["code"] == -1120
    assert klines(simulator, symbol="BTCUSDT", interval="1m", limit=1001).json()["code"] == -1130


def test_listing_and_downtime_leave_no_candles(simulator):
    start, end = day_bounds_ms(DOWNTIME_DAY)
    rows = klines(simulator, symbol="BTCUSDT", interval="1m", startTime=start + 4 * 3600_000, limit=200).json()
    times = np.array([r[0] for r in rows])
    outage = (times >= start + 5 * 3600_000) & (times < start + 6.5 * 3600_000)
    assert not outage.any()
    assert times[60] == start + 6.5 * 3600_000  # the page skips over the outage, as Binance does
    first = klines(simulator, symbol="LATEUSDT", interval="1m", startTime=0, limit=1).json()
    assert first[0][0] == day_bounds_ms(dt.date(2026, 10, 12))[0]


def test_longer_intervals_aggregate_the_minutes_exactly():
    market = SimulatedMarket({"X": SimSymbol("X", "USDT", dt.date(2020, 1, 1), 50.0)},
                             [Downtime(dt.datetime(2026, 1, 1, 1, 10, tzinfo=dt.timezone.utc), dt.datetime(2026, 1, 1, 1, 20, tzinfo=dt.timezone.utc))])
    sym = market.symbols["X"]
    start = day_bounds_ms(dt.date(2026, 1, 1))[0]
    minutes = market.minute_candles(sym, start, start + DAY_MS, start + 2 * DAY_MS)
    hours = market.candles(sym, 3600_000, start, start + DAY_MS, start + 2 * DAY_MS)
    assert len(hours) == 24
    in_hour = (minutes.open_time >= start + 3600_000) & (minutes.open_time < start + 7200_000)
    assert in_hour.sum() == 50  # ten minutes of downtime
    assert hours.open[1] == minutes.open[in_hour][0] and hours.close[1] == minutes.close[in_hour][-1]
    assert hours.high[1] == minutes.high[in_hour].max() and hours.low[1] == minutes.low[in_hour].min()
    assert hours.volume[1] == minutes.volume[in_hour].sum()
    assert (minutes.low <= np.minimum(minutes.open, minutes.close)).all()
    assert (minutes.high >= np.maximum(minutes.open, minutes.close)).all()


def test_the_last_candle_forms_until_it_closes(simulator):
    minute = day_bounds_ms(PLAIN_DAY)[0] + 600 * MINUTE_MS
    answers = []
    for offset in (10_000, 40_000):
        simulator.reconfigure({"frozen_now_ms": minute + offset})
        answers.append(klines(simulator, symbol="BTCUSDT", interval="1m", startTime=minute, limit=5).json())
    assert len(answers[0]) == len(answers[1]) == 1
    assert answers[0][0][0] == answers[1][0][0] == minute
    assert answers[0][0][5] != answers[1][0][5]  # volume still growing
    simulator.reconfigure({"frozen_now_ms": minute + 5 * MINUTE_MS})
    closed = klines(simulator, symbol="BTCUSDT", interval="1m", startTime=minute, limit=1).json()[0]
    assert closed[0] == minute and closed[5] not in (answers[0][0][5], answers[1][0][5])


def test_weight_budget_answers_429_then_418_to_hammering(simulator):
    simulator.reconfigure({"weight_limit": 10, "hold_grace_seconds": 0})  # no request of this client is on the wire
    statuses = [klines(simulator, symbol="BTCUSDT", interval="1m", limit=1).status_code for _ in range(6)]
    assert statuses[:5] == [200] * 5
    assert statuses[5] == 429
    hammered = klines(simulator, symbol="BTCUSDT", interval="1m", limit=1)
    assert hammered.status_code == 418 and int(hammered.headers["Retry-After"]) > 0
    stats = read_stats(simulator.url)
    assert stats["status.429"] == 1 and stats["status.418"] == 1


def test_an_injected_429_holds_the_client_and_bans_grow_for_repeat_offenders(simulator):
    """As on Binance: after a 429 the address must wait its Retry-After. A request arriving within
    the grace was on the wire (429 again, not counted); later ones inside the hold are banned
    (418), each new ban twice as long, up to the longest; every request inside a hold or a ban
    (past the grace) counts as a violation, by address."""
    simulator.reconfigure({"hold_grace_seconds": 0.3, "ban_seconds": 1, "max_ban_seconds": 2,
                           "faults": [{"kind": "rate_limit", "count": 3, "seconds": 2}]})
    ask = lambda: klines(simulator, symbol="BTCUSDT", interval="1m", limit=1)  # noqa: E731
    limited = ask()
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    on_the_wire = ask()
    assert on_the_wire.status_code == 429
    time.sleep(0.4)
    banned = ask()
    assert banned.status_code == 418 and banned.headers["Retry-After"] == "1"
    assert ask().status_code == 418  # on the wire when the ban began: let off
    time.sleep(0.4)
    assert ask().status_code == 418  # inside the ban
    stats = read_stats(simulator.url)
    assert stats["violations"] == 2 and stats["violations_by_client.127.0.0.1"] == 2 and stats["in_flight_at_hold"] == 2
    time.sleep(1.6)  # the hold and the ban are over
    assert ask().status_code == 429  # the second injected 429: a new hold
    time.sleep(0.4)
    assert ask().headers["Retry-After"] == "2"  # the second ban: twice the first
    time.sleep(2.1)
    assert ask().status_code == 429  # the third injected 429
    time.sleep(0.4)
    assert ask().headers["Retry-After"] == "2"  # no longer than the longest
    time.sleep(2.1)
    assert ask().status_code == 200
    stats = read_stats(simulator.url)
    assert stats["violations"] == 4 and stats["status.418"] == 5


def test_bans_scale_with_the_weight_window_by_default():
    config = SimulatorConfig.from_mapping({"weight_window_seconds": 4})
    assert (config.first_ban_seconds, config.longest_ban_seconds) == (8, 4 * 4320)  # Binance: 2 min and 3 days per 60 s
    assert SimulatorConfig.from_mapping({"ban_seconds": 600}).first_ban_seconds == 600


def test_429_carries_retry_after_and_weight_is_reported(simulator):
    simulator.reconfigure({"weight_limit": 4})
    ok = klines(simulator, symbol="BTCUSDT", interval="1m", limit=1)
    assert ok.headers["X-MBX-USED-WEIGHT-1M"] == "2"
    klines(simulator, symbol="BTCUSDT", interval="1m", limit=1)
    limited = klines(simulator, symbol="BTCUSDT", interval="1m", limit=1)
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60


@pytest.mark.parametrize("fault,check", [
    ({"kind": "status", "status": 502, "count": 1}, lambda r: r.status_code == 502),
    ({"kind": "truncated", "count": 1}, lambda r: r.status_code == 200 and not r.text.endswith("]")),
    ({"kind": "corrupt", "count": 1}, lambda r: float(r.json()[0][2]) < float(r.json()[0][3])),
])
def test_injected_faults_fire_then_stop(simulator, fault, check):
    simulator.reconfigure({"faults": [fault]})
    start = day_bounds_ms(PLAIN_DAY)[0]
    first = klines(simulator, symbol="BTCUSDT", interval="1m", startTime=start, limit=3)
    second = klines(simulator, symbol="BTCUSDT", interval="1m", startTime=start, limit=3)
    assert check(first)
    assert second.status_code == 200 and float(second.json()[0][2]) >= float(second.json()[0][3])


def test_slow_fault_delays_the_answer(simulator):
    simulator.reconfigure({"faults": [{"kind": "slow", "seconds": 0.5, "count": 1}]})
    started = time.monotonic()
    assert klines(simulator, symbol="BTCUSDT", interval="1m", limit=1).status_code == 200
    assert time.monotonic() - started >= 0.5


def test_a_fault_can_target_a_time_window(simulator):
    start = day_bounds_ms(PLAIN_DAY)[0]
    simulator.reconfigure({"faults": [{"kind": "status", "status": 404, "count": 1, "start_between": [start, start + DAY_MS]}]})
    assert klines(simulator, symbol="BTCUSDT", interval="1m", startTime=start - DAY_MS, limit=1).status_code == 200
    assert klines(simulator, symbol="BTCUSDT", interval="1m", startTime=start, limit=1).status_code == 404
    assert klines(simulator, symbol="BTCUSDT", interval="1m", startTime=start, limit=1).status_code == 200


def test_a_client_hanging_up_mid_request_prints_nothing_and_the_venue_serves_on(simulator, capfd):
    """A client resetting its connection before its request line is read (a timeout, a killed run)
    leaves no traceback in the simulator's output, and the next request is served."""
    host, port = simulator.server.server_address[:2]
    for _ in range(3):
        with socket.create_connection((host, port)) as conn:
            conn.sendall(b"GET /api/v3/ti")
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
    time.sleep(0.5)
    assert requests.get(f"{simulator.url}/api/v3/time", timeout=10).status_code == 200
    assert "Traceback" not in capfd.readouterr().err
