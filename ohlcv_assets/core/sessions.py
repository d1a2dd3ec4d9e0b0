"""When a venue trades: around the clock (crypto) or in exchange sessions (equities).

The expected candle grid, gap finding, completeness and freshness all ask a ``Sessions``: an
equity minute outside its exchange's sessions (a night, a weekend, a holiday, after an early
close) is not expected at all, so it is neither a gap nor stale. No Dagster, no database here.
"""

from __future__ import annotations

import functools

import numpy as np

from ohlcv_assets.core.intervals import DAY_MS, ceil_div, grid_ceil

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


class ExchangeSessions(Sessions):
    """Sessions of an exchange calendar (``exchange-calendars``, e.g. XNYS: 09:30-16:00 New York,
    early closes at 13:00, exchange holidays). A candle is expected when its interval overlaps a
    session."""

    def __init__(self, code: str):
        import exchange_calendars

        self.name = code
        self._calendar = exchange_calendars.get_calendar(code)
        schedule = self._calendar.schedule
        self._opens = (schedule["open"].astype("int64") // 1_000_000).to_numpy()
        self._closes = (schedule["close"].astype("int64") // 1_000_000).to_numpy()

    def _sessions(self, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
        lo = np.searchsorted(self._closes, start_ms, side="right")
        hi = np.searchsorted(self._opens, end_ms, side="left")
        return self._opens[lo:hi], self._closes[lo:hi]

    def expected(self, start_ms: int, end_ms: int, step_ms: int) -> np.ndarray:
        opens, closes = self._sessions(start_ms, end_ms)
        parts = []
        for open_ms, close_ms in zip(opens.tolist(), closes.tolist()):
            first = max(open_ms // step_ms * step_ms, grid_ceil(start_ms, step_ms))
            parts.append(np.arange(first, min(close_ms, end_ms), step_ms, dtype=np.int64))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def count(self, start_ms: int, end_ms: int, step_ms: int) -> int:
        return len(self.expected(start_ms, end_ms, step_ms))

    def clip(self, gaps: np.ndarray, step_ms: int) -> np.ndarray:
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
def sessions_for(calendar: str | None) -> Sessions:
    """The sessions of a venue's calendar code (None: around the clock); built once per process."""
    return Sessions() if calendar is None else ExchangeSessions(calendar)

