"""The instrument sensor keeps each interval's partitions equal to the universe."""

import dagster as dg

from ohlcv_assets.definitions import build_definitions
from ohlcv_assets_tests.helpers import universe_yaml


def definitions(text, tmp_path):
    path = tmp_path / f"u{abs(hash(text))}.yaml"
    path.write_text(text)
    return build_definitions(str(path), warehouse_url=f"sqlite:///{tmp_path}/w.db")


def evaluate(defs, instance):
    sensor = defs.get_sensor_def("instrument_partitions")
    with dg.build_sensor_context(instance=instance, definitions=defs) as context:
        result = sensor(context)
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def test_added_and_removed_instruments_follow_the_universe(tmp_path):
    text = universe_yaml("http://127.0.0.1:1")
    with dg.instance_for_test() as instance:
        first = evaluate(definitions(text, tmp_path), instance)
        assert isinstance(first, dg.SensorResult)
        assert sorted(instance.get_dynamic_partitions("instruments_1m")) == ["binance.BTC-USDT", "binance.ETH-USDT", "binance.LATE-USDT"]
        assert instance.get_dynamic_partitions("instruments_5m") == ["binance.ETH-USDT"]

        again = evaluate(definitions(text, tmp_path), instance)
        assert isinstance(again, dg.SkipReason)

        changed = text.replace("  - {exchange: binance, symbol: LATE/USDT, intervals: [1m], start: 2026-10-01}\n",
                               "  - {exchange: binance, symbol: SOL/USDT, intervals: [1m, 5m], start: 2026-10-01}\n")
        assert changed != text
        evaluate(definitions(changed, tmp_path), instance)
        assert sorted(instance.get_dynamic_partitions("instruments_1m")) == ["binance.BTC-USDT", "binance.ETH-USDT", "binance.SOL-USDT"]
        assert sorted(instance.get_dynamic_partitions("instruments_5m")) == ["binance.ETH-USDT", "binance.SOL-USDT"]


def test_derived_series_get_partitions_of_their_own_and_no_gap_scan(tmp_path):
    text = universe_yaml("http://127.0.0.1:1").replace(
        "intervals: [1m, 5m], start", "intervals: [1m, 5m], derived: {4h: 5m, 1h: 1m}, start")
    with dg.instance_for_test() as instance:
        first = evaluate(definitions(text, tmp_path), instance)
        assert instance.get_dynamic_partitions("instruments_4h_from_5m") == ["binance.ETH-USDT"]
        assert instance.get_dynamic_partitions("instruments_1h_from_1m") == ["binance.ETH-USDT"]
        assert instance.get_dynamic_partitions("instruments_1h") == ["binance.BTC-USDT"]  # the fetched 1h: BTC's only
        # a new instrument's history is backfilled by scanning its fetched intervals; a derived series follows them
        assert sorted(r.job_name for r in first.run_requests) == ["scan_gaps_1d", "scan_gaps_1h", "scan_gaps_1m", "scan_gaps_5m"]
