"""A page of candles through ccxt, the way every ccxt venue takes unless its module declares its
own (``VenueProfile.ccxt_candles``): ccxt's ``fetch_ohlcv``. And the one check every ccxt answer
passes, whoever parses it (``candle_rows``): a venue's own parser (Binance's raw klines) checks its
rows with it too, so a malformed answer is the same retryable ``BadResponse`` from every venue.

Not a venue: it declares no ``PROFILE``, so the registry passes it by.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from ohlcv_assets.candle_frame import widen

if TYPE_CHECKING:
    import ccxt


class CcxtCandles(Protocol):
    """Up to ``limit`` candles of ``market`` opening from ``since_ms`` (None: the latest) until
    ``until_ms`` (None: no end), ascending, as candle rows with their extras (``widen``); through
    the thread's ccxt instance ``exchange``. ``name`` is the universe's name of the venue, for errors."""

    def __call__(self, exchange: ccxt.Exchange, market: dict, interval: str, since_ms: int | None, limit: int,
                 until_ms: int | None, name: str) -> np.ndarray: ...


def fetch_ohlcv_rows(exchange: ccxt.Exchange, market: dict, interval: str, since_ms: int | None, limit: int,
                     until_ms: int | None, name: str) -> np.ndarray:
    """ccxt's unified ``fetch_ohlcv`` ([[t, o, h, l, c, v], ...]), checked; no extras."""
    params = {} if until_ms is None else {"until": until_ms}
    return widen(candle_rows(exchange.fetch_ohlcv(market["symbol"], interval, since_ms, limit, params), name, 6, "candle"))


class CcxtSeriesCandles(Protocol):
    """A page of a perpetual's price series (``series``: mark, index, premium) as candle rows
    (volume 0: these series have none), as ``CcxtCandles`` reads trade candles."""

    def __call__(self, exchange: ccxt.Exchange, market: dict, series: str, interval: str, since_ms: int | None, limit: int,
                 until_ms: int | None, name: str) -> np.ndarray: ...


UNIFIED_SERIES_METHOD = {"mark": "fetch_mark_ohlcv", "index": "fetch_index_ohlcv", "premium": "fetch_premium_index_ohlcv"}


def fetch_series_ohlcv_rows(exchange: ccxt.Exchange, market: dict, series: str, interval: str, since_ms: int | None, limit: int,
                            until_ms: int | None, name: str) -> np.ndarray:
    """ccxt's unified ``fetch_mark_ohlcv`` / ``fetch_index_ohlcv`` / ``fetch_premium_index_ohlcv``,
    checked; the volume slot (none, 0 or None by venue) stored as 0."""
    params = {} if until_ms is None else {"until": until_ms}
    raw = getattr(exchange, UNIFIED_SERIES_METHOD[series])(market["symbol"], interval, since_ms, limit, params)
    if isinstance(raw, list):
        raw = [[*r[:5], 0] if isinstance(r, list) else r for r in raw]
    return widen(candle_rows(raw, name, 6, f"{series} candle"))


class CcxtFunding(Protocol):
    """A page of funding settlements of ``market`` from ``since_ms`` to ``until_ms`` (inclusive) as
    (n, 3) rows of (venue settlement time ms, rate, mark price or NaN), ascending; and whether the
    page was full (more may follow)."""

    def __call__(self, exchange: ccxt.Exchange, market: dict, since_ms: int, until_ms: int, name: str) -> tuple[np.ndarray, bool]: ...


class CcxtOpenInterest(Protocol):
    """A page of open interest of ``market`` every ``period`` from ``since_ms`` to ``until_ms``
    (inclusive) as (n, 3) rows of (time ms, amount or NaN, value or NaN), ascending; and whether
    the page was full (more may follow)."""

    def __call__(self, exchange: ccxt.Exchange, market: dict, period: str, since_ms: int, until_ms: int,
                 name: str) -> tuple[np.ndarray, bool]: ...


OI_PAGE = 500  # rows a page of open interest holds (Binance's openInterestHist limit; ccxt's default elsewhere)


