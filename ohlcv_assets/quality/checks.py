"""Data-quality checks of stored candles, as plain functions (the candles assets report them as
Dagster asset checks). Each returns the offending candles, so a failure says exactly which."""

import dataclasses

import numpy as np
import pandas as pd

from ohlcv_assets.core.intervals import DAY_MS, MINUTE_MS, day_bounds_ms, interval_ms, ms_to_iso
from ohlcv_assets.core.intervals import ceil_div
from ohlcv_assets.core.sessions import Sessions
from ohlcv_assets.warehouse import delistings, derived, provenance
from ohlcv_assets.warehouse.read import load_candles
from ohlcv_assets.warehouse.gap_records import confirmed_empty_ranges
from ohlcv_assets.venues.series import finest_code, parse_series_code, series_code, signed_prices

MARK_VS_LAST_MAX = 0.01  # a mark close this far (relative) from the trade close of its candle is reported
PREMIUM_VS_BASIS_MAX = 0.005  # a premium close this far (absolute rate) from (mark - index) / index is reported
COMPLETENESS_THRESHOLD = 0.99
SPIKE_Z_THRESHOLD = 12.0
SPIKE_MIN_RETURNS = 12
VOLUME_RTOL = 1e-9


@dataclasses.dataclass(frozen=True)
class CheckSpec:
    name: str
    blocking: bool
    warn_only: bool
    description: str


VALIDITY_RULES = {
    "ohlc_valid": "prices > 0 (any sign for the premium index) and finite, low <= open, close <= high",
    "volume_non_negative": "volume >= 0",
    "open_times_on_grid": "open times unique and aligned to the interval grid",
    "only_closed_candles": "no candle from the future and no forming candle stored as closed",
}

# One blocking check for the four validity rules: each check is an event per partition written
# (a year of 1m is 365 partitions), and the rules only ever fail together as "do not use this day".
CHECKS = [
    CheckSpec("candles_valid", True, False, "; ".join(f"{rule}: {text}" for rule, text in VALIDITY_RULES.items())),
    CheckSpec("completeness", False, False,
              f"stored + confirmed-downtime candles >= {COMPLETENESS_THRESHOLD:.0%} of the closed candles expected"),
    CheckSpec("price_spikes", False, True, f"robust z-score of log returns <= {SPIKE_Z_THRESHOLD} (a warning)"),
    CheckSpec("consistent_with_1m", False, False, "candles equal the same candles aggregated from the stored 1m candles"),
    CheckSpec("sources_agree", False, True, "the archive agreed with what was stored (the API, or another archive file) on "
                                            "every candle of the day; disagreements are in source_disagreements (a warning)"),
]
# warnings of a perpetual's price series, each of one series (``SERIES_CHECKS``)
PERP_CHECKS = [
    CheckSpec("mark_vs_last", False, True, f"mark price closes within {MARK_VS_LAST_MAX:.0%} of the trade candles' closes of "
                                           "the same open times (a warning; skipped without stored trade candles)"),
    CheckSpec("premium_vs_basis", False, True, f"premium index closes within {PREMIUM_VS_BASIS_MAX} of (mark - index) / index "
                                               "of the same open times: loosely, the venue's premium is another formula "
                                               "(a warning; skipped without stored mark and index candles)"),
]
SERIES_CHECKS = {"mark_vs_last": "mark", "premium_vs_basis": "premium"}  # the series each of ``PERP_CHECKS`` is of


def checks_for(interval: str) -> list[CheckSpec]:
    """The checks a ``candles/<interval>`` asset has (``interval`` or a price-series code, ``mark_1h``):
    1m candles have nothing finer to agree with; the premium index crosses zero, so it has no
    log-return spikes."""
    series = parse_series_code(interval)[0]
    return [spec for spec in CHECKS if not (spec.name == "consistent_with_1m" and interval == finest_code(interval))
            and not (spec.name == "price_spikes" and signed_prices(interval))] + \
        [spec for spec in PERP_CHECKS if SERIES_CHECKS[spec.name] == series]


