"""Candle sources and gap-free pagination of closed candles.

A ``CandleSource`` answers one request window; ``fetch_closed_candles`` turns windows into exactly
the closed candles of a time range, so other sources (bulk archives, other protocols) plug in
without touching the assets.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np
import pandas as pd

from ohlcv_assets.candle_frame import empty_candles, rows_to_frame
from ohlcv_assets.core.intervals import MINUTE_MS, interval_ms
from ohlcv_assets.core.universe import ExchangeConfig


class PermanentFetchError(Exception):
    """A request that cannot succeed by retrying (unknown symbol, bad interval, 4xx)."""


class NotListed(PermanentFetchError):
    """The venue's market or ticker list loaded and does not hold the symbol: with a symbol marked
    inactive, the only evidence of a delisting (an error, refused credentials above all, is none)."""


class FetchFailed(Exception):
    """A request window that still failed after all its retries: the partition must fail."""


@dataclasses.dataclass
class FetchStats:
    requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    waited_seconds: float = 0.0
    used_weight_holds: int = 0
    http_429: int = 0  # rate-limit answers: HTTP 429, or the venue's own rate-limit error
    http_418: int = 0  # bans
    http_5xx: int = 0
    errors: int = 0  # requests that got no usable answer, whatever the reason

    def since(self, before: FetchStats) -> FetchStats:
        """What happened between ``before`` (an earlier copy) and now."""
        return FetchStats(**{f.name: getattr(self, f.name) - getattr(before, f.name) for f in dataclasses.fields(self)})


class CandleSource(Protocol):
    """One venue's candles. ``config`` is the venue's universe entry (history depth, omitted
    intervals and sessions come from its profile)."""

    page_limit: int
    stats: FetchStats
    config: ExchangeConfig

    def check_symbol(self, symbol: str) -> bool:
        """True if the symbol trades, False if the venue lists it as no longer trading (delisted);
        raises NotListed if the venue's list loaded and does not hold it, and other errors (refused
        credentials, a venue that cannot be reached) as they come."""

    def fetch_page(self, symbol: str, interval: str, since_ms: int, until_ms: int) -> np.ndarray:
        """Up to page_limit candles opening in [since_ms, until_ms], ascending, as an (n, 6) float array."""

    def first_open_time(self, symbol: str, interval: str) -> int | None:
        """Open time of the symbol's first candle ever (its listing), or None if unknown."""

    def last_candle_end(self, symbol: str, interval: str) -> int | None:
        """End of the newest candle the venue serves for the symbol (asked of delisted symbols),
        or None if it serves none."""

    def ping(self) -> None:
        """One cheap request (the health check): returns if the venue answered; raises
        ``AuthenticationFailed`` if it refused the credentials, any other error if it cannot be reached."""


def listing_within_history(open_times: np.ndarray | None, interval: str, config: ExchangeConfig) -> int | None:
    """The listing of a symbol on a venue that serves only its latest ``history_candles``, from the
    open times it serves (its answer to "the latest candles"): a first candle near the horizon
    (``history_candles`` before the last) means the symbol listed before it (0: before anything
    that can be asked about); a later first candle is the listing."""
    if open_times is None or len(open_times) == 0:
        return None
    step = interval_ms(interval)
    horizon = int(open_times[-1]) - (config.history_candles - 1) * step
    first = int(open_times[0])
    return 0 if first - horizon < max(step, config.downtime_min_minutes * MINUTE_MS) else first


def history_start_ms(config: ExchangeConfig, step_ms: int, now: int) -> int | None:
    """Open time of the oldest candle the venue still serves (None: all of them since listing)."""
    return (now // step_ms - config.history_candles + 1) * step_ms if config.history_candles else None


OI_HORIZON_MARGIN_MS = 3_600_000  # open interest is asked only from this long after a REST horizon: a clock a little off is not refused


def open_interest_horizon_ms(profile, step_ms: int, now: int) -> int | None:
    """The oldest open interest sample time the venue's REST is asked for (None: all of history),
    on the sample grid: its stated horizon (``open_interest_history_days``) plus a margin."""
    days = profile.open_interest_history_days
    return None if days is None else -(-(now - days * 86_400_000 + OI_HORIZON_MARGIN_MS) // step_ms) * step_ms


def open_interest_served_since(source, symbol: str, period: str, start_ms: int, end_ms: int) -> int | None:
    """The oldest sample time in [start_ms, end_ms) (on the ``period`` grid) whose request the venue
    does not refuse, for a venue that states no horizon and refuses an older window with a permanent
    error (a 400): found by bisection, a one-sample request per probe. None when it refuses the
    newest time too (the error is another one: the caller raises it)."""
    step = interval_ms(period)

    def served(t: int) -> bool:
        try:
            source.fetch_open_interest(symbol, period, t, t + step - 1)
        except PermanentFetchError:
            return False
        return True

    lo, hi = -(-start_ms // step), (end_ms - 1) // step  # grid indexes; is hi served, which lo is not?
    if hi < lo or not served(hi * step):
        return None
    if served(lo * step):
        return lo * step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if served(mid * step) else (mid, hi)
    return hi * step


def fetch_closed_candles(source: CandleSource, symbol: str, interval: str, step_ms: int,
                         start_ms: int, end_ms: int, now_ms: int, empty_answers: list[tuple[int, int]] | None = None) -> pd.DataFrame:
    """Every closed candle opening in [start_ms, end_ms), paginated without gaps or overlaps.

    A candle is closed when its close time (open + interval) is not in the future, so the
    still-forming candle is never returned. Pagination asks page-sized windows, each from the
    last candle received (or the end of an empty window), until the range is covered: a short
    answer is followed by a request from its last candle, so the only spans asked about once are
    those an empty answer covered, appended to ``empty_answers`` (the caller asks about them
    again where candles on both sides make an empty answer suspicious: ``ingest.ask_again``).
    """
    end = min(end_ms, now_ms // step_ms * step_ms)
    cursor, pages = start_ms, []
    while cursor < end:
        window_end = min(end, cursor + source.page_limit * step_ms)  # no wider than a page (Coinbase refuses more)
        rows = source.fetch_page(symbol, interval, cursor, window_end - 1)
        times = rows[:, 0] if len(rows) else rows
        if len(rows) and np.any(np.diff(times) <= 0):
            raise FetchFailed(f"{symbol} {interval}: the source returned unordered or duplicate candles after {cursor}")
        if len(rows) and times[-1] < cursor:
            raise FetchFailed(f"{symbol} {interval}: the source ignored the requested start {cursor}")
        rows = rows[(times >= cursor) & (times < end)] if len(rows) else rows
        if len(rows) == 0:
            if empty_answers is not None:
                empty_answers.append((cursor, window_end))
            cursor = window_end  # nothing in this window (an outage, or no trades; or a venue's glitch): on to the next
            continue
        pages.append(rows)
        cursor = int(rows[-1, 0]) + step_ms
    return rows_to_frame(np.concatenate(pages)) if pages else empty_candles()
