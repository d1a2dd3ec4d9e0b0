"""Keeps today's candles fresh for every instrument with one run per interval per tick (one per
500 instruments beyond that); a perpetual's funding settlements and open interest the same way.

Each tick asks for a partition range: today's day for every registered instrument (multi-partition
keys sort day first, so one day's instruments are contiguous). One run process then refreshes
all of them, instead of one run per instrument, which would not scale to hundreds of instruments.
A run refreshes its instruments one after the other, so beyond ``INSTRUMENTS_PER_REFRESH_RUN`` the
instruments are cut into contiguous ranges refreshed by runs side by side: measured at 1,000
instruments refreshed every minute, one run kept about 0.8 of 2 cores busy and was always behind.
Each refresh re-fetches the whole day, so candles the exchange revised since they closed are
stored corrected (counted in `candles_revised`, `max_revision_pct`). During an exchange's settlement
window after midnight (`settlement_minutes`, default 60) the previous day is refreshed too.

A tick skips while the interval's previous refresh is still queued or running: when a refresh takes
longer than the refresh interval (many instruments, a slow venue), runs would otherwise pile up in
the queue and compete for the same cores, each slower than the last. A refresh that hangs is ended
by Dagster's run monitoring (`dagster/max_runtime`), so a stuck run cannot stop the refreshes.
"""


import datetime as dt

import dagster as dg

from ohlcv_assets.core.intervals import ceil_div
from ohlcv_assets.core.names import (
    INSTRUMENTS_PER_REFRESH_RUN,
    MAX_RUNTIME_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    REASON_TAG,
    REFRESH_TAG,
    instruments_partitions_name,
)
from ohlcv_assets.defs.partitions import partition_key
from ohlcv_assets.core.universe import Universe


def days_to_refresh(now: dt.datetime, settlement_minutes: int) -> list[dt.date]:
    now = now.astimezone(dt.timezone.utc)
    today = now.date()
    since_midnight = now - dt.datetime(today.year, today.month, today.day, tzinfo=dt.timezone.utc)
    return [today - dt.timedelta(days=1), today] if since_midnight < dt.timedelta(minutes=settlement_minutes) else [today]


# Queued or running: a run left NOT_STARTED (its launch failed) never finishes and must not block refreshes.
REFRESH_IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
                     dg.DagsterRunStatus.CANCELING]


def max_runtime_seconds(refresh_minutes: int) -> int:
    """How long a refresh may run before run monitoring ends it: ten refresh intervals, at least 15 minutes."""
    return max(15, 10 * refresh_minutes) * 60


def refresh_runs(registered: list[str], per_run: int) -> list[list[str]]:
    """The registered instruments, in their order, cut into as few contiguous runs of at most
    ``per_run`` as possible, of even sizes."""
    runs = ceil_div(len(registered), per_run)
    size = ceil_div(len(registered), runs)
    return [registered[at:at + size] for at in range(0, len(registered), size)]


def today_cron(universe: Universe) -> str:
    return f"*/{universe.refresh_minutes} * * * *" if universe.refresh_minutes < 60 else "0 * * * *"


def build_today_schedule(universe: Universe, interval: str, asset: dg.AssetsDefinition, what: str = "") -> dg.ScheduleDefinition:
    """The today schedule of an instrument × day asset: ``interval`` its interval or series code
    (``1m``, ``mark_1h``, ``funding``, ``oi_5m``), ``what`` what it holds (default: candles)."""
    @dg.schedule(
        name=f"{'_'.join(asset.key.path)}_today",
        cron_schedule=today_cron(universe),
        execution_timezone="UTC",
        target=asset,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Re-fetches today's {what or f'{interval} candles'} of every instrument every {universe.refresh_minutes} "
                    f"minutes, in one run per tick (one per {INSTRUMENTS_PER_REFRESH_RUN} instruments beyond that).",
    )
    def today_schedule(context: dg.ScheduleEvaluationContext):
        registered = context.instance.get_dynamic_partitions(instruments_partitions_name(interval))
        if not registered:
            yield dg.SkipReason(f"no instrument registered for {interval} yet")  # yielded: a generator's return value is lost
            return
        unfinished = context.instance.get_run_records(dg.RunsFilter(statuses=REFRESH_IN_FLIGHT, tags={REFRESH_TAG: interval}), limit=1)
        if unfinished:
            run = unfinished[0].dagster_run
            yield dg.SkipReason(f"the previous {interval} refresh (run {run.run_id[:8]}) is still {run.status.value.lower()}")
            return
        settlement = max(universe.exchanges[i.exchange].settlement_minutes for i in universe.instruments_for(interval))
        first_day = universe.start_date(interval)  # after midnight, yesterday may precede every instrument's start
        days = [d for d in days_to_refresh(context.scheduled_execution_time, settlement) if d >= first_day]
        if not days:
            yield dg.SkipReason(f"no {interval} instrument has started yet (the first starts on {first_day})")
            return
        runs = refresh_runs(registered, INSTRUMENTS_PER_REFRESH_RUN)
        for day in days:
            for n, instruments in enumerate(runs):
                first, last = partition_key(instruments[0], day), partition_key(instruments[-1], day)
                yield dg.RunRequest(
                    run_key=f"{interval}|{day}|{n}|{context.scheduled_execution_time.isoformat()}",
                    asset_selection=[asset.key],
                    tags={RANGE_START_TAG: str(first), RANGE_END_TAG: str(last), REASON_TAG: "keep-today-fresh",
                          REFRESH_TAG: interval, MAX_RUNTIME_TAG: str(max_runtime_seconds(universe.refresh_minutes))},
                )

    return today_schedule
