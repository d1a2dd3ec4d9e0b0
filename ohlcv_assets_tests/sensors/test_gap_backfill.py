"""The gap sensor turns fillable gaps into one backfill of exactly the affected candles partitions."""

import datetime as dt

import dagster as dg

from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.gaps import EXCHANGE_DOWNTIME, FILLABLE, Gap
from ohlcv_assets.intervals import MINUTE_MS, day_bounds_ms
from ohlcv_assets.partitions import sync_instrument_partitions
from ohlcv_assets.warehouse import gap_records


def evaluate(defs, instance, interval, cursor=None):
    sensor = defs.get_sensor_def(f"gap_backfill_{interval}")
    with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources, cursor=cursor) as context:
        return sensor(context)


def test_fillable_gaps_become_one_backfill_and_are_not_requested_twice(universe, universe_file, warehouse, warehouse_url):
    day = dt.date(2026, 10, 8)
    start = day_bounds_ms(day)[0]
    gap_records.reconcile(warehouse, "binance", "BTC/USDT", "1m", [
        Gap(start + 10 * MINUTE_MS, start + 20 * MINUTE_MS, FILLABLE),
        Gap(start + 23 * 60 * MINUTE_MS, start + 25 * 60 * MINUTE_MS, FILLABLE),  # crosses midnight: two days
        Gap(start + 300 * MINUTE_MS, start + 390 * MINUTE_MS, EXCHANGE_DOWNTIME),
    ], MINUTE_MS, 1_000)
    gap_records.reconcile(warehouse, "binance", "ETH/USDT", "5m", [Gap(start, start + 5 * MINUTE_MS, FILLABLE)], 5 * MINUTE_MS, 1_000)
    defs = build_definitions(str(universe_file), warehouse_url)
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        first = evaluate(defs, instance, "1m")
        [one_minute] = first.run_requests
        assert one_minute.tags["ohlcv/reason"] == "gap-fill"
        assert requested(one_minute) == {("candles/1m", f"{day}|binance.BTC-USDT"),
                                         ("candles/1m", f"{day + dt.timedelta(days=1)}|binance.BTC-USDT")}
        [five_minutes] = evaluate(defs, instance, "5m").run_requests
        assert requested(five_minutes) == {("candles/5m", f"{day}|binance.ETH-USDT")}
        records = gap_records.in_flight(warehouse)
        assert len(records) == 3
        assert {r.request_id for r in records} == {one_minute.tags["ohlcv/gap_request"], five_minutes.tags["ohlcv/gap_request"]}

        assert evaluate(defs, instance, "1m", first.cursor).run_requests == []  # in flight: no duplicate request


def test_gaps_marked_by_a_tick_that_failed_are_released(universe, universe_file, warehouse, warehouse_url):
    gap_records.reconcile(warehouse, "binance", "BTC/USDT", "1m", [Gap(0, 10 * MINUTE_MS, FILLABLE)], MINUTE_MS, 1_000)
    defs = build_definitions(str(universe_file), warehouse_url)
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        lost = evaluate(defs, instance, "1m")  # its cursor is never saved: as if the tick failed after marking
        assert len(lost.run_requests) == 1 and len(gap_records.in_flight(warehouse)) == 1
        retried = evaluate(defs, instance, "1m")
        assert len(retried.run_requests) == 1
        [record] = gap_records.in_flight(warehouse)
        assert record.request_id == retried.run_requests[0].tags["ohlcv/gap_request"] and record.attempts == 0


def requested(request) -> set[tuple[str, str]]:
    return {(key.to_user_string(), str(pk)) for key, pk in request.asset_graph_subset.iterate_asset_partitions()}
