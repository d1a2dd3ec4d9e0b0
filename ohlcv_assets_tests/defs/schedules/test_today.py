"""The today schedule asks for one run per tick covering every registered instrument's current day
(and yesterday after midnight); more instruments than a run refreshes in time are cut into runs
side by side."""

import datetime as dt

import dagster as dg

from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.core.intervals import day_bounds_ms, now_ms
from ohlcv_assets.core.names import MAX_RUNTIME_TAG, RANGE_END_TAG, RANGE_START_TAG, REFRESH_TAG, candles_key
from ohlcv_assets.defs.partitions import sync_instrument_partitions
from ohlcv_assets.defs.schedules import today
from ohlcv_assets.defs.schedules.today import refresh_runs
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.helpers import simulator_candles, universe_yaml


def requests_at(when: dt.datetime, tmp_path, settlement_minutes: int = 60) -> list[tuple[str, str]]:
    """The (first, last) partition key of each run the schedule asks for."""
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
            requests = schedule.evaluate_tick(context).run_requests
    assert all(r.asset_selection == [candles_key("1m")] for r in requests)
    return sorted((r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests)


def test_midday_one_run_covers_today_for_every_registered_instrument(tmp_path):
    runs = requests_at(dt.datetime(2026, 11, 23, 14, 10, tzinfo=dt.timezone.utc), tmp_path)
    assert runs == [("2026-11-23|binance.BTC-USDT", "2026-11-23|binance.ETH-USDT")]


def test_instruments_beyond_a_runs_share_are_cut_into_contiguous_runs_side_by_side(tmp_path, monkeypatch):
    monkeypatch.setattr(today, "INSTRUMENTS_PER_REFRESH_RUN", 1)
    runs = requests_at(dt.datetime(2026, 11, 23, 14, 10, tzinfo=dt.timezone.utc), tmp_path)
    assert runs == [("2026-11-23|binance.BTC-USDT", "2026-11-23|binance.BTC-USDT"),
                    ("2026-11-23|binance.ETH-USDT", "2026-11-23|binance.ETH-USDT")]
    after_midnight = requests_at(dt.datetime(2026, 11, 23, 0, 10, tzinfo=dt.timezone.utc), tmp_path)
    assert after_midnight == [(f"{day}|binance.{s}-USDT", f"{day}|binance.{s}-USDT")
                              for day in ("2026-11-22", "2026-11-23") for s in ("BTC", "ETH")]


def test_refresh_runs_cover_every_instrument_once_in_order_and_evenly():
    keys = [f"binance.C{n:04d}-USDT" for n in range(1001)]
    assert refresh_runs(keys[:500], 500) == [keys[:500]]
    runs = refresh_runs(keys, 500)
    assert [len(r) for r in runs] == [334, 334, 333]
    assert sum(runs, []) == keys
    assert refresh_runs(keys[:3], 1) == [[k] for k in keys[:3]]


def test_just_after_midnight_yesterday_is_completed_too(tmp_path):
    runs = requests_at(dt.datetime(2026, 11, 23, 0, 10, tzinfo=dt.timezone.utc), tmp_path)
    assert runs == [("2026-11-22|binance.BTC-USDT", "2026-11-22|binance.ETH-USDT"),
                    ("2026-11-23|binance.BTC-USDT", "2026-11-23|binance.ETH-USDT")]


def test_the_settlement_window_decides_how_long_yesterday_is_refreshed(tmp_path):
    runs = requests_at(dt.datetime(2026, 11, 23, 0, 10, tzinfo=dt.timezone.utc), tmp_path, settlement_minutes=5)
    assert runs == [("2026-11-23|binance.BTC-USDT", "2026-11-23|binance.ETH-USDT")]
    runs = requests_at(dt.datetime(2026, 11, 23, 1, 50, tzinfo=dt.timezone.utc), tmp_path, settlement_minutes=120)
    assert ("2026-11-22|binance.BTC-USDT", "2026-11-22|binance.ETH-USDT") in runs


def test_a_tick_skips_while_the_intervals_previous_refresh_is_unfinished(tmp_path):
    """A refresh slower than the refresh interval must not pile runs up in the queue."""
    (tmp_path / "u.yaml").write_text(universe_yaml("http://127.0.0.1:1"))
    defs = build_definitions(str(tmp_path / "u.yaml"), warehouse_url=f"sqlite:///{tmp_path}/w.db")
    when = dt.datetime(2026, 11, 23, 14, 10, tzinfo=dt.timezone.utc)

    def tick(interval: str):
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                       repository_def=defs.get_repository_def()) as context:
            return defs.get_schedule_def(f"candles_{interval}_today").evaluate_tick(context)

    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, parse_universe((tmp_path / "u.yaml").read_text()))
        [request] = tick("1m").run_requests
        assert request.tags[REFRESH_TAG] == "1m" and int(request.tags[MAX_RUNTIME_TAG]) >= 15 * 60
        orphan = instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.NOT_STARTED, tags=request.tags))
        assert len(tick("1m").run_requests) == 1, orphan  # created, never launched (its launch failed): it blocks nothing
        for status in (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED):
            run = instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", status=status, tags=request.tags))
            result = tick("1m")
            assert not result.run_requests
            assert result.skip_message == f"the previous 1m refresh (run {run.run_id[:8]}) is still {status.value.lower()}"
            assert len(tick("5m").run_requests) == 1  # another interval's refresh does not wait for it
            instance.report_run_failed(run)
            assert len(tick("1m").run_requests) == 1  # ended: the next tick refreshes again


