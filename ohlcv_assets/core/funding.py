"""Funding rate settlements as an event series, no I/O: the nominal time each settlement is keyed
by, the funding schedule (interval over time) read from the settlements themselves, and the
settlements a schedule expects, so that a missing one is a gap like a missing candle.

A venue settles funding every 8, 4 or 1 hours from 00:00 UTC and changes a symbol's interval over
its life; Binance stamps a settlement a few milliseconds after its hour (``fundingTime``
1768953600001). Settlements are keyed by the hour they settle (``nominal_times``), the venue's own
time kept beside it, so day partitions and freqtrade's join with hourly mark candles see the hour.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ohlcv_assets.core.intervals import HOUR_MS

FUNDING_HOURS = (1, 4, 8)  # the intervals venues settle on
MAX_OFFSET_MS = 10 * 60_000  # a settlement time further than this from its hour is not a settlement time
CONFIRMING_DIFFS = 3  # consecutive intervals of a new length that make an interval change (fewer: missing or extra events)


def nominal_times(raw_ms: np.ndarray) -> np.ndarray:
    """The hour each venue settlement time belongs to (nearest hour: 07:59:59.998 is 08:00)."""
    raw = np.asarray(raw_ms, dtype=np.int64)
    return (raw + HOUR_MS // 2) // HOUR_MS * HOUR_MS


def off_the_hour(raw_ms: np.ndarray) -> np.ndarray:
    """Where a settlement time is further than ``MAX_OFFSET_MS`` from its hour (not a settlement time)."""
    raw = np.asarray(raw_ms, dtype=np.int64)
    return np.abs(raw - nominal_times(raw)) > MAX_OFFSET_MS


@dataclasses.dataclass(frozen=True)
class Segment:
    """From ``start_ms`` (a settlement) on, settlements every ``hours`` hours on the UTC grid."""

    start_ms: int
    hours: int


def infer_schedule(nominal: np.ndarray, default_hours: int = 8, current_hours: int | None = None) -> list[Segment]:
    """The schedule the settlements (nominal times, ascending, unique) follow, from the first one.

    The first interval is the first length ``CONFIRMING_DIFFS`` consecutive spacings agree on (else
    ``current_hours``, else ``default_hours``). The interval changes where ``CONFIRMING_DIFFS``
    consecutive spacings start with another length h of ``FUNDING_HOURS`` and are all multiples of
    it (a multiple is missing settlements): to a longer h only if they all equal it, to a shorter
    one only if two or more of the next ``2 * CONFIRMING_DIFFS`` settlements are off the current grid (a single one is an
    extra, off-grid settlement, kept and reported: ``off_grid``). A longer spacing that is a
    multiple of the current interval is missing settlements: gaps, not a change. ``current_hours``
    (the venue's published interval now, e.g. Binance ``fundingInfo``) starts a last segment where
    the latest spacings already follow it but are too few to confirm it."""
    t = np.asarray(nominal, dtype=np.int64)
    if len(t) == 0:
        return []
    hours = np.diff(t) // HOUR_MS
    first = next((int(hours[i]) for i in range(len(hours)) if _steady(hours, i)), current_hours or default_hours)
    segments = [Segment(int(t[0]), first)]
    i = 0
    while i < len(hours):
        changed = _change(hours, t, i, segments[-1].hours)
        if changed is not None:
            segments.append(Segment(int(t[i]), changed))
            i += CONFIRMING_DIFFS
        else:
            i += 1
    if current_hours in FUNDING_HOURS and current_hours != segments[-1].hours:
        trailing = 0
        while trailing < len(hours) and hours[len(hours) - 1 - trailing] == current_hours:
            trailing += 1
        if trailing:  # a change too recent to confirm
            segments.append(Segment(int(t[len(t) - 1 - trailing]), current_hours))
    return segments


def _steady(hours: np.ndarray, i: int) -> bool:
    run = hours[i:i + CONFIRMING_DIFFS]
    return len(run) == CONFIRMING_DIFFS and run[0] in FUNDING_HOURS and bool((run == run[0]).all())


def _change(hours: np.ndarray, t: np.ndarray, i: int, current: int) -> int | None:
    run = hours[i:i + CONFIRMING_DIFFS]
    if len(run) < CONFIRMING_DIFFS or run[0] not in FUNDING_HOURS or run[0] == current or run.min() != run[0] or (run % run[0]).any():
        return None
    h = int(run[0])
    if h > current:
        return h if _steady(hours, i) else None
    settlements = t[i + 1:i + 1 + 2 * CONFIRMING_DIFFS]  # the next ones, a missing one among them or not
    return h if int((settlements % (current * HOUR_MS) != 0).sum()) >= 2 else None


def expected_times(segments: list[Segment], start_ms: int, end_ms: int) -> np.ndarray:
    """The nominal settlement times the schedule expects in [start_ms, end_ms)."""
    out = []
    for seg, nxt in zip(segments, [*segments[1:], None]):
        step = seg.hours * HOUR_MS
        lo = max(start_ms, seg.start_ms)
        hi = min(end_ms, nxt.start_ms if nxt else end_ms)
        first = -(-lo // step) * step
        if first < hi:
            out.append(np.arange(first, hi, step, dtype=np.int64))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def missing_times(stored_nominal: np.ndarray, segments: list[Segment], start_ms: int, end_ms: int) -> np.ndarray:
    """The settlements the schedule expects in [start_ms, end_ms) that are not stored: the gaps."""
    expected = expected_times(segments, start_ms, end_ms)
    return expected[~np.isin(expected, np.asarray(stored_nominal, dtype=np.int64))]


def off_grid(stored_nominal: np.ndarray, segments: list[Segment]) -> np.ndarray:
    """Stored settlements not on their segment's grid (kept, reported, never dropped)."""
    t = np.asarray(stored_nominal, dtype=np.int64)
    if not segments or not len(t):
        return np.zeros(len(t), dtype=bool)
    starts = np.array([s.start_ms for s in segments])
    steps = np.array([s.hours * HOUR_MS for s in segments])
    which = np.maximum(np.searchsorted(starts, t, side="right") - 1, 0)
    return (t % steps[which] != 0) | (t < starts[0])
