"""Real Dagster runs of the candles assets against the simulator over HTTP, on both warehouses."""

import datetime as dt

import dagster as dg
import pytest

from ohlcv_assets.ingest import days as ingest
from ohlcv_assets.defs.assets.candles import ProgressReporter
from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.exchange.ccxt_source import CcxtCandleSource
from ohlcv_assets.core.intervals import MINUTE_MS, day_bounds_ms, now_ms
from ohlcv_assets.defs.monitoring import health
from ohlcv_assets.core.names import MAX_PARTITIONS_PER_RUN, RANGE_END_TAG, RANGE_START_TAG, candles_key
from ohlcv_assets.defs.partitions import partition_key, sync_instrument_partitions
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.warehouse import delistings
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets_tests.helpers import DOWNTIME_DAY, PLAIN_DAY, ingest_day, merge_candles, simulator_candles, universe_yaml


def materialize(defs, instance, interval, instrument, day, raise_on_error=True):
    return dg.materialize(
        [defs.get_assets_def(candles_key(interval))],
        partition_key=partition_key(instrument, day),
        instance=instance,
        resources=defs.resources,
        raise_on_error=raise_on_error,
    )


def metadata(result) -> dict:
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def stored(warehouse_url, symbol, interval, day):
    wh = Warehouse(warehouse_url)
    try:
        return wh.read_candles("binance", symbol, interval, *day_bounds_ms(day))
    finally:
        wh.dispose()


@pytest.mark.parametrize("interval", ["1m", "1h", "1d"])
def test_a_materialized_day_is_exactly_the_simulators(simulator, defs, instance, warehouse_url, interval):
    result = materialize(defs, instance, interval, "binance.BTC-USDT", PLAIN_DAY)
    expected = simulator_candles(simulator, "BTC/USDT", interval, PLAIN_DAY, now_ms())
    assert stored(warehouse_url, "BTC/USDT", interval, PLAIN_DAY).equals(expected)
    meta = metadata(result)
    assert meta["candles_new"] == meta["expected_candles"] == len(expected)
    assert meta["missing_candles"] == 0 and meta["requests"] >= 1
    assert meta["first_open_time"] == f"{PLAIN_DAY}T00:00:00Z"
    assert meta["quality_completeness"] == meta["quality_validity"] == meta["quality_consistency"] == 1.0
    assert meta["quality_freshness"] == 0.0  # the instrument's latest candle is weeks old: nothing of today yet


def test_rematerializing_changes_nothing(simulator, defs, instance, warehouse_url):
    materialize(defs, instance, "1m", "binance.ETH-USDT", PLAIN_DAY)
    first = stored(warehouse_url, "ETH/USDT", "1m", PLAIN_DAY)
    meta = metadata(materialize(defs, instance, "1m", "binance.ETH-USDT", PLAIN_DAY))
    assert meta["candles_new"] == meta["candles_revised"] == 0 and meta["candles_fetched"] == meta["candles_unchanged"] == 1440
    assert stored(warehouse_url, "ETH/USDT", "1m", PLAIN_DAY).equals(first)


def test_downtime_is_missing_rows_not_an_error(simulator, defs, instance, warehouse_url):
    meta = metadata(materialize(defs, instance, "1m", "binance.BTC-USDT", DOWNTIME_DAY))
    assert (meta["expected_candles"], meta["candles_new"], meta["missing_candles"]) == (1440, 1350, 90)
    assert "not returned by the exchange" in meta["note"]
    assert len(stored(warehouse_url, "BTC/USDT", "1m", DOWNTIME_DAY)) == 1350


def test_a_day_before_listing_writes_nothing_and_says_why(simulator, defs, instance, warehouse_url):
    meta = metadata(materialize(defs, instance, "1m", "binance.LATE-USDT", dt.date(2026, 10, 11)))
    assert meta["candles_new"] == 0 and "before listing" in meta["note"] and "2026-10-12" in meta["note"]
    assert stored(warehouse_url, "LATE/USDT", "1m", dt.date(2026, 10, 11)).empty
    listed = metadata(materialize(defs, instance, "1m", "binance.LATE-USDT", dt.date(2026, 10, 12)))
    assert listed["candles_new"] == 1440


