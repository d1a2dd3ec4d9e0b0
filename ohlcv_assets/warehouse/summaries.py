"""What the status report (``ohlcv-status``) and the metrics exporter read: per instrument and
interval its stored candles (from ``candle_days``, never a scan of the candles), day sources,
disagreements, explained gaps and retired ranges; the newest candle of many instruments at once;
open gaps per venue; the venues' shared request budgets."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from ohlcv_assets.warehouse import candle_days
from ohlcv_assets.warehouse.schema import (
    GAP_EXPLAINED_STATUSES,
    day_sources,
    gaps,
    rate_budget,
    retired_ranges,
    source_disagreements,
)
from ohlcv_assets.warehouse.store import Warehouse

Key = tuple[str, str, str]  # (exchange, symbol, interval)


@dataclasses.dataclass(frozen=True)
class InstrumentSummaries:
    stored: dict[Key, candle_days.Stored]  # instrument-intervals holding candles
    day_sources: dict[Key, dict[str, int]]  # days per source
    disagreeing: dict[Key, int]  # candles on which two sources disagreed
    gaps: dict[Key, list]  # explained gap records: reason, status, start_ms, end_ms, candles


def instrument_summaries(warehouse: Warehouse) -> InstrumentSummaries:
    with warehouse.engine.connect() as conn:
        stored = candle_days.totals(conn)
        day_counts: dict[Key, dict[str, int]] = {}
        for r in conn.execute(sa.select(day_sources.c.exchange, day_sources.c.symbol, day_sources.c.timeframe, day_sources.c.source,
                                        sa.func.count().label("n"))
                              .group_by(day_sources.c.exchange, day_sources.c.symbol, day_sources.c.timeframe, day_sources.c.source)):
            day_counts.setdefault((r.exchange, r.symbol, r.timeframe), {})[r.source] = int(r.n)
        disagreeing = {(r.exchange, r.symbol, r.timeframe): int(r.n) for r in conn.execute(
            sa.select(source_disagreements.c.exchange, source_disagreements.c.symbol, source_disagreements.c.timeframe,
                      sa.func.sum(source_disagreements.c.candles).label("n"))
            .group_by(source_disagreements.c.exchange, source_disagreements.c.symbol, source_disagreements.c.timeframe))}
        recorded: dict[Key, list] = {}
        for g in conn.execute(sa.select(gaps.c.exchange, gaps.c.symbol, gaps.c.timeframe, gaps.c.reason, gaps.c.status,
                                        gaps.c.start_ms, gaps.c.end_ms, gaps.c.candles)
                              .where(gaps.c.status.in_(GAP_EXPLAINED_STATUSES))):
            recorded.setdefault((g.exchange, g.symbol, g.timeframe), []).append(g)
    return InstrumentSummaries(stored, day_counts, disagreeing, recorded)


def retired_ranges_by_instrument(warehouse: Warehouse) -> dict[Key, list[tuple[int, int, int]]]:
    """Per instrument-interval, the (start_ms, end_ms, candles) retention dropped, by start."""
    with warehouse.engine.connect() as conn:
        ranges = conn.execute(sa.select(retired_ranges.c.exchange, retired_ranges.c.symbol, retired_ranges.c.timeframe,
                                        retired_ranges.c.start_ms, retired_ranges.c.end_ms, retired_ranges.c.candles)
                              .order_by(retired_ranges.c.exchange, retired_ranges.c.symbol, retired_ranges.c.timeframe,
                                        retired_ranges.c.start_ms)).all()
    found: dict[Key, list[tuple[int, int, int]]] = {}
    for r in ranges:
        found.setdefault((r.exchange, r.symbol, r.timeframe), []).append((int(r.start_ms), int(r.end_ms), int(r.candles)))
    return found


def latest_open_times(warehouse: Warehouse, keys: list[Key]) -> dict[Key, int]:
    """Open time of the newest stored candle of each (exchange, symbol, interval) that has one: a
    max() per key, answered from the primary-key index (on PostgreSQL from the newest partition of
    the interval, one statement per interval)."""
    by_interval: dict[str, list[tuple[str, str]]] = {}
    for exchange, symbol, interval in keys:
        by_interval.setdefault(interval, []).append((exchange, symbol))
    found: dict[Key, int] = {}
    with warehouse.engine.connect() as conn:
        for interval, instruments in by_interval.items():
            rows = warehouse.dialect.latest_open_times(conn, interval, instruments)
            found.update({(e, s, interval): int(last) for e, s, last in rows if last is not None})
    return found


def open_gaps_by_venue(warehouse: Warehouse) -> list[tuple[str, str, str, int, int]]:
    """(exchange, interval, reason, gap records, candles missing) of the explained gap records."""
    with warehouse.engine.connect() as conn:
        rows = conn.execute(sa.select(gaps.c.exchange, gaps.c.timeframe, gaps.c.reason,
                                      sa.func.count().label("n"), sa.func.sum(gaps.c.candles).label("candles"))
                            .where(gaps.c.status.in_(GAP_EXPLAINED_STATUSES))
                            .group_by(gaps.c.exchange, gaps.c.timeframe, gaps.c.reason)).all()
    return [(r.exchange, r.timeframe, r.reason, int(r.n), int(r.candles or 0)) for r in rows]


def budget_states(warehouse: Warehouse) -> dict[str, float]:
    """Per shared request budget (its key), the GCRA theoretical arrival time (epoch seconds)."""
    with warehouse.engine.connect() as conn:
        return {r.exchange: float(r.tat) for r in conn.execute(sa.select(rate_budget))}
