"""Gap scans run over a range of instruments in one run (a run process costs seconds of CPU, a scan
milliseconds), and each instrument still gets its own report, materialized once."""

import datetime as dt

import dagster as dg

from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.core.names import RANGE_END_TAG, RANGE_START_TAG, candles_key, gap_report_key, instruments_partitions_name
from ohlcv_assets.defs.partitions import partition_key, sync_instrument_partitions
from ohlcv_assets_tests.helpers import PLAIN_DAY


def test_one_scan_run_reports_every_instrument_of_its_range_once_with_its_own_figures(universe, universe_file, warehouse_url):
    defs = build_definitions(str(universe_file), warehouse_url)
    report, candles = defs.get_assets_def(gap_report_key("1m")), defs.get_assets_def(candles_key("1m"))
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        registered = instance.get_dynamic_partitions(instruments_partitions_name("1m"))
        assert len(registered) == 3
        dg.materialize([candles], partition_key=partition_key("binance.BTC-USDT", PLAIN_DAY), instance=instance,
                       resources=defs.resources)
        result = dg.materialize([report, candles], selection=[gap_report_key("1m")], instance=instance, resources=defs.resources,
                                tags={RANGE_START_TAG: registered[0], RANGE_END_TAG: registered[-1]})
        assert result.success
        events = [e.materialization for e in result.get_asset_materialization_events()]
        assert sorted(e.partition for e in events) == sorted(registered)  # each once: the step's output adds none
        stored = {e.partition: e.metadata["stored_candles"].value for e in events}
        assert stored == {"binance.BTC-USDT": 1440, "binance.ETH-USDT": 0, "binance.LATE-USDT": 0}
        assert instance.get_materialized_partitions(gap_report_key("1m")) == set(registered)


def test_new_instruments_are_scanned_in_one_run_per_interval(universe_file, tmp_path):
    defs = build_definitions(str(universe_file), f"sqlite:///{tmp_path}/w.db")
    sensor = defs.get_sensor_def("instrument_partitions")
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, definitions=defs) as context:
            result = sensor(context)
        by_job = {r.job_name: r for r in result.run_requests}
        assert sorted(by_job) == ["scan_gaps_1d", "scan_gaps_1h", "scan_gaps_1m", "scan_gaps_5m"]
        added = {r.partitions_def_name: r.partition_keys for r in result.dynamic_partitions_requests}
        one_minute = by_job["scan_gaps_1m"]
        assert (one_minute.tags[RANGE_START_TAG], one_minute.tags[RANGE_END_TAG]) == (added["instruments_1m"][0], added["instruments_1m"][-1])
        assert by_job["scan_gaps_5m"].partition_key == "binance.ETH-USDT"  # a single instrument: a plain partition
        # the range is resolved once the partitions are added: the registered order is the order added
        for name, keys in added.items():
            instance.add_dynamic_partitions(name, keys)
        assert instance.get_dynamic_partitions("instruments_1m") == added["instruments_1m"]


def test_the_daily_scan_is_one_run_per_interval_over_every_registered_instrument(universe, universe_file, tmp_path):
    defs = build_definitions(str(universe_file), f"sqlite:///{tmp_path}/w.db")
    schedule = defs.get_schedule_def("gap_scan_1m")
    when = dt.datetime(2026, 10, 9, 0, 30, tzinfo=dt.timezone.utc)
    with dg.instance_for_test() as instance:
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
            assert isinstance(schedule.evaluate_tick(context).skip_message, str)  # nothing registered yet
        sync_instrument_partitions(instance, universe)
        registered = instance.get_dynamic_partitions(instruments_partitions_name("1m"))
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
            [request] = schedule.evaluate_tick(context).run_requests
    assert request.job_name == "scan_gaps_1m" and request.run_key == "1m|2026-10-09"
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (registered[0], registered[-1])
