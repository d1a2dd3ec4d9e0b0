"""Finding and explaining missing candles. No Dagster, no database here.

A gap is a run of grid candles with no stored candle; it is exact (one missing candle is a gap)
and classified by what the exchange says:

- ``fillable``: the exchange has (some of) the candles: a backfill will store them;
- ``exchange_downtime``: asked twice, the exchange has no candles there: they never existed
  (on a venue that omits intervals without trades, only a run of at least ``downtime_min_minutes``);
- ``no_trades``: a shorter empty run on a venue that omits intervals without trades (Kraken,
  Coinbase, Polygon): the venue's answer is the confirmation, nothing to fetch, not incomplete;
- ``before_listing``: before the symbol's first candle;
- ``beyond_history``: older than the exchange serves (``history_candles`` in the universe), unless
  the exchange has an archive: then fillable (see ``fillable_from_archive``);
- ``retired``: dropped on purpose by retention (see ``retention``), never asked for again;

Outside a venue's trading sessions (``sessions``) no candle is expected, so nothing is a gap.
Candles younger than the settled horizon (see ``gap_scan.settled_end_ms``), the forming one
included, are not expected yet and so are never gaps.
"""

import dataclasses

import numpy as np

from ohlcv_assets.core.intervals import grid_ceil

FILLABLE = "fillable"
EXCHANGE_DOWNTIME = "exchange_downtime"
BEFORE_LISTING = "before_listing"
BEYOND_HISTORY = "beyond_history"
RETIRED = "retired"
NO_TRADES = "no_trades"
GAP_CLASSES = (FILLABLE, EXCHANGE_DOWNTIME, NO_TRADES, BEFORE_LISTING, BEYOND_HISTORY, RETIRED)
CONFIRMED_EMPTY_CLASSES = (EXCHANGE_DOWNTIME, NO_TRADES)


@dataclasses.dataclass(frozen=True)
class Gap:
    start_ms: int  # open time of the first missing candle
    end_ms: int  # exclusive: open time just after the last missing candle
    reason: str | None = None
    # how many grid times it spans where the grid is not one fixed step (funding settlements on a
    # changing interval); None: (end - start) // step
    count: int | None = dataclasses.field(default=None, compare=False)

    def candles(self, step_ms: int) -> int:
        return self.count if self.count is not None else (self.end_ms - self.start_ms) // step_ms


