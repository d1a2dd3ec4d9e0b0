"""Each data-quality check fails on purpose on bad candles and passes on good ones."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ohlcv_assets.core.intervals import DAY_MS, HOUR_MS, MINUTE_MS, day_bounds_ms
from ohlcv_assets.quality.checks import CHECKS, check_candles, checks_for, freshness_share, quality_score
from ohlcv_assets.simulator.market import SimSymbol, SimulatedMarket

MARKET = SimulatedMarket({"X": SimSymbol("X", "USDT", dt.date(2020, 1, 1), 100.0)})
START = day_bounds_ms(dt.date(2026, 9, 1))[0]
NOW = START + 2 * DAY_MS


def candles(step: int) -> pd.DataFrame:
    return pd.DataFrame(MARKET.candles(MARKET.symbols["X"], step, START, START + DAY_MS, NOW).as_floats())


def outcome(frame, name, step=MINUTE_MS, expected=1440, explained=0, minutes=None):
    [result] = [o for o in check_candles(frame, step, NOW, expected, explained, minutes) if o.name == name]
    return result


def test_good_candles_pass_every_check():
    minutes = candles(MINUTE_MS)
    assert all(o.passed for o in check_candles(minutes, MINUTE_MS, NOW, 1440, 0))
    assert all(o.passed for o in check_candles(candles(HOUR_MS), HOUR_MS, NOW, 24, 0, minutes))
    # sources_agree reads the recorded disagreements: check_stored_days adds it
    assert {o.name for o in check_candles(minutes, MINUTE_MS, NOW, 1440, 0)} | {"sources_agree"} == {c.name for c in CHECKS}
    assert [c.name for c in checks_for("1m")] == [c.name for c in CHECKS if c.name != "consistent_with_1m"]
    assert checks_for("1h") == CHECKS


@pytest.mark.parametrize("name,rule,corrupt", [
    ("candles_valid", "ohlc_valid", lambda f: f.assign(high=np.where(f.index == 7, f["low"] - 1, f["high"]))),
    ("candles_valid", "ohlc_valid", lambda f: f.assign(low=np.where(f.index == 7, -1.0, f["low"]))),
    ("candles_valid", "volume_non_negative", lambda f: f.assign(volume=np.where(f.index == 7, -0.5, f["volume"]))),
    ("candles_valid", "open_times_on_grid", lambda f: f.assign(open_time=np.where(f.index == 7, f["open_time"] + 1000, f["open_time"]))),
    ("candles_valid", "open_times_on_grid", lambda f: pd.concat([f, f.iloc[[7]]], ignore_index=True)),
    ("candles_valid", "only_closed_candles", lambda f: f.assign(open_time=np.where(f.index == 7, NOW, f["open_time"]))),
    ("price_spikes", None, lambda f: f.assign(close=np.where(f.index == 7, f["close"] * 1.5, f["close"]))),
])
def test_each_check_names_the_candle_that_breaks_it(name, rule, corrupt):
    bad = corrupt(candles(MINUTE_MS))
    result = outcome(bad, name)
    assert not result.passed
    assert (bad["open_time"].iloc[7] if len(bad) == 1440 else bad["open_time"].iloc[-1]) in result.offending["open_time"].tolist()
    if rule:  # the validity rule broken, and no other, is named
        assert set(result.offending["rule"]) == {rule}
        assert result.detail.startswith(f"{rule}: ")


def test_a_candle_breaking_two_rules_is_listed_under_each():
    bad = candles(MINUTE_MS)
    bad.loc[7, ["volume", "low"]] = [-1.0, -1.0]
    result = outcome(bad, "candles_valid")
    assert sorted(result.offending["rule"]) == ["ohlc_valid", "volume_non_negative"]
    assert quality_score(bad, check_candles(bad, MINUTE_MS, NOW, 1440, 0), 1440, 0, 1.0).validity == pytest.approx(1 - 1 / 1440)


def test_completeness_counts_confirmed_downtime_as_explained():
    holed = candles(MINUTE_MS).drop(index=range(100, 190))
    assert not outcome(holed, "completeness").passed
    assert outcome(holed, "completeness", explained=90).passed


def test_candles_disagreeing_with_their_1m_candles_are_named():
    minutes, hours = candles(MINUTE_MS), candles(HOUR_MS)
    hours.loc[5, "high"] += 0.01
    result = outcome(hours, "consistent_with_1m", step=HOUR_MS, expected=24, minutes=minutes)
    assert not result.passed and result.offending["open_time"].tolist() == [START + 5 * HOUR_MS]


def score(frame, step=MINUTE_MS, expected=1440, explained=0, minutes=None, freshness=1.0):
    return quality_score(frame, check_candles(frame, step, NOW, expected, explained, minutes), expected, explained, freshness)


def test_a_good_day_scores_one_in_every_part():
    minutes = candles(MINUTE_MS)
    assert score(minutes).as_metadata() == {"quality_score": 1.0, "quality_completeness": 1.0, "quality_validity": 1.0,
                                            "quality_freshness": 1.0, "quality_consistency": 1.0}
    assert score(candles(HOUR_MS), HOUR_MS, 24, minutes=minutes).overall == 1.0


def test_each_part_of_the_score_falls_with_its_own_defect():
    minutes = candles(MINUTE_MS)
    broken = minutes.assign(volume=np.where(minutes.index < 144, -1.0, minutes["volume"]))
    assert score(broken).validity == pytest.approx(0.9)
    assert score(minutes.iloc[:1296]).completeness == pytest.approx(0.9)
    assert score(minutes.iloc[:1296], explained=144).completeness == 1.0
    hours = candles(HOUR_MS)
    off = hours.assign(close=np.where(hours.index < 6, hours["close"] * 1.01, hours["close"]))
    assert score(off, HOUR_MS, 24, minutes=minutes).consistency == pytest.approx(0.75)
    assert score(minutes, freshness=0.0).overall == pytest.approx(0.75)


def test_freshness_falls_linearly_from_the_warn_to_the_fail_window():
    assert freshness_share(5, warn_ms=10, fail_ms=20) == 1.0
    assert freshness_share(15, warn_ms=10, fail_ms=20) == pytest.approx(0.5)
    assert freshness_share(25, warn_ms=10, fail_ms=20) == 0.0
    assert freshness_share(None, warn_ms=10, fail_ms=20) == 0.0


def test_an_hour_whose_minutes_are_still_being_stored_is_not_compared():
    """A today run of 1h can store the newest hour before the 1m run stored its last minute: that
    hour is not comparable yet, and is not reported as inconsistent."""
    hours, minutes = candles(HOUR_MS), candles(MINUTE_MS)
    partial = minutes.iloc[:-1]  # the day's last minute not stored yet
    result = outcome(hours, "consistent_with_1m", step=HOUR_MS, expected=24, minutes=partial)
    assert result.passed and result.checked == 23
    wrong = hours.copy()
    wrong.loc[3, "high"] += 1.0
    assert outcome(wrong, "consistent_with_1m", step=HOUR_MS, expected=24, minutes=partial).offending["open_time"].tolist() == [
        int(hours.loc[3, "open_time"])]


def test_drift_across_an_outage_is_not_a_spike_but_a_jump_still_is():
    """The demo's outage day once failed price_spikes: 90 minutes of ordinary drift read as one return."""
    from ohlcv_assets.quality.checks import spike_mask

    rng = np.random.default_rng(3)
    times = np.arange(1440, dtype=np.int64) * 60_000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-4, 1440)))
    close[400:] *= np.exp(rng.normal(0, 1e-4) * np.sqrt(90) * 4)  # a 4-sigma drift over the outage
    keep = (times < 310 * 60_000) | (times >= 400 * 60_000)
    t, c = times[keep], close[keep]
    assert spike_mask(c).any()  # read as one-minute returns, the outage looks like a spike
    assert not spike_mask(c, t, 60_000).any()
    jumped = c.copy()
    jumped[700:] *= 1.01
    assert np.flatnonzero(spike_mask(jumped, t, 60_000)).tolist() == [700]
