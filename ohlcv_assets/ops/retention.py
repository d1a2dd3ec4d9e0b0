"""Retention: forgetting old candles on purpose, never their summary. No Dagster here.

For each interval the universe gives a ``retention`` (``keep_days``), every whole span (a
PostgreSQL partition: a month below 1h, a year above) that ends before today − keep_days is
dropped, candles and features together, but only when, for every instrument with candles in it,
each required coarser interval holds a candle for every bucket the finer candles cover and the
complete buckets agree with the finer candles (the ``consistent_with_1m`` rule). One instrument
short of its aggregates keeps the whole span, and the refusal says which and why.

PostgreSQL drops the partition tables (``DROP TABLE``: no row-by-row delete, no bloat); SQLite,
one table, deletes the span's rows. Every dropped instrument-span is recorded in
``retired_ranges``, which the gap scan reads to call those candles ``retired``, not missing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd

from ohlcv_assets.core.intervals import day_bounds_ms, interval_ms, ms_to_iso
from ohlcv_assets.core.universe import Universe
from ohlcv_assets.quality.checks import consistency
from ohlcv_assets.warehouse import retirement
from ohlcv_assets.warehouse.partitioning import Span
from ohlcv_assets.warehouse.read import load_candles
from ohlcv_assets.warehouse.schema import candle_features, candles
from ohlcv_assets.warehouse.store import Warehouse

DROPPED, REFUSED = "dropped", "refused"


@dataclasses.dataclass(frozen=True)
class SpanOutcome:
    interval: str
    span: Span
    action: str  # dropped or refused
    candles: int
    instruments: int
    why: str = ""

    def describe(self) -> str:
        when = f"{ms_to_iso(self.span.start_ms)[:10]}..{ms_to_iso(self.span.end_ms)[:10]}"
        return f"{self.interval} {when}: {self.action} {self.candles} candles of {self.instruments} instruments" + (
            f" ({self.why})" if self.why else "")


def cutoff_ms(keep_days: int, today: dt.date) -> int:
    """Candles opening before this are past retention."""
    return day_bounds_ms(today - dt.timedelta(days=keep_days))[0]


def missing_aggregates(warehouse: Warehouse, exchange: str, symbol: str, interval: str, fine: pd.DataFrame,
                       coarser: str, span: Span) -> str:
    """Why the coarser interval does not yet summarise the span's ``fine`` candles, or '' when it does."""
    if fine.empty:
        return ""
    coarse = load_candles(exchange, symbol, coarser, span.start_ms, span.end_ms, warehouse=warehouse, strict=False).reset_index(drop=True)
    step = interval_ms(coarser)
    buckets = set((fine["open_time"] // step * step).tolist())
    absent = sorted(buckets - set(coarse["open_time"].tolist()))
    if absent:
        return f"{len(absent)} {coarser} candles missing, first {ms_to_iso(absent[0])}"
    compared = consistency(coarse, fine, step, interval_ms(interval))
    if len(compared.offending):
        return f"{len(compared.offending)} {coarser} candles differ from the {interval} candles, first {ms_to_iso(int(compared.offending['open_time'].iloc[0]))}"
    return ""


def _refusal(universe: Universe, warehouse: Warehouse, interval: str, span: Span, stored: list[tuple[str, str, int]]) -> str:
    by_key = {(i.exchange, i.symbol): i for i in universe.instruments}
    for exchange, symbol, _ in stored:
        required = universe.aggregates_required(by_key.get((exchange, symbol)), interval)
        if not required and universe.retention[interval].requires is None:
            return (f"{exchange} {symbol} has no coarser interval to keep its aggregates "
                    f"(declare one, or set retention.{interval}.requires: [] to drop without)")
        if not required:
            continue
        fine = load_candles(exchange, symbol, interval, span.start_ms, span.end_ms, warehouse=warehouse, strict=False).reset_index(drop=True)
        for coarser in required:
            why = missing_aggregates(warehouse, exchange, symbol, interval, fine, coarser, span)
            if why:
                return f"{exchange} {symbol}: {why}"
    return ""


def apply_retention(universe: Universe, warehouse: Warehouse, today: dt.date, now_ms: int) -> list[SpanOutcome]:
    """Drops every expired span whose aggregates are in place; refuses (and says why) the others."""
    outcomes = []
    for interval in sorted(universe.retention, key=interval_ms):
        cutoff = cutoff_ms(universe.retention[interval].keep_days, today)
        for span in retirement.expired_spans(warehouse, interval, cutoff):
            stored = retirement.instruments_in_span(warehouse, interval, span)
            count = sum(n for _, _, n in stored)
            why = _refusal(universe, warehouse, interval, span, stored)
            if why:
                outcomes.append(SpanOutcome(interval, span, REFUSED, count, len(stored), why))
                continue
            retirement.drop_span(warehouse, interval, span, stored, now_ms)
            if stored:
                outcomes.append(SpanOutcome(interval, span, DROPPED, count, len(stored)))
    return outcomes


AHEAD_DAYS = 35


def create_partitions_ahead(warehouse: Warehouse, intervals: list[str], now_ms: int) -> list[str]:
    """Creates (PostgreSQL) the partitions the next ``AHEAD_DAYS`` of every interval will need, so
    that the first write of a new month finds its table ready."""
    created = []
    for interval in intervals:
        for table in (candles.name, candle_features.name):
            created += warehouse.ensure_partitions(table, interval, now_ms, now_ms + AHEAD_DAYS * 86_400_000)
    return created