def find_gaps(open_times: np.ndarray, start_ms: int, end_ms: int, step_ms: int) -> np.ndarray:
    """Missing runs of the grid [start_ms, end_ms) as an (n, 3) int64 array: start, end (exclusive), count.

    ``open_times`` are the stored open times (any order; duplicates and times outside the range
    are ignored). Vectorised: 10 million candles take well under a second.
    """
    first = grid_ceil(start_ms, step_ms)
    last = grid_ceil(end_ms, step_ms)  # first grid time at or after end_ms
    times = np.asarray(open_times, dtype=np.int64)
    times = times[(times >= first) & (times < last)]
    if len(times) > 1 and np.any(np.diff(times) <= 0):
        times = np.unique(times)
    bounds = np.concatenate(([first - step_ms], times, [last]))
    step = np.diff(bounds)
    at = np.flatnonzero(step > step_ms)
    starts = bounds[at] + step_ms
    ends = bounds[at + 1]
    return np.column_stack((starts, ends, (ends - starts) // step_ms)).astype(np.int64)


def split(gap: Gap, boundary_ms: int, below: str | None) -> list[Gap]:
    """Gives the part of a gap before ``boundary_ms`` the reason ``below``."""
    if gap.reason is not None or boundary_ms <= gap.start_ms:
        return [gap]
    if boundary_ms >= gap.end_ms:
        return [Gap(gap.start_ms, gap.end_ms, below)]
    return [Gap(gap.start_ms, boundary_ms, below), Gap(boundary_ms, gap.end_ms, None)]


def classify_known(gaps: np.ndarray, listing_ms: int | None, history_start_ms: int | None,
                   known: list[tuple[int, int, str]]) -> list[Gap]:
    """Classifies what needs no question to the exchange: before listing, beyond its history, and
    ranges already explained (``known``: start, end, reason). The rest keep reason None."""
    out: list[Gap] = []
    for start, end, _ in gaps.tolist():
        if listing_ms is None:
            parts = [Gap(start, end, BEFORE_LISTING)]
        else:
            parts = split(Gap(start, end), listing_ms, BEFORE_LISTING)
        if history_start_ms is not None:
            parts = [p for g in parts for p in split(g, history_start_ms, BEYOND_HISTORY)]
        for lo, hi, reason in known:
            parts = [p for g in parts for p in _mark_range(g, lo, hi, reason)]
        out.extend(parts)
    return out


def fillable_from_archive(gaps: list[Gap]) -> list[Gap]:
    """With an archive, what the exchange's REST no longer serves is fillable: a backfill reads the
    archive (and reports as beyond history the days it lacks too, until the gap is given up). Such a
    range is joined to the fillable gap it touches, so that its record does not move with the REST
    horizon each hour. ``gaps`` sorted by start."""
    out: list[tuple[Gap, bool]] = []  # each with whether it holds a converted range
    for gap in gaps:
        converted = gap.reason == BEYOND_HISTORY
        gap = Gap(gap.start_ms, gap.end_ms, FILLABLE) if converted else gap
        last, holds = out[-1] if out else (None, False)
        if (last is not None and gap.reason == last.reason == FILLABLE and last.end_ms == gap.start_ms
                and (converted or holds)):
            out[-1] = (Gap(last.start_ms, gap.end_ms, FILLABLE), True)
        else:
            out.append((gap, converted))
    return [gap for gap, _ in out]


def _mark_range(gap: Gap, lo: int, hi: int, reason: str) -> list[Gap]:
    if gap.reason is not None or hi <= gap.start_ms or lo >= gap.end_ms:
        return [gap]
    pieces = []
    if gap.start_ms < lo:
        pieces.append(Gap(gap.start_ms, lo))
    pieces.append(Gap(max(gap.start_ms, lo), min(gap.end_ms, hi), reason))
    if hi < gap.end_ms:
        pieces.append(Gap(hi, gap.end_ms))
    return pieces


def split_by_presence(gap: Gap, exchange_times: np.ndarray, step_ms: int) -> tuple[list[Gap], list[Gap]]:
    """Parts of an unexplained gap the exchange has candles for, and parts it returned none for."""
    inside = np.asarray(exchange_times, dtype=np.int64)
    inside = inside[(inside >= gap.start_ms) & (inside < gap.end_ms)]
    empty = [Gap(int(s), int(e)) for s, e, _ in find_gaps(inside, gap.start_ms, gap.end_ms, step_ms).tolist()]
    present = []
    if len(inside):  # runs of consecutive grid times the exchange has
        breaks = np.flatnonzero(np.diff(inside) > step_ms)
        starts = np.r_[inside[0], inside[breaks + 1]]
        ends = np.r_[inside[breaks], inside[-1]] + step_ms
        present = [Gap(int(s), int(e), FILLABLE) for s, e in zip(starts, ends)]
    return present, empty


def empty_reason(gap: Gap, omits_empty: bool, downtime_min_ms: int) -> str:
    """What an empty answer means: on a venue that omits intervals without trades a short run is
    ``no_trades``; otherwise (or a run as long as an outage) ``exchange_downtime``."""
    return NO_TRADES if omits_empty and gap.end_ms - gap.start_ms < downtime_min_ms else EXCHANGE_DOWNTIME


def no_trade_runs(missing: np.ndarray, last_stored_ms: int | None, final: bool, downtime_min_ms: int) -> list[Gap]:
    """The missing runs (``find_gaps`` rows, already cut to sessions) of a range an omitting venue
    has just answered that mean no trades: shorter than an outage, and followed by a stored candle
    unless the range is ``final`` (a whole past day; the end of a day in progress may still come)."""
    out = []
    for start, end, _ in missing.tolist():
        if end - start >= downtime_min_ms:
            continue  # as long as an outage: the gap scan asks twice
        if not final and (last_stored_ms is None or start > last_stored_ms):
            continue
        out.append(Gap(start, end, NO_TRADES))
    return out
