"""The ``candles/<interval>`` assets: closed OHLCV candles per instrument and UTC day."""


import dataclasses
import datetime as dt
import itertools
import time
from collections.abc import Iterator

import dagster as dg
import pandas as pd

from ohlcv_assets.defs.dagster_internals import (check_target, hopeless_failure, latest_materializations, log_check_evaluations,
                                            log_materializations, pool_slot)
from ohlcv_assets.core.errors import HopelessError
from ohlcv_assets.exchange.source import FetchFailed, NotListed, PermanentFetchError
from ohlcv_assets.ingest.days import Progress, ingest_days
from ohlcv_assets.core.intervals import now_ms
from ohlcv_assets.core.names import (
    MAX_PARTITIONS_PER_RUN,
    UNIVERSE_METADATA,
    WAREHOUSE_METADATA,
    candles_key,
    freshness_windows,
    venue_pool,
)
from ohlcv_assets.defs.partitions import candle_partitions, split_key
from ohlcv_assets.quality.checks import CheckOutcome, check_stored_days, checks_for
from ohlcv_assets.defs.resources import ExchangeResource, WarehouseResource
from ohlcv_assets.core.settings import egress_address
from ohlcv_assets.core.universe import Universe, universe_in_use
from ohlcv_assets.quality.validation import CandleValidationError
from ohlcv_assets.warehouse.urls import public_url
from ohlcv_assets.venues.series import archived, parse_series_code

CANDLES_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def freshness_policy(interval: str, refresh_minutes: int) -> dg.FreshnessPolicy:
    warn, fail = freshness_windows(interval, refresh_minutes)
    return dg.FreshnessPolicy.time_window(warn_window=warn, fail_window=fail)


def candles_what(code: str) -> str:
    """What a ``candles/<code>`` asset holds, for its description."""
    series, interval = parse_series_code(code)
    if series == "trades":
        return f"{interval} OHLCV candles"
    name = {"mark": "mark price", "index": "index price", "premium": "premium index"}[series]
    return f"{interval} {name} klines (no volume: stored as 0) of a perpetual contract"


def candles_table(frame: pd.DataFrame) -> dg.MetadataValue:
    """Offending candles as a fixed-width table in the UI."""
    return dg.MetadataValue.md(f"```\n{frame.to_string(index=False)}\n```")


def check_evaluations(key: dg.AssetKey, partition: str, outcomes: list[CheckOutcome], target) -> Iterator[dg.AssetCheckEvaluation]:
    """One result per check and partition: a day that failed stays failing in the UI until that
    day passes again, whatever later runs of other days report."""
    by_name = {outcome.name: outcome for outcome in outcomes}
    for spec in checks_for(key.path[-1]):
        outcome = by_name[spec.name]
        metadata: dict = {"detail": outcome.detail} if outcome.detail else {}
        if not outcome.passed:
            metadata["offending"] = candles_table(outcome.offending.head(20))
            metadata["offending_count"] = len(outcome.offending)
        yield dg.AssetCheckEvaluation(
            asset_key=key, check_name=spec.name, passed=outcome.passed, metadata=metadata, partition=partition,
            severity=dg.AssetCheckSeverity.WARN if spec.warn_only else dg.AssetCheckSeverity.ERROR,
            blocking=spec.blocking, target_materialization_data=check_target(target),
        )


def recheck_stored(context: dg.AssetExecutionContext, asset_key: dg.AssetKey, warehouse: WarehouseResource, universe: Universe,
                   instruments: list, interval: str, keys: dict, now: int, windows: tuple,
                   of_this_step: bool = True) -> list[dg.AssetCheckEvaluation]:
    """Checks only (a run that selects the checks, not the asset; or a gap scan that confirmed a
    day's missing candles as downtime, ``of_this_step=False``): evaluates the stored days again
    against their latest materialization, asking the exchange nothing, so that a day whose missing
    candles are now explained turns green. Returns the evaluations that block, for the step to yield."""
    targets = latest_materializations(context.instance, asset_key, [str(k) for k in keys.values()])
    blocked = []
    for instrument in instruments:
        days = {day: key for (inst, day), key in keys.items() if inst == instrument.key and str(key) in targets}
        expected = {day: int(targets[str(key)].asset_materialization.metadata["expected_candles"].value)
                    for day, key in days.items() if "expected_candles" in targets[str(key)].asset_materialization.metadata}
        if not expected:
            continue
        checked = check_stored_days(warehouse.warehouse, instrument, interval, expected, now, windows,
                                    universe.sessions_of(instrument), universe.exchanges[instrument.exchange].profile.official_daily)
        blocked += log_check_evaluations(context, [evaluation for day in expected for evaluation in check_evaluations(
            asset_key, str(days[day]), checked[day][0], targets[str(days[day])])], of_this_step)
    return blocked


