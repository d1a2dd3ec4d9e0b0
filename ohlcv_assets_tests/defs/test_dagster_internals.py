"""Pins the private Dagster parts the project relies on (ohlcv_assets/defs/dagster_internals.py): an upgrade
that moves or changes them fails here, by name, not in a sensor."""

import datetime as dt
import uuid

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus

from ohlcv_assets.defs import dagster_internals
from ohlcv_assets.defs.dagster_internals import (
    backfill_run_request,
    backfill_state,
    backfills_tagged,
    cached_partitions,
    check_target,
    latest_materializations,
    partitions_in_flight,
)
from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.defs.monitoring import failing_checks
from ohlcv_assets.core.names import RANGE_END_TAG, RANGE_START_TAG, candles_key, partition_key_string
from ohlcv_assets.defs.partitions import sync_instrument_partitions
from ohlcv_assets_tests.helpers import DOWNTIME_DAY
from ohlcv_assets_tests.defs.sensors.test_gap_backfill import add_backfill


def test_backfills_and_unfinished_runs_are_read_as_partitions_in_flight(universe, universe_file, warehouse_url, instance):
    sync_instrument_partitions(instance, universe)
    defs = build_definitions(str(universe_file), warehouse_url)
    asset = defs.get_assets_def(candles_key("1m"))
    request = backfill_run_request(candles_key("1m"), ["2026-10-08|binance.BTC-USDT"], defs.resolve_asset_graph(), {"t": "1"})
    assert {str(p.partition_key) for p in request.asset_graph_subset.iterate_asset_partitions()} == {"2026-10-08|binance.BTC-USDT"}

    add_backfill(instance, defs, "running", ["2026-10-08|binance.BTC-USDT"], {"k": "v"}, BulkActionStatus.REQUESTED)
    add_backfill(instance, defs, "done", ["2026-10-09|binance.BTC-USDT"], {}, BulkActionStatus.COMPLETED_SUCCESS)
    [running] = backfills_tagged(instance, {"k": "v"})
    assert backfill_state(running) == (True, False, "REQUESTED")
    instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED,
                                   asset_selection=frozenset({candles_key("1m")}),
                                   tags={RANGE_START_TAG: "2026-10-10|binance.BTC-USDT", RANGE_END_TAG: "2026-10-10|binance.LATE-USDT"}))
    instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.SUCCESS,
                                   asset_selection=frozenset({candles_key("1m")}), tags={"dagster/partition": "2026-10-11|binance.BTC-USDT"}))
    for tags in ({RANGE_START_TAG: "binance.BTC-USDT", RANGE_END_TAG: "binance.LATE-USDT"}, {"dagster/partition": "binance.ETH-USDT"}):
        # gap scans: a job's runs name no asset selection, and their keys are instruments, not candles partitions
        instance.add_run(dg.DagsterRun(job_name="scan_gaps_1m", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED, tags=tags))
    assert partitions_in_flight(instance, candles_key("1m"), asset.partitions_def) == {
        "2026-10-08|binance.BTC-USDT", "2026-10-10|binance.BTC-USDT", "2026-10-10|binance.ETH-USDT", "2026-10-10|binance.LATE-USDT"}


def test_a_check_evaluation_names_the_materialization_it_checked(simulator, universe, universe_file, warehouse_url, instance):
    sync_instrument_partitions(instance, universe)
    defs = build_definitions(str(universe_file), warehouse_url)
    key = "2026-10-08|binance.BTC-USDT"
    result = dg.materialize([defs.get_assets_def(candles_key("1m"))], partition_key=key, instance=instance, resources=defs.resources)
    [record] = latest_materializations(instance, candles_key("1m"), [key]).values()
    target = check_target(record)
    assert (target.storage_id, target.run_id) == (record.storage_id, result.run_id)
    evaluation = dg.AssetCheckEvaluation(asset_key=candles_key("1m"), check_name="completeness", passed=True, partition=key,
                                         target_materialization_data=target)
    assert evaluation.target_materialization_data.storage_id == record.storage_id


def test_a_ranged_run_gives_each_partition_its_own_metadata(simulator, universe, universe_file, warehouse_url, instance):
    """Each day of a ranged run is materialized with its own metadata, once."""
    sync_instrument_partitions(instance, universe)
    defs = build_definitions(str(universe_file), warehouse_url)
    days = [DOWNTIME_DAY + dt.timedelta(days=d) for d in (-1, 0, 1)]
    result = dg.materialize([defs.get_assets_def(candles_key("1m"))], instance=instance, resources=defs.resources, tags={
        RANGE_START_TAG: partition_key_string("binance.BTC-USDT", days[0]),
        RANGE_END_TAG: partition_key_string("binance.BTC-USDT", days[-1])})
    events = result.get_asset_materialization_events()
    new = {e.partition: e.materialization.metadata["candles_new"].value for e in events}
    assert len(events) == len(days)
    assert new == {partition_key_string("binance.BTC-USDT", d): n for d, n in zip(days, (1440, 1350, 1440))}


