"""Funding settlements as an event series: nominal keying, the schedule read from the settlements
(interval changes confirmed, missing and extra settlements told apart) and the gaps it implies."""

import numpy as np

from ohlcv_assets.core.funding import Segment, expected_times, infer_schedule, missing_times, nominal_times, off_grid, off_the_hour

H = 3_600_000
DAY = 1_768_953_600_000  # 2026-01-21 00:00 UTC


def hours(*values):
    return np.array(values, dtype=np.int64) * H


def test_a_settlement_is_keyed_by_its_nominal_hour():
    raw = np.array([DAY + 1, DAY + 8 * H - 2, DAY + 16 * H + 9, DAY + 3])
    assert (nominal_times(raw) == [DAY, DAY + 8 * H, DAY + 16 * H, DAY]).all()  # 07:59:59.998 settles at 08:00
    assert off_the_hour(np.array([DAY + 1, DAY + 11 * 60_000, DAY - 11 * 60_000])).tolist() == [False, True, True]


def test_an_interval_change_is_read_from_three_spacings():
    assert infer_schedule(hours(0, 8, 16, 24, 32, 40, 48, 52, 56, 60, 64)) == [Segment(0, 8), Segment(48 * H, 4)]
    one_hour_stretch = hours(*range(0, 48, 8), *range(48, 96), *range(96, 200, 8))
    assert infer_schedule(one_hour_stretch) == [Segment(0, 8), Segment(48 * H, 1), Segment(96 * H, 8)]


def test_a_missing_settlement_is_a_gap_not_an_interval_change():
    stored = hours(0, 8, 24, 32, 40, 48, 52, 56, 64, 68)  # 16:00 and 60:00 missing
    schedule = infer_schedule(stored)
    assert schedule == [Segment(0, 8), Segment(48 * H, 4)]
    assert (missing_times(stored, schedule, 0, 72 * H) == hours(16, 60)).all()
    assert (expected_times(schedule, 24 * H, 48 * H) == hours(24, 32, 40)).all()


def test_the_published_interval_settles_a_change_too_recent_to_confirm():
    stored = hours(0, 8, 16, 24, 32, 36)
    assert infer_schedule(stored) == [Segment(0, 8)]
    assert infer_schedule(stored, current_hours=4) == [Segment(0, 8), Segment(32 * H, 4)]
    assert infer_schedule(np.zeros(0, dtype=np.int64)) == []


def test_an_extra_settlement_is_off_the_grid_and_kept():
    stored = hours(0, 8, 16, 24, 28, 32, 40, 48)
    schedule = infer_schedule(stored)
    assert schedule == [Segment(0, 8)]
    assert off_grid(stored, schedule).tolist() == [False, False, False, False, True, False, False, False]
