"""The features assets in real Dagster runs, and declarative automation keeping them in step."""

import datetime as dt

import dagster as dg

from ohlcv_assets.defs.assets.features import contiguous_runs
from ohlcv_assets.core.intervals import day_bounds_ms
from ohlcv_assets.core.names import candles_key, features_key
from ohlcv_assets.defs.partitions import partition_key
from ohlcv_assets.warehouse.schema import candle_features
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.helpers import DOWNTIME_DAY

DAYS = [DOWNTIME_DAY - dt.timedelta(days=1), DOWNTIME_DAY, DOWNTIME_DAY + dt.timedelta(days=1)]


def run(defs, instance, key, day):
    return dg.materialize([defs.get_assets_def(key)], partition_key=partition_key("binance.BTC-USDT", day),
                          instance=instance, resources=defs.resources)


def requested(result, key) -> set[str]:
    return {str(k) for k in result.get_requested_partitions(key)}


def test_features_of_a_day_with_downtime_are_stored_for_existing_candles(simulator, defs, instance, warehouse_url):
    for day in DAYS[:2]:
        run(defs, instance, candles_key("1m"), day)
    result = run(defs, instance, features_key("1m"), DOWNTIME_DAY)
    [event] = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["rows"] == meta["rows_written"] == 1350 and meta["warmup_rows"] == 0
    wh = Warehouse(warehouse_url)
    stored = wh.read_rows(candle_features, "binance", "BTC/USDT", "1m", *day_bounds_ms(DOWNTIME_DAY))
    wh.dispose()
    assert len(stored) == 1350 and stored["gap_candles"].max() == 90


def test_automation_recomputes_the_day_and_the_days_whose_warm_up_it_feeds(simulator, defs, instance):
    for day in DAYS:
        run(defs, instance, candles_key("1m"), day)
        run(defs, instance, features_key("1m"), day)
    settled = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    settled = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=settled.cursor)
    assert requested(settled, features_key("1m")) == set()

    run(defs, instance, candles_key("1m"), DAYS[1])  # e.g. a gap filled or a revision stored
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=settled.cursor)
    assert requested(after, features_key("1m")) == {f"{DAYS[1]}|binance.BTC-USDT", f"{DAYS[2]}|binance.BTC-USDT"}


def test_partition_keys_of_a_ranged_run_group_into_contiguous_days():
    d = dt.date(2026, 10, 1)
    days = [d + dt.timedelta(days=n) for n in (5, 0, 1, 2, 7, 6)]
    assert contiguous_runs(days) == [[d, d + dt.timedelta(days=1), d + dt.timedelta(days=2)],
                                     [d + dt.timedelta(days=5), d + dt.timedelta(days=6), d + dt.timedelta(days=7)]]
    assert [len(r) for r in contiguous_runs([d + dt.timedelta(days=n) for n in range(70)])] == [31, 31, 8]