@dataclasses.dataclass
class CheckOutcome:
    name: str
    offending: pd.DataFrame
    detail: str = ""
    checked: int = 0  # candles compared (the cross-interval check)

    @property
    def passed(self) -> bool:
        return self.offending.empty


def _rows(frame: pd.DataFrame, mask) -> pd.DataFrame:
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():  # the usual case, a day passing: nothing copied
        return frame.iloc[0:0]
    out = frame[mask].copy()
    out.insert(0, "open_time_utc", [ms_to_iso(int(t)) for t in out["open_time"]])
    return out


def mark_vs_last(mark: pd.DataFrame, trades: pd.DataFrame | None) -> CheckOutcome:
    """Mark candles whose close is more than ``MARK_VS_LAST_MAX`` from the trade candle's close of
    the same open time (the last price then); ``trades`` None or empty: not stored, skipped."""
    if trades is None or trades.empty:
        return CheckOutcome("mark_vs_last", mark.iloc[0:0], "skipped: no trade candles of this interval stored")
    joined = mark[["open_time", "close"]].merge(trades[["open_time", "close"]], on="open_time", suffixes=("", "_last"))
    off = (joined["close"] - joined["close_last"]).abs() / joined["close_last"]
    bad = _rows(joined.assign(relative_diff=off), (off > MARK_VS_LAST_MAX).to_numpy())
    return CheckOutcome("mark_vs_last", bad, f"{len(joined)} candles compared with the trade closes", checked=len(joined))


def premium_vs_basis(premium: pd.DataFrame, mark: pd.DataFrame | None, index: pd.DataFrame | None) -> CheckOutcome:
    """Premium candles whose close is more than ``PREMIUM_VS_BASIS_MAX`` from (mark - index) / index
    of the same open time; mark or index None or empty: not stored, skipped."""
    if mark is None or index is None or mark.empty or index.empty:
        return CheckOutcome("premium_vs_basis", premium.iloc[0:0], "skipped: no mark and index candles of this interval stored")
    joined = (premium[["open_time", "close"]].merge(mark[["open_time", "close"]].rename(columns={"close": "mark"}), on="open_time")
              .merge(index[["open_time", "close"]].rename(columns={"close": "index"}), on="open_time"))
    basis = (joined["mark"] - joined["index"]) / joined["index"]
    off = (joined["close"] - basis).abs()
    bad = _rows(joined.assign(basis=basis), (off > PREMIUM_VS_BASIS_MAX).to_numpy())
    return CheckOutcome("premium_vs_basis", bad, f"{len(joined)} candles compared with (mark - index) / index", checked=len(joined))


_NO_SHORTFALL = pd.DataFrame({"stored": [], "explained_missing": [], "expected": []}, dtype="int64")  # read only


def check_candles(frame: pd.DataFrame, step_ms: int, now_ms: int, expected: int, explained_missing: int,
                  minutes: pd.DataFrame | None = None, minutes_existing: pd.Series | None = None,
                  signed: bool = False) -> list[CheckOutcome]:
    """All checks of one instrument-day's stored candles.

    ``expected`` is the number of closed grid candles of the day (from listing), ``explained_missing``
    how many of them the exchange confirmed never existed; ``minutes`` the day's stored 1m candles
    for the cross-interval check (None: skipped), ``minutes_existing`` how many 1m candles exist in
    each of the day's candles (see ``finer_candles_existing``). ``signed``: a series of any sign (the
    premium index): no price floor, no spike check (log returns need prices > 0).
    """
    c, t = frame["close"].to_numpy(), frame["open_time"].to_numpy()
    outcomes = [candles_valid(frame, step_ms, now_ms, signed)]
    share = 1.0 if expected == 0 else min(1.0, (len(frame) + explained_missing) / expected)
    shortfall = (_NO_SHORTFALL if share >= COMPLETENESS_THRESHOLD else
                 pd.DataFrame({"stored": [len(frame)], "explained_missing": [explained_missing], "expected": [expected]}))
    outcomes.append(CheckOutcome("completeness", shortfall, f"{share:.2%} of {expected} expected candles stored or explained"))
    if not signed:
        outcomes.append(CheckOutcome("price_spikes", _rows(frame, spike_mask(c, t, step_ms))))
    outcomes.append(consistency(frame, minutes, step_ms, fine_existing=minutes_existing))
    return outcomes