@dataclasses.dataclass
class InstrumentFailure:
    label: str
    error: Exception

    def description(self) -> str:
        if isinstance(self.error, CandleValidationError):
            return f"the batch with these candles was not written. {self.error}"
        return str(self.error)


def instruments_failed(interval: str, failures: list[InstrumentFailure], total: int) -> dg.Failure:
    """One instrument failing does not stop the others of the run (a today run covers them all);
    the run then fails naming each, retryable unless every failure is one a retry cannot fix."""
    metadata = {}
    for failure in failures:
        if isinstance(failure.error, CandleValidationError):
            metadata[f"offending_candles {failure.label}"] = candles_table(failure.error.offending)
    lines = "; ".join(f"{f.label}: {f.description()}" for f in failures)
    return dg.Failure(
        description=f"{len(failures)} of {total} instrument(s) failed for {interval}, the others were written. {lines}"[:4000],
        metadata=metadata,
        allow_retries=any(isinstance(f.error, FetchFailed) for f in failures),
    )


class ProgressReporter:
    """Logs a ranged run's progress (pages, candles, %, ETA) and records it as an asset
    observation, at most every few seconds so that short runs stay quiet."""

    every_seconds = 5.0

    def __init__(self, context: dg.AssetExecutionContext, key: dg.AssetKey):
        self.context, self.key = context, key
        self.last = time.monotonic()
        self.latest: tuple[str, Progress] | None = None

    def update(self, label: str, progress: Progress) -> None:
        self.latest = (label, progress)
        if time.monotonic() - self.last >= self.every_seconds:
            self._emit()

    def finish(self) -> None:
        if self.latest and self.latest[1].pages_total >= 50:
            self._emit()

    def _emit(self) -> None:
        label, progress = self.latest
        self.last = time.monotonic()
        self.context.log.info(f"{label}: {progress.message()}")
        self.context.log_event(dg.AssetObservation(asset_key=self.key, metadata={"instrument": label, **progress.as_metadata()}))


@dataclasses.dataclass(frozen=True)
class CandlesStep:
    """One step of a candles asset: what each of its instruments is ingested with."""

    context: dg.AssetExecutionContext
    asset_key: dg.AssetKey
    exchange: ExchangeResource
    warehouse: WarehouseResource
    universe: Universe
    interval: str
    keys: dict  # (instrument key, day) -> partition key
    now: int
    windows: tuple  # the freshness windows, in ms
    reporter: ProgressReporter


def ingest_instrument(step: CandlesStep, instrument, days: list[dt.date]) -> list[dg.AssetCheckEvaluation]:
    """One instrument's days of the run, batch by batch: written, checked, materialized with their
    metadata and their checks evaluated at once, so that a long ranged run's days turn green in the
    UI as they are written (the step yields no output for the asset: its days are not materialized
    a second time), and the Dagster events of one batch are written while the next batch is fetched
    (and, from REST, written): the batch's materializations as one event batch, then its check
    evaluations as another. Returns
    the evaluations that block, for the step to yield."""
    context, asset_key, exchange, warehouse, universe = step.context, step.asset_key, step.exchange, step.warehouse, step.universe
    interval, keys, now, windows, reporter = step.interval, step.keys, step.now, step.windows, step.reporter
    config = universe.exchanges[instrument.exchange]
    recorded = {UNIVERSE_METADATA: str(universe_in_use(exchange.universe_path or None)), WAREHOUSE_METADATA: public_url(warehouse.warehouse.url)}
    blocked = []
    for batch in ingest_days(exchange.source(instrument.exchange), warehouse.warehouse, instrument, interval, days, now,
                             workers=config.fetch_concurrency, on_progress=lambda p: reporter.update(instrument.label(), p),
                             archive=exchange.archive(instrument.exchange) if archived(config.profile, interval) else None):
        checked = check_stored_days(warehouse.warehouse, instrument, interval,
                                    {day: report.expected_candles for day, report in batch}, now, windows,
                                    config.sessions_of(instrument), config.profile.official_daily,
                                    {day: report.stored for day, report in batch})
        written = [(str(keys[(instrument.key, day)]), day, report) for day, report in batch]
        log_materializations(context, [
            dg.AssetMaterialization(asset_key=asset_key, partition=partition,
                                    metadata={**report.as_metadata(), **checked[day][1].as_metadata(), **recorded})
            for partition, day, report in written])
        for _, day, report in written:
            if report.note:
                context.log.info(f"{instrument.label()} {interval} {day}: {report.note}")
        targets = latest_materializations(context.instance, asset_key, [partition for partition, _, _ in written])
        blocked += log_check_evaluations(context, [
            evaluation for partition, day, _ in written
            for evaluation in check_evaluations(asset_key, partition, checked[day][0], targets.get(partition))])
    return blocked


