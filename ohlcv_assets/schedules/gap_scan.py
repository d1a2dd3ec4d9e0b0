"""Re-scans every instrument for gaps once a day (after midnight UTC, when yesterday has closed)."""

import dagster as dg

from ohlcv_assets.names import instruments_partitions_name, scan_request

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
        for key in context.instance.get_dynamic_partitions(instruments_partitions_name(interval)):
            yield scan_request(interval, key, f"{key}|{context.scheduled_execution_time.date()}", "daily gap scan")

    return gap_scan
