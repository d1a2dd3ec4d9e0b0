"""Funding settlements of a perpetual, venue -> warehouse, for a run's days: the settlements of
the range fetched in pages, keyed by their nominal hour (``core.funding``), merged per day; then
each day measured against the schedule the stored settlements follow (with the interval the venue
publishes now), so that a settlement the schedule expects and the warehouse lacks is a gap."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from ohlcv_assets.core.funding import MAX_OFFSET_MS, Segment, expected_times, nominal_times, off_grid, off_the_hour
from ohlcv_assets.core.intervals import DAY_MS, day_bounds_ms, ms_to_iso
from ohlcv_assets.quality.funding_gaps import funding_schedule
from ohlcv_assets.quality.validation import CandleValidationError
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.venues.series import FUNDING_CODE
from ohlcv_assets.warehouse.funding import merge_funding, read_funding


@dataclasses.dataclass(frozen=True)
class FundingDay:
    """One instrument-day of funding settlements after a run."""

    written: int  # new or revised settlements
    stored: int  # settlements stored in the day
    expected: int  # settlements the schedule expects in the day (up to now)
    missing: tuple[int, ...]  # nominal times expected and not stored: the gaps
    off_grid: tuple[int, ...]  # stored settlements the schedule does not expect (kept)
    interval_hours: tuple[int, ...]  # the intervals of the schedule in the day

    def as_metadata(self) -> dict:
        return {"settlements_written": self.written, "settlements_stored": self.stored,
                "settlements_expected": self.expected, "settlements_missing": len(self.missing),
                "funding_interval_hours": ", ".join(str(h) for h in self.interval_hours) or "none"}


def ingest_funding_days(source, warehouse, instrument, days: list[dt.date], now_ms: int) -> dict[dt.date, FundingDay]:
    """Fetches, stores and measures the instrument's funding settlements of ``days`` (ascending).
    A settlement time further than ``MAX_OFFSET_MS`` from any hour, or two settlements of one hour,
    fail the run naming them (nothing of the batch is written): never a guess at their hour."""
    bounds = [day_bounds_ms(day) for day in days]
    lo, hi = bounds[0][0], min(bounds[-1][1], now_ms + 1)
    # a day past the range too: the schedule at the range's end is read from the settlements after it
    rows = source.fetch_funding(instrument.symbol, lo - MAX_OFFSET_MS, min(hi + DAY_MS, now_ms) + MAX_OFFSET_MS - 1)
    fetched = pd.DataFrame({"open_time": nominal_times(rows[:, 0]), "raw_time": rows[:, 0].astype(np.int64),
                            "rate": rows[:, 1], "mark_price": rows[:, 2]})
    frame = fetched[(fetched["open_time"] >= lo) & (fetched["open_time"] < hi)].reset_index(drop=True)
    after = fetched["open_time"].to_numpy()[fetched["open_time"].to_numpy() >= hi]
    bad = off_the_hour(frame["raw_time"].to_numpy()) | frame["open_time"].duplicated(keep=False).to_numpy()
    if bad.any():
        offending = frame[bad].assign(raw_time_utc=[ms_to_iso(int(t)) for t in frame["raw_time"][bad]])
        raise CandleValidationError(
            f"{instrument.label()}: {int(bad.sum())} funding settlement(s) not on an hour of their own (more than "
            f"{MAX_OFFSET_MS // 60_000} min off, or two in one hour):\n{offending.to_string(index=False)}", offending)
    merged = merge_funding(warehouse, instrument.exchange, instrument.symbol, frame, bounds, now_ms)
    segments = funding_schedule(source, warehouse, instrument, hi, after)
    stored = read_funding(warehouse, instrument.exchange, instrument.symbol, lo, hi)["open_time"].to_numpy()
    # settlements a gap scan confirmed the venue never made are not missing (as confirmed-empty candles)
    confirmed = gap_records.confirmed_empty_ranges(warehouse, instrument.exchange, instrument.symbol, FUNDING_CODE)
    report = {}
    for day, (start, end), result in zip(days, bounds, merged):
        in_day = stored[(stored >= start) & (stored < end)]
        expected = expected_times(segments, start, min(end, now_ms + 1))
        expected = expected[~np.any([(expected >= a) & (expected < b) for a, b in confirmed], axis=0)] if confirmed else expected
        report[day] = FundingDay(
            written=result.inserted + result.revised, stored=len(in_day), expected=len(expected),
            missing=tuple(int(t) for t in expected[~np.isin(expected, in_day)]),
            off_grid=tuple(int(t) for t in in_day[off_grid(in_day, segments)]),
            interval_hours=hours_in(segments, start, end))
    return report


def hours_in(segments: list[Segment], start_ms: int, end_ms: int) -> tuple[int, ...]:
    """The intervals the schedule has in [start_ms, end_ms), ascending."""
    ends = [s.start_ms for s in segments[1:]] + [end_ms]
    return tuple(sorted({s.hours for s, e in zip(segments, ends) if s.start_ms < end_ms and e > start_ms}))
