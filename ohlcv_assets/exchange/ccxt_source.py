"""Candles from any ccxt exchange, with the retry discipline ccxt itself does not have.

ccxt raises on the first failure; here every request is throttled to the exchange's budget,
429/418 answers wait for ``Retry-After``, transient failures (5xx, timeouts, network errors,
truncated JSON) back off exponentially with jitter, and errors that cannot succeed (unknown
symbol, bad interval, other 4xx) fail at once.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable

import ccxt
import numpy as np

from ohlcv_assets.exchange.source import FetchFailed, FetchStats, PermanentFetchError
from ohlcv_assets.universe import ExchangeConfig

BACKOFF_CAP_SECONDS = 30.0
RETRY_AFTER_MARGIN_SECONDS = 0.25
_PERMANENT_STATUSES = {400, 401, 403, 404, 405, 410, 451}
_DEFAULT_OPTIONS = {"binance": {"fetchMarkets": {"types": ["spot"]}}, "binanceus": {"fetchMarkets": {"types": ["spot"]}}}


def backoff_seconds(attempt: int, base: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: uniform in [0.5, 1.5] x base * 2**attempt, capped."""
    return min(BACKOFF_CAP_SECONDS, base * 2**attempt) * rng.uniform(0.5, 1.5)


class CcxtCandleSource:
    page_limit = 1000

    def __init__(self, name: str, config: ExchangeConfig, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None):
        self.name = name
        self.config = config
        self.stats = FetchStats()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._spacing = 60.0 / config.requests_per_minute
        self._next_slot = 0.0
        self._lock = threading.Lock()
        self._last_status: int | None = None
        self._first_open: dict[tuple[str, str], int | None] = {}
        self.exchange = self._build_exchange()
        self._markets_loaded = False

    def _build_exchange(self) -> ccxt.Exchange:
        options = {**_DEFAULT_OPTIONS.get(self.config.ccxt_id, {}), **self.config.options}
        exchange = getattr(ccxt, self.config.ccxt_id)({
            "enableRateLimit": False,  # throttled here, where the budget is the universe's
            "timeout": int(self.config.timeout_seconds * 1000),
            "options": options,
        })
        if self.config.api_url:
            api = exchange.urls.get("api")
            if isinstance(api, dict):
                api["public"] = self.config.api_url
            else:
                exchange.urls["api"] = self.config.api_url
        source = self

        def remember_status(code, reason, url, method, headers, body, *rest):
            source._last_status = code
            return body

        def strict_json(body):
            if ccxt.Exchange.is_json_encoded_object(body):
                try:
                    return json.loads(body)
                except ValueError:
                    raise ccxt.BadResponse(f"{self.name}: truncated or invalid JSON ({len(body)} bytes)") from None
            return None

        exchange.on_rest_response = remember_status
        exchange.parse_json = strict_json
        return exchange

    # --- CandleSource ---------------------------------------------------------------------
    def check_symbol(self, symbol: str) -> None:
        if not self._markets_loaded:
            self._call(self.exchange.load_markets)
            self._markets_loaded = True
        if symbol not in self.exchange.markets:
            listed = sorted(self.exchange.markets)
            raise PermanentFetchError(
                f"{self.name} ({self.config.ccxt_id}) does not list {symbol!r}; it lists {len(listed)} markets, e.g. {listed[:5]}"
            )

    def fetch_page(self, symbol: str, interval: str, since_ms: int, until_ms: int) -> np.ndarray:
        return self._call(lambda: _as_rows(
            self.exchange.fetch_ohlcv(symbol, interval, since_ms, self.page_limit, {"until": until_ms}), self.name))

    def first_open_time(self, symbol: str, interval: str) -> int | None:
        key = (symbol, interval)
        if key not in self._first_open:
            rows = self._call(lambda: _as_rows(self.exchange.fetch_ohlcv(symbol, interval, 0, 1), self.name))
            self._first_open[key] = int(rows[0, 0]) if len(rows) else None
        return self._first_open[key]

    # --- retries --------------------------------------------------------------------------
    def _throttle(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._spacing
        if slot > now:
            self._sleep(slot - now)

    def _call(self, fn):
        attempts = self.config.max_attempts
        for attempt in range(attempts):
            self._throttle()
            self._last_status = None
            self.stats.requests += 1
            try:
                return fn()
            except ccxt.BaseError as err:
                status = self._last_status
                if status in (418, 429):
                    wait = max(self._retry_after(), backoff_seconds(attempt, self.config.retry_base_seconds, self._rng))
                    self.stats.rate_limit_waits += 1
                elif _is_permanent(err, status):
                    raise PermanentFetchError(f"{self.name}: {err}") from err
                else:
                    wait = backoff_seconds(attempt, self.config.retry_base_seconds, self._rng)
                if attempt == attempts - 1:
                    raise FetchFailed(f"{self.name}: request still failing after {attempts} attempts: {err}") from err
                self.stats.retries += 1
                self.stats.waited_seconds += wait
                self._sleep(wait)
        raise AssertionError("unreachable")

    def _retry_after(self) -> float:
        headers = self.exchange.last_response_headers or {}
        try:
            return float(headers.get("Retry-After", 1)) + RETRY_AFTER_MARGIN_SECONDS
        except ValueError:
            return 1.0 + RETRY_AFTER_MARGIN_SECONDS


def _is_permanent(err: ccxt.BaseError, status: int | None) -> bool:
    if status in _PERMANENT_STATUSES:
        return True
    if status is not None and status >= 500:
        return False
    retryable = (ccxt.NetworkError, ccxt.BadResponse, ccxt.OperationFailed)
    return not isinstance(err, retryable)


def _as_rows(raw, name: str) -> np.ndarray:
    """ccxt's [[t, o, h, l, c, v], ...] as a float array; anything malformed is a bad answer."""
    if not isinstance(raw, list):
        raise ccxt.BadResponse(f"{name}: unexpected candle answer of type {type(raw).__name__}")
    if not raw:
        return np.empty((0, 6))
    try:
        rows = np.array([r[:6] for r in raw], dtype=np.float64)
    except (TypeError, ValueError, IndexError):
        raise ccxt.BadResponse(f"{name}: malformed candle rows, e.g. {raw[:1]}") from None
    if rows.ndim != 2 or rows.shape[1] != 6 or np.isnan(rows).any():
        raise ccxt.BadResponse(f"{name}: malformed candle rows, e.g. {raw[:1]}")
    return rows
