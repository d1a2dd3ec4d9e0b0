"""Runs the maintenance job (export, then retention) once a day."""

import dagster as dg

from ohlcv_assets.core.names import MAINTENANCE_CRON, MAINTENANCE_JOB
from ohlcv_assets.defs.jobs import maintenance_job


def maintenance_schedule() -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(name=f"{MAINTENANCE_JOB}_daily", job=maintenance_job(), cron_schedule=MAINTENANCE_CRON,
                                 execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING)
