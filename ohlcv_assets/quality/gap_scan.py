"""Scanning one instrument and interval for gaps, classifying them with the exchange, recording them.
No Dagster here."""

import collections
import dataclasses
import datetime as dt
from collections.abc import Iterator

import numpy as np

from ohlcv_assets.archive.formats import archive_signature
from ohlcv_assets.exchange.source import CandleSource, history_start_ms
from ohlcv_assets.core.gaps import (
    BEYOND_HISTORY,
    FILLABLE,
    RETIRED,
    Gap,
    classify_known,
    empty_reason,
    fillable_from_archive,
    find_gaps,
    split_by_presence,
)
from ohlcv_assets.core.intervals import DAY_MS, MINUTE_MS, day_bounds_ms, grid_ceil, interval_ms, utc_day
from ohlcv_assets.core.sessions import Sessions
from ohlcv_assets.core.universe import Instrument
from ohlcv_assets.warehouse import delistings, gap_records
from ohlcv_assets.warehouse.schema import CONFIRMED_EMPTY, GAP_OPEN_STATUSES
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets.venues.series import archived


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


def settled_end_ms(now_ms: int, step_ms: int, refresh_minutes: int, last_stored_open_ms: int | None,
                   delisted_ms: int | None = None) -> int:
    """Exclusive end of the grid a scan expects: candles closed at least one refresh period ago,
    or up to the last stored candle when that is later. Younger candles are the today schedule's
    to fetch, so a scan never chases the newest candle; the forming one is never expected. A
    delisted instrument's grid ends at its delisting (``delisted_ms``, on the grid)."""
    forming_open = now_ms // step_ms * step_ms
    settled = (now_ms - refresh_minutes * MINUTE_MS) // step_ms * step_ms
    if last_stored_open_ms is not None:
        settled = max(settled, last_stored_open_ms + step_ms)
    end = min(settled, forming_open)
    return end if delisted_ms is None else min(end, grid_ceil(delisted_ms, step_ms))


def _answered(fetch, window_ms: int, step: int, gaps: list[Gap]) -> Iterator[tuple[Gap, np.ndarray]]:
    """Each gap (or part of one) with the times the venue has in it, asking one window of at most
    ``window_ms`` at a time from the first gap not yet answered: gaps that one window covers share
    its request. ``fetch(since, until)`` answers (times in [since, until), whether the page was full:
    then it covers only up to its last time)."""
    pending = collections.deque(sorted(gaps, key=lambda g: g.start_ms))
    while pending:
        since = pending[0].start_ms
        until = min(pending[-1].end_ms, since + window_ms)
        times, full_page = fetch(since, until)
        covered_end = int(times[-1]) + step if full_page and len(times) else until
        while pending and pending[0].start_ms < covered_end:
            gap = pending.popleft()
            if gap.end_ms > covered_end:
                pending.appendleft(Gap(covered_end, gap.end_ms))
                gap = Gap(gap.start_ms, covered_end)
            yield gap, times[(times >= gap.start_ms) & (times < gap.end_ms)]


def ask_venue(fetch, window_ms: int, step: int, unknown: list[Gap], omits: bool = False, downtime_min_ms: int = 0) -> list[Gap]:
    """Splits unexplained gaps of a grid series into fillable parts and confirmed-empty parts
    (downtime, or no trades on a venue that omits intervals without trades), asking the venue
    through ``fetch`` (see ``_answered``). Adjacent gaps share a window, so a scan costs at most one
    request per window that holds gaps. A part that comes back empty is asked again, and only still
    empty is it confirmed."""
    out: list[Gap] = []
    empty: list[Gap] = []
    for gap, times in _answered(fetch, window_ms, step, unknown):
        present, missing = split_by_presence(gap, times, step)
        out.extend(present)
        empty.extend(missing)
    for gap, times in _answered(fetch, window_ms, step, empty):
        present, missing = split_by_presence(gap, times, step)
        out.extend(present)
        out.extend(Gap(g.start_ms, g.end_ms, empty_reason(g, omits, downtime_min_ms)) for g in missing)
    return sorted(out, key=lambda g: g.start_ms)