def fetch_open_interest_rows(exchange: ccxt.Exchange, market: dict, period: str, since_ms: int, until_ms: int,
                             name: str) -> tuple[np.ndarray, bool]:
    """ccxt's unified ``fetch_open_interest_history`` (a page of ``OI_PAGE``), checked."""
    raw = exchange.fetch_open_interest_history(market["symbol"], period, since_ms, OI_PAGE, {"until": until_ms})
    if not isinstance(raw, list):
        raise _bad_response(f"{name}: unexpected open interest answer of type {type(raw).__name__}")
    rows = open_interest_rows([(r.get("timestamp"), r.get("openInterestAmount"), r.get("openInterestValue"))
                               if isinstance(r, dict) else r for r in raw], name)
    return rows, len(rows) >= OI_PAGE


def open_interest_rows(raw: list, name: str) -> np.ndarray:
    """(time, amount, value) triples as an (n, 3) float array, ascending; a missing time, a negative
    or non-numeric figure, or times out of order is ccxt's ``BadResponse`` (retried). A missing
    figure is NaN (the venue may give one of the two), never 0."""
    try:
        rows = np.array([(float(t), *(float(x) if x not in (None, "") else np.nan for x in (a, v))) for t, a, v in raw],
                        dtype=np.float64).reshape(-1, 3)
    except (TypeError, ValueError):
        raise _bad_response(f"{name}: malformed open interest rows, e.g. {raw[:1]}") from None
    figures = rows[:, 1:]
    if (not np.isfinite(rows[:, 0]).all() or (figures < 0).any() or np.isnan(figures).all(axis=1).any()
            or (np.diff(rows[:, 0]) <= 0).any()):
        raise _bad_response(f"{name}: malformed open interest rows, e.g. {raw[:1]}")
    return rows


def fetch_funding_rows(exchange: ccxt.Exchange, market: dict, since_ms: int, until_ms: int, name: str) -> tuple[np.ndarray, bool]:
    """ccxt's unified ``fetch_funding_rate_history`` (the venue's default page), checked; no mark
    price (ccxt's structure has none). A page is taken as full unless empty: pages end at the
    first empty one."""
    raw = exchange.fetch_funding_rate_history(market["symbol"], since_ms, None, {"until": until_ms})
    if not isinstance(raw, list):
        raise _bad_response(f"{name}: unexpected funding answer of type {type(raw).__name__}")
    rows = funding_rows([(r.get("timestamp"), r.get("fundingRate"), None) if isinstance(r, dict) else r for r in raw], name)
    return rows, len(rows) > 0


def funding_rows(raw: list, name: str) -> np.ndarray:
    """(time, rate, mark price) triples as an (n, 3) float array, ascending; a missing or
    non-numeric time or rate, a rate of 100 % or more, or times out of order is ccxt's
    ``BadResponse`` (retried: a garbled answer is transient). A missing mark price is NaN, never 0."""
    try:
        rows = np.array([(float(t), float(r), float(m) if m not in (None, "") else np.nan) for t, r, m in raw],
                        dtype=np.float64).reshape(-1, 3)
    except (TypeError, ValueError):
        raise _bad_response(f"{name}: malformed funding rows, e.g. {raw[:1]}") from None
    if not np.isfinite(rows[:, :2]).all() or (np.abs(rows[:, 1]) >= 1).any() or (np.diff(rows[:, 0]) <= 0).any():
        raise _bad_response(f"{name}: malformed funding rows, e.g. {raw[:1]}")
    return rows


def candle_rows(raw, name: str, width: int, what: str) -> np.ndarray:
    """A venue's answer of candle rows ([t, o, h, l, c, v, ...], each at least ``width`` long) as an
    (n, width) float array; an answer that is not a list of such rows, or has a missing or
    non-numeric time or price or volume, is ccxt's ``BadResponse`` (retried: a truncated or garbled
    answer is transient). ``what`` names the rows in the message (candle, kline)."""
    if not isinstance(raw, list):
        raise _bad_response(f"{name}: unexpected candle answer of type {type(raw).__name__}")
    if not raw:
        return np.empty((0, width))
    try:
        rows = np.array([r[:width] for r in raw], dtype=np.float64)  # one pass over the answer
    except (TypeError, ValueError, IndexError):
        raise _bad_response(f"{name}: malformed {what} rows, e.g. {raw[:1]}") from None
    if rows.ndim != 2 or rows.shape[1] != width or np.isnan(rows[:, :6]).any():
        raise _bad_response(f"{name}: malformed {what} rows, e.g. {raw[:1]}")
    return rows


def _bad_response(message: str) -> Exception:
    import ccxt  # imported already: only a ccxt answer gets here

    return ccxt.BadResponse(message)
