"""When a venue trades: around the clock (crypto) or in exchange sessions (equities).

The expected candle grid, gap finding, completeness and freshness all ask a ``Sessions``: an
equity minute outside its exchange's sessions (a night, a weekend, a holiday, after an early
close) is not expected at all, so it is neither a gap nor stale. No Dagster, no database here.
"""

from __future__ import annotations

import functools

import numpy as np

from ohlcv_assets.core.intervals import DAY_MS
from ohlcv_assets.core.intervals import ceil_div, grid_ceil

class Sessions:
    """Around the clock: every grid candle is expected."""

    name = "24/7"

    def expected(self, start_ms: int, end_ms: int, step_ms: int) -> np.ndarray:
        """Open times of the expected candles opening in [start_ms, end_ms), ascending."""
        first = grid_ceil(start_ms, step_ms)
        return np.arange(first, max(first, end_ms), step_ms, dtype=np.int64)

    def count(self, start_ms: int, end_ms: int, step_ms: int) -> int:
        first = grid_ceil(start_ms, step_ms)
        return max(0, ceil_div(end_ms - first, step_ms))

    def clip(self, gaps: np.ndarray, step_ms: int) -> np.ndarray:
        """Missing runs (start, end, count rows, as ``gaps.find_gaps`` gives) cut to the expected
        candles: around the clock, all of them."""
        return gaps

    def last_trading_ms(self, now_ms: int) -> int:
        """The latest instant at or before ``now_ms`` when the venue traded: candles older than it
        are the ones freshness measures against."""
        return now_ms

    def lookback_days(self, candles: int, step_ms: int) -> int:
        """Whole UTC days before a day that always hold ``candles`` expected candles (a features
        day's warm-up): around the clock, the days those candles span."""
        return ceil_div(candles * step_ms, DAY_MS)


REGULAR = "regular"
EXTENDED = "extended"
SESSION_WINDOWS = (REGULAR, EXTENDED)
# Extended hours around each regular session (US equities: pre-market from 04:00 New York, 5 h 30
# before the 09:30 open; after-hours until 20:00, 4 h after the 16:00 close, 17:00 after an early close).
EXTENDED_BEFORE_MS = 330 * 60_000
EXTENDED_AFTER_MS = 240 * 60_000


class ExchangeSessions(Sessions):
    """Sessions of an exchange calendar (``exchange-calendars``, e.g. XNYS: 09:30-16:00 New York,
    early closes at 13:00, exchange holidays). A candle is expected when its interval overlaps a
    session. With ``extended``, each session runs from pre-market to after-hours (04:00-20:00 New
    York); daily candles are one per session either way (``DAY_MS`` steps use the regular sessions)."""

    def __init__(self, code: str, extended: bool = False):
        import exchange_calendars

        self.name = f"{code} {EXTENDED}" if extended else code
        self._calendar = exchange_calendars.get_calendar(code)
        schedule = self._calendar.schedule
        self._opens = (schedule["open"].astype("int64") // 1_000_000).to_numpy()
        self._closes = (schedule["close"].astype("int64") // 1_000_000).to_numpy()
        self._daily = sessions_for(code) if extended else self  # one candle per session, extended or not
        if extended:
            self._opens = self._opens - EXTENDED_BEFORE_MS
            self._closes = self._closes + EXTENDED_AFTER_MS

    def _sessions(self, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
        lo = np.searchsorted(self._closes, start_ms, side="right")
        hi = np.searchsorted(self._opens, end_ms, side="left")
        return self._opens[lo:hi], self._closes[lo:hi]

    def expected(self, start_ms: int, end_ms: int, step_ms: int) -> np.ndarray:
        if step_ms >= DAY_MS and self._daily is not self:
            return self._daily.expected(start_ms, end_ms, step_ms)
        opens, closes = self._sessions(start_ms, end_ms)
        parts = []
        for open_ms, close_ms in zip(opens.tolist(), closes.tolist()):
            first = max(open_ms // step_ms * step_ms, grid_ceil(start_ms, step_ms))
            parts.append(np.arange(first, min(close_ms, end_ms), step_ms, dtype=np.int64))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def count(self, start_ms: int, end_ms: int, step_ms: int) -> int:
        return len(self.expected(start_ms, end_ms, step_ms))

    def clip(self, gaps: np.ndarray, step_ms: int) -> np.ndarray:
        if step_ms >= DAY_MS and self._daily is not self:
            return self._daily.clip(gaps, step_ms)
        rows = []
        for start, end, _ in gaps.tolist():
            for open_ms, close_ms in zip(*(a.tolist() for a in self._sessions(start, end))):
                lo = max(start, open_ms // step_ms * step_ms)
                hi = min(end, grid_ceil(close_ms, step_ms))
                if lo < hi:
                    rows.append((lo, hi, (hi - lo) // step_ms))
        return np.array(rows, dtype=np.int64).reshape(-1, 3)

    def lookback_days(self, candles: int, step_ms: int) -> int:
        """The most calendar days any session's ``candles`` previous session candles span, over
        the whole calendar (weekends, holidays and early closes included)."""
        if step_ms >= DAY_MS and self._daily is not self:
            return self._daily.lookback_days(candles, step_ms)
        first = self._opens // step_ms * step_ms
        per_session = ceil_div(self._closes - first, step_ms)
        before = np.concatenate([[0], np.cumsum(per_session)])  # candles of the sessions before each one
        reach = np.searchsorted(before, before[:-1] - candles, side="right") - 1  # latest session start far enough back
        ok = before[:-1] >= candles
        days = self._opens // DAY_MS
        return int(np.max(days[ok] - days[reach[ok]])) if ok.any() else super().lookback_days(candles, step_ms)

    def last_trading_ms(self, now_ms: int) -> int:
        at = np.searchsorted(self._opens, now_ms, side="right") - 1
        if at < 0:
            return now_ms
        return int(min(now_ms, self._closes[at]))


@functools.cache
def sessions_for(calendar: str | None, window: str = REGULAR) -> Sessions:
    """The sessions of a venue's calendar code (None: around the clock) in the instrument's
    window (``regular`` or ``extended`` hours); built once per process."""
    if window not in SESSION_WINDOWS:
        raise ValueError(f"session {window!r} is not one of {', '.join(SESSION_WINDOWS)}")
    return Sessions() if calendar is None else ExchangeSessions(calendar, extended=window == EXTENDED)

