"""Candle intervals (ccxt timeframe strings) and the millisecond grid they define.

Only intervals that divide a UTC day are supported, so that every day partition holds a whole
number of candles and no candle straddles two partitions.
"""

from __future__ import annotations

import datetime as dt

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
EPOCH_DAY = dt.date(1970, 1, 1)
_UNIT_MS = {"m": MINUTE_MS, "h": 60 * MINUTE_MS, "d": DAY_MS}


def interval_ms(interval: str) -> int:
    """Length of one candle in milliseconds; raises ValueError for anything not dividing a day."""
    unit = interval[-1:]
    count = interval[:-1]
    if unit not in _UNIT_MS or not count.isdigit() or int(count) <= 0:
        raise ValueError(f"interval {interval!r} is not of the form <N>m, <N>h or 1d")
    ms = int(count) * _UNIT_MS[unit]
    if ms > DAY_MS or DAY_MS % ms:
        raise ValueError(f"interval {interval!r} does not divide a day (supported: 1m..12h and 1d)")
    return ms


def day_bounds_ms(day: dt.date) -> tuple[int, int]:
    """[start, end) of a UTC day in epoch milliseconds."""
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)
    return start, start + DAY_MS


def ms_to_datetime(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


def utc_day(ms: int) -> dt.date:
    """The UTC day an epoch-millisecond instant falls in."""
    return EPOCH_DAY + dt.timedelta(days=int(ms) // DAY_MS)


def ms_to_iso(ms: int) -> str:
    return ms_to_datetime(ms).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_ms() -> int:
    return int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)


def expected_open_times(start_ms: int, end_ms: int, step_ms: int) -> range:
    """Open times of every candle of the grid that starts in [start_ms, end_ms)."""
    first = -(-start_ms // step_ms) * step_ms
    return range(first, end_ms, step_ms)
