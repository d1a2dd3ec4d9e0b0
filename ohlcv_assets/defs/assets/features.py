"""The ``candle_features/<interval>`` assets: technical features per instrument and UTC day."""

import datetime as dt
from collections import defaultdict

import dagster as dg

from ohlcv_assets.features.derive import derive_days
from ohlcv_assets.core.feature_params import FEATURE_PARAMS
from ohlcv_assets.core.intervals import interval_ms
from ohlcv_assets.core.names import DAY, INSTRUMENT, candles_key, features_key
from ohlcv_assets.defs.partitions import candle_partitions, partition_key, split_key
from ohlcv_assets.defs.resources import WarehouseResource
from ohlcv_assets.core.universe import Universe

# A refresh of today touches every instrument's today partition at once: up to this many are one
# features run (a run process costs about 10 CPU-s before any work), not one run per 31 of them.
FEATURE_PARTITIONS_PER_RUN = 1000
FEATURE_DAYS_PER_PASS = 31  # contiguous days computed in one pass: a month's candles and features in memory

# Recompute a day whenever the candles it reads (its own day and its warm-up days) change, never on
# candles whose blocking checks failed.
FEATURES_AUTOMATION = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("candles or their warm-up changed")


def warmup_mapping(universe: Universe, interval: str) -> dg.MultiPartitionMapping:
    """Day D of the features reads candles of days D-k..D, k covering the warm-up window on every
    venue of the interval's instruments."""
    venues = {i.exchange for i in universe.instruments_for(interval)}
    lookback = max((FEATURE_PARAMS.lookback_days(interval_ms(interval), universe.exchanges[v].sessions) for v in venues),
                   default=FEATURE_PARAMS.lookback_days(interval_ms(interval)))
    return dg.MultiPartitionMapping({
        DAY: dg.DimensionPartitionMapping(DAY, dg.TimeWindowPartitionMapping(
            start_offset=-lookback, allow_nonexistent_upstream_partitions=True)),
        INSTRUMENT: dg.DimensionPartitionMapping(INSTRUMENT, dg.IdentityPartitionMapping()),
    })


def contiguous_runs(days: list[dt.date], longest: int = FEATURE_DAYS_PER_PASS) -> list[list[dt.date]]:
    """The days in passes of contiguous days, each at most ``longest`` long."""
    runs: list[list[dt.date]] = []
    for day in sorted(days):
        if runs and day - runs[-1][-1] == dt.timedelta(days=1) and len(runs[-1]) < longest:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def build_features_asset(universe: Universe, interval: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=features_key(interval),
        partitions_def=candle_partitions(universe, interval),
        deps=[dg.AssetDep(candles_key(interval), partition_mapping=warmup_mapping(universe, interval))],
        automation_condition=FEATURES_AUTOMATION,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=FEATURE_PARTITIONS_PER_RUN),
        group_name="features",
        kinds={"sql"},
        description=(
            f"Technical features of the {interval} candles (table `candle_features`): returns, SMA/EMA, RSI, "
            "MACD, Bollinger bands, ATR, daily VWAP, realised volatility, volume z-score. A day computed alone "
            f"equals the same day computed in a longer run: recursive indicators start {FEATURE_PARAMS.warmup_candles} "
            "candles back (see ohlcv_assets/features/compute.py)."
        ),
    )
    def candle_features(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> None:
        days_by_instrument: dict[str, list[dt.date]] = defaultdict(list)
        for key in context.partition_keys:
            instrument_key, day = split_key(key)
            days_by_instrument[instrument_key].append(day)
        for instrument_key, days in days_by_instrument.items():
            instrument = universe.instrument(instrument_key)
            for days_run in contiguous_runs(days):
                reports = derive_days(warehouse.warehouse, instrument.exchange, instrument.symbol, interval, days_run)
                for day, report in reports.items():
                    context.add_asset_metadata(report.as_metadata(), partition_key=str(partition_key(instrument_key, day)))
                context.log.info(f"{instrument.label()} {interval} {days_run[0]}..{days_run[-1]}: "
                                 f"{sum(r.rows for r in reports.values())} feature rows")

    return candle_features
