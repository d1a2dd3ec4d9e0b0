"""Partitions: instrument (dynamic, one set per interval) x UTC day (including today)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from ohlcv_assets.core.intervals import WEEK_MS, derived_interval_ms
from ohlcv_assets.core.names import (DAY, INSTRUMENT, derived_series_name, instruments_partitions_name,
                                     split_partition_key_string)
from ohlcv_assets.core.universe import Universe


def candle_partitions(universe: Universe, interval: str) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({
        DAY: dg.DailyPartitionsDefinition(start_date=universe.start_date(interval).isoformat(), end_offset=1),
        INSTRUMENT: dg.DynamicPartitionsDefinition(name=instruments_partitions_name(interval)),
    })


def derived_partitions(universe: Universe, interval: str, source: str) -> dg.MultiPartitionsDefinition:
    """A derived series' partitions: the same keys as its source's (instrument x UTC day), over the
    instruments deriving it; a weekly series' (1w) are instrument x week, keyed by the week's Monday
    (the first week the one holding the earliest start)."""
    start = universe.derived_start_date(interval, source)
    if derived_interval_ms(interval) == WEEK_MS:
        monday = start - dt.timedelta(days=start.weekday())
        time_dimension = dg.WeeklyPartitionsDefinition(start_date=monday.isoformat(), day_offset=1, end_offset=1)
    else:
        time_dimension = dg.DailyPartitionsDefinition(start_date=start.isoformat(), end_offset=1)
    return dg.MultiPartitionsDefinition({
        DAY: time_dimension,
        INSTRUMENT: dg.DynamicPartitionsDefinition(name=instruments_partitions_name(derived_series_name(interval, source))),
    })


def same_partition() -> dg.MultiPartitionMapping:
    """A derived day reads its source's same day of the same instrument (a derived week its seven
    days): the lineage the UI shows, and what makes a re-fetched source day stale downstream."""
    return dg.MultiPartitionMapping({
        DAY: dg.DimensionPartitionMapping(DAY, dg.TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)),
        INSTRUMENT: dg.DimensionPartitionMapping(INSTRUMENT, dg.IdentityPartitionMapping()),
    })


def instrument_partition_sets(universe: Universe) -> dict[str, list[str]]:
    """Every dynamic partitions set the universe needs (one per fetched interval or perpetual's series
    code, one per derived series) with the instrument keys it holds."""
    sets = {instruments_partitions_name(i): [inst.key for inst in universe.instruments_for(i)]
            for i in universe.candle_series() + universe.event_series() + universe.open_interest_series()}
    for interval, source in universe.derived_series:
        sets[instruments_partitions_name(derived_series_name(interval, source))] = [
            inst.key for inst in universe.instruments_deriving(interval, source)]
    return sets


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
    for name, wanted in instrument_partition_sets(universe).items():
        have = existing.get(name, set())
        to_add = [key for key in wanted if key not in have]
        to_remove = sorted(have - set(wanted))
        if to_add or to_remove:
            changes[name] = (to_add, to_remove)
    return changes


def existing_instrument_partitions(instance: dg.DagsterInstance, universe: Universe) -> dict[str, set[str]]:
    names = list(instrument_partition_sets(universe))
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
