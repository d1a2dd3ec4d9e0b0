"""ccxt against the simulator over HTTP: exact pagination, retries that end exact, no 418s."""

import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from ohlcv_assets.candle_frame import CANDLE_COLUMNS
from ohlcv_assets.core.errors import AuthenticationFailed, VenueUnreachable
from ohlcv_assets.exchange.ccxt_source import CcxtCandleSource
from ohlcv_assets.exchange.source import FetchFailed, PermanentFetchError, fetch_closed_candles
from ohlcv_assets.core.intervals import MINUTE_MS, day_bounds_ms, interval_ms
from ohlcv_assets.core.universe import ExchangeConfig
from ohlcv_assets_tests.helpers import DOWNTIME_DAY, PLAIN_DAY, simulator_candles


@pytest.fixture
def unused_port():
    """A port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch_day(source, symbol, interval, day, now_ms):
    start, end = day_bounds_ms(day)
    return fetch_closed_candles(source, symbol, interval, interval_ms(interval), start, end, now_ms)


@pytest.fixture
def source(universe):
    return CcxtCandleSource("binance", universe.exchanges["binance"])


@pytest.mark.parametrize("interval", ["1m", "5m", "1h", "1d"])
def test_a_day_is_exactly_the_simulators(simulator, source, interval):
    now = day_bounds_ms(PLAIN_DAY)[1] + 3600_000
    frame = fetch_day(source, "BTC/USDT", interval, PLAIN_DAY, now)
    expected = simulator_candles(simulator, "BTC/USDT", interval, PLAIN_DAY, now)
    assert len(frame) == 86_400_000 // interval_ms(interval)
    assert frame[CANDLE_COLUMNS].equals(expected)


def test_pages_skip_downtime_without_overlap(simulator, source):
    now = day_bounds_ms(DOWNTIME_DAY)[1]
    frame = fetch_day(source, "BTC/USDT", "1m", DOWNTIME_DAY, now)
    assert len(frame) == 1440 - 90
    assert frame["open_time"].is_unique and frame["open_time"].is_monotonic_increasing
    assert frame[CANDLE_COLUMNS].equals(simulator_candles(simulator, "BTC/USDT", "1m", DOWNTIME_DAY, now))
    assert source.stats.retries == 0


def test_the_forming_candle_is_never_returned(simulator, source):
    now = day_bounds_ms(PLAIN_DAY)[0] + 600 * MINUTE_MS + 30_000
    simulator.reconfigure({"frozen_now_ms": now})
    frame = fetch_day(source, "BTC/USDT", "1m", PLAIN_DAY, now)
    assert frame["open_time"].iloc[-1] == now // MINUTE_MS * MINUTE_MS - MINUTE_MS
    assert len(frame) == 600


@pytest.mark.parametrize("fault", [
    {"kind": "rate_limit", "count": 2},
    {"kind": "status", "status": 503, "count": 3},
    {"kind": "status", "status": 500, "every": 2},
    {"kind": "truncated", "count": 2},
    {"kind": "slow", "seconds": 3, "count": 1},
])
def test_transient_failures_are_retried_and_end_exact(simulator, source, fault):
    simulator.reconfigure({"faults": [fault]})
    now = day_bounds_ms(PLAIN_DAY)[1]
    frame = fetch_day(source, "ETH/USDT", "1m", PLAIN_DAY, now)
    assert frame[CANDLE_COLUMNS].equals(simulator_candles(simulator, "ETH/USDT", "1m", PLAIN_DAY, now))
    assert source.stats.retries >= 1
    assert simulator.stats["status.418"] == 0


def test_fetch_threads_share_the_loaded_markets_and_reuse_the_exchanges_of_ended_threads(simulator, source, monkeypatch):
    """Ingestion starts a thread pool per instrument: building a ccxt instance and parsing every
    market in each new thread made a run over N instruments cost O(N²)."""
    built = []
    build = source._build_exchange
    monkeypatch.setattr(source, "_build_exchange", lambda: built.append(1) or build())
    now = day_bounds_ms(PLAIN_DAY)[1]
    for _ in range(4):
        with ThreadPoolExecutor(max_workers=2) as pool:
            frames = list(pool.map(lambda symbol: fetch_day(source, symbol, "1h", PLAIN_DAY, now), ["BTC/USDT", "ETH/USDT"]))
        assert frames[1][CANDLE_COLUMNS].equals(simulator_candles(simulator, "ETH/USDT", "1h", PLAIN_DAY, now))
    assert 1 <= len(built) <= 2  # two threads at a time; the exchanges of ended threads are taken again
    assert source._spares and all(spare.markets is source.exchange.markets for spare in source._spares)
    assert source.stats.requests == 1 + 4 * 2  # the markets once, then a page per symbol and pool


def test_waits_follow_retry_after(simulator, universe):
    simulator.reconfigure({"faults": [{"kind": "rate_limit", "count": 1}]})
    slept = []
    source = CcxtCandleSource("binance", universe.exchanges["binance"], sleep=slept.append)
    fetch_day(source, "BTC/USDT", "1h", PLAIN_DAY, day_bounds_ms(PLAIN_DAY)[1])
    assert source.stats.rate_limit_waits == 1
    assert any(s >= 1.0 for s in slept)  # Retry-After: 1, never the short backoff
    assert simulator.stats["status.418"] == 0


def test_unknown_symbol_fails_at_once(simulator, source):
    with pytest.raises(PermanentFetchError, match="does not list 'DOGE/USDT'"):
        source.check_symbol("DOGE/USDT")
    assert source.stats.retries == 0


def test_errors_that_cannot_succeed_are_not_retried(simulator, source):
    with pytest.raises(PermanentFetchError):
        source.fetch_page("BTC/USDT", "2m", 0, 10**13)  # ccxt rejects, the exchange would too
    assert source.stats.retries == 0


@pytest.mark.parametrize("code,message", [(None, "-2015"), (-2014, "API-key format invalid.")])
def test_a_refused_key_fails_at_once_with_binances_words(simulator, universe, code, message):
    """Binance refuses a key with HTTP 401 and {"code": -2015 | -2014, "msg": ...}: ccxt's own
    error handling says AuthenticationError, and nothing is retried."""
    simulator.reconfigure({"faults": [{"kind": "auth", "endpoint": "*", "every": 1, "code": code}]})
    slept = []
    source = CcxtCandleSource("binance", universe.exchanges["binance"], sleep=slept.append)
    with pytest.raises(AuthenticationFailed, match=f"binance: authentication failed: .*{message}"):
        source.check_symbol("BTC/USDT")
    assert source.stats.requests == 1 and not slept and simulator.stats["status.401"] == 1
    with pytest.raises(AuthenticationFailed, match=message):
        source.ping()  # the health check's request


def test_nothing_listening_at_the_venue_is_said_at_the_first_contact(universe, unused_port):
    """Connection refused when a source first calls the venue (loading its markets): no retry, no
    wait, the URL named; once the venue has answered, a refused connection is transient (retried)."""
    config = universe.exchanges["binance"].model_copy(update={"api_url": f"http://127.0.0.1:{unused_port}/api/v3"})
    slept = []
    source = CcxtCandleSource("binance", config, sleep=slept.append)
    with pytest.raises(VenueUnreachable, match=rf"binance: no venue answers at http://127.0.0.1:{unused_port}/api/v3 \(connection refused\)"):
        source.check_symbol("BTC/USDT")
    assert source.stats.requests == 1 and not slept


def test_a_venue_that_goes_away_mid_run_is_transient(simulator, universe, unused_port):
    config = universe.exchanges["binance"].model_copy(update={"max_attempts": 3})
    slept = []
    source = CcxtCandleSource("binance", config, sleep=slept.append)
    assert source.check_symbol("BTC/USDT")  # the venue answered
    source.exchange.urls["api"]["public"] = f"http://127.0.0.1:{unused_port}/api/v3"  # ... and then went away
    with pytest.raises(FetchFailed, match="after 3 attempts"):
        source.fetch_page("BTC/USDT", "1h", *day_bounds_ms(PLAIN_DAY))
    assert len(slept) == 2 and source.stats.retries == 2


def test_a_window_still_failing_after_its_retries_fails(simulator, universe):
    simulator.reconfigure({"faults": [{"kind": "status", "status": 503, "count": 100}]})
    config = universe.exchanges["binance"].model_copy(update={"max_attempts": 3})
    source = CcxtCandleSource("binance", config)
    with pytest.raises(FetchFailed, match="after 3 attempts"):
        fetch_day(source, "BTC/USDT", "1h", PLAIN_DAY, day_bounds_ms(PLAIN_DAY)[1])
    assert source.stats.requests == 1 + 3  # the markets, then three tries of the window


def test_binance_klines_keep_quote_volume_and_trade_count(simulator):
    source = CcxtCandleSource("binance", ExchangeConfig(ccxt_id="binance", api_url=f"{simulator.url}/api/v3"))
    start, end = day_bounds_ms(PLAIN_DAY)
    frame = fetch_closed_candles(source, "ETH/USDT", "1h", interval_ms("1h"), start, end, end + 1)
    sim = simulator.market.candles(simulator.config.symbols["ETHUSDT"], interval_ms("1h"), start, end, end + 1, venue="binance")
    assert (frame["trades"].to_numpy() == sim.trades).all() and len(frame) == 24
    assert frame["quote_volume"].to_numpy() == pytest.approx((sim.volume * sim.close // 10**5) / 100, rel=1e-12)
    assert frame["vwap"].isna().all()


def test_a_dropped_source_lets_its_ccxt_instances_go(universe):
    """A source is built per run, and long-lived processes (Celery workers, `ohlcv backfill` over
    many instruments, in-process runs) run many: once a source is dropped, its ccxt instances (each
    holding the venue's parsed markets) must be freed, not kept alive by its own leases' finalizers
    (they were, one per run: 2-3 MB each, until session 18)."""
    import gc
    import weakref

    source = CcxtCandleSource("binance", universe.exchanges["binance"])
    start = day_bounds_ms(PLAIN_DAY)[0]
    with ThreadPoolExecutor(max_workers=3) as pool:  # fetch threads lease instances of their own
        pages = list(pool.map(lambda n: source.fetch_page("BTC/USDT", "1h", start + n * 3_600_000, start + 5 * 3_600_000),
                              range(3)))
    assert [len(p) for p in pages] == [6, 5, 4]
    source.fetch_page("BTC/USDT", "1h", start, start + 3_600_000)  # and the calling thread one
    built = [weakref.ref(e) for e in [source.exchange, *source._spares]]
    assert len(built) >= 2
    del source, pages
    gc.collect()
    assert [ref() for ref in built] == [None] * len(built)
