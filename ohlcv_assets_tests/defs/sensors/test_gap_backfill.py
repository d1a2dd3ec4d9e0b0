"""The gap sensor turns fillable gaps into one backfill of exactly the affected candles partitions."""

import datetime as dt

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.core.gaps import EXCHANGE_DOWNTIME, FILLABLE, Gap
from ohlcv_assets.core.intervals import MINUTE_MS, day_bounds_ms
from ohlcv_assets.defs.monitoring import failing_checks
from ohlcv_assets.core.names import candles_key
from ohlcv_assets.defs.partitions import partition_key, sync_instrument_partitions
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets_tests.helpers import DOWNTIME_DAY


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


def test_partitions_a_running_backfill_covers_are_not_requested_again(simulator, universe, universe_file, warehouse, warehouse_url):
    """A user's backfill (in flight, not yet run: no daemon here) covers the gap's days: the sensor
    requests nothing. Once the days are stored, the gap is filled from the warehouse, without a
    request to the exchange or a backfill of its own."""
    day = dt.date(2026, 10, 8)
    start = day_bounds_ms(day)[0]
    gap_records.reconcile(warehouse, "binance", "BTC/USDT", "1m", [Gap(start, start + 30 * MINUTE_MS, FILLABLE)], MINUTE_MS, 1_000)
    defs = build_definitions(str(universe_file), warehouse_url)
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        user = add_backfill(instance, defs, "userbackfill", [f"{day}|binance.BTC-USDT"], {}, BulkActionStatus.REQUESTED)
        assert evaluate(defs, instance, "1m").run_requests == []
        [record] = gap_records.instrument_gaps(warehouse, "binance", "BTC/USDT", "1m")
        assert record.status == "detected"
        dg.materialize([defs.get_assets_def(candles_key("1m"))], partition_key=partition_key("binance.BTC-USDT", day),
                       instance=instance, resources=defs.resources)  # what the user's backfill does
        instance.update_backfill(user.with_status(BulkActionStatus.COMPLETED_SUCCESS))
        weight = simulator.stats["weight"]
        assert evaluate(defs, instance, "1m").run_requests == []
        assert simulator.stats["weight"] == weight
        [record] = gap_records.instrument_gaps(warehouse, "binance", "BTC/USDT", "1m")
        assert record.status == "filled" and record.attempts == 0


def test_a_multi_day_multi_instrument_gap_fill_ends_filled_in_one_backfill(simulator, universe, universe_file, warehouse, warehouse_url):
    """Every gap of a finished gap backfill whose candles are stored is filled (attempts 1), and
    every instrument it touched gets one re-scan, whatever Dagster's automation would have matched."""
    days = [dt.date(2026, 10, 6), dt.date(2026, 10, 7), dt.date(2026, 10, 8)]
    for symbol in ("BTC/USDT", "ETH/USDT"):
        gap_records.reconcile(warehouse, "binance", symbol, "1m", [
            Gap(day_bounds_ms(d)[0] + 60 * MINUTE_MS, day_bounds_ms(d)[0] + 70 * MINUTE_MS, FILLABLE) for d in days], MINUTE_MS, 1_000)
    defs = build_definitions(str(universe_file), warehouse_url)
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        first = evaluate(defs, instance, "1m")
        [request] = first.run_requests
        partitions = [pk for _, pk in requested(request)]
        assert len(partitions) == 6
        for pk in partitions:  # what the backfill's runs do
            dg.materialize([defs.get_assets_def(candles_key("1m"))], partition_key=pk, instance=instance, resources=defs.resources)
        add_backfill(instance, defs, "gapfill", partitions, request.tags, BulkActionStatus.COMPLETED_SUCCESS)
        second = evaluate(defs, instance, "1m", first.cursor)
        assert sorted(r.partition_key for r in second.run_requests) == ["binance.BTC-USDT", "binance.ETH-USDT"]  # re-scans
        assert all(r.asset_selection == [dg.AssetKey(["gap_report", "1m"])] for r in second.run_requests)
        records = [r for s in ("BTC/USDT", "ETH/USDT") for r in gap_records.instrument_gaps(warehouse, "binance", s, "1m")]
        assert [(r.status, r.attempts) for r in records] == [("filled", 0)] * 6
        third = evaluate(defs, instance, "1m", second.cursor)
        assert third.run_requests == []  # nothing loops


def test_a_day_failing_completeness_is_rechecked_by_the_scan_that_confirms_its_downtime(simulator, universe, universe_file,
                                                                                        warehouse_url):
    """Checks only: the day's completeness failed before the scan; the scan that confirms the
    downtime evaluates the day's checks again from the warehouse (no request of its own for it),
    so the day is green as soon as the scan ends, and the sensor has nothing left to ask for."""
    defs = build_definitions(str(universe_file), warehouse_url)
    asset = defs.get_assets_def(candles_key("1m"))
    pk = partition_key("binance.BTC-USDT", DOWNTIME_DAY)
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        dg.materialize([asset], partition_key=pk, instance=instance, resources=defs.resources)
        assert failing_checks(instance, universe, "1m") == {"completeness": [str(pk)]}
        assert evaluate(defs, instance, "1m").run_requests == []  # nothing explains it yet
        scan = dg.materialize([defs.get_assets_def(dg.AssetKey(["gap_report", "1m"])), asset],
                              selection=[dg.AssetKey(["gap_report", "1m"])],
                              partition_key="binance.BTC-USDT", instance=instance, resources=defs.resources)
        rechecked = [e for e in scan.get_asset_check_evaluations() if e.asset_key == candles_key("1m")]
        assert {(e.check_name, e.partition, e.passed) for e in rechecked if e.check_name == "completeness"} == {
            ("completeness", str(pk), True)}
        assert failing_checks(instance, universe, "1m") == {}
        # (the scan also found the other days of the instrument's history missing: a gap backfill for them, no re-check)
        assert not [r for r in evaluate(defs, instance, "1m").run_requests if r.asset_check_keys]
        again = dg.materialize([defs.get_assets_def(dg.AssetKey(["gap_report", "1m"])), asset],
                               selection=[dg.AssetKey(["gap_report", "1m"])],
                               partition_key="binance.BTC-USDT", instance=instance, resources=defs.resources)
        assert not [e for e in again.get_asset_check_evaluations() if e.asset_key == candles_key("1m")]  # green: not again


def add_backfill(instance, defs, backfill_id, partitions, tags, status) -> PartitionBackfill:
    """A backfill record as the webserver or a sensor tick creates it (no daemon runs it here)."""
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        subset = AssetGraphSubset.from_asset_partition_set(
            {AssetKeyPartitionKey(candles_key("1m"), p) for p in partitions}, defs.resolve_asset_graph())
        backfill = PartitionBackfill.from_asset_graph_subset(
            backfill_id=backfill_id, backfill_timestamp=0.0, tags=tags, dynamic_partitions_store=instance,
            asset_graph_subset=subset, title=None, description=None, run_config=None).with_status(status)
    instance.add_backfill(backfill)
    return backfill