def ask_exchange(source: CandleSource, symbol: str, interval: str, unknown: list[Gap]) -> list[Gap]:
    """``ask_venue`` for candles: one page-sized window at a time (Coinbase refuses a window wider
    than a page, so none is)."""
    step = interval_ms(interval)

    def fetch(since: int, until: int) -> tuple[np.ndarray, bool]:
        rows = source.fetch_page(symbol, interval, since, until - 1)
        times = rows[:, 0].astype(np.int64) if len(rows) else np.zeros(0, dtype=np.int64)
        return times, len(rows) >= source.page_limit

    return ask_venue(fetch, source.page_limit * step, step, unknown, source.config.profile.omits_empty,
                     source.config.downtime_min_minutes * MINUTE_MS)


def known_ranges(warehouse: Warehouse, exchange: str, symbol: str, timeframe: str) -> list[tuple[int, int, str]]:
    """Ranges of a series the records already explain, not asked about again: retired by retention,
    confirmed empty, and fillable gaps waiting for or in a backfill."""
    records = gap_records.instrument_gaps(warehouse, exchange, symbol, timeframe)
    known = [(lo, hi, RETIRED) for lo, hi in gap_records.retired_spans(warehouse, exchange, symbol, timeframe)]
    known += [(r.start_ms, r.end_ms, r.reason if r.status == CONFIRMED_EMPTY else FILLABLE) for r in records
              if r.status == CONFIRMED_EMPTY or (r.status in GAP_OPEN_STATUSES and r.reason == FILLABLE)]
    return known


def scan(source: CandleSource, warehouse: Warehouse, instrument: Instrument, interval: str,
         now_ms: int, refresh_minutes: int) -> ScanResult:
    """Finds every missing candle of the settled grid and classifies it. The exchange is asked only
    about gaps no record explains yet: confirmed-empty ranges and fillable gaps already recorded
    (waiting for or in a backfill) are not asked about again. A delisted instrument's grid ends
    with its last candle; once the venue no longer lists it, nothing is asked and every gap is
    beyond its history."""
    step = interval_ms(interval)
    start = day_bounds_ms(instrument.start)[0]
    latest = warehouse.latest_open_time(instrument.exchange, instrument.symbol, interval)
    delisting = delistings.delisted(warehouse, instrument.exchange, instrument.symbol).get((instrument.exchange, instrument.symbol))
    end = settled_end_ms(now_ms, step, refresh_minutes, latest, delisting.delisted_ms if delisting else None)
    times = warehouse.read_open_times(instrument.exchange, instrument.symbol, interval, start, end)
    served = delisting is None or delisting.served
    listing = source.first_open_time(instrument.symbol, interval) if served else 0
    history_start = history_start_ms(source.config, step, now_ms)
    sessions = source.config.sessions_of(instrument)
    known = known_ranges(warehouse, instrument.exchange, instrument.symbol, interval)
    found = classify_known(sessions.clip(find_gaps(times, start, end, step), step), listing, history_start, known)
    classified = [g for g in found if g.reason]
    unknown = [g for g in found if not g.reason]
    classified.extend(ask_exchange(source, instrument.symbol, interval, unknown) if served
                      else [Gap(g.start_ms, g.end_ms, BEYOND_HISTORY) for g in unknown])
    classified.sort(key=lambda g: g.start_ms)
    archive = source.config.archive if archived(source.config.profile, interval) else None
    if archive is not None:
        classified = fillable_from_archive(classified)
    changes = gap_records.reconcile(warehouse, instrument.exchange, instrument.symbol, interval, classified, step, now_ms,
                                    archive_signature(source.config))
    first_expected = max(start, grid_ceil(listing, step)) if listing is not None else end
    expected = sessions.count(first_expected, end, step) if end > first_expected else 0
    return ScanResult(expected=expected, present=len(times), gaps=classified,
                      day_coverage=day_coverage(times, first_expected, end, step, sessions), changes=changes)


def day_coverage(times: np.ndarray, first_ms: int, end_ms: int, step_ms: int,
                 sessions: Sessions = Sessions()) -> list[tuple[dt.date, int, int]]:
    """(day, stored candles, expected closed candles) for every day from first_ms to end_ms."""
    if end_ms <= first_ms:
        return []
    first_day = first_ms // DAY_MS
    days = np.arange(first_day, (end_ms - 1) // DAY_MS + 1)
    present = np.bincount((times[times >= first_ms] // DAY_MS) - first_day, minlength=len(days))[:len(days)]
    day_start = np.maximum(days * DAY_MS, first_ms)
    day_end = np.minimum((days + 1) * DAY_MS, end_ms)
    expected = [sessions.count(int(a), int(b), step_ms) for a, b in zip(day_start, day_end)]
    return [(utc_day(int(d) * DAY_MS), int(p), int(e)) for d, p, e in zip(days, present, expected)]
