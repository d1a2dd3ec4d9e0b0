"""Keeps each interval's instrument partitions in step with the universe file."""


import dagster as dg

from ohlcv_assets.partitions import existing_instrument_partitions, instrument_partition_changes
from ohlcv_assets.universe import Universe


def build_instrument_sensor(universe: Universe) -> dg.SensorDefinition:
    @dg.sensor(
        name="instrument_partitions",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Adds instruments added to the universe as partitions of their intervals' candles assets, "
                    "and removes those taken out (their stored candles are kept).",
    )
    def instrument_partitions(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        changes = instrument_partition_changes(universe, existing_instrument_partitions(context.instance, universe))
        if not changes:
            return dg.SkipReason("instrument partitions match the universe")
        requests = []
        for name, (to_add, to_remove) in changes.items():
            if to_add:
                requests.append(dg.AddDynamicPartitionsRequest(name, to_add))
            if to_remove:
                requests.append(dg.DeleteDynamicPartitionsRequest(name, to_remove))
        return dg.SensorResult(dynamic_partitions_requests=requests)

    return instrument_partitions
