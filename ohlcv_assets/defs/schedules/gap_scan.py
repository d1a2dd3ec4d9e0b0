"""Re-scans every instrument for gaps once a day (after midnight UTC, when yesterday has closed), in one
run per interval over every registered instrument."""

import dagster as dg

from ohlcv_assets.core.names import instruments_partitions_name, scan_request

GAP_SCAN_CRON = "30 0 * * *"


def build_gap_scan_schedule(interval: str, job) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"gap_scan_{interval}",
        cron_schedule=GAP_SCAN_CRON,
        execution_timezone="UTC",
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Daily gap scan of every instrument's {interval} candles.",
    )
    def gap_scan(context: dg.ScheduleEvaluationContext):
        registered = context.instance.get_dynamic_partitions(instruments_partitions_name(interval))
        if not registered:
            return dg.SkipReason(f"no instrument registered for {interval} yet")
        return scan_request(interval, registered, f"{interval}|{context.scheduled_execution_time.date()}", "daily gap scan")

    return gap_scan
