"""Keeps today's candles partitions filling: every tick re-runs each instrument's current day.

Each run re-fetches the whole day, so candles the exchange revised since they closed are stored
corrected (and counted in `rows_revised`, `max_revision_pct`). For the exchange's settlement window
after midnight (`settlement_minutes`, default 60) the previous day is re-run too, so its last
candles are completed and their late revisions caught.
"""


import datetime as dt

import dagster as dg

from ohlcv_assets.assets.candles import candles_key
from ohlcv_assets.partitions import instruments_partitions_name, partition_key
from ohlcv_assets.universe import Universe

TODAY_CRON = "*/10 * * * *"


def days_to_refresh(now: dt.datetime, settlement_minutes: int) -> list[dt.date]:
    now = now.astimezone(dt.timezone.utc)
    today = now.date()
    since_midnight = now - dt.datetime(today.year, today.month, today.day, tzinfo=dt.timezone.utc)
    return [today - dt.timedelta(days=1), today] if since_midnight < dt.timedelta(minutes=settlement_minutes) else [today]


def build_today_schedule(universe: Universe, interval: str, asset: dg.AssetsDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"candles_{interval}_today",
        cron_schedule=TODAY_CRON,
        execution_timezone="UTC",
        target=asset,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Re-fetches today's {interval} candles of every instrument every 10 minutes.",
    )
    def today_schedule(context: dg.ScheduleEvaluationContext):
        registered = set(context.instance.get_dynamic_partitions(instruments_partitions_name(interval)))
        for inst in universe.instruments_for(interval):
            settlement = universe.exchanges[inst.exchange].settlement_minutes
            for day in days_to_refresh(context.scheduled_execution_time, settlement):
                if inst.key in registered and day >= inst.start:
                    yield dg.RunRequest(
                        run_key=f"{inst.key}|{day}|{context.scheduled_execution_time.isoformat()}",
                        asset_selection=[candles_key(interval)],
                        partition_key=partition_key(inst.key, day),
                        tags={"ohlcv/reason": "keep-today-fresh"},
                    )

    return today_schedule