def test_failing_checks_ask_once_per_instrument_whether_it_is_registered(universe, instance, monkeypatch):
    sync_instrument_partitions(instance, universe)
    failed = [partition_key_string(key, dt.date(2026, 10, 1) + dt.timedelta(days=n))
              for key in ("binance.BTC-USDT", "binance.ETH-USDT") for n in range(15)]
    for partition in failed:
        instance.report_runless_asset_event(dg.AssetCheckEvaluation(
            asset_key=candles_key("1m"), check_name="completeness", passed=False, partition=partition))
    asked = []
    real = instance.has_dynamic_partition
    monkeypatch.setattr(instance, "has_dynamic_partition", lambda *args, **kwargs: asked.append(1) or real(*args, **kwargs))
    assert sorted(failing_checks(instance, universe, "1m")["completeness"]) == sorted(failed)
    assert len(asked) == 2  # once per instrument, not once per check record (30)


def test_failing_checks_resolve_check_records_as_dagsters_check_state_does(universe, universe_file, warehouse_url, instance,
                                                                         monkeypatch):
    """Failing = the latest evaluation of the latest materialization failed, or the run that planned
    the evaluation failed; a new materialization clears it; removed instruments drop out."""
    sync_instrument_partitions(instance, universe)
    instance.add_dynamic_partitions("instruments_1m", ["binance.FAKE-USDT", "binance.GONE-USDT"])
    day = dt.date(2026, 10, 1)
    a, b, c, gone = (partition_key_string(key, day + dt.timedelta(days=n)) for n, key in enumerate(
        ["binance.BTC-USDT", "binance.BTC-USDT", "binance.ETH-USDT", "binance.GONE-USDT"]))

    def evaluate(partition: str, passed: bool, check: str = "completeness"):
        instance.report_runless_asset_event(dg.AssetCheckEvaluation(asset_key=candles_key("1m"), check_name=check,
                                                                    passed=passed, partition=partition))

    for partition in (a, b, gone):
        evaluate(partition, passed=False)
    evaluate(a, passed=False, check="price_spikes")
    evaluate(c, passed=True)
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=candles_key("1m"), partition=b))  # not current any more
    instance.delete_dynamic_partition("instruments_1m", "binance.GONE-USDT")
    defs = build_definitions(str(universe_file), warehouse_url)
    planned = partition_key_string("binance.FAKE-USDT", day)  # registered, not in the universe: its run fails at once
    failed = dg.materialize([defs.get_assets_def(candles_key("1m"))], partition_key=planned, instance=instance,
                            resources=defs.resources, raise_on_error=False)
    assert not failed.success

    partitions = defs.get_assets_def(candles_key("1m")).partitions_def

    def dagsters() -> dict[str, list[str]]:
        keys = [(key, partitions) for key in defs.get_assets_def(candles_key("1m")).check_keys]
        with cached_partitions(instance):
            states = instance.event_log_storage.get_asset_check_state(keys)
        found = {key.name: sorted(k for status, subset in states[key].subsets.items()
                                  if status.value in ("FAILED", "EXECUTION_FAILED") for k in subset.subset_value.get_partition_keys())
                 for key, _ in keys}
        return {name: keys for name, keys in found.items() if keys}

    ours = failing_checks(instance, universe, "1m")
    assert ours["completeness"] == sorted([a, planned]) and ours["price_spikes"] == sorted([a, planned])
    assert ours == dagsters()

    # Read again after more records: only the new ones are read (the sensors' case), with the same answer.
    monkeypatch.setattr(dagster_internals, "RE_READ_IDS", 0)
    read = []
    real = instance.event_log_storage.get_asset_check_partition_info
    monkeypatch.setattr(instance.event_log_storage, "get_asset_check_partition_info",
                        lambda *args, **kwargs: (found := real(*args, **kwargs), read.extend(found))[0])
    d = partition_key_string("binance.ETH-USDT", day + dt.timedelta(days=5))
    evaluate(d, passed=False)
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=candles_key("1m"), partition=a))
    ours = failing_checks(instance, universe, "1m")
    assert {info.partition_key for info in read} == {a, d}  # the partitions that changed, nothing else
    assert ours == dagsters()
    assert ours["completeness"] == sorted([d, planned]) and ours["price_spikes"] == [planned]
    read.clear()
    assert failing_checks(instance, universe, "1m") == ours and read == []  # nothing written since: nothing read
    dagster_internals._CHECK_RECORDS.clear()
    assert failing_checks(instance, universe, "1m") == ours  # a full read agrees
