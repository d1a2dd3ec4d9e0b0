"""The read path: ``load_candles`` is the one way to read stored candles, for users (notebooks,
backtests) and for the pipeline's own features and checks. No Dagster here.

    from ohlcv_assets import load_candles, load_funding, load_open_interest
    frame = load_candles("binance", "BTC/USDT", "1m", "2025-01-01", "2025-02-01")
    marks = load_candles("perps", "BTC/USDT:USDT", "mark_1h", "2025-01-01", "2025-02-01")  # a series code
    funding = load_funding("perps", "BTC/USDT:USDT", "2025-01-01", "2025-02-01")
    oi = load_open_interest("perps", "BTC/USDT:USDT", "2025-01-01", "2025-02-01")

On PostgreSQL the rows come by binary COPY straight into numpy (no Python object per value).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import warnings
from collections.abc import Iterator

import pandas as pd

from ohlcv_assets.core.intervals import derived_interval_ms, interval_ms, ms_to_iso
from ohlcv_assets.core.settings import READER, warehouse_url
from ohlcv_assets.venues.series import FUNDING_CODE, OI_CODE
from ohlcv_assets.warehouse import derived, funding, open_interest
from ohlcv_assets.warehouse.schema import funding_rates
from ohlcv_assets.warehouse.schema import open_interest as open_interest_table
from ohlcv_assets.warehouse.store import (HELD_SHOWN, NotInWarehouse, Warehouse, describe_held, held_instruments, series_instruments,
                                          series_span)
from ohlcv_assets.warehouse.urls import public_url

TimeLike = str | dt.date | dt.datetime | pd.Timestamp | int



@contextlib.contextmanager
def _reading(warehouse: Warehouse | None) -> Iterator[Warehouse]:
    """The warehouse given, or the reader role's own, opened for this read and disposed after it."""
    if warehouse is not None:
        yield warehouse
        return
    owned = Warehouse.open_existing(warehouse_url(role=READER))
    try:
        yield owned
    finally:
        owned.dispose()


def to_ms(value: TimeLike) -> int:
    """Epoch milliseconds (UTC) of an int (already ms), a date (its midnight UTC), a datetime or an
    ISO string (naive means UTC)."""
    if isinstance(value, bool):
        raise TypeError("a time, not a bool")
    if isinstance(value, int):
        return value
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1_000_000)


class OutsideStoredRange(UserWarning):
    """``load_candles`` was asked for a range outside what the warehouse holds of the instrument."""


