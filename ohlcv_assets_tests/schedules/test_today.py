"""The today schedule asks for each registered instrument's current day (and yesterday after midnight)."""

import datetime as dt

import dagster as dg

from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.partitions import sync_instrument_partitions
from ohlcv_assets.universe import parse_universe
from ohlcv_assets_tests.helpers import universe_yaml


def requests_at(when: dt.datetime, tmp_path, settlement_minutes: int = 60):
    text = universe_yaml("http://127.0.0.1:1").replace("retry_base_seconds: 0.05", f"retry_base_seconds: 0.05\n    settlement_minutes: {settlement_minutes}")
    (tmp_path / "u.yaml").write_text(text)
    universe = parse_universe((tmp_path / "u.yaml").read_text())
    defs = build_definitions(str(tmp_path / "u.yaml"), warehouse_url=f"sqlite:///{tmp_path}/w.db")
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        instance.delete_dynamic_partition("instruments_1m", "binance.LATE-USDT")
        schedule = defs.get_schedule_def("candles_1m_today")
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                       repository_def=defs.get_repository_def()) as context:
            return sorted(r.partition_key for r in schedule.evaluate_tick(context).run_requests)


def test_midday_requests_today_for_registered_instruments(tmp_path):
    keys = requests_at(dt.datetime(2026, 11, 23, 14, 10, tzinfo=dt.timezone.utc), tmp_path)
    assert keys == ["2026-11-23|binance.BTC-USDT", "2026-11-23|binance.ETH-USDT"]


def test_just_after_midnight_yesterday_is_completed_too(tmp_path):
    keys = requests_at(dt.datetime(2026, 11, 23, 0, 10, tzinfo=dt.timezone.utc), tmp_path)
    assert keys == ["2026-11-22|binance.BTC-USDT", "2026-11-22|binance.ETH-USDT",
                    "2026-11-23|binance.BTC-USDT", "2026-11-23|binance.ETH-USDT"]


def test_the_settlement_window_decides_how_long_yesterday_is_refreshed(tmp_path):
    keys = requests_at(dt.datetime(2026, 11, 23, 0, 10, tzinfo=dt.timezone.utc), tmp_path, settlement_minutes=5)
    assert keys == ["2026-11-23|binance.BTC-USDT", "2026-11-23|binance.ETH-USDT"]
    keys = requests_at(dt.datetime(2026, 11, 23, 1, 50, tzinfo=dt.timezone.utc), tmp_path, settlement_minutes=120)
    assert "2026-11-22|binance.BTC-USDT" in keys
