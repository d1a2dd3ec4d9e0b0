"""Scanning one perpetual's open interest for gaps: every 5-minute sample (``venues.series.OI_CODE``)
since the instrument's start that the warehouse lacks is a gap, classified and recorded like a
missing candle (table ``gaps``, timeframe ``oi_5m``), so that the gap report, the gap backfill
sensor and the records' lifecycle serve open interest as they serve candles. No Dagster.

Classes as for candles: ``fillable`` where the venue serves the sample; asked twice and still
absent, ``exchange_downtime``; ``before_listing`` before the contract's first candle; older than
the venue's REST serves (Binance's ``openInterestHist``: 30 days, ``open_interest_history_days``)
``beyond_history`` (unfillable, as Kraken's 720-candle horizon), unless the universe configures the
archive, whose daily ``metrics`` files hold it: then fillable. A venue that states no horizon (a
generic ccxt venue) but refuses an old window is probed for the oldest time it serves
(``exchange.source.open_interest_served_since``): what it refuses is ``beyond_history`` too.
"""

from __future__ import annotations

import numpy as np

from ohlcv_assets.archive.formats import archive_signature
from ohlcv_assets.core.gaps import BEYOND_HISTORY, Gap, classify_known, fillable_from_archive, find_gaps, split
from ohlcv_assets.core.intervals import DAY_MS, day_bounds_ms, grid_ceil, interval_ms
from ohlcv_assets.exchange.source import PermanentFetchError, open_interest_horizon_ms, open_interest_served_since
from ohlcv_assets.quality.gap_scan import ScanResult, ask_venue, day_coverage, known_ranges, settled_end_ms
from ohlcv_assets.venues.ccxt_candles import OI_PAGE
from ohlcv_assets.venues.series import OI_CODE, OI_PERIOD, archived
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.open_interest import read_open_interest

STEP_MS = interval_ms(OI_PERIOD)


def ask_open_interest(source, symbol: str, unknown: list[Gap], now_ms: int) -> list[Gap]:
    """``ask_venue`` for open interest, a page of samples per window. A venue that refuses the
    oldest window as older than it serves (a permanent error there, an answer newer, up to now) has
    the part it refuses classified ``beyond_history``, the rest asked."""
    def fetch(since: int, until: int) -> tuple[np.ndarray, bool]:
        rows = source.fetch_open_interest(symbol, OI_PERIOD, since, until - 1)
        return (rows[:, 0].astype(np.int64) if len(rows) else np.zeros(0, dtype=np.int64)), False

    try:
        return ask_venue(fetch, OI_PAGE * STEP_MS, STEP_MS, unknown)
    except PermanentFetchError:
        served = open_interest_served_since(source, symbol, OI_PERIOD, unknown[0].start_ms, now_ms + 1)
        if served is None:
            raise
    parts = [p for g in unknown for p in split(g, served, BEYOND_HISTORY)]
    return sorted([*(g for g in parts if g.reason), *ask_venue(fetch, OI_PAGE * STEP_MS, STEP_MS, [g for g in parts if not g.reason])],
                  key=lambda g: g.start_ms)


def scan_open_interest(source, warehouse, instrument, now_ms: int, refresh_minutes: int) -> ScanResult:
    """Finds every 5-minute sample of the settled grid since the instrument's start that the
    warehouse lacks, classifies it and reconciles the instrument's ``oi_5m`` gap records. The venue
    is asked only about samples no record explains yet and that it still serves."""
    exchange, symbol = instrument.exchange, instrument.symbol
    start = day_bounds_ms(instrument.start)[0]
    times = read_open_interest(warehouse, exchange, symbol, start, now_ms + DAY_MS)["open_time"].to_numpy()
    end = settled_end_ms(now_ms, STEP_MS, refresh_minutes, int(times[-1]) if len(times) else None)
    times = times[times < end]
    listing = source.first_open_time(symbol, OI_PERIOD)  # the contract's first candle: no open interest before
    found = classify_known(find_gaps(times, start, end, STEP_MS), listing, open_interest_horizon_ms(source.config.profile, STEP_MS, now_ms),
                           known_ranges(warehouse, exchange, symbol, OI_CODE))
    unknown = [g for g in found if not g.reason]
    classified = sorted([*(g for g in found if g.reason), *(ask_open_interest(source, symbol, unknown, now_ms) if unknown else [])],
                        key=lambda g: g.start_ms)
    if source.config.archive is not None and archived(source.config.profile, OI_CODE):
        classified = fillable_from_archive(classified)
    changes = gap_records.reconcile(warehouse, exchange, symbol, OI_CODE, classified, STEP_MS, now_ms,
                                    archive_signature(source.config))
    first_expected = max(start, grid_ceil(listing, STEP_MS)) if listing is not None else end
    expected = max(0, (end - first_expected) // STEP_MS)
    return ScanResult(expected=expected, present=len(times), gaps=classified,
                      day_coverage=day_coverage(times, first_expected, end, STEP_MS), changes=changes)