def build_candles_asset(universe: Universe, interval: str, retry_policy: dg.RetryPolicy = CANDLES_RETRY_POLICY) -> dg.AssetsDefinition:
    partitions = candle_partitions(universe, interval)

    asset_key = candles_key(interval)

    # A multi_asset only for can_subset: check results are then optional outputs, so that they can
    # be logged per partition (AssetCheckEvaluation) by a run that covers many partitions.
    @dg.multi_asset(
        name=f"candles_{interval}",
        specs=[dg.AssetSpec(
            asset_key, group_name="candles", kinds={"sql"}, partitions_def=partitions,
            freshness_policy=freshness_policy(interval, universe.refresh_minutes),
            description=(
                f"Closed {candles_what(interval)} of one instrument for one UTC day, exactly as the exchange "
                "serves them (table `candles`). Missing candles are never invented; a partition with a request "
                "window that failed after its retries fails instead of being reported complete."
            ),
        )],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN),
        retry_policy=retry_policy,
        can_subset=True,
        check_specs=[dg.AssetCheckSpec(spec.name, asset=asset_key, blocking=spec.blocking,
                                       description=spec.description, partitions_def=partitions) for spec in checks_for(interval)],
    )
    def candles(context: dg.AssetExecutionContext, exchange: ExchangeResource, warehouse: WarehouseResource):
        try:
            yield from candles_of_run(context, exchange, warehouse)
        except HopelessError as err:  # a setting or a venue's refusal: the run fails now, on its first attempt
            context.log.error(str(err))
            raise hopeless_failure(context, str(err)) from None

    def candles_of_run(context: dg.AssetExecutionContext, exchange: ExchangeResource, warehouse: WarehouseResource):
        keys: dict[tuple[str, dt.date], str] = {}
        for key in context.partition_keys:
            keys[split_key(key)] = key
        days_by_instrument: dict[str, list[dt.date]] = {}
        for instrument_key, day in keys:
            days_by_instrument.setdefault(instrument_key, []).append(day)
        instruments = []
        for instrument_key in days_by_instrument:
            try:
                instrument = universe.instrument(instrument_key)
            except KeyError as err:
                raise hopeless_failure(context, str(err)) from None
            if not universe.wants(instrument, interval):
                raise hopeless_failure(context, f"{instrument_key} is not configured for {interval}")
            instruments.append(instrument)
        now = now_ms()
        windows = tuple(w.total_seconds() * 1000 for w in freshness_windows(interval, universe.refresh_minutes))
        if asset_key not in context.selected_asset_keys:
            yield from recheck_stored(context, asset_key, warehouse, universe, instruments, interval, keys, now, windows)
            return
        failures: list[InstrumentFailure] = []
        reporter = ProgressReporter(context, asset_key)
        step = CandlesStep(context, asset_key, exchange, warehouse, universe, interval, keys, now, windows, reporter)
        for venue, venue_instruments in itertools.groupby(sorted(instruments, key=lambda i: i.exchange), key=lambda i: i.exchange):
            with pool_slot(context, venue_pool(venue, egress_address())):
                for instrument in venue_instruments:
                    try:
                        # Dagster fails the step at its end for a blocking check that failed
                        yield from ingest_instrument(step, instrument, days_by_instrument[instrument.key])
                    except (PermanentFetchError, CandleValidationError, FetchFailed) as err:
                        failures.append(InstrumentFailure(instrument.label(), err))
                        context.log.error(f"{instrument.label()} {interval}: {failures[-1].description()}")
        reporter.finish()
        if failures:
            failure = instruments_failed(interval, failures, len(instruments))
            if all(isinstance(f.error, NotListed) for f in failures):  # the venue's market list lacks every one
                raise hopeless_failure(context, failure.description, failure.metadata)
            raise failure  # a 404 or bad candles: no step retry, but run retries may still heal them

    return candles
