"""The jobs that sensors and schedules target, apart from the assets they run."""

import dagster as dg

from ohlcv_assets.core.names import EXPORT_KEY, MAINTENANCE_JOB, RETENTION_KEY, gap_report_key, scan_job_name


def gap_scan_job(interval: str):
    """Runs of gap_report/<interval>: sensors and schedules of several intervals target these."""
    return dg.define_asset_job(scan_job_name(interval), selection=dg.AssetSelection.assets(gap_report_key(interval)))


def maintenance_job():
    """The export, then the retention, of every candle table."""
    return dg.define_asset_job(MAINTENANCE_JOB, selection=dg.AssetSelection.assets(EXPORT_KEY, RETENTION_KEY))
