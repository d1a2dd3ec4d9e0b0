"""The ``funding_rates`` asset: a perpetual's funding rate settlements per instrument and UTC day
(table ``funding_rates``), for the instruments whose universe entry lists ``funding``."""

import datetime as dt

import dagster as dg

from ohlcv_assets.core.errors import HopelessError
from ohlcv_assets.core.intervals import ms_to_iso, now_ms
from ohlcv_assets.core.names import MAX_PARTITIONS_PER_RUN, funding_key, venue_pool
from ohlcv_assets.core.settings import egress_address
from ohlcv_assets.core.universe import Universe
from ohlcv_assets.defs.assets.candles import CANDLES_RETRY_POLICY
from ohlcv_assets.defs.dagster_internals import (check_target, hopeless_failure, latest_materializations, log_check_evaluations,
                                                 log_materializations, pool_slot)
from ohlcv_assets.defs.partitions import candle_partitions, split_key
from ohlcv_assets.defs.resources import ExchangeResource, WarehouseResource
from ohlcv_assets.exchange.source import FetchFailed, PermanentFetchError
from ohlcv_assets.ingest.funding import FundingDay, ingest_funding_days
from ohlcv_assets.quality.validation import CandleValidationError
from ohlcv_assets.venues.series import FUNDING_CODE

FUNDING_COMPLETE = "funding_complete"


def complete_evaluation(key: dg.AssetKey, partition: str, day: FundingDay, target) -> dg.AssetCheckEvaluation:
    """Every settlement the schedule expects in the day is stored; a missing one is a gap, named."""
    metadata = {"detail": f"{day.stored} of {day.expected} expected settlements stored "
                          f"(every {', '.join(f'{h} h' for h in day.interval_hours) or '?'})"}
    if day.missing:
        metadata["missing"] = ", ".join(ms_to_iso(t) for t in day.missing[:20])
    if day.off_grid:
        metadata["off_grid"] = ", ".join(ms_to_iso(t) for t in day.off_grid[:20])
    return dg.AssetCheckEvaluation(asset_key=key, check_name=FUNDING_COMPLETE, passed=not day.missing, metadata=metadata,
                                   partition=partition, severity=dg.AssetCheckSeverity.WARN, blocking=False,
                                   target_materialization_data=check_target(target))


def build_funding_asset(universe: Universe, retry_policy: dg.RetryPolicy = CANDLES_RETRY_POLICY) -> dg.AssetsDefinition:
    partitions = candle_partitions(universe, FUNDING_CODE)
    key = funding_key()

    @dg.multi_asset(
        name="funding_rates",
        specs=[dg.AssetSpec(key, group_name="candles", kinds={"sql"}, partitions_def=partitions, description=(
            "A perpetual's funding rate settlements of one UTC day (table `funding_rates`): one row per settlement, "
            "keyed by its nominal hour, the venue's own time, rate and mark price beside it. The expected settlements "
            "follow the symbol's funding interval at each time (8, 4 or 1 h, changing over its life)."))],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN),
        retry_policy=retry_policy,
        can_subset=True,
        check_specs=[dg.AssetCheckSpec(FUNDING_COMPLETE, asset=key, partitions_def=partitions, description=(
            "every settlement the funding schedule expects in the day is stored (a warning naming the missing ones)"))],
    )
    def funding_rates(context: dg.AssetExecutionContext, exchange: ExchangeResource, warehouse: WarehouseResource):
        days_by_instrument: dict[str, list[dt.date]] = {}
        keys = {}
        for partition in context.partition_keys:
            instrument_key, day = split_key(partition)
            keys[(instrument_key, day)] = str(partition)
            days_by_instrument.setdefault(instrument_key, []).append(day)
        failures = []
        for instrument_key, days in days_by_instrument.items():
            try:
                instrument = universe.instrument(instrument_key)
            except KeyError as err:
                raise hopeless_failure(context, str(err)) from None
            if not universe.wants(instrument, FUNDING_CODE):
                raise hopeless_failure(context, f"{instrument_key} is not configured for funding")
            try:
                with pool_slot(context, venue_pool(instrument.exchange, egress_address())):
                    report = ingest_funding_days(exchange.source(instrument.exchange), warehouse.warehouse, instrument,
                                                 sorted(days), now_ms())
            except HopelessError as err:
                raise hopeless_failure(context, str(err)) from None
            except (PermanentFetchError, CandleValidationError, FetchFailed) as err:
                failures.append(f"{instrument.label()}: {err}")
                context.log.error(failures[-1])
                continue
            written = [(keys[(instrument_key, day)], day) for day in sorted(report)]
            log_materializations(context, [dg.AssetMaterialization(asset_key=key, partition=partition,
                                                                   metadata=report[day].as_metadata())
                                           for partition, day in written])
            targets = latest_materializations(context.instance, key, [partition for partition, _ in written])
            log_check_evaluations(context, [complete_evaluation(key, partition, report[day], targets.get(partition))
                                            for partition, day in written])
        if failures:
            raise dg.Failure(f"funding settlements of {len(failures)} instrument(s) failed:\n" + "\n".join(failures))
        return
        yield  # a generator: the days were materialized as events, one per partition

    return funding_rates