def repeated(values: np.ndarray) -> np.ndarray:
    """Where a value occurs more than once (each occurrence), without a pandas Series per day."""
    ordered = np.sort(values)
    twice = ordered[1:][ordered[1:] == ordered[:-1]]
    return np.isin(values, twice) if len(twice) else np.zeros(len(values), dtype=bool)


def candles_valid(frame: pd.DataFrame, step_ms: int, now_ms: int, signed: bool = False) -> CheckOutcome:
    """The validity rules (``VALIDITY_RULES``) at once; each offending candle once per rule it
    breaks, the rule named in the ``rule`` column, the count per broken rule in the detail.
    ``signed``: values of any sign (the premium index) are valid."""
    o, h, l, c, v, t = (frame[k].to_numpy() for k in ("open", "high", "low", "close", "volume", "open_time"))
    broken = {
        "ohlc_valid": (l > np.minimum(o, c)) | (h < np.maximum(o, c)) | ((l <= 0) & (not signed)) | ~np.isfinite(o + h + l + c),
        "volume_non_negative": ~(v >= 0),
        "open_times_on_grid": (t % step_ms != 0) | repeated(t),
        "only_closed_candles": t + step_ms > now_ms,
    }
    parts = [_rows(frame, mask).assign(rule=rule) for rule, mask in broken.items() if mask.any()]
    if not parts:
        return CheckOutcome("candles_valid", frame.iloc[0:0], f"{len(frame)} candles pass {', '.join(VALIDITY_RULES)}")
    offending = pd.concat(parts, ignore_index=True)
    counts = offending["rule"].value_counts()
    return CheckOutcome("candles_valid", offending[["rule", *frame.columns.insert(0, "open_time_utc")]],
                        "; ".join(f"{rule}: {counts[rule]} candle(s)" for rule in VALIDITY_RULES if rule in counts))


def spike_mask(close: np.ndarray, open_times: np.ndarray | None = None, step_ms: int | None = None) -> np.ndarray:
    """Log returns whose robust z-score (median / MAD) exceeds the threshold. A return across
    missing candles (an outage, a deleted range) spans several intervals: it is scaled by
    1/sqrt(intervals), as a random walk's spread grows, so ordinary drift over a 90-minute outage
    is not a spike while a jump still is. Prices move in ticks: the spread is floored at the
    smallest move seen (one tick), so a cheap coin whose returns are mostly 0 or 1 tick does not
    read a 3-tick hour as a spike, and fewer than SPIKE_MIN_RETURNS returns judge nothing."""
    mask = np.zeros(len(close), dtype=bool)
    if len(close) <= SPIKE_MIN_RETURNS:
        return mask
    returns = np.diff(np.log(close))
    if open_times is not None and step_ms:
        returns = returns / np.sqrt(np.maximum(np.diff(open_times) / step_ms, 1.0))
    moves = np.abs(returns[returns != 0])
    if len(moves) == 0:
        return mask
    median = np.median(returns)
    mad = max(np.median(np.abs(returns - median)) * 1.4826, moves.min())
    mask[1:] = np.abs(returns - median) / mad > SPIKE_Z_THRESHOLD
    return mask


