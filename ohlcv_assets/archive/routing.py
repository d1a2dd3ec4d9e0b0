"""Which days an archive of daily and monthly files answers, and with which file. No I/O here.

Whole months from monthly files, the other days from daily files, and the days too recent for
either (not published yet) from REST; the publication lags are the venue's.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import itertools


@dataclasses.dataclass(frozen=True)
class Route:
    months: list[tuple[str, list[dt.date]]]  # ("YYYY-MM", its days)
    daily: list[dt.date]
    rest: list[dt.date]


def route_days(days: list[dt.date], today: dt.date, daily_lag_days: int, monthly_lag_days: int) -> Route:
    """Routes ``days``: a month whose every day is asked and whose monthly file is out (its last day
    at least ``monthly_lag_days`` before today) is one monthly file; other days whose daily file is
    out (at least ``daily_lag_days`` before today) are daily files; the rest are REST's."""
    months, daily, rest = [], [], []
    for (year, month), group in itertools.groupby(sorted(set(days)), key=lambda d: (d.year, d.month)):
        group = list(group)
        length = calendar.monthrange(year, month)[1]
        last = dt.date(year, month, length)
        if len(group) == length and (today - last).days >= monthly_lag_days:
            months.append((f"{year:04d}-{month:02d}", group))
            continue
        for day in group:
            (daily if (today - day).days >= daily_lag_days else rest).append(day)
    return Route(months, daily, rest)
