"""Partitions: instrument (dynamic, one set per interval) x UTC day (including today)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from ohlcv_assets.core.names import DAY, INSTRUMENT, instruments_partitions_name, split_partition_key_string
from ohlcv_assets.core.universe import Universe


def candle_partitions(universe: Universe, interval: str) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({
        DAY: dg.DailyPartitionsDefinition(start_date=universe.start_date(interval).isoformat(), end_offset=1),
        INSTRUMENT: dg.DynamicPartitionsDefinition(name=instruments_partitions_name(interval)),
    })


def split_key(partition_key: str | dg.MultiPartitionKey) -> tuple[str, dt.date]:
    """(instrument key, day) of a candles partition key."""
    if not isinstance(partition_key, dg.MultiPartitionKey):
        return split_partition_key_string(str(partition_key))
    keys = partition_key.keys_by_dimension
    return keys[INSTRUMENT], dt.date.fromisoformat(keys[DAY])


def partition_key(instrument: str, day: dt.date) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({DAY: day.isoformat(), INSTRUMENT: instrument})


def instrument_partition_changes(universe: Universe, existing: dict[str, set[str]]) -> dict[str, tuple[list[str], list[str]]]:
    """Per dynamic partitions set: the instrument keys to add and to remove to match the universe."""
    changes = {}
    for interval in universe.candle_series() + universe.event_series():
        name = instruments_partitions_name(interval)
        wanted = [inst.key for inst in universe.instruments_for(interval)]
        have = existing.get(name, set())
        to_add = [key for key in wanted if key not in have]
        to_remove = sorted(have - set(wanted))
        if to_add or to_remove:
            changes[name] = (to_add, to_remove)
    return changes


def existing_instrument_partitions(instance: dg.DagsterInstance, universe: Universe) -> dict[str, set[str]]:
    names = [instruments_partitions_name(i) for i in universe.candle_series() + universe.event_series()]
    return {name: set(instance.get_dynamic_partitions(name)) for name in names}


def sync_instrument_partitions(instance: dg.DagsterInstance, universe: Universe) -> dict[str, tuple[list[str], list[str]]]:
    """Makes the instance's instrument partitions match the universe (outside a sensor)."""
    changes = instrument_partition_changes(universe, existing_instrument_partitions(instance, universe))
    for name, (to_add, to_remove) in changes.items():
        if to_add:
            instance.add_dynamic_partitions(name, to_add)
        for key in to_remove:
            instance.delete_dynamic_partition(name, key)
    return changes
