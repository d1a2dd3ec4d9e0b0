"""Scanning one instrument and interval for gaps, classifying them with the exchange, recording them.
No Dagster here."""

import dataclasses
import datetime as dt

import numpy as np

from ohlcv_assets.exchange.source import CandleSource
from ohlcv_assets.gaps import EXCHANGE_DOWNTIME, FILLABLE, Gap, classify_known, find_gaps, split_by_presence
from ohlcv_assets.intervals import DAY_MS, day_bounds_ms, interval_ms, utc_day
from ohlcv_assets.universe import Instrument
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.store import Warehouse


@dataclasses.dataclass
class ScanResult:
    expected: int
    present: int
    gaps: list[Gap]
    day_coverage: list[tuple[dt.date, int, int]]  # day, present, expected
    changes: dict[str, int]

    @property
    def coverage(self) -> float:
        return 1.0 if self.expected == 0 else self.present / self.expected

    def candles_by_reason(self, step_ms: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for gap in self.gaps:
            out[gap.reason] = out.get(gap.reason, 0) + gap.candles(step_ms)
        return out


def _exchange_times(source: CandleSource, symbol: str, interval: str, gap: Gap) -> tuple[np.ndarray, int]:
    """Open times the exchange has in one page from the gap's start, and how far that page speaks for."""
    rows = source.fetch_page(symbol, interval, gap.start_ms, gap.end_ms - 1)
    times = rows[:, 0].astype(np.int64) if len(rows) else np.zeros(0, dtype=np.int64)
    times = times[(times >= gap.start_ms) & (times < gap.end_ms)]
    full_page = len(rows) >= source.page_limit
    covered_end = int(times[-1]) + interval_ms(interval) if full_page and len(times) else gap.end_ms
    return times, covered_end


def ask_exchange(source: CandleSource, symbol: str, interval: str, gap: Gap) -> list[Gap]:
    """Splits an unexplained gap into fillable parts and confirmed-empty (downtime) parts.

    One page per question: what the page covers is known exactly; beyond a full page the exchange
    has candles, so the rest is fillable until a later scan says otherwise. A part that comes back
    empty is asked again, and only still empty is it confirmed as downtime.
    """
    step = interval_ms(interval)
    times, covered_end = _exchange_times(source, symbol, interval, gap)
    present, empty = split_by_presence(Gap(gap.start_ms, covered_end), times, step)
    out = list(present)
    if covered_end < gap.end_ms:
        out.append(Gap(covered_end, gap.end_ms, FILLABLE))
    for part in empty:
        again, again_end = _exchange_times(source, symbol, interval, part)
        refilled, still_empty = split_by_presence(Gap(part.start_ms, again_end), again, step)
        out.extend(refilled)
        out.extend(Gap(g.start_ms, g.end_ms, EXCHANGE_DOWNTIME) for g in still_empty)
        if again_end < part.end_ms:
            out.append(Gap(again_end, part.end_ms, FILLABLE))
    return sorted(out, key=lambda g: g.start_ms)


def scan(source: CandleSource, warehouse: Warehouse, instrument: Instrument, interval: str,
         history_candles: int | None, now_ms: int) -> ScanResult:
    step = interval_ms(interval)
    start = day_bounds_ms(instrument.start)[0]
    forming_open = now_ms // step * step
    end = forming_open + step
    times = warehouse.read_open_times(instrument.exchange, instrument.symbol, interval, start, end)
    listing = source.first_open_time(instrument.symbol, interval)
    history_start = forming_open - history_candles * step if history_candles else None
    confirmed = gap_records.confirmed_empty_ranges(warehouse, instrument.exchange, instrument.symbol, interval)
    classified = []
    for gap in classify_known(find_gaps(times, start, end, step), listing, history_start, forming_open, confirmed):
        classified.extend([gap] if gap.reason else ask_exchange(source, instrument.symbol, interval, gap))
    changes = gap_records.reconcile(warehouse, instrument.exchange, instrument.symbol, interval, classified, step, now_ms)
    first_expected = max(start, -(-listing // step) * step) if listing is not None else forming_open
    expected = max(0, (forming_open - first_expected) // step)
    return ScanResult(expected=expected, present=len(times), gaps=classified,
                      day_coverage=day_coverage(times, first_expected, forming_open, step), changes=changes)


def day_coverage(times: np.ndarray, first_ms: int, end_ms: int, step_ms: int) -> list[tuple[dt.date, int, int]]:
    """(day, stored candles, expected closed candles) for every day from first_ms to end_ms."""
    if end_ms <= first_ms:
        return []
    first_day = first_ms // DAY_MS
    days = np.arange(first_day, (end_ms - 1) // DAY_MS + 1)
    present = np.bincount((times[times >= first_ms] // DAY_MS) - first_day, minlength=len(days))[:len(days)]
    day_start = np.maximum(days * DAY_MS, first_ms)
    day_end = np.minimum((days + 1) * DAY_MS, end_ms)
    expected = (day_end - day_start + step_ms - 1) // step_ms
    return [(utc_day(int(d) * DAY_MS), int(p), int(e)) for d, p, e in zip(days, present, expected)]
