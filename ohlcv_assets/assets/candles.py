"""The ``candles/<interval>`` assets: closed OHLCV candles per instrument and UTC day."""


import dagster as dg

from ohlcv_assets.exchange.source import FetchFailed, PermanentFetchError
from ohlcv_assets.ingest import ingest_day
from ohlcv_assets.intervals import now_ms
from ohlcv_assets.partitions import candle_partitions, split_key
from ohlcv_assets.resources import ExchangeResource, WarehouseResource
from ohlcv_assets.universe import Universe
from ohlcv_assets.validation import CandleValidationError

MAX_PARTITIONS_PER_RUN = 31
CANDLES_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def candles_key(interval: str) -> dg.AssetKey:
    return dg.AssetKey(["candles", interval])


def build_candles_asset(universe: Universe, interval: str, retry_policy: dg.RetryPolicy = CANDLES_RETRY_POLICY) -> dg.AssetsDefinition:
    @dg.asset(
        key=candles_key(interval),
        partitions_def=candle_partitions(universe, interval),
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN),
        retry_policy=retry_policy,
        group_name="candles",
        kinds={"sql"},
        description=(
            f"Closed {interval} OHLCV candles of one instrument for one UTC day, exactly as the exchange "
            "serves them (table `candles`). Missing candles are never invented; a partition with a request "
            "window that failed after its retries fails instead of being reported complete."
        ),
    )
    def candles(context: dg.AssetExecutionContext, exchange: ExchangeResource, warehouse: WarehouseResource) -> None:
        keys = context.partition_keys
        for n, key in enumerate(keys, start=1):
            instrument_key, day = split_key(key)
            try:
                instrument = exchange.universe.instrument(instrument_key)
            except KeyError as err:
                raise dg.Failure(description=str(err), allow_retries=False) from None
            if interval not in instrument.intervals:
                raise dg.Failure(f"{instrument_key} is not configured for {interval}", allow_retries=False)
            try:
                report = ingest_day(exchange.source(instrument.exchange), warehouse.warehouse, instrument, interval, day, now_ms())
            except PermanentFetchError as err:
                raise dg.Failure(description=f"{instrument.label()} {interval} {day}: {err}", allow_retries=False) from None
            except CandleValidationError as err:
                raise dg.Failure(
                    description=f"{instrument.label()} {interval} {day}: nothing written. {err}",
                    metadata={"offending_candles": dg.MetadataValue.md(f"```\n{err.offending.to_string(index=False)}\n```")},
                    allow_retries=False,
                ) from None
            except FetchFailed as err:
                raise dg.Failure(description=f"{instrument.label()} {interval} {day}: {err}") from err
            context.add_asset_metadata(report.as_metadata(), partition_key=key)
            context.log.info(f"[{n}/{len(keys)}] {instrument.label()} {interval} {day}: {report.rows_fetched} candles, "
                             f"{report.rows_written} written, {report.missing_candles} missing {report.note}")

    return candles
