"""The ``funding_rates`` and ``open_interest`` assets: a perpetual's funding rate settlements and
its open interest per instrument and UTC day (tables ``funding_rates``, ``open_interest``), for the
instruments whose universe entry lists ``funding`` or ``open_interest``."""

import datetime as dt

import dagster as dg

from ohlcv_assets.core.errors import HopelessError
from ohlcv_assets.core.intervals import ms_to_iso, now_ms
from ohlcv_assets.core.names import MAX_PARTITIONS_PER_RUN, funding_key, open_interest_key, venue_pool
from ohlcv_assets.core.settings import egress_address
from ohlcv_assets.core.universe import Universe
from ohlcv_assets.defs.assets.candles import CANDLES_RETRY_POLICY, freshness_policy
from ohlcv_assets.defs.dagster_internals import (check_target, hopeless_failure, latest_materializations, log_check_evaluations,
                                                 log_materializations, pool_slot)
from ohlcv_assets.defs.partitions import candle_partitions, split_key
from ohlcv_assets.defs.resources import ExchangeResource, WarehouseResource
from ohlcv_assets.exchange.source import FetchFailed, PermanentFetchError
from ohlcv_assets.ingest.funding import FundingDay, ingest_funding_days
from ohlcv_assets.ingest.open_interest import OpenInterestDay, ingest_open_interest_days
from ohlcv_assets.quality.validation import CandleValidationError
from ohlcv_assets.venues.series import FUNDING_CODE, FUNDING_FRESHNESS_INTERVAL, OI_CODE, OI_PERIOD, parse_series_code

FUNDING_COMPLETE = "funding_complete"
FUNDING_WITHIN_CAP = "funding_within_cap"
OI_COMPLETE = "open_interest_complete"


def cap_evaluation(key: dg.AssetKey, partition: str, day: FundingDay, target) -> dg.AssetCheckEvaluation:
    """Every stored settlement's rate is within the cap and floor the venue publishes (a warning:
    the settlements are kept as the venue paid them)."""
    cap, floor = day.cap
    detail = ("no cap or floor published for the symbol: not checked" if cap is None and floor is None else
              f"{len(day.outside_cap)} of {day.stored} settlements outside the published floor {floor} / cap {cap}")
    metadata = {"detail": detail}
    if day.outside_cap:
        metadata["outside"] = ", ".join(f"{ms_to_iso(t)} {rate:+.8f}" for t, rate in day.outside_cap[:20])
    return dg.AssetCheckEvaluation(asset_key=key, check_name=FUNDING_WITHIN_CAP, passed=not day.outside_cap, metadata=metadata,
                                   partition=partition, severity=dg.AssetCheckSeverity.WARN, blocking=False,
                                   target_materialization_data=check_target(target))


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
    key = funding_key()
    return build_day_series_asset(
        universe, FUNDING_CODE, key, "funding_rates", "funding settlements", retry_policy, description=(
            "A perpetual's funding rate settlements of one UTC day (table `funding_rates`): one row per settlement, "
            "keyed by its nominal hour, the venue's own time, rate and mark price beside it. The expected settlements "
            "follow the symbol's funding interval at each time (8, 4 or 1 h, changing over its life)."),
        checks={FUNDING_COMPLETE: "every settlement the funding schedule expects in the day is stored (a warning naming the "
                                  "missing ones)",
                FUNDING_WITHIN_CAP: "every stored rate is within the funding rate cap and floor the venue publishes (a "
                                    "warning; kept as paid)"},
        ingest=ingest_funding_days, evaluations=(complete_evaluation, cap_evaluation),
        freshness=freshness_policy(FUNDING_FRESHNESS_INTERVAL, universe.refresh_minutes))


def build_open_interest_asset(universe: Universe, retry_policy: dg.RetryPolicy = CANDLES_RETRY_POLICY) -> dg.AssetsDefinition:
    key = open_interest_key()
    return build_day_series_asset(
        universe, OI_CODE, key, "open_interest", "open interest", retry_policy, description=(
            "A perpetual's open interest of one UTC day every 5 minutes, the venue's resolution (table `open_interest`: "
            "contracts and quote value). Binance serves the latest 30 days over REST; older days come from the archive's "
            "daily metrics files where the universe configures the archive, else are recorded beyond its history."),
        checks={OI_COMPLETE: "every 5-minute sample the venue still serves for the day is stored (a warning)"},
        ingest=ingest_open_interest_days, evaluations=(oi_complete_evaluation,),
        freshness=freshness_policy(OI_PERIOD, universe.refresh_minutes))


def oi_complete_evaluation(key: dg.AssetKey, partition: str, day: OpenInterestDay, target) -> dg.AssetCheckEvaluation:
    """Every sample the venue serves for the day is stored; samples beyond its history are said, not counted."""
    detail = f"{day.stored} of {day.expected} samples stored"
    if day.beyond_history:
        detail += f"; {day.beyond_history} older than the venue serves (beyond_history)"
    return dg.AssetCheckEvaluation(asset_key=key, check_name=OI_COMPLETE, passed=day.stored >= day.expected,
                                   metadata={"detail": detail}, partition=partition, severity=dg.AssetCheckSeverity.WARN,
                                   blocking=False, target_materialization_data=check_target(target))


def build_day_series_asset(universe: Universe, code: str, key: dg.AssetKey, name: str, what: str, retry_policy: dg.RetryPolicy,
                           description: str, checks: dict[str, str], ingest, evaluations,
                           freshness: dg.FreshnessPolicy) -> dg.AssetsDefinition:
    """A perpetual's series stored per instrument and UTC day outside the candles table (funding,
    open interest): ``ingest(source, warehouse, instrument, days, now_ms, archive)`` returns each
    day's report (``as_metadata``), each of ``evaluations`` a check of it."""
    partitions = candle_partitions(universe, code)

    @dg.multi_asset(
        name=name,
        specs=[dg.AssetSpec(key, group_name="candles", kinds={"sql"}, partitions_def=partitions, description=description,
                            freshness_policy=freshness)],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN),
        retry_policy=retry_policy,
        can_subset=True,
        check_specs=[dg.AssetCheckSpec(check, asset=key, partitions_def=partitions, description=text) for check, text in checks.items()],
    )
    def day_series(context: dg.AssetExecutionContext, exchange: ExchangeResource, warehouse: WarehouseResource):
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
            if not universe.wants(instrument, code):
                raise hopeless_failure(context, f"{instrument_key} is not configured for {what}")
            try:
                with pool_slot(context, venue_pool(instrument.exchange, egress_address())):
                    series = parse_series_code(code)[0]
                    archive = exchange.archive(instrument.exchange) if series in universe.exchanges[
                        instrument.exchange].profile.archive_series else None
                    report = ingest(exchange.source(instrument.exchange), warehouse.warehouse, instrument, sorted(days), now_ms(),
                                    archive)
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
            log_check_evaluations(context, [evaluation(key, partition, report[day], targets.get(partition))
                                            for partition, day in written for evaluation in evaluations])
        if failures:
            raise dg.Failure(f"{what} of {len(failures)} instrument(s) failed:\n" + "\n".join(failures))
        return
        yield  # a generator: the days were materialized as events, one per partition

    return day_series
