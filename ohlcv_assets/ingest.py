"""Ingesting one instrument-day: fetch closed candles, validate, merge. No Dagster here."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

from ohlcv_assets.exchange.source import CandleSource, FetchStats, fetch_closed_candles
from ohlcv_assets.intervals import day_bounds_ms, expected_open_times, interval_ms, ms_to_iso
from ohlcv_assets.universe import Instrument
from ohlcv_assets.validation import validate_candles
from ohlcv_assets.warehouse.store import Warehouse


@dataclasses.dataclass
class PartitionReport:
    """What one instrument-day run did, shown as materialization metadata."""

    rows_written: int = 0
    rows_revised: int = 0
    max_revision_pct: float = 0.0
    rows_fetched: int = 0
    expected_candles: int = 0
    missing_candles: int = 0
    first_open_time: str = ""
    last_open_time: str = ""
    requests: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    seconds: float = 0.0
    note: str = ""

    def as_metadata(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v != ""}


def ingest_day(source: CandleSource, warehouse: Warehouse, instrument: Instrument, interval: str,
               day: dt.date, now_ms: int) -> PartitionReport:
    started = time.perf_counter()
    before = dataclasses.replace(source.stats)
    report = _ingest(source, warehouse, instrument, interval, day, now_ms)
    stats: FetchStats = source.stats
    report.requests = stats.requests - before.requests
    report.retries = stats.retries - before.retries
    report.rate_limit_waits = stats.rate_limit_waits - before.rate_limit_waits
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _ingest(source: CandleSource, warehouse: Warehouse, instrument: Instrument, interval: str,
            day: dt.date, now_ms: int) -> PartitionReport:
    step = interval_ms(interval)
    start, end = day_bounds_ms(day)
    if day < instrument.start:
        return PartitionReport(note=f"nothing to do: before the instrument's configured start {instrument.start}")
    if start >= now_ms:
        return PartitionReport(note="nothing to do: the day has not started")
    source.check_symbol(instrument.symbol)
    listed = source.first_open_time(instrument.symbol, interval)
    if listed is None or listed >= end:
        when = "has no candles at all" if listed is None else f"was listed at {ms_to_iso(listed)}"
        return PartitionReport(note=f"nothing to do: before listing ({instrument.symbol} {when})")
    frame = fetch_closed_candles(source, instrument.symbol, interval, step, start, end, now_ms)
    validate_candles(frame, step, now_ms)
    merged = warehouse.merge_candles(instrument.exchange, instrument.symbol, interval, frame, start, end, now_ms)
    closed_end = min(end, now_ms // step * step)
    expected = len(expected_open_times(max(start, listed), closed_end, step))
    report = PartitionReport(
        rows_written=merged.inserted + merged.revised,
        rows_revised=merged.revised,
        max_revision_pct=round(100 * merged.max_revision, 6),
        rows_fetched=len(frame),
        expected_candles=expected,
        missing_candles=expected - len(frame),
    )
    if len(frame):
        report.first_open_time = ms_to_iso(int(frame["open_time"].iloc[0]))
        report.last_open_time = ms_to_iso(int(frame["open_time"].iloc[-1]))
    if report.missing_candles:
        report.note = f"{report.missing_candles} expected candle(s) were not returned by the exchange"
    if closed_end < end:
        report.note = (report.note + "; " if report.note else "") + "day still in progress: closed candles so far"
    return report