def load_candles(exchange: str, symbol: str, interval: str, start: TimeLike, end: TimeLike, *,
                 warmup: int = 0, warehouse: Warehouse | None = None, strict: bool = True,
                 derived_from: str | None = None) -> pd.DataFrame:
    """One instrument's stored candles opening in [start, end), ascending, plus the ``warmup``
    stored candles before ``start`` (indicators need them).

    Columns ``open_time`` (epoch ms, int64), ``open``, ``high``, ``low``, ``close``, ``volume``
    (float64); the index is the open time as a UTC timestamp, named ``time``. Without a
    ``warehouse``, the one the settings resolve for readers (``OHLCV_READER_URL``, else ``OHLCV_WAREHOUSE_URL`` …) is opened read-only:
    a missing or empty warehouse raises ``WarehouseMissing`` instead of returning nothing.
    Candles are only what is stored: a missing candle is a missing row, never filled in.

    An instrument (exchange, symbol) or interval the warehouse has never held raises
    ``NotInWarehouse``, naming those it holds (a misspelt symbol is not an empty answer). A range
    of a held instrument with no candles is an empty frame; when the range lies outside the
    stored span it also warns (``OutsideStoredRange``), saying the span. ``strict=False`` (the
    pipeline's own reads, for which an instrument without candles yet is normal) skips both.

    A perpetual's mark, index and premium index klines are read under their series code
    (``venues.series.series_code``) in place of the interval: ``mark_1h``, ``idx_1h``, ``prem_1h``
    (volume 0: they have none). Funding settlements and open interest are no candles:
    ``load_funding``, ``load_open_interest``.

    ``derived_from="1m"`` reads the ``interval`` candles the warehouse rolled up from the stored 1m
    ones (table ``derived_candles``, a universe's ``derived: {4h: 1m}``) instead of the venue's own:
    the two are never mixed, and a derived series never stored raises ``NotInWarehouse`` too.
    """
    if interval == FUNDING_CODE:
        raise ValueError("funding settlements are not candles: read them with load_funding(exchange, symbol, start, end)")
    if interval == OI_CODE:
        raise ValueError("open interest is not candles: read it with load_open_interest(exchange, symbol, start, end)")
    if derived_from is not None:
        derived_interval_ms(interval)
        return _load_derived(exchange, symbol, interval, derived_from, to_ms(start), to_ms(end), warmup, warehouse, strict)
    interval_ms(interval)
    start_ms, end_ms = to_ms(start), to_ms(end)
    if end_ms < start_ms:
        raise ValueError(f"end {end!r} is before start {start!r}")
    with _reading(warehouse) as warehouse:
        frame = warehouse.read_candles(exchange, symbol, interval, start_ms, end_ms)
        if strict and frame.empty:
            explain_empty(warehouse, exchange, symbol, interval, start_ms, end_ms)
        if warmup:
            before = warehouse.read_candles_before(exchange, symbol, interval, start_ms, warmup)
            frame = pd.concat([before, frame], ignore_index=True)
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame["open_time"], unit="ms", utc=True), name="time")
    return frame


def load_funding(exchange: str, symbol: str, start: TimeLike, end: TimeLike, *, warehouse: Warehouse | None = None,
                 strict: bool = True) -> pd.DataFrame:
    """A perpetual's stored funding settlements whose nominal time is in [start, end), ascending.

    Columns ``funding_time`` (the nominal settlement time, on the hour, epoch ms, int64),
    ``raw_time`` (the venue's own settlement time, often a few ms later), ``rate`` (signed) and
    ``mark_price`` (NaN where the venue gives none), float64; the index is ``funding_time`` as a UTC
    timestamp, named ``time``. A missing settlement is a missing row. The warehouse, ``strict`` and
    the answers when nothing comes back are those of ``load_candles``: an instrument without stored
    settlements raises ``NotInWarehouse`` naming those with some, a range outside the stored span
    warns ``OutsideStoredRange``."""
    start_ms, end_ms = _range(start, end)
    with _reading(warehouse) as warehouse:
        frame = funding.read_funding(warehouse, exchange, symbol, start_ms, end_ms)
        if strict and frame.empty:
            _explain_no_rows(warehouse, funding_rates, funding.FUNDING, "funding settlements", exchange, symbol, start_ms, end_ms)
    return _indexed(frame.rename(columns={"open_time": "funding_time"}), "funding_time")


def load_open_interest(exchange: str, symbol: str, start: TimeLike, end: TimeLike, *, warehouse: Warehouse | None = None,
                       strict: bool = True) -> pd.DataFrame:
    """A perpetual's stored open interest samples whose time is in [start, end), ascending, at the
    resolution they are stored at (every 5 minutes, ``venues.series.OI_CODE``).

    Columns ``sample_time`` (epoch ms, int64, on the 5-minute grid), ``amount`` (open interest in
    contracts, the base asset) and ``value`` (in the quote currency), float64, NaN where the venue
    gives none; the index is ``sample_time`` as a UTC timestamp, named ``time``. A missing sample
    is a missing row. The warehouse, ``strict`` and the answers when nothing comes back are those
    of ``load_funding``: an instrument without stored samples raises ``NotInWarehouse`` naming
    those with some, a range outside the stored span warns ``OutsideStoredRange``."""
    start_ms, end_ms = _range(start, end)
    with _reading(warehouse) as warehouse:
        frame = open_interest.read_open_interest(warehouse, exchange, symbol, start_ms, end_ms)
        if strict and frame.empty:
            _explain_no_rows(warehouse, open_interest_table, open_interest.OPEN_INTEREST, "open interest samples", exchange, symbol,
                             start_ms, end_ms)
    return _indexed(frame.rename(columns={"open_time": "sample_time"}), "sample_time")


