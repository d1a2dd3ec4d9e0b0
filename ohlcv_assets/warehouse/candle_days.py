"""How many candles each instrument, interval and UTC day holds (``candle_days``), kept in the same
transaction as every change of the candles: a merge adds the rows it inserted (exactly those: see
``Dialect.merge_rows``), retention removes the days of the spans it drops, ``delete_days``
recounts the days it deleted from. Concurrent writers add to a day's row (``candles + n``), so
neither overwrites the other's count. ``ohlcv-status`` and the metrics exporter read counts and
first/last open times here: a few rows per instrument-day instead of a scan of every candle.

A database loaded by other means (a bulk COPY straight into ``candles``) is brought back in line
with ``rebuild``."""

from __future__ import annotations

import dataclasses

import numpy as np
import sqlalchemy as sa

from ohlcv_assets.warehouse.dialect import Dialect
from ohlcv_assets.warehouse.schema import candle_days, candles

DAY_MS = 86_400_000
_KEY = ("exchange", "symbol", "timeframe")


@dataclasses.dataclass(frozen=True)
class Stored:
    """An instrument-interval's stored candles: how many, and the first and last open times."""

    n: int
    first: int
    last: int


def add(connection: sa.Connection, dialect: Dialect, exchange: str, symbol: str, interval: str, inserted: np.ndarray) -> None:
    """Counts candles just inserted (their open times) into their days, one upsert per day, days
    ascending (concurrent writers lock the same rows in the same order)."""
    if not len(inserted):
        return
    times = np.asarray(inserted, dtype=np.int64)
    days = times - times % DAY_MS
    order = np.argsort(days, kind="stable")
    days, times = days[order], times[order]
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    counts = np.diff(np.r_[starts, len(days)])
    firsts, lasts = np.minimum.reduceat(times, starts), np.maximum.reduceat(times, starts)
    c = candle_days.c
    statement = dialect.insert(candle_days)
    statement = statement.on_conflict_do_update(index_elements=[*_KEY, "day_ms"], set_={
        "candles": c.candles + statement.excluded.candles,
        "first_open": dialect.least(c.first_open, statement.excluded.first_open),
        "last_open": dialect.greatest(c.last_open, statement.excluded.last_open)})
    connection.execute(statement, [
        {"exchange": exchange, "symbol": symbol, "timeframe": interval, "day_ms": int(d), "candles": int(n),
         "first_open": int(lo), "last_open": int(hi)}
        for d, n, lo, hi in zip(days[starts], counts, firsts, lasts)])


def remove_span(connection: sa.Connection, interval: str, start_ms: int, end_ms: int) -> None:
    """Forgets an interval's days in [start_ms, end_ms) (day-aligned: a retention span)."""
    connection.execute(sa.delete(candle_days).where(candle_days.c.timeframe == interval, candle_days.c.day_ms >= start_ms,
                                                    candle_days.c.day_ms < end_ms))


def recount(connection: sa.Connection, exchange: str | None, symbol: str | None, interval: str | None,
            start_ms: int | None = None, end_ms: int | None = None) -> None:
    """Counts again, from the candles, the days overlapping [start_ms, end_ms) of one instrument
    and interval (all of them where None)."""
    where_days, where_candles = [], []
    for name, value in zip(_KEY, (exchange, symbol, interval)):
        if value is not None:
            where_days.append(candle_days.c[name] == value)
            where_candles.append(candles.c[name] == value)
    if start_ms is not None:
        first_day = start_ms - start_ms % DAY_MS
        where_days.append(candle_days.c.day_ms >= first_day)
        where_candles.append(candles.c.open_time >= first_day)
    if end_ms is not None:
        where_days.append(candle_days.c.day_ms < end_ms)
        where_candles.append(candles.c.open_time < end_ms - end_ms % DAY_MS + (DAY_MS if end_ms % DAY_MS else 0))
    day = (candles.c.open_time - candles.c.open_time % DAY_MS).label("day_ms")
    connection.execute(sa.delete(candle_days).where(*where_days))
    connection.execute(sa.insert(candle_days).from_select(
        [*_KEY, "day_ms", "candles", "first_open", "last_open"],
        sa.select(candles.c.exchange, candles.c.symbol, candles.c.timeframe, day, sa.func.count(),
                  sa.func.min(candles.c.open_time), sa.func.max(candles.c.open_time))
        .where(*where_candles).group_by(candles.c.exchange, candles.c.symbol, candles.c.timeframe, day)))


def totals(connection: sa.Connection) -> dict[tuple[str, str, str], Stored]:
    """Per (exchange, symbol, interval) with candles: their count, first and last open time."""
    c = candle_days.c
    query = (sa.select(c.exchange, c.symbol, c.timeframe, sa.func.sum(c.candles), sa.func.min(c.first_open),
                       sa.func.max(c.last_open))
             .where(c.candles > 0).group_by(c.exchange, c.symbol, c.timeframe))
    return {(e, s, i): Stored(int(n), int(lo), int(hi)) for e, s, i, n, lo, hi in connection.execute(query)}
