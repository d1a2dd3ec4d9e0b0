"""Deriving an interval from a finer stored one, per instrument and UTC day. No Dagster here.

A derived candle is written only when every source candle of its bucket that exists is stored: the
finer grid inside the venue's sessions (the instrument's session window for equities), less the
ranges the venue confirmed empty (no trades, downtime). A bucket with a source candle missing is
absent from ``derived_candles`` (never written as if complete), and the day's report names it with
the gap classes the source's gap records give its missing candles (``unscanned`` before the source's
gap scan has looked). A bucket still forming (its end after now) is not written either. A bucket
none of whose source candles is stored keeps the derived candle it has (retention may have dropped
the finer candles; see ``warehouse.derived.roll_up``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

from ohlcv_assets.core.intervals import day_bounds_ms, interval_ms, ms_to_iso, utc_day
from ohlcv_assets.core.sessions import Sessions
from ohlcv_assets.quality.checks import compare_candles, finer_candles_existing
from ohlcv_assets.warehouse import derived
from ohlcv_assets.warehouse.read import load_candles
from ohlcv_assets.warehouse.gap_records import confirmed_empty_ranges, instrument_gaps
from ohlcv_assets.warehouse.schema import GAP_EXPLAINED_STATUSES
from ohlcv_assets.warehouse.store import Warehouse

SHOWN = 48  # incomplete or differing candles named in a day's metadata (all are counted)
UNSCANNED = "unscanned"  # a missing source candle no gap record explains yet


@dataclasses.dataclass
class DerivedDay:
    candles: int = 0  # derived candles written
    expected: int = 0  # closed buckets with source candles expected
    incomplete: dict[str, dict] = dataclasses.field(default_factory=dict)  # open time -> {missing, stored, classes}
    compared_with_venue: int | None = None  # the instrument fetches the interval too: candles compared with the venue's
    differing_from_venue: list[dict] = dataclasses.field(default_factory=list)  # each differing candle, both values
    seconds: float = 0.0

    def as_metadata(self) -> dict:
        metadata = {"derived_candles": self.candles, "expected_candles": self.expected,
                    "incomplete_candles": len(self.incomplete),
                    "incomplete": dict(list(self.incomplete.items())[:SHOWN]), "seconds": self.seconds}
        if self.compared_with_venue is not None:
            metadata |= {"compared_with_venue": self.compared_with_venue, "differing_from_venue": len(self.differing_from_venue),
                         "differences": self.differing_from_venue[:SHOWN]}
        return metadata


def complete_buckets(expected: dict[int, int], stored: dict[int, int], step_ms: int, now_ms: int) -> list[int]:
    """The closed buckets whose every existing source candle is stored (and that have one)."""
    return sorted(b for b, n in stored.items() if n > 0 and n >= expected.get(b, 0) and b + step_ms <= now_ms)


def derive_days(warehouse: Warehouse, exchange: str, symbol: str, interval: str, source: str, days: list[dt.date],
                sessions: Sessions, now_ms: int, venue_too: bool = False) -> dict[dt.date, DerivedDay]:
    """Rolls up the (contiguous) ``days`` of ``interval`` from ``source`` in the warehouse; a report per
    day. ``venue_too``: the instrument fetches ``interval`` as well, and each day's derived candles are
    compared with the venue's (the cross-interval check, from this side)."""
    started = time.perf_counter()
    step, fine = interval_ms(interval), interval_ms(source)
    lo, hi = day_bounds_ms(min(days))[0], day_bounds_ms(max(days))[1]
    existing = finer_candles_existing(lo, hi, step, sessions, confirmed_empty_ranges(warehouse, exchange, symbol, source), fine)
    expected = {int(b): int(n) for b, n in existing.items() if n > 0}
    stored = derived.source_counts(warehouse, exchange, symbol, source, step, lo, hi)
    complete = complete_buckets(expected, stored, step, now_ms)
    derived.roll_up(warehouse, exchange, symbol, interval, step, source, lo, hi, sorted(stored), complete, now_ms)
    reports = {day: DerivedDay() for day in days}
    done = set(complete)
    for bucket in complete:
        reports[utc_day(bucket)].candles += 1
    missing = [b for b in sorted(set(expected) | set(stored)) if b + step <= now_ms and b not in done]
    records = [r for r in instrument_gaps(warehouse, exchange, symbol, source) if r.status in GAP_EXPLAINED_STATUSES] if missing else []
    for bucket in sorted(set(expected) | set(stored)):
        if bucket + step <= now_ms:
            reports[utc_day(bucket)].expected += 1
    for bucket in missing:
        classes = sorted({r.reason for r in records if r.start_ms < bucket + step and r.end_ms > bucket}) or [UNSCANNED]
        reports[utc_day(bucket)].incomplete[ms_to_iso(bucket)] = {
            "stored": stored.get(bucket, 0), "missing": max(expected.get(bucket, 0) - stored.get(bucket, 0), 0),
            "classes": classes}
    if venue_too:
        compare_with_venue(warehouse, exchange, symbol, interval, source, lo, hi, reports)
    elapsed = round(time.perf_counter() - started, 3)
    for report in reports.values():
        report.seconds = elapsed
    return reports



def compare_with_venue(warehouse: Warehouse, exchange: str, symbol: str, interval: str, source: str, lo: int, hi: int,
                       reports: dict[dt.date, DerivedDay]) -> None:
    """Each day's derived candles against the venue's own of the same open time (where both are stored)."""
    ours = derived.read_derived(warehouse, exchange, symbol, interval, source, lo, hi)
    venue = load_candles(exchange, symbol, interval, lo, hi, warehouse=warehouse, strict=False).reset_index(drop=True)
    outcome = compare_candles(venue, ours, "_derived", f"compared with the {interval} derived from {source}")
    both = ours.merge(venue[["open_time"]], on="open_time")
    for day, report in reports.items():
        report.compared_with_venue = int(sum(utc_day(t) == day for t in both["open_time"]))
    for row in outcome.offending.to_dict("records"):
        reports[utc_day(int(row["open_time"]))].differing_from_venue.append(
            {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()})