def finer_candles_existing(lo_ms: int, hi_ms: int, step_ms: int, sessions: Sessions,
                           empty_ranges: list[tuple[int, int]], fine_step_ms: int = MINUTE_MS) -> pd.Series:
    """How many finer candles exist in each ``step_ms`` candle of [lo_ms, hi_ms) (whole days): those
    inside the venue's sessions, less those the venue confirmed empty (no trades, downtime). A venue
    that omits empty intervals (Kraken, Coinbase, Polygon) builds its candle from the rest, so the
    candle is comparable once that many are stored."""
    grid = np.arange(lo_ms, hi_ms, fine_step_ms, dtype=np.int64)
    exists = np.isin(grid, sessions.expected(lo_ms, hi_ms, fine_step_ms), assume_unique=True)
    for start, end in empty_ranges:
        start, end = max(start, lo_ms), min(end, hi_ms)
        if start < end:
            exists[(start - lo_ms) // fine_step_ms:ceil_div(end - lo_ms, fine_step_ms)] = False
    counts = exists.reshape(-1, step_ms // fine_step_ms).sum(axis=1)
    return pd.Series(counts, index=np.arange(lo_ms, hi_ms, step_ms, dtype=np.int64))


def aggregate(minutes: pd.DataFrame, step_ms: int, fine_step_ms: int = MINUTE_MS,
              fine_existing: pd.Series | None = None) -> pd.DataFrame:
    """Candles of ``step_ms`` built from finer candles (1m unless said), only for buckets whose
    every finer candle is stored (a bucket still being filled, by a run of the 1m candles not
    finished yet, is not comparable); ``fine_existing`` says how many exist per bucket where a
    venue omits empty intervals or trades in sessions (default: all of them)."""
    bucket = minutes["open_time"] // step_ms * step_ms
    grouped = minutes.groupby(bucket, sort=True)
    frame = pd.DataFrame({"open_time": grouped["open_time"].first().index.to_numpy(), "open": grouped["open"].first().to_numpy(),
                          "high": grouped["high"].max().to_numpy(), "low": grouped["low"].min().to_numpy(),
                          "close": grouped["close"].last().to_numpy(), "volume": grouped["volume"].sum().to_numpy()})
    full = step_ms // fine_step_ms
    if fine_existing is not None:
        full = fine_existing.reindex(frame["open_time"]).fillna(full).to_numpy()
    return frame[grouped.size().to_numpy() == full].reset_index(drop=True)


def consistency(frame: pd.DataFrame, minutes: pd.DataFrame | None, step_ms: int, fine_step_ms: int = MINUTE_MS,
                fine_existing: pd.Series | None = None) -> CheckOutcome:
    """Candles that differ from the same candles aggregated from finer stored ones (1m unless said)."""
    if minutes is None or step_ms == fine_step_ms or minutes.empty:
        return CheckOutcome("consistent_with_1m", frame.iloc[0:0], "no 1m candles to compare with")
    return compare_candles(frame, aggregate(minutes, step_ms, fine_step_ms, fine_existing), "_from_1m", "compared")


def compare_candles(frame: pd.DataFrame, reference: pd.DataFrame, suffix: str, what: str) -> CheckOutcome:
    """The cross-interval check: candles that differ from the reference candle of the same open time
    (prices exactly, volume to ``VOLUME_RTOL``); the reference's values in columns ending ``suffix``."""
    both = frame.merge(reference[["open_time", "open", "high", "low", "close", "volume"]], on="open_time", suffixes=("", suffix))
    differs = np.zeros(len(both), dtype=bool)
    for col in ("open", "high", "low", "close"):
        differs |= both[col].to_numpy() != both[f"{col}{suffix}"].to_numpy()
    differs |= ~np.isclose(both["volume"], both[f"volume{suffix}"], rtol=VOLUME_RTOL, atol=1e-12)
    return CheckOutcome("consistent_with_1m", _rows(both, differs), f"{len(both)} candles {what}", checked=len(both))


@dataclasses.dataclass(frozen=True)
class QualityScore:
    """How far one instrument-day can be trusted, each part in [0, 1]; ``overall`` is their mean.

    completeness: stored plus explained candles over the closed candles expected.
    validity: share of stored candles that pass every blocking check.
    freshness: 1 while the instrument's latest candle is within the warn window, falling linearly
    to 0 at the fail window.
    consistency: share of candles equal to their aggregate of the stored 1m candles (1 when there
    is nothing to compare)."""

    completeness: float
    validity: float
    freshness: float
    consistency: float

    @property
    def overall(self) -> float:
        return (self.completeness + self.validity + self.freshness + self.consistency) / 4

    def as_metadata(self) -> dict[str, float]:
        parts = {f"quality_{k}": round(v, 4) for k, v in dataclasses.asdict(self).items()}
        return {"quality_score": round(self.overall, 4), **parts}


def freshness_share(age_ms: float | None, warn_ms: float, fail_ms: float) -> float:
    if age_ms is None:
        return 0.0
    return float(np.clip((fail_ms - age_ms) / (fail_ms - warn_ms), 0.0, 1.0))


def quality_score(frame: pd.DataFrame, outcomes: list[CheckOutcome], expected: int, explained_missing: int,
                  freshness: float) -> QualityScore:
    by_name = {o.name: o for o in outcomes}
    bad_times = set()
    for spec in CHECKS:
        if spec.blocking:
            bad_times.update(by_name[spec.name].offending["open_time"].tolist())
    validity = 1.0 if frame.empty else 1.0 - len(bad_times & set(frame["open_time"].tolist())) / len(frame)
    completeness = 1.0 if expected == 0 else min(1.0, (len(frame) + explained_missing) / expected)
    compared = by_name["consistent_with_1m"]
    consistency = 1.0 if compared.checked == 0 else 1.0 - len(compared.offending) / compared.checked
    return QualityScore(completeness=completeness, validity=validity, freshness=freshness, consistency=consistency)


def check_stored_days(warehouse, instrument, interval: str, expected_by_day: dict, now_ms: int,
                      freshness_windows_ms: tuple[float, float], sessions: Sessions = Sessions(),
                      official_daily: bool = False, stored_by_day: dict | None = None) -> dict:
    """Reads instrument-days back from the warehouse (one query per table for all of them), checks
    and scores each day; ``expected_by_day`` maps each day to its expected closed candle count.
    ``stored_by_day``: each day's candles as the run's write left them stored (``PartitionReport.stored``),
    taken instead of reading them back when it holds every day.
    Freshness counts only time the venue traded (``sessions``): a weekend does not age an equity,
    and a delisted instrument stops ageing at its last candle. ``official_daily``: the venue's daily
    candles hold official figures, not a roll-up of its minutes, so they are not compared with the 1m.
    Returns {day: (outcomes, QualityScore)}."""
    step = interval_ms(interval)
    days = sorted(expected_by_day)
    lo, hi = day_bounds_ms(days[0])[0], day_bounds_ms(days[-1])[1]
    if stored_by_day is None or not all(stored_by_day.get(day) is not None for day in days):
        stored = load_candles(instrument.exchange, instrument.symbol, interval, lo, hi, warehouse=warehouse, strict=False).reset_index(drop=True)
        stored_by_day = {day: _within(stored, *day_bounds_ms(day)) for day in days}
    minutes = minutes_existing = None
    official = official_daily and step >= DAY_MS
    fine = finest_code(interval)  # the same series' 1m (mark_1m for mark_1h)
    if interval != fine and "1m" in instrument.intervals and not official:
        minutes = load_candles(instrument.exchange, instrument.symbol, fine, lo, hi, warehouse=warehouse, strict=False).reset_index(drop=True)
        minutes_existing = finer_candles_existing(lo, hi, step, sessions,
                                                  confirmed_empty_ranges(warehouse, instrument.exchange, instrument.symbol, fine))
    # fetched and derived both (universe: intervals [.., 1h], derived {1h: 1m}): the fetched candles are
    # compared with the derived ones, candle by candle (the venue's official daily bars never are)
    derived_from = None if official else instrument.derived_source(interval)
    derived_ref = None if derived_from is None else derived.read_derived(
        warehouse, instrument.exchange, instrument.symbol, interval, derived_from, lo, hi)
    empty_ranges = confirmed_empty_ranges(warehouse, instrument.exchange, instrument.symbol, interval)
    latest = warehouse.latest_open_time(instrument.exchange, instrument.symbol, interval)
    until = sessions.last_trading_ms(now_ms)
    for delisting in delistings.delisted(warehouse, instrument.exchange, instrument.symbol).values():
        until = min(until, delisting.delisted_ms)
    age = None if latest is None else max(0, until - (latest + step))
    freshness = freshness_share(age, *freshness_windows_ms)
    disagreements = provenance.disagreements(warehouse, instrument.exchange, instrument.symbol, interval, days)
    series, plain = parse_series_code(interval)

    def companion(code: str) -> pd.DataFrame | None:  # another stored series of the same interval, if configured
        if not (code in instrument.intervals or code in instrument.series_codes):
            return None
        return load_candles(instrument.exchange, instrument.symbol, code, lo, hi, warehouse=warehouse, strict=False).reset_index(drop=True)

    last = companion(plain) if series == "mark" else None
    marks, indexes = (companion(series_code("mark", plain)), companion(series_code("index", plain))) if series == "premium" else (None, None)
    disagreeing = dict(iter(disagreements.groupby("day"))) if len(disagreements) else {}
    results = {}
    for day in days:
        start, end = day_bounds_ms(day)
        explained = sum(sessions.count(max(a, start), min(b, end, now_ms // step * step), step) for a, b in empty_ranges
                        if max(a, start) < min(b, end))
        frame = stored_by_day[day]
        outcomes = check_candles(frame, step, now_ms, expected_by_day[day], explained,
                                 None if minutes is None else _within(minutes, start, end), minutes_existing, signed_prices(interval))
        derived_day = None if derived_from is None else _within(derived_ref, start, end)
        if derived_day is not None and len(derived_day):  # not derived yet: compared with the 1m, as without
            outcomes = [compare_candles(frame, derived_day, "_derived", f"compared with the {interval} derived from {derived_from}")
                        if o.name == "consistent_with_1m" else o for o in outcomes]
        if official and ("1m" in instrument.intervals or instrument.derived_source(interval) is not None):
            outcomes = [CheckOutcome(o.name, o.offending, OFFICIAL_DAILY) if o.name == "consistent_with_1m" else o for o in outcomes]
        outcomes.append(sources_agree(disagreeing.get(day.isoformat(), NO_DISAGREEMENT)))
        if series == "mark":
            outcomes.append(mark_vs_last(frame, None if last is None else _within(last, start, end)))
        elif series == "premium":
            outcomes.append(premium_vs_basis(frame, None if marks is None else _within(marks, start, end),
                                             None if indexes is None else _within(indexes, start, end)))
        results[day] = (outcomes, quality_score(frame, outcomes, expected_by_day[day], explained, freshness))
    return results


OFFICIAL_DAILY = ("not compared: the venue's daily bars hold its official figures (auction open and close, all volume), "
                  "not a roll-up of its minute bars")
NO_DISAGREEMENT = pd.DataFrame(columns=["source", "other", "candles", "max_diff_pct", "first_open_time_utc", "kept"])


def sources_agree(recorded: pd.DataFrame) -> CheckOutcome:
    """The day's recorded disagreements between sources (each: which file, against what, how many
    candles and how far, whose values were kept)."""
    if recorded.empty:  # the usual case
        return CheckOutcome("sources_agree", NO_DISAGREEMENT)
    offending = recorded[["source", "other", "candles", "max_diff_pct", "first_open_time", "kept"]].reset_index(drop=True)
    offending.insert(4, "first_open_time_utc", [ms_to_iso(int(t)) for t in offending["first_open_time"]])
    detail = f"{int(offending['candles'].sum())} candle(s) differed between sources" if len(offending) else ""
    return CheckOutcome("sources_agree", offending.drop(columns="first_open_time"), detail)


def _within(frame: pd.DataFrame, start: int, end: int) -> pd.DataFrame:
    times = frame["open_time"].to_numpy()
    return frame.iloc[np.searchsorted(times, start):np.searchsorted(times, end)].reset_index(drop=True)
