"""Candle intervals (ccxt timeframe strings) and the millisecond grid they define.

Only intervals that divide a UTC day are supported, so that every day partition holds a whole
number of candles and no candle straddles two partitions.
"""

from __future__ import annotations

import datetime as dt
import re

from ohlcv_assets.venues.series import CODE_PREFIXES

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
EPOCH_DAY = dt.date(1970, 1, 1)
_UNIT_MS = {"m": MINUTE_MS, "h": 60 * MINUTE_MS, "d": DAY_MS}


def interval_ms(interval: str) -> int:
    """Length of one candle in milliseconds; raises ValueError for anything not dividing a day.
    A perpetual's price-series code (``mark_1h``, ``idx_1h``, ``prem_1h``: ``venues.series``) has the
    length of its interval."""
    prefix, sep, plain = interval.partition("_")
    if sep and prefix in CODE_PREFIXES:
        interval = plain
    unit = interval[-1:]
    count = interval[:-1]
    if unit not in _UNIT_MS or not count.isdigit() or int(count) <= 0:
        raise ValueError(f"interval {interval!r} is not of the form <N>m, <N>h or 1d")
    ms = int(count) * _UNIT_MS[unit]
    if ms > DAY_MS or DAY_MS % ms:
        raise ValueError(f"interval {interval!r} does not divide a day (supported: 1m..12h and 1d)")
    return ms


WEEK_MS = 7 * DAY_MS
WEEK_ORIGIN_MS = 4 * DAY_MS  # 1970-01-05, a Monday: weeks open on Mondays 00:00 UTC, as Binance's and Kraken's 1w do
DERIVED_ONLY = {"1w": WEEK_MS}  # built in the warehouse only: a week spans seven day partitions, it is no part of one


def derived_interval_ms(interval: str) -> int:
    """Length of a derived interval's candle: any interval dividing a day, or 1w (derived only)."""
    return DERIVED_ONLY.get(interval) or interval_ms(interval)


def grid_origin_ms(step_ms: int) -> int:
    """Where the grid of ``step_ms`` starts: the epoch, or a Monday for weeks (bucket = t - (t - origin) % step)."""
    return WEEK_ORIGIN_MS if step_ms == WEEK_MS else 0


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


def ceil_div(a: int, b: int) -> int:
    """a / b rounded up (integers, b > 0)."""
    return -(-a // b)


def grid_ceil(ms: int, step_ms: int) -> int:
    """The first time of the grid of ``step_ms`` at or after ``ms``."""
    return ceil_div(ms, step_ms) * step_ms


def expected_open_times(start_ms: int, end_ms: int, step_ms: int) -> range:
    """Open times of every candle of the grid that starts in [start_ms, end_ms)."""
    first = grid_ceil(start_ms, step_ms)
    return range(first, end_ms, step_ms)


_DAYS_AGO = re.compile(r"^\s*(\d+)\s+days?\s+ago(?:\s+(\d{1,2}):(\d{2}))?\s*$")


def resolve_day(value, today: dt.date | None = None) -> dt.date:
    """A date, an ISO date string, or ``N days ago`` (UTC), for universes and simulated markets
    that move with the calendar (the demo's)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    match = _DAYS_AGO.match(str(value))
    if match and match.group(2) is None:
        return (today or dt.datetime.now(dt.timezone.utc).date()) - dt.timedelta(days=int(match.group(1)))
    return dt.date.fromisoformat(str(value))


def resolve_instant(value, today: dt.date | None = None) -> dt.datetime:
    """A UTC datetime, an ISO string, or ``N days ago HH:MM`` (UTC)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    match = _DAYS_AGO.match(str(value))
    if match and match.group(2) is not None:
        day = (today or dt.datetime.now(dt.timezone.utc).date()) - dt.timedelta(days=int(match.group(1)))
        return dt.datetime(day.year, day.month, day.day, int(match.group(2)), int(match.group(3)), tzinfo=dt.timezone.utc)
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