def test_after_midnight_yesterday_is_not_asked_for_when_every_instrument_starts_today(tmp_path):
    """Yesterday precedes the partitions then: asking for it failed the whole tick, so today was not refreshed either."""
    (tmp_path / "u.yaml").write_text(universe_yaml("http://127.0.0.1:1").replace("start: 2026-10-01", "start: 2026-11-23"))
    defs = build_definitions(str(tmp_path / "u.yaml"), warehouse_url=f"sqlite:///{tmp_path}/w.db")
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, parse_universe((tmp_path / "u.yaml").read_text()))
        for when, expected in ((dt.datetime(2026, 11, 23, 0, 10, tzinfo=dt.timezone.utc), ["2026-11-23"]),
                               (dt.datetime(2026, 11, 24, 0, 10, tzinfo=dt.timezone.utc), ["2026-11-23", "2026-11-24"]),
                               (dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc), [])):
            with dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                           repository_def=defs.get_repository_def()) as context:
                result = defs.get_schedule_def("candles_1m_today").evaluate_tick(context)
            assert sorted(r.tags[RANGE_START_TAG].split("|")[0] for r in result.run_requests) == expected
            assert expected or result.skip_message == "no 1m instrument has started yet (the first starts on 2026-11-23)"


def test_a_ranged_today_run_refreshes_every_instrument(simulator, defs, instance, warehouse_url):
    """The schedule's range request, executed: one run, every instrument's day stored exactly."""
    now = dt.datetime.now(dt.timezone.utc)
    schedule = defs.get_schedule_def("candles_1m_today")
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=now,
                                   repository_def=defs.get_repository_def()) as context:
        request = list(schedule.evaluate_tick(context).run_requests)[-1]
    result = dg.materialize([defs.get_assets_def(candles_key("1m"))], instance=instance, resources=defs.resources,
                            tags=request.tags)
    assert result.success
    written = {str(e.materialization.partition) for e in result.get_asset_materialization_events()}
    today = now.date().isoformat()
    assert written == {f"{today}|binance.BTC-USDT", f"{today}|binance.ETH-USDT", f"{today}|binance.LATE-USDT"}
    wh = Warehouse(warehouse_url)
    for symbol in ("BTC/USDT", "ETH/USDT", "LATE/USDT"):
        stored = wh.read_candles("binance", symbol, "1m", *day_bounds_ms(now.date()))
        assert len(stored) > 0
        expected = simulator_candles(simulator, symbol, "1m", now.date(), now_ms())
        assert stored.iloc[: len(expected)].equals(expected.iloc[: len(stored)])
    wh.dispose()