def test_a_day_before_the_configured_start_writes_nothing(simulator, defs, instance, warehouse_url, universe_file, universe):
    text = universe_file.read_text().replace("symbol: ETH/USDT, intervals: [1m, 5m], start: 2026-10-01",
                                             "symbol: ETH/USDT, intervals: [1m, 5m], start: 2026-10-05")
    defs = build_definitions(_write(universe_file, text), warehouse_url)
    result = dg.materialize([defs.get_assets_def(candles_key("1m"))], partition_key=partition_key("binance.ETH-USDT", dt.date(2026, 10, 2)),
                            instance=instance, resources=defs.resources)
    assert "configured start 2026-10-05" in metadata(result)["note"]


def _write(path, text):
    other = path.with_name("later.yaml")
    other.write_text(text)
    return str(other)


@pytest.mark.parametrize("fault", [
    {"kind": "rate_limit", "count": 3},
    {"kind": "status", "status": 502, "every": 2},
    {"kind": "truncated", "count": 2},
])
def test_injected_faults_are_retried_and_the_run_ends_exact(simulator, defs, instance, warehouse_url, fault):
    simulator.reconfigure({"faults": [fault]})
    meta = metadata(materialize(defs, instance, "1m", "binance.BTC-USDT", PLAIN_DAY))
    assert meta["retries"] >= 1
    assert stored(warehouse_url, "BTC/USDT", "1m", PLAIN_DAY).equals(
        simulator_candles(simulator, "BTC/USDT", "1m", PLAIN_DAY, now_ms()))
    assert simulator.stats["status.418"] == 0


def test_a_window_failing_after_its_retries_fails_the_run_and_writes_nothing(simulator, universe, universe_file, instance, tmp_path):
    warehouse_url = f"sqlite:///{tmp_path / 'w.db'}"
    sync_instrument_partitions(instance, universe)
    defs = build_definitions(str(universe_file), warehouse_url, dg.RetryPolicy(max_retries=1, delay=0.1))
    simulator.reconfigure({"faults": [{"kind": "status", "status": 503, "count": 10_000}]})
    result = materialize(defs, instance, "1h", "binance.BTC-USDT", PLAIN_DAY, raise_on_error=False)
    assert not result.success
    events = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" in events  # the step retry is Dagster's, visible in the UI
    assert stored(warehouse_url, "BTC/USDT", "1h", PLAIN_DAY).empty
    assert not result.get_asset_materialization_events()


