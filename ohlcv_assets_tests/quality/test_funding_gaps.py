"""Missing funding settlements as gaps, no I/O: runs of consecutive expected settlements, the end
of the scanned span."""

import numpy as np

from ohlcv_assets.core.funding import Segment, expected_times
from ohlcv_assets.core.gaps import EXCHANGE_DOWNTIME, FILLABLE, Gap
from ohlcv_assets.core.intervals import HOUR_MS, MINUTE_MS
from ohlcv_assets.quality.funding_gaps import day_coverage, runs, settled_funding_end_ms


def test_runs_join_consecutive_settlements_of_one_reason_across_an_interval_change():
    expected = expected_times([Segment(0, 8), Segment(24 * HOUR_MS, 4)], 0, 48 * HOUR_MS)  # 0, 8, 16 | 24, 28, ...
    missing = np.array([8, 16, 24, 32, 36, 44], dtype=np.int64) * HOUR_MS
    reasons = [FILLABLE, FILLABLE, FILLABLE, FILLABLE, EXCHANGE_DOWNTIME, FILLABLE]
    gaps = runs(expected, missing, reasons)
    assert gaps == [Gap(8 * HOUR_MS, 25 * HOUR_MS, FILLABLE), Gap(32 * HOUR_MS, 33 * HOUR_MS, FILLABLE),
                    Gap(36 * HOUR_MS, 37 * HOUR_MS, EXCHANGE_DOWNTIME), Gap(44 * HOUR_MS, 45 * HOUR_MS, FILLABLE)]
    assert [g.candles(HOUR_MS) for g in gaps] == [3, 1, 1, 1]  # settlements, not hours
    assert runs(expected, np.zeros(0, dtype=np.int64), []) == []


def test_the_scan_expects_settlements_due_a_refresh_ago_or_up_to_the_last_stored():
    assert settled_funding_end_ms(10 * HOUR_MS, 30, None) == 10 * HOUR_MS - 30 * MINUTE_MS
    assert settled_funding_end_ms(10 * HOUR_MS, 30, 10 * HOUR_MS) == 10 * HOUR_MS + 1


def test_day_coverage_counts_stored_and_expected_settlements_per_day():
    expected = np.array([0, 8, 16, 24, 28], dtype=np.int64) * HOUR_MS
    cov = day_coverage(expected, np.array([True, False, True, True, True]))
    assert [(str(d), h, w) for d, h, w in cov] == [("1970-01-01", 2, 3), ("1970-01-02", 2, 2)]
