"""Keeps each interval's instrument partitions in step with the universe file."""


import dagster as dg

from ohlcv_assets.core.names import interval_of_partitions_name, scan_job_name, scan_request
from ohlcv_assets.defs.partitions import existing_instrument_partitions, instrument_partition_changes
from ohlcv_assets.core.universe import Universe


def build_instrument_sensor(universe: Universe, scan_jobs: list) -> dg.SensorDefinition:
    scanned = {job.name for job in scan_jobs}

    @dg.sensor(
        name="instrument_partitions",
        jobs=scan_jobs,
        minimum_interval_seconds=universe.sensor_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Adds instruments added to the universe as partitions of their intervals' assets and scans "
                    "them for gaps (which backfills their history); removes those taken out (their candles are kept).",
    )
    def instrument_partitions(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        changes = instrument_partition_changes(universe, existing_instrument_partitions(context.instance, universe))
        if not changes:
            return dg.SkipReason("instrument partitions match the universe")
        requests, scans = [], []
        for name, (to_add, to_remove) in changes.items():
            if to_add:
                requests.append(dg.AddDynamicPartitionsRequest(name, to_add))
                interval = interval_of_partitions_name(name)
                if interval is None or scan_job_name(interval) not in scanned:  # derived, or open interest: no scan
                    continue
                # added at the end of the registered keys, in this order: one contiguous range
                scans.append(scan_request(interval, to_add, f"new-{interval}-{to_add[0]}-{to_add[-1]}-{len(to_add)}",
                                          "new instrument: backfill its history"))
            if to_remove:
                requests.append(dg.DeleteDynamicPartitionsRequest(name, to_remove))
        return dg.SensorResult(dynamic_partitions_requests=requests, run_requests=scans)

    return instrument_partitions