def _range(start: TimeLike, end: TimeLike) -> tuple[int, int]:
    start_ms, end_ms = to_ms(start), to_ms(end)
    if end_ms < start_ms:
        raise ValueError(f"end {end!r} is before start {start!r}")
    return start_ms, end_ms


def _indexed(frame: pd.DataFrame, time_column: str) -> pd.DataFrame:
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame[time_column], unit="ms", utc=True), name="time")
    return frame


def _explain_no_rows(warehouse: Warehouse, table, timeframe: str, what: str, exchange: str, symbol: str, start_ms: int,
                     end_ms: int) -> None:
    """Why a read of an event table (funding settlements, open interest samples) found nothing, as
    ``explain_empty`` says it for candles."""
    span = series_span(warehouse, table, timeframe, exchange, symbol)
    if span is None:
        held = "; ".join(f"{e} {s}" for e, s in series_instruments(warehouse, table, timeframe)[:HELD_SHOWN]) or "none"
        raise NotInWarehouse(f"the warehouse at {public_url(warehouse.url)} holds no {what} of {exchange} {symbol}; "
                             f"it holds those of: {held}")
    first, last = span
    if end_ms <= first or start_ms > last:
        warnings.warn(f"{exchange} {symbol}: no {what} from {ms_to_iso(start_ms)} to {ms_to_iso(end_ms)}; the warehouse holds "
                      f"this instrument's {what} from {ms_to_iso(first)} to {ms_to_iso(last)}", OutsideStoredRange, stacklevel=3)


def _load_derived(exchange: str, symbol: str, interval: str, source: str, start_ms: int, end_ms: int, warmup: int,
                  warehouse: Warehouse | None, strict: bool) -> pd.DataFrame:
    if warmup:
        raise ValueError("warmup is not offered for derived candles")
    if end_ms < start_ms:
        raise ValueError(f"end {ms_to_iso(end_ms)} is before start {ms_to_iso(start_ms)}")
    with _reading(warehouse) as warehouse:
        frame = derived.read_derived(warehouse, exchange, symbol, interval, source, start_ms, end_ms)
        if strict and frame.empty and derived.derived_span(warehouse, exchange, symbol, interval, source) is None:
            raise NotInWarehouse(f"the warehouse at {public_url(warehouse.url)} holds no {interval} candles of {exchange} {symbol} "
                                 f"derived from {source} (declare derived: {{{interval}: {source}}} in the universe and "
                                 f"materialize derived_candles/{interval}_from_{source})")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame["open_time"], unit="ms", utc=True), name="time")
    return frame


def explain_empty(warehouse: Warehouse, exchange: str, symbol: str, interval: str, start_ms: int, end_ms: int) -> None:
    """Why a read found nothing: raises for an instrument-interval never held, warns for a range
    outside the stored span, says nothing for a hole inside it. Two index lookups (first and last
    stored candle); naming what is held walks the key only on the error."""
    first = warehouse.earliest_open_time(exchange, symbol, interval)
    if first is None:
        held = held_instruments(warehouse)
        raise NotInWarehouse(f"the warehouse at {public_url(warehouse.url)} holds no {interval} candles of {exchange} {symbol}; "
                             f"it holds {describe_held(held)}")
    last = warehouse.latest_open_time(exchange, symbol, interval)
    if end_ms <= first or start_ms > last:
        warnings.warn(f"{exchange} {symbol} {interval}: no candles from {ms_to_iso(start_ms)} to {ms_to_iso(end_ms)}; the warehouse "
                      f"holds this instrument's {interval} candles from {ms_to_iso(first)} to {ms_to_iso(last)}",
                      OutsideStoredRange, stacklevel=3)