def test_a_symbol_the_exchange_does_not_list_fails_clearly(simulator, instance, warehouse_url, tmp_path):
    path = tmp_path / "u.yaml"
    path.write_text(universe_yaml(simulator.url, "  - {exchange: binance, symbol: DOGE/USDT, intervals: [1h], start: 2026-10-01}"))
    universe = parse_universe(path.read_text())
    sync_instrument_partitions(instance, universe)
    defs = build_definitions(str(path), warehouse_url)
    result = materialize(defs, instance, "1h", "binance.DOGE-USDT", PLAIN_DAY, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "does not list 'DOGE/USDT'" in str(failure.event_specific_data.error)
    assert stored(warehouse_url, "DOGE/USDT", "1h", PLAIN_DAY).empty


def test_a_refused_binance_key_on_a_stored_instrument_fails_the_run_at_once_and_is_no_delisting(
        simulator, universe, universe_file, instance, warehouse_url):
    """Binance's 401 {"code": -2015}: before, ccxt's AuthenticationError on loading the markets was
    a "permanent" error, which the delisting probe took for an instrument gone from the venue."""
    sync_instrument_partitions(instance, universe)
    materialize(build_definitions(str(universe_file), warehouse_url), instance, "1h", "binance.BTC-USDT", PLAIN_DAY)
    simulator.reconfigure({"faults": [{"kind": "auth", "endpoint": "*", "every": 1}], "reset_stats": True})
    defs = build_definitions(str(universe_file), warehouse_url)  # markets loaded afresh, as in a new run process
    day = PLAIN_DAY + dt.timedelta(days=1)
    result = materialize(defs, instance, "1h", "binance.BTC-USDT", day, raise_on_error=False)
    assert not result.success
    events = [e.event_type_value for e in result.all_events]
    assert events.count("STEP_START") == 1 and "STEP_UP_FOR_RETRY" not in events
    [failure] = [e.step_failure_data for e in result.all_events if e.is_step_failure]
    assert failure.user_failure_data.description.startswith("binance: authentication failed: binance {\"code\":-2015,")
    assert simulator.stats["requests.exchangeInfo"] == 1 and simulator.stats["requests.klines"] == 0
    wh = Warehouse(warehouse_url)
    try:
        assert delistings.delisted(wh) == {}
        report = health(universe, wh, None, None)
    finally:
        wh.dispose()
    assert stored(warehouse_url, "BTC/USDT", "1h", day).empty and len(stored(warehouse_url, "BTC/USDT", "1h", PLAIN_DAY)) == 24
    assert report["exchange binance"].startswith("FAIL authentication failed: binance {\"code\":-2015,")


def test_a_broken_candle_fails_the_run_naming_it_and_nothing_is_written(simulator, defs, instance, warehouse_url):
    simulator.reconfigure({"faults": [{"kind": "corrupt", "every": 1}]})
    result = materialize(defs, instance, "1h", "binance.BTC-USDT", PLAIN_DAY, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.event_specific_data.error)
    assert "high is below open, close or low" in message and f"{PLAIN_DAY}T00:00:00Z" in message
    assert stored(warehouse_url, "BTC/USDT", "1h", PLAIN_DAY).empty


def test_the_forming_candle_is_never_stored_and_is_completed_once_closed(simulator, universe, warehouse):
    """Time is frozen in the simulator so the candle's life can be stepped through."""
    source = CcxtCandleSource("binance", universe.exchanges["binance"])
    instrument = universe.instrument("binance.BTC-USDT")
    forming = day_bounds_ms(PLAIN_DAY)[0] + 600 * MINUTE_MS
    simulator.reconfigure({"frozen_now_ms": forming + 30_000})
    report = ingest_day(source, warehouse, instrument, "1m", PLAIN_DAY, forming + 30_000)
    rows = warehouse.read_candles("binance", "BTC/USDT", "1m", *day_bounds_ms(PLAIN_DAY))
    assert report.written == 600 and rows["open_time"].max() == forming - MINUTE_MS
    simulator.reconfigure({"frozen_now_ms": forming + MINUTE_MS + 5_000})
    ingest_day(source, warehouse, instrument, "1m", PLAIN_DAY, forming + MINUTE_MS + 5_000)
    rows = warehouse.read_candles("binance", "BTC/USDT", "1m", *day_bounds_ms(PLAIN_DAY))
    expected = simulator_candles(simulator, "BTC/USDT", "1m", PLAIN_DAY, forming + MINUTE_MS + 5_000)
    assert rows["open_time"].max() == forming and rows.equals(expected)


def test_an_instrument_is_only_in_its_intervals_assets(universe, universe_file, warehouse_url, instance):
    sync_instrument_partitions(instance, universe)
    assert set(instance.get_dynamic_partitions("instruments_1m")) == {"binance.BTC-USDT", "binance.ETH-USDT", "binance.LATE-USDT"}
    assert instance.get_dynamic_partitions("instruments_5m") == ["binance.ETH-USDT"]
    assert instance.get_dynamic_partitions("instruments_1d") == ["binance.BTC-USDT"]
    defs = build_definitions(str(universe_file), warehouse_url)
    asset = defs.get_assets_def(candles_key("1m"))
    assert asset.backfill_policy == dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN)
    assert asset.op.retry_policy.max_retries >= 1


def test_a_failed_blocking_check_is_shown_and_keeps_features_away(simulator, universe, universe_file, warehouse_url, instance):
    sync_instrument_partitions(instance, universe)
    defs = build_definitions(str(universe_file), warehouse_url, dg.RetryPolicy(max_retries=1, delay=0.1))
    start = day_bounds_ms(PLAIN_DAY)[0]
    wh = Warehouse(warehouse_url)
    wh.migrate()
    misaligned = simulator_candles(simulator, "BTC/USDT", "1m", PLAIN_DAY, now_ms()).iloc[[3]].assign(open_time=start + 3 * 60_000 + 30_000)
    merge_candles(wh, "binance", "BTC/USDT", "1m", misaligned, start, start + 86_400_000, 1)  # e.g. a bad manual import
    wh.dispose()
    settled = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    result = materialize(defs, instance, "1m", "binance.BTC-USDT", PLAIN_DAY, raise_on_error=False)
    assert not result.success  # a blocking check failed
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["candles_valid"].passed
    assert f"{PLAIN_DAY}T00:03:30Z" in evaluations["candles_valid"].metadata["offending"].value
    assert evaluations["candles_valid"].metadata["detail"].value == "open_times_on_grid: 1 candle(s)"
    assert set(evaluations) == {"candles_valid", "completeness", "price_spikes", "sources_agree"}  # nothing finer than 1m
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=settled.cursor)
    assert not list(after.get_requested_partitions(dg.AssetKey(["candle_features", "1m"])))


