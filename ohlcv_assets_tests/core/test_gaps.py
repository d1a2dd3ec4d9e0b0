"""Gap finding is exact; classification splits gaps where the facts change."""

import numpy as np

from ohlcv_assets.core.gaps import (
    BEFORE_LISTING,
    BEYOND_HISTORY,
    EXCHANGE_DOWNTIME,
    FILLABLE,
    Gap,
    classify_known,
    find_gaps,
    split_by_presence,
)

S = 60_000


def grid(first, n):
    return np.arange(first, first + n * S, S, dtype=np.int64)


def test_one_missing_candle_is_a_gap():
    times = np.delete(grid(0, 100), 37)
    assert find_gaps(times, 0, 100 * S, S).tolist() == [[37 * S, 38 * S, 1]]


def test_gaps_at_both_edges_and_nothing_stored():
    times = grid(5 * S, 90)
    assert find_gaps(times, 0, 100 * S, S).tolist() == [[0, 5 * S, 5], [95 * S, 100 * S, 5]]
    assert find_gaps(np.zeros(0, dtype=np.int64), 0, 100 * S, S).tolist() == [[0, 100 * S, 100]]
    assert find_gaps(grid(0, 100), 0, 100 * S, S).tolist() == []


def test_unsorted_duplicated_and_out_of_range_times_are_handled():
    times = np.r_[grid(0, 50)[::-1], grid(60 * S, 40), grid(10 * S, 5), [-S, 500 * S]]
    assert find_gaps(times, 0, 100 * S, S).tolist() == [[50 * S, 60 * S, 10]]


def test_an_unaligned_range_uses_the_grid_inside_it():
    assert find_gaps(grid(S, 9), S // 2, 10 * S + 1, S).tolist() == [[10 * S, 11 * S, 1]]


def test_a_random_deletion_pattern_is_found_exactly():
    rng = np.random.default_rng(3)
    full = grid(0, 100_000)
    keep = rng.random(len(full)) > 0.01
    gaps = find_gaps(full[keep], 0, 100_000 * S, S)
    missing = np.concatenate([np.arange(s, e, S) for s, e, _ in gaps])
    assert np.array_equal(missing, full[~keep])
    assert gaps[:, 2].sum() == (~keep).sum()


def test_known_reasons_split_gaps_where_the_facts_change():
    gaps = np.array([[0, 100 * S, 100]])
    parts = classify_known(gaps, listing_ms=10 * S, history_start_ms=20 * S,
                           known=[(50 * S, 60 * S, EXCHANGE_DOWNTIME), (70 * S, 80 * S, FILLABLE)])
    assert parts == [Gap(0, 10 * S, BEFORE_LISTING), Gap(10 * S, 20 * S, BEYOND_HISTORY), Gap(20 * S, 50 * S),
                     Gap(50 * S, 60 * S, EXCHANGE_DOWNTIME), Gap(60 * S, 70 * S), Gap(70 * S, 80 * S, FILLABLE),
                     Gap(80 * S, 100 * S)]
    assert classify_known(gaps, None, None, []) == [Gap(0, 100 * S, BEFORE_LISTING)]


def test_presence_splits_fillable_from_empty_parts():
    present, empty = split_by_presence(Gap(0, 10 * S), np.array([2 * S, 3 * S, 7 * S]), S)
    assert present == [Gap(2 * S, 4 * S, FILLABLE), Gap(7 * S, 8 * S, FILLABLE)]
    assert empty == [Gap(0, 2 * S), Gap(4 * S, 7 * S), Gap(8 * S, 10 * S)]
