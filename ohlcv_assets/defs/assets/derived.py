"""The ``derived_candles/<interval>_from_<source>`` assets: an interval rolled up in the warehouse from
a finer stored one, per instrument and UTC day (``ohlcv_assets/ingest/derived.py``)."""

import datetime as dt
from collections import defaultdict

import dagster as dg

from ohlcv_assets.core.intervals import DAY_MS, interval_ms, now_ms
from ohlcv_assets.core.names import MAX_PARTITIONS_PER_RUN, candles_key, derived_key
from ohlcv_assets.core.universe import Universe
from ohlcv_assets.defs.assets.features import contiguous_runs
from ohlcv_assets.defs.partitions import derived_partitions, same_partition, partition_key, split_key
from ohlcv_assets.defs.resources import WarehouseResource
from ohlcv_assets.ingest.derived import derive_days

# Derive a day again whenever its source day is materialized again (a today refresh, a backfill, a
# gap filled), and for a day never derived once its source day exists; never while either runs.
# Dagster's eager() without its limit to the latest day: a backfilled source day re-derives too.
DERIVED_AUTOMATION = (
    (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("source candles changed")


def comparable_with_venue(universe: Universe, instrument, interval: str) -> bool:
    """The instrument fetches the interval too, and the venue's are roll-ups of its trades: not a
    venue's official daily bars (equities: auction prices, all volume), which no roll-up equals."""
    official = universe.exchanges[instrument.exchange].profile.official_daily and interval_ms(interval) >= DAY_MS
    return interval in instrument.intervals and not official


def build_derived_asset(universe: Universe, interval: str, source: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=derived_key(interval, source),
        partitions_def=derived_partitions(universe, interval, source),
        deps=[dg.AssetDep(candles_key(source), partition_mapping=same_partition())],
        automation_condition=DERIVED_AUTOMATION,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN),
        group_name="derived",
        kinds={"sql"},
        description=(
            f"{interval} candles rolled up in the warehouse from the stored {source} candles of the same day "
            "(table `derived_candles`): open first, high max, low min, close last, volumes and trades summed, "
            "VWAP volume-weighted. A candle whose source candles are not all stored is absent (metadata "
            "`incomplete` names it and the gap classes of its missing candles). Not the venue's own "
            f"{interval}: that is `candles/{interval}` where fetched."
        ),
    )
    def derived_candles(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> None:
        days_by_instrument: dict[str, list[dt.date]] = defaultdict(list)
        for key in context.partition_keys:
            instrument_key, day = split_key(key)
            days_by_instrument[instrument_key].append(day)
        now = now_ms()
        for instrument_key, days in days_by_instrument.items():
            instrument = universe.instrument(instrument_key)
            if instrument.derived_source(interval) != source:
                raise dg.Failure(f"{instrument_key} does not derive {interval} from {source}", allow_retries=False)
            for days_run in contiguous_runs(days):
                reports = derive_days(warehouse.warehouse, instrument.exchange, instrument.symbol, interval, source, days_run,
                                      universe.sessions_of(instrument), now, venue_too=comparable_with_venue(universe, instrument, interval))
                for day, report in reports.items():
                    context.add_asset_metadata(report.as_metadata(), partition_key=str(partition_key(instrument_key, day)))
                incomplete = sum(len(r.incomplete) for r in reports.values())
                context.log.info(f"{instrument.label()} {interval} from {source} {days_run[0]}..{days_run[-1]}: "
                                 f"{sum(r.candles for r in reports.values())} candles"
                                 + (f", {incomplete} left out (source candles missing)" if incomplete else ""))

    return derived_candles
