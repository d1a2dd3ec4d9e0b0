"""US equities from Polygon (now Massive) aggregates over plain HTTP.

Not a ccxt venue: this is the second ``CandleSource`` beside ``ccxt_source``, with the same retry
discipline and shared budget. One page is one aggregates request and every ``next_url`` after it
(Polygon cuts an answer at ``limit`` bars and says where the rest is). The API key comes from the
environment variable the universe names (``api_key_env``), travels only in the ``Authorization``
header, and is scrubbed from every error message, so no log, event or exception carries it. A key
refused (401) or not entitled to the data (403) fails the run as ``AuthenticationFailed``; only a
ticker Polygon answers 404 for is one it does not list (``NotListed``).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import threading
import time
from collections.abc import Callable
from urllib.parse import quote

import numpy as np
import orjson
import requests

from ohlcv_assets.candle_frame import empty_rows, widen
from ohlcv_assets.http.egress import bind_session
from ohlcv_assets.exchange.rate_budget import RateBudget
from ohlcv_assets.exchange.retrying import (
    AUTH,
    PERMANENT,
    RATE_LIMITED,
    TRANSIENT,
    Failure,
    RetryingSource,
)
from ohlcv_assets.exchange.source import NotListed, PermanentFetchError
from ohlcv_assets.core.intervals import interval_ms
from ohlcv_assets.core.universe import ExchangeConfig
from ohlcv_assets.venues.polygon import trading_day_open_times

DEFAULT_API_URL = "https://api.polygon.io"
_TIMESPANS = (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000))


class VenueAnswerError(Exception):
    """An answer that is not what the venue promises (status, body); ``status`` None: no answer."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


def aggregate_range(interval: str) -> tuple[int, str]:
    """Polygon's multiplier and timespan of an interval: 1m -> (1, minute), 1h -> (1, hour), 1d -> (1, day)."""
    step = interval_ms(interval)
    for span, span_ms in _TIMESPANS:
        if step % span_ms == 0:
            return step // span_ms, span
    raise ValueError(f"interval {interval!r} is not a whole number of minutes")


