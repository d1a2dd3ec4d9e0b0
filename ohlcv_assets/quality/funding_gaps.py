"""Scanning one perpetual's funding settlements for gaps: every settlement its funding schedule
expects (the interval at each time, ``core.funding``) and the warehouse lacks is a gap, classified
and recorded like a missing candle (table ``gaps``, timeframe ``funding``), so that the gap report,
the gap backfill sensor and the records' lifecycle serve funding as they serve candles. No Dagster.

A gap is a run of consecutive expected settlements, from the first missing nominal time to one hour
after the last (the hour is the settlements' key grid: ``Gap.count`` says how many settlements it
holds, whatever the interval). Classes as for candles: ``fillable`` where the venue serves the
settlement; asked twice and still absent, ``exchange_downtime`` (the venue never settled it);
``retired`` by retention; known records are not asked about again.
"""

from __future__ import annotations

import numpy as np

from ohlcv_assets.archive.formats import archive_signature
from ohlcv_assets.core.funding import FUNDING_HOURS, MAX_OFFSET_MS, Segment, expected_times, infer_schedule, nominal_times
from ohlcv_assets.core.gaps import EXCHANGE_DOWNTIME, FILLABLE, Gap, classify_known
from ohlcv_assets.core.intervals import DAY_MS, HOUR_MS, MINUTE_MS, day_bounds_ms, utc_day
from ohlcv_assets.quality.gap_scan import ScanResult, known_ranges
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.funding import FUNDING, read_funding

COARSEST_HOURS = max(FUNDING_HOURS)  # every interval's grid holds this one's times


def funding_schedule(source, warehouse, instrument, until_ms: int, after: np.ndarray) -> list[Segment]:
    """The schedule of every stored settlement up to ``until_ms``, the settlements seen ``after``
    it (nominal times) and the interval the venue publishes now, from the symbol's first settlement
    (the venue's). Before the first stored settlement (nothing stored: from the first the venue
    has) the interval is not known: the coarsest grid is expected there, whose every time is on any
    interval's grid, so no settlement is expected where the venue truly has none."""
    stored = read_funding(warehouse, instrument.exchange, instrument.symbol, 0, until_ms)["open_time"].to_numpy()
    history = np.unique(np.concatenate([stored, after]))
    segments = infer_schedule(history, current_hours=source.funding_interval(instrument.symbol))
    first = source.first_funding_time(instrument.symbol)
    if first is None:
        return segments
    first_nominal = int(nominal_times(np.array([first]))[0])
    if not segments:
        return [Segment(first_nominal, COARSEST_HOURS)]
    if first_nominal < segments[0].start_ms:
        return [Segment(first_nominal, COARSEST_HOURS), *segments]
    return segments


def settled_funding_end_ms(now_ms: int, refresh_minutes: int, last_stored_ms: int | None) -> int:
    """Exclusive end of the settlements a scan expects: those due at least one refresh period ago
    (younger ones are the next run's to fetch), or up to the last stored one when that is later."""
    end = now_ms - refresh_minutes * MINUTE_MS
    return max(end, last_stored_ms + 1) if last_stored_ms is not None else end


def _venue_has(source, symbol: str, times: np.ndarray) -> np.ndarray:
    """Whether the venue serves a settlement at each nominal time (one paginated read of their span)."""
    if not len(times):
        return np.zeros(0, dtype=bool)
    rows = source.fetch_funding(symbol, int(times.min()) - MAX_OFFSET_MS, int(times.max()) + MAX_OFFSET_MS)
    return np.isin(times, nominal_times(rows[:, 0]) if len(rows) else np.zeros(0, dtype=np.int64))


def runs(expected: np.ndarray, missing: np.ndarray, reasons: list[str]) -> list[Gap]:
    """Missing settlements (ascending, with their reasons) as gaps: runs of settlements consecutive
    in ``expected`` with one reason, each from its first nominal time to an hour after its last."""
    index = np.searchsorted(expected, missing)
    out: list[Gap] = []
    first = 0
    for i in range(1, len(missing) + 1):
        if i == len(missing) or index[i] != index[i - 1] + 1 or reasons[i] != reasons[first]:
            out.append(Gap(int(missing[first]), int(missing[i - 1]) + HOUR_MS, reasons[first], count=i - first))
            first = i
    return out


def scan_funding(source, warehouse, instrument, now_ms: int, refresh_minutes: int) -> ScanResult:
    """Finds every settlement the schedule expects since the instrument's start and the warehouse
    lacks, classifies it and reconciles the instrument's ``funding`` gap records. The venue is asked
    only about settlements no record explains yet; one absent twice is ``exchange_downtime``."""
    exchange, symbol = instrument.exchange, instrument.symbol
    start = day_bounds_ms(instrument.start)[0]
    stored = read_funding(warehouse, exchange, symbol, 0, now_ms + DAY_MS)["open_time"].to_numpy()
    end = settled_funding_end_ms(now_ms, refresh_minutes, int(stored[-1]) if len(stored) else None)
    segments = funding_schedule(source, warehouse, instrument, end, stored[stored >= end])
    expected = expected_times(segments, start, end)
    present = np.isin(expected, stored)
    missing = expected[~present]
    known = known_ranges(warehouse, exchange, symbol, FUNDING)
    singles = np.column_stack((missing, missing + HOUR_MS, np.ones(len(missing), dtype=np.int64))).astype(np.int64)
    reasons = [g.reason for g in classify_known(singles.reshape(-1, 3), 0, None, known)]
    unknown = np.array([t for t, r in zip(missing, reasons) if r is None], dtype=np.int64)
    has = _venue_has(source, symbol, unknown)
    again = unknown[~has]
    has_now = _venue_has(source, symbol, again)  # an empty answer is asked again before it is believed
    answer = {int(t): FILLABLE for t in unknown[has]}
    answer.update({int(t): FILLABLE if h else EXCHANGE_DOWNTIME for t, h in zip(again, has_now)})
    reasons = [r if r is not None else answer[int(t)] for t, r in zip(missing, reasons)]
    found = runs(expected, missing, reasons)
    changes = gap_records.reconcile(warehouse, exchange, symbol, FUNDING, found, HOUR_MS, now_ms,
                                    archive_signature(source.config))
    return ScanResult(expected=len(expected), present=int(present.sum()), gaps=found,
                      day_coverage=day_coverage(expected, present), changes=changes)


def day_coverage(expected: np.ndarray, present: np.ndarray) -> list:
    """(day, stored settlements, expected settlements) for every day with expected settlements."""
    if not len(expected):
        return []
    days = expected // DAY_MS
    first = int(days[0])
    want = np.bincount(days - first)
    have = np.bincount(days[present] - first, minlength=len(want))
    return [(utc_day((first + n) * DAY_MS), int(h), int(w)) for n, (h, w) in enumerate(zip(have, want)) if w]
