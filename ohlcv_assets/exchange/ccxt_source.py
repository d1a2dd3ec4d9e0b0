"""Candles from any ccxt exchange, with the retry discipline ccxt itself does not have.

ccxt raises on the first failure; here every request goes through the shared retry discipline
(``retrying``): 429/418 answers and the venue's own rate-limit errors (Kraken's
``EAPI:Rate limit exceeded`` comes with HTTP 200) wait, transient failures (5xx, timeouts, network
errors, truncated JSON) back off, and errors that cannot succeed (unknown symbol, bad interval,
other 4xx) fail at once; refused credentials or permissions (ccxt's ``AuthenticationError`` and
``PermissionDenied``, from each venue's own error form) fail the run as ``AuthenticationFailed``.
Pages are as long as the venue's profile says (Binance 1,000, Kraken 720, Coinbase 300). What a
venue does differently through ccxt (its ccxt settings, how its candles are read: Binance's raw
klines, Kraken's vwap) is declared in its ``venues`` module, never branched on here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import random
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import orjson

from ohlcv_assets.core.errors import AuthenticationFailed
from ohlcv_assets.http.egress import bind_session
from ohlcv_assets.exchange.rate_budget import RateBudget
from ohlcv_assets.exchange.retrying import (
    AUTH,
    PERMANENT,
    RATE_LIMITED,
    TRANSIENT,
    Failure,
    RetryingCaller,
    RetryingSource,
)
from ohlcv_assets.exchange.source import NotListed, listing_within_history
from ohlcv_assets.core.intervals import DAY_MS, interval_ms
from ohlcv_assets.core.universe import ExchangeConfig
from ohlcv_assets.venues.ccxt_candles import OI_PAGE
from ohlcv_assets.venues.series import parse_series_code

if TYPE_CHECKING:
    import ccxt


def _ccxt():
    """ccxt, imported on first use: its import (every exchange it knows) costs 0.4 s, and a run
    that reads only archives never sends a request."""
    import ccxt

    return ccxt

_PERMANENT_STATUSES = {400, 401, 403, 404, 405, 410, 451}


PUBLISHED_TTL_SECONDS = 600  # what a venue publishes of a symbol's funding (interval, cap) is asked again after this


class _Lease:
    """A thread's hold on one of a source's ccxt instances (kept in the thread's locals)."""

    def __init__(self, exchange: ccxt.Exchange):
        self.exchange = exchange


class _Gates:
    """The send gate of a source's sessions: the caller of the request this thread is making, so
    that a budget's holds stop the requests that count on it (and a 429 of one budget's endpoint
    holds that budget only)."""

    def __init__(self, default):
        self._default, self._local = default, threading.local()

    def _current(self):
        return getattr(self._local, "caller", None) or self._default

    def before_send(self) -> None:
        self._current().before_send()

    def on_answer(self, status, headers) -> None:
        self._current().on_answer(status, headers)

    @contextlib.contextmanager
    def using(self, caller):
        before = getattr(self._local, "caller", None)
        self._local.caller = caller
        try:
            yield
        finally:
            self._local.caller = before


class CcxtCandleSource(RetryingSource):
    """One exchange's candles. Thread-safe: each thread talks through its own ccxt instance (ccxt
    keeps the last response on the instance), all of them drawing on one shared rate budget. When
    a thread ends its instance goes back to the source for the next thread: building one costs more
    than a request, and fetch threads last one instrument's fetch."""

    def __init__(self, name: str, config: ExchangeConfig, budget: RateBudget | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 egress_address: str | None = None):
        super().__init__(name, config, budget, sleep, rng, egress_address)
        self._lock = threading.Lock()
        self._markets_lock = threading.Lock()
        self._local = threading.local()  # each thread's lease of a ccxt instance
        # Each thread's last HTTP status, apart from the leases: ccxt's response hook holds it, and a
        # hook reaching a lease would keep that lease, its finalizer and its ccxt instance alive for good.
        self._statuses = threading.local()
        self._spares: list[ccxt.Exchange] = []
        self._first_open: dict[tuple[str, str], int | None] = {}
        self._published: dict[str, tuple[float, tuple]] = {}
        self._markets_loaded = False
        self._gates = _Gates(self._caller)
        # open interest counts on a budget of its own where the venue limits it apart (Binance USDⓈ-M), else as weight 1
        self._open_interest_caller = (self._caller.on_budget(self.budget.apart(
            "open_interest", config.open_interest_limit, config.open_interest_window_seconds))
            if config.open_interest_limit else None)

    @functools.cached_property
    def exchange(self) -> ccxt.Exchange:
        """The instance holding the markets every other instance shares; built at first use, as ccxt is imported."""
        return self._thread_exchange()

    def _build_exchange(self) -> ccxt.Exchange:
        venue = self.config.profile.ccxt_settings
        exchange = getattr(_ccxt(), self.config.ccxt_id)({
            "enableRateLimit": False,  # the shared budget throttles instead
            "timeout": int(self.config.timeout_seconds * 1000),
            "enableLastJsonResponse": False,  # unless the venue reads more of an answer than ccxt's parse
            **venue,
            "options": {**venue.get("options", {}), **self.config.options},
        })
        bind_session(exchange.session, self.egress_address, self._gates)
        if self.config.api_url:
            api = exchange.urls.get("api")
            if isinstance(api, dict):
                api.update(dict.fromkeys(self.config.profile.api_url_keys, self.config.api_url))
                origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(self.config.api_url))
                api.update({key: origin + path for key, path in self.config.profile.api_url_derived.items()})
            else:
                exchange.urls["api"] = self.config.api_url
        if self.config.api_urls:
            api = exchange.urls.get("api")
            if not isinstance(api, dict):
                raise ValueError(f"{self.name}: api_urls: {self.config.ccxt_id}'s API is one URL (set api_url)")
            api.update(self.config.api_urls)
        if self._caller.url is None:
            api = exchange.urls.get("api")
            self._caller.url = api.get(self.config.profile.api_url_keys[0]) if isinstance(api, dict) else api
            if self._open_interest_caller is not None:
                self._open_interest_caller.url = self._caller.url
        statuses, name = self._statuses, self.name

        def remember_status(code, reason, url, method, headers, body, *rest):
            statuses.status = code
            return body

        def strict_json(body):
            if _ccxt().Exchange.is_json_encoded_object(body):
                try:
                    return orjson.loads(body)
                except orjson.JSONDecodeError:
                    raise _ccxt().BadResponse(f"{name}: truncated or invalid JSON ({len(body)} bytes)") from None
            return None

        exchange.on_rest_response = remember_status
        exchange.parse_json = strict_json
        return exchange

    def _thread_exchange(self) -> ccxt.Exchange:
        lease = getattr(self._local, "lease", None)
        if lease is None:
            with self._lock:
                exchange = self._spares.pop() if self._spares else None
            exchange = exchange or self._build_exchange()
            lease = self._local.lease = _Lease(exchange)
            weakref.finalize(lease, self._spares.append, exchange)
        exchange = lease.exchange
        if self._markets_loaded and exchange.markets is not self.exchange.markets:
            exchange.set_markets_from_exchange(self.exchange)  # shared, not re-parsed: O(markets) each
        return exchange

    # --- CandleSource ---------------------------------------------------------------------
    def check_symbol(self, symbol: str) -> bool:
        self._load_markets()
        if symbol not in self.exchange.markets:
            listed = sorted(self.exchange.markets)
            raise NotListed(
                f"{self.name} ({self.config.ccxt_id}) does not list {symbol!r}; it lists {len(listed)} markets, e.g. {listed[:5]}"
            )
        return self.exchange.markets[symbol].get("active") is not False

    def fetch_page(self, symbol: str, interval: str, since_ms: int, until_ms: int) -> np.ndarray:
        return self._candles(symbol, interval, since_ms, self.page_limit, until_ms)

    def first_open_time(self, symbol: str, interval: str) -> int | None:
        key = (symbol, interval)
        if key not in self._first_open:
            if self.config.history_candles:  # the oldest candle served is the horizon, not the listing
                rows = self._candles(symbol, interval, None, self.config.history_candles, None)
                self._first_open[key] = listing_within_history(rows[:, 0] if len(rows) else None, interval, self.config)
            elif self.config.profile.finds_listing:
                rows = self._candles(symbol, interval, 0, 1, None)
                self._first_open[key] = int(rows[0, 0]) if len(rows) else None
            elif self.config.profile.listing_search_from:
                self._first_open[key] = self._search_listing(symbol, interval, self.config.profile.listing_search_from)
            else:
                self._first_open[key] = 0  # unknown: every window is asked about
        return self._first_open[key]

    def last_candle_end(self, symbol: str, interval: str) -> int | None:
        rows = self._candles(symbol, interval, None, self.page_limit, None)  # a page: some venues keep its oldest on limit=1
        return int(rows[-1, 0]) + interval_ms(interval) if len(rows) else None

    def _search_listing(self, symbol: str, interval: str, search_from: str) -> int | None:
        """The first candle on a venue that answers only fixed windows: daily candles a page at a time
        from ``search_from`` to the first one (a dozen requests for ten years), then that day's
        candles of ``interval`` to its first one."""
        now = int(time.time() * 1000)
        since = int(dt.datetime.fromisoformat(search_from).replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
        while since < now:
            rows = self._candles(symbol, "1d", since, self.page_limit, min(since + (self.page_limit - 1) * DAY_MS, now))
            if len(rows):
                first_day = int(rows[0, 0])
                break
            since += self.page_limit * DAY_MS
        else:
            return None
        step = interval_ms(interval)
        for since in range(first_day, first_day + DAY_MS, self.page_limit * step):
            rows = self._candles(symbol, interval, since, self.page_limit, since + (self.page_limit - 1) * step)
            if len(rows):
                return int(rows[0, 0])
        return first_day

    # --- a perpetual's funding settlements ------------------------------------------------------
    def fetch_funding(self, symbol: str, since_ms: int, until_ms: int) -> np.ndarray:
        """Every funding settlement with the venue's time in [since_ms, until_ms], ascending, as
        (time, rate, mark price or NaN) rows: page after page (``ccxt_funding``) from the last one
        seen, each request on the venue's budget like a candles request."""
        self._load_markets()
        read, pages, cursor = self.config.profile.ccxt_funding, [], since_ms
        while cursor <= until_ms:
            def request(start=cursor):
                return read(self._thread_exchange(), self.exchange.market(symbol), start, until_ms, self.name)

            rows, full = self._call(request, 1)
            rows = rows[rows[:, 0] >= cursor]  # a venue that answers from before the cursor repeats nothing here
            if len(rows):
                pages.append(rows)
                cursor = int(rows[-1, 0]) + 1
            if not full or not len(rows):
                break
        rows = np.concatenate(pages) if pages else np.empty((0, 3))
        return rows[rows[:, 0] <= until_ms]

    def first_funding_time(self, symbol: str) -> int | None:
        """The venue's time of the symbol's first funding settlement (None: none yet), asked once."""
        key = (symbol, "funding")
        if key not in self._first_open:
            self._load_markets()
            read = self.config.profile.ccxt_funding

            def request():
                return read(self._thread_exchange(), self.exchange.market(symbol), 0, int(time.time() * 1000), self.name)

            rows, _ = self._call(request, 1)
            self._first_open[key] = int(rows[0, 0]) if len(rows) else None
        return self._first_open[key]

    def fetch_open_interest(self, symbol: str, period: str, since_ms: int, until_ms: int) -> np.ndarray:
        """Every open interest sample of ``period`` with its time in [since_ms, until_ms], ascending,
        as (time, amount, value) rows: page after page (``ccxt_open_interest``) from the last one
        seen, each request on the venue's budget."""
        self._load_markets()
        read, pages, cursor = self.config.profile.ccxt_open_interest, [], since_ms
        while cursor <= until_ms:
            def request(start=cursor):
                return read(self._thread_exchange(), self.exchange.market(symbol), period, start, until_ms, self.name)

            rows, full = self._call(request, 1, self._open_interest_caller)
            rows = rows[rows[:, 0] >= cursor]
            if len(rows):
                pages.append(rows)
            if not full:
                break
            cursor = int(rows[-1, 0]) + 1 if len(rows) else cursor + OI_PAGE * interval_ms(period)
        rows = np.concatenate(pages) if pages else np.empty((0, 3))
        return rows[rows[:, 0] <= until_ms]

    def funding_published(self, symbol: str) -> tuple[int | None, float | None, float | None]:
        """What the venue publishes of the symbol's funding now: (interval hours, rate cap, rate
        floor), None where it does not; asked once per ``PUBLISHED_TTL_SECONDS`` (a run's schedule
        and its cap check share one request)."""
        published = self.config.profile.funding_published
        if published is None:
            return None, None, None
        cached = self._published.get(symbol)
        if cached is None or time.monotonic() - cached[0] > PUBLISHED_TTL_SECONDS:
            self._load_markets()
            cached = (time.monotonic(), self._call(lambda: published(self._thread_exchange(), self.exchange.market(symbol)), 1))
            self._published[symbol] = cached
        return cached[1]

    def funding_interval(self, symbol: str) -> int | None:
        """The symbol's funding interval now (hours), where the venue publishes it; else None."""
        return self.funding_published(symbol)[0]

    def funding_cap(self, symbol: str) -> tuple[float | None, float | None]:
        """The symbol's funding rate cap and floor now, where the venue publishes them; else None."""
        return self.funding_published(symbol)[1:]

    def ping(self) -> None:
        """One plain request, outside the budget (the health check); raises if the venue cannot be
        reached, ``AuthenticationFailed`` if it refuses the credentials."""
        try:
            self.exchange.fetch_time()
        except Exception as err:
            failure = self._classify(err)
            if failure is not None and failure.kind == AUTH:
                raise AuthenticationFailed(self.name, str(err)) from None
            raise

    # --- requests -------------------------------------------------------------------------
    def _load_markets(self) -> None:
        with self._markets_lock:
            if not self._markets_loaded:
                self._call(self.exchange.load_markets, self.config.markets_weight)
                self._markets_loaded = True

    def _candles(self, symbol: str, interval: str, since_ms: int | None, limit: int, until_ms: int | None) -> np.ndarray:
        """A page as the venue's profile reads it (``ccxt_candles``: ccxt's fetch_ohlcv unless its
        module says otherwise), through this thread's ccxt instance; a perpetual's price series
        (``interval`` a series code, ``mark_1h``) as ``ccxt_series_candles`` reads it."""
        self._load_markets()
        series, plain = parse_series_code(interval)
        profile = self.config.profile

        def request():
            exchange, market = self._thread_exchange(), self.exchange.market(symbol)
            if series == "trades":
                return profile.ccxt_candles(exchange, market, plain, since_ms, limit, until_ms, self.name)
            return profile.ccxt_series_candles(exchange, market, series, plain, since_ms, limit, until_ms, self.name)

        return self._call(request, self.config.candles_weight)

    def _call(self, fn, weight: int, caller: RetryingCaller | None = None):
        """``fn`` under the retry rules, on the request-weight budget, or on ``caller``'s budget
        (a family of requests the venue limits apart; its used-weight header is not theirs)."""
        def attempt():
            self._statuses.status = None
            return fn()

        if caller is None:
            return self._caller.call(attempt, weight, self._classify, after=self._respect_used_weight)
        with self._gates.using(caller):
            return caller.call(attempt, weight, self._classify)

    def _classify(self, err: Exception) -> Failure | None:
        if not isinstance(err, _ccxt().BaseError):
            return None
        status = getattr(self._statuses, "status", None)
        if status in (418, 429) or isinstance(err, _ccxt().DDoSProtection):
            return Failure(RATE_LIMITED, self._last_header("Retry-After"), status)
        if status == 401 or isinstance(err, (_ccxt().AuthenticationError, _ccxt().PermissionDenied, _ccxt().AccountSuspended)):
            return Failure(AUTH, status=status)
        if _is_permanent(err, status):
            return Failure(PERMANENT, status=status)
        return Failure(TRANSIENT, status=status)

    def _respect_used_weight(self) -> None:
        """When the exchange has counted more weight in its window than our share allows (other
        clients on the same IP, or runs that started before this one), everyone waits: the longer
        the nearer the count is to the limit, up to a whole window at the limit, since in the
        worst case all of it was spent just now."""
        header = self.config.used_weight_header
        if not header:
            return
        used = self._last_header(header)
        if used is None:
            return
        limit = self.config.weight_limit
        allowed = limit * (self.config.budget_use + self.config.budget_burst)
        if used > allowed:
            share = 1.0 if used >= limit else (used - allowed) / (limit - allowed)
            self.budget.hold_back(self.config.weight_window_seconds * share)
            with self._lock:
                self.stats.used_weight_holds += 1

    def _last_header(self, name: str) -> float | None:
        """A numeric header of this thread's last answer, or None if absent or not a number."""
        headers = self._thread_exchange().last_response_headers or {}
        value = headers.get(name, headers.get(name.lower()))
        try:
            return None if value is None else float(value)
        except ValueError:
            return None


def _is_permanent(err: ccxt.BaseError, status: int | None) -> bool:
    if status in _PERMANENT_STATUSES:
        return True
    if status is not None and status >= 500:
        return False
    retryable = (_ccxt().NetworkError, _ccxt().BadResponse, _ccxt().OperationFailed)
    return not isinstance(err, retryable)