class PolygonCandleSource(RetryingSource):
    """One Polygon API key's candles; thread-safe (a requests session per thread)."""

    def __init__(self, name: str, config: ExchangeConfig, budget: RateBudget | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 egress_address: str | None = None):
        super().__init__(name, config, budget, sleep, rng, egress_address)
        self._base = (config.api_url or DEFAULT_API_URL).rstrip("/")
        self._caller.url = self._base
        self._key = os.environ.get(config.api_key_env) if config.api_key_env else None  # dg.EnvVar's reading, without Dagster
        self.adjusted = bool(config.options.get("adjusted", True))  # split-adjusted bars: a split rewrites history
        self._local = threading.local()
        self._tickers: dict[str, dict] = {}

    # --- CandleSource ---------------------------------------------------------------------
    def check_symbol(self, symbol: str) -> bool:
        return self._ticker(symbol).get("active", True) is not False

    def fetch_page(self, symbol: str, interval: str, since_ms: int, until_ms: int) -> np.ndarray:
        mult, span = aggregate_range(interval)
        url = (f"{self._base}/v2/aggs/ticker/{quote(symbol, safe='')}/range/{mult}/{span}/{since_ms}/{until_ms}"
               f"?adjusted={'true' if self.adjusted else 'false'}&sort=asc&limit={self.page_limit}")
        pages = []
        while url:
            body = self._get(url, self.config.candles_weight)
            results = body.get("results") or []
            rows = _as_rows(results, self.name)
            if span == "day" and len(rows):
                try:
                    rows[:, 0] = trading_day_open_times(rows[:, 0])
                except ValueError as err:
                    raise PermanentFetchError(f"{self.name} {symbol}: {err}") from None
                rows = rows[rows[:, 0] >= since_ms]  # Polygon snaps ``from`` back to the New York day it falls in
            pages.append(rows)
            url = body.get("next_url")
        return np.concatenate(pages) if pages else empty_rows()

    def first_open_time(self, symbol: str, interval: str) -> int | None:
        listed = self._ticker(symbol).get("list_date")
        if not listed:
            return 0  # Polygon does not know: every session is asked about
        day = dt.date.fromisoformat(listed)
        return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)

    def last_candle_end(self, symbol: str, interval: str) -> int | None:
        """Polygon says when a ticker was delisted (``delisted_utc``); its bars end there."""
        delisted = self._ticker(symbol).get("delisted_utc")
        return None if not delisted else int(dt.datetime.fromisoformat(delisted.replace("Z", "+00:00")).timestamp() * 1000)

    def ping(self) -> None:
        """One cheap authenticated request (the health check); raises if the venue cannot be reached."""
        self._get(f"{self._base}/v3/reference/tickers?limit=1", self.config.markets_weight)

    # --- requests -------------------------------------------------------------------------
    def _ticker(self, symbol: str) -> dict:
        if symbol not in self._tickers:
            try:
                body = self._get(f"{self._base}/v3/reference/tickers/{quote(symbol, safe='')}", self.config.markets_weight)
            except PermanentFetchError as err:
                if isinstance(err.__cause__, VenueAnswerError) and err.__cause__.status == 404:
                    raise NotListed(f"{self.name} does not list {symbol!r} (no such ticker)") from None
                raise
            self._tickers[symbol] = body.get("results") or {}
        return self._tickers[symbol]

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = bind_session(requests.Session(), self.egress_address, self._caller)
            if self._key:
                session.headers["Authorization"] = f"Bearer {self._key}"
        return session

    def _get(self, url: str, weight: int) -> dict:
        def attempt() -> dict:
            try:
                answer = self._session().get(url, timeout=self.config.timeout_seconds)
            except requests.RequestException as err:
                raise VenueAnswerError(self._scrub(f"{type(err).__name__}: {err}")) from None
            if answer.status_code != 200:
                retry_after = answer.headers.get("Retry-After")
                raise VenueAnswerError(self._scrub(f"HTTP {answer.status_code} {answer.text[:300]}"), answer.status_code,
                                       float(retry_after) if retry_after and retry_after.isdigit() else None)
            try:
                body = orjson.loads(answer.content)
            except orjson.JSONDecodeError:
                raise VenueAnswerError(f"truncated or invalid JSON ({len(answer.content)} bytes)") from None
            if not isinstance(body, dict) or body.get("status") not in ("OK", "DELAYED"):
                raise VenueAnswerError(self._scrub(f"unexpected answer: {str(body)[:300]}"))
            return body

        return self._caller.call(attempt, weight, _classify)

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text


def _classify(err: Exception) -> Failure | None:
    if not isinstance(err, VenueAnswerError):
        return None
    if err.status == 429:
        return Failure(RATE_LIMITED, err.retry_after, err.status)
    if err.status in (401, 403):  # a key refused, or a plan not entitled to the data
        return Failure(AUTH, status=err.status)
    if err.status is not None and 400 <= err.status < 500:
        return Failure(PERMANENT, status=err.status)
    return Failure(TRANSIENT, status=err.status)


def _as_rows(results: list, name: str) -> np.ndarray:
    """Polygon's bars ({t, o, h, l, c, v, vw, n}) as candle rows (vwap and trades as extras)."""
    if not results:
        return empty_rows()
    try:
        rows = np.array([(r["t"], r["o"], r["h"], r["l"], r["c"], r["v"]) for r in results], dtype=np.float64)
        extra = np.array([(r.get("vw", np.nan), r.get("n", np.nan)) for r in results], dtype=np.float64)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise VenueAnswerError(f"{name}: malformed bars, e.g. {results[:1]}") from None
    if np.isnan(rows).any():
        raise VenueAnswerError(f"{name}: malformed bars, e.g. {results[:1]}")
    return widen(rows, vwap=extra[:, 0], trades=extra[:, 1])
