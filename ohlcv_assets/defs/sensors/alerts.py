"""Alerts: failed runs, failed blocking checks and stale instruments, one alert per incident (or
one per check when many start or end at once)."""

import json
import os

import dagster as dg

from ohlcv_assets.ops.alerts import incident_alerts
from ohlcv_assets.core.intervals import now_ms
from ohlcv_assets.defs.monitoring import failing_checks, stale_instruments
from ohlcv_assets.defs.resources import WarehouseResource
from ohlcv_assets.defs.resources.alerts import ALERT_WEBHOOK_ENV, AlertResource
from ohlcv_assets.core.universe import Universe


@dg.run_failure_sensor(name="alert_on_run_failure", default_status=dg.DefaultSensorStatus.RUNNING,
                       monitor_all_code_locations=False)
def alert_on_run_failure(context: dg.RunFailureSensorContext, alerts: AlertResource) -> None:
    """A run that failed for good (not one that run retries will launch again)."""
    run = context.dagster_run
    if run.tags.get("dagster/will_retry") == "true":
        return
    partition = run.tags.get("dagster/partition", "")
    causes = [f"{e.step_key}: {e.event_specific_data.error.message.strip()}"[:1500] for e in context.get_step_failure_events()]
    alerts.send(f"Run failed: {run.job_name} {partition}".strip(),
                [f"run {run.run_id}", *(causes or [(context.failure_event.message or "")[:1500]])])


def build_quality_alert_sensor(universe: Universe) -> dg.SensorDefinition:
    @dg.sensor(name="alert_on_quality", minimum_interval_seconds=120, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Alerts once when a blocking candles check fails for a partition or an instrument goes "
                           "stale, and once when it recovers.")
    def alert_on_quality(context: dg.SensorEvaluationContext, warehouse: WarehouseResource, alerts: AlertResource) -> dg.SkipReason:
        incidents = set()
        for interval in universe.intervals:
            for name, partitions in failing_checks(context.instance, universe, interval, blocking_only=True).items():
                incidents.update(f"check failed: candles/{interval} {name} {partition}" for partition in partitions)
        for row in stale_instruments(universe, warehouse.warehouse, now_ms()):
            incidents.add(f"stale: {row['exchange']} {row['symbol']} {row['interval']} (last candle {row['last_candle']})")
        known = set(json.loads(context.cursor)) if context.cursor else set()
        for title, lines in [*incident_alerts("Data quality incident", list(incidents - known)),
                             *incident_alerts("Resolved", list(known - incidents))]:
            alerts.send(title, lines)
        context.update_cursor(json.dumps(sorted(incidents)))
        return dg.SkipReason(f"{len(incidents)} open incident(s), {len(incidents - known)} new")

    return alert_on_quality


def alert_resource() -> AlertResource:
    return AlertResource(webhook_url=dg.EnvVar(ALERT_WEBHOOK_ENV)) if os.environ.get(ALERT_WEBHOOK_ENV) else AlertResource()