def test_revised_candles_are_stored_corrected_and_counted(simulator, defs, instance, warehouse_url):
    simulator.reconfigure({"faults": [{"kind": "revise", "count": 3}]})  # listing query and both pages: volumes before late trades
    materialize(defs, instance, "1m", "binance.BTC-USDT", PLAIN_DAY)
    expected = simulator_candles(simulator, "BTC/USDT", "1m", PLAIN_DAY, now_ms())
    assert not stored(warehouse_url, "BTC/USDT", "1m", PLAIN_DAY).equals(expected)
    meta = metadata(materialize(defs, instance, "1m", "binance.BTC-USDT", PLAIN_DAY))
    assert meta["candles_revised"] == meta["candles_fetched"] == 1440 and meta["candles_new"] == 0
    assert 1.0 < meta["max_revision_pct"] < 1.1  # volumes were 1 % short
    assert stored(warehouse_url, "BTC/USDT", "1m", PLAIN_DAY).equals(expected)


def test_a_ranged_run_reports_its_progress(simulator, defs, instance, warehouse_url, monkeypatch):
    """A backfill range is one run; its progress (pages, %, ETA) is logged and observed as it goes."""
    monkeypatch.setattr(ProgressReporter, "every_seconds", 0.0)
    monkeypatch.setattr(ingest, "BATCH_CANDLES", 10_000)  # progress is told per batch written: 30 days are 5 batches
    first, last = dt.date(2026, 10, 1), dt.date(2026, 10, 30)
    result = dg.materialize([defs.get_assets_def(candles_key("1m"))], instance=instance, resources=defs.resources,
                            tags={RANGE_START_TAG: f"{first}|binance.BTC-USDT", RANGE_END_TAG: f"{last}|binance.BTC-USDT"})
    assert len(result.get_asset_materialization_events()) == 30
    observations = [e.asset_observation_data.asset_observation.metadata for e in result.all_events
                    if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION]
    assert len(observations) >= 2
    assert [o["pages_done"].value for o in observations] == sorted(o["pages_done"].value for o in observations)
    final = observations[-1]
    assert final["percent"].value == 100.0 and final["eta_seconds"].value == 0.0
    assert final["pages_done"].value == final["pages_total"].value == -(-30 * 1440 // 1000)
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("pages (" in message and "ETA" in message for message in logged)
    assert stored(warehouse_url, "BTC/USDT", "1m", last).equals(simulator_candles(simulator, "BTC/USDT", "1m", last, now_ms()))


def test_one_failing_instrument_does_not_stop_the_others_of_a_run(simulator, instance, warehouse_url, tmp_path):
    """A range over several instruments (as the today schedule asks for) with an unlisted symbol
    first: the others are still written, and the run fails naming the one that broke."""
    path = tmp_path / "u.yaml"
    text = universe_yaml(simulator.url).replace(
        "instruments:\n", "instruments:\n  - {exchange: binance, symbol: DOGE/USDT, intervals: [1m], start: 2026-10-01}\n")
    path.write_text(text)
    universe = parse_universe(text)
    sync_instrument_partitions(instance, universe)
    assert instance.get_dynamic_partitions("instruments_1m")[0] == "binance.DOGE-USDT"
    defs = build_definitions(str(path), warehouse_url)
    result = dg.materialize([defs.get_assets_def(candles_key("1m"))], instance=instance, resources=defs.resources,
                            tags={RANGE_START_TAG: f"{PLAIN_DAY}|binance.DOGE-USDT", RANGE_END_TAG: f"{PLAIN_DAY}|binance.LATE-USDT"},
                            raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.event_specific_data.error)
    assert "1 of 4 instrument(s) failed" in message and "does not list 'DOGE/USDT'" in message
    for symbol in ("BTC/USDT", "ETH/USDT"):
        assert stored(warehouse_url, symbol, "1m", PLAIN_DAY).equals(simulator_candles(simulator, symbol, "1m", PLAIN_DAY, now_ms()))
