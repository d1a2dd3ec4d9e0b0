"""What retention asks of the warehouse: the expired spans of an interval (PostgreSQL: its
partitions; SQLite: the spans its candles cover), the instruments holding candles in a span, and
dropping a span (candles and features, the days' sources and counts) with its record in
``retired_ranges``, in one transaction. The rule deciding what may go is ``retention.py``'s."""

from __future__ import annotations

import sqlalchemy as sa

from ohlcv_assets.core.intervals import utc_day
from ohlcv_assets.warehouse import candle_days
from ohlcv_assets.warehouse.partitioning import Span
from ohlcv_assets.warehouse.schema import candle_features, candles, day_sources, retired_ranges
from ohlcv_assets.warehouse.store import Warehouse


def expired_spans(warehouse: Warehouse, interval: str, cutoff: int) -> list[Span]:
    """Whole spans of an interval ending at or before the cutoff that may hold candles."""
    with warehouse.engine.connect() as connection:
        return warehouse.dialect.expired_spans(connection, interval, cutoff)


def instruments_in_span(warehouse: Warehouse, interval: str, span: Span) -> list[tuple[str, str, int]]:
    """(exchange, symbol, candles) of each instrument with candles of ``interval`` in the span."""
    query = (sa.select(candles.c.exchange, candles.c.symbol, sa.func.count())
             .where(candles.c.timeframe == interval, candles.c.open_time >= span.start_ms, candles.c.open_time < span.end_ms)
             .group_by(candles.c.exchange, candles.c.symbol).order_by(candles.c.exchange, candles.c.symbol))
    with warehouse.engine.connect() as connection:
        return [(e, s, int(n)) for e, s, n in connection.execute(query)]


def drop_span(warehouse: Warehouse, interval: str, span: Span, stored: list[tuple[str, str, int]], now_ms: int) -> None:
    """Removes the span (candles and features) and records it, in one transaction."""
    with warehouse.engine.begin() as connection:
        detail = warehouse.dialect.drop_span(connection, [candles, candle_features], interval, span)
        candle_days.remove_span(connection, interval, span.start_ms, span.end_ms)
        if stored:
            # The retired days' sources go with their candles: `ohlcv-status` shows them as retired instead.
            first, end = (utc_day(ms).isoformat() for ms in (span.start_ms, span.end_ms))  # days as YYYY-MM-DD sort as dates
            for exchange, symbol, _ in stored:
                connection.execute(sa.delete(day_sources).where(
                    day_sources.c.exchange == exchange, day_sources.c.symbol == symbol, day_sources.c.timeframe == interval,
                    day_sources.c.day >= first, day_sources.c.day < end))
            connection.execute(sa.insert(retired_ranges), [
                {"exchange": e, "symbol": s, "timeframe": interval, "start_ms": span.start_ms, "end_ms": span.end_ms,
                 "candles": n, "retired_ms": now_ms, "detail": detail} for e, s, n in stored])
    warehouse.forget_partitions()
