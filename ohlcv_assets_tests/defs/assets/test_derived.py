"""Derived intervals in real Dagster runs against the simulator, on SQLite and PostgreSQL: rolled up
in the warehouse exactly (against a roll-up done here and against the venue's own 1h), incomplete
buckets left out, and a re-fetched source day derived again through Dagster's lineage."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ohlcv_assets.core.intervals import HOUR_MS, MINUTE_MS, day_bounds_ms
from ohlcv_assets.core.names import candles_key, derived_key
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.defs.partitions import partition_key, sync_instrument_partitions
from ohlcv_assets.warehouse.read import load_candles
from ohlcv_assets.warehouse.store import NotInWarehouse, Warehouse
from ohlcv_assets_tests.helpers import PLAIN_DAY, materialize_day

BTC = "binance.BTC-USDT"
DERIVED_1H, DERIVED_4H = derived_key("1h", "1m"), derived_key("4h", "1m")


@pytest.fixture
def derived_defs(simulator, tmp_path, warehouse_url, instance):
    path = tmp_path / "universe.yaml"
    path.write_text(f"""
exchanges:
  binance:
    ccxt_id: binance
    api_url: {simulator.url}/api/v3
    timeout_seconds: 2
    weight_limit: 100000
    retry_base_seconds: 0.05
instruments:
  - {{exchange: binance, symbol: BTC/USDT, intervals: [1m, 1h], derived: {{1h: 1m, 4h: 1m}}, start: 2026-10-01}}
""")
    sync_instrument_partitions(instance, parse_universe(path.read_text(), str(path)))
    return build_definitions(str(path), warehouse_url)


def derive(defs, instance, key, day=PLAIN_DAY) -> dict:
    result = dg.materialize([defs.get_assets_def(key)], partition_key=partition_key(BTC, day), instance=instance,
                            resources=defs.resources)
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def roll_up_here(minutes: pd.DataFrame, step_ms: int) -> pd.DataFrame:
    """The test's own roll-up of every complete bucket (the warehouse's statement is not used)."""
    rows = []
    for start in range(int(minutes["open_time"].min()) // step_ms * step_ms, int(minutes["open_time"].max()) + 1, step_ms):
        bucket = minutes[(minutes["open_time"] >= start) & (minutes["open_time"] < start + step_ms)]
        if len(bucket) == step_ms // MINUTE_MS:
            rows.append({"open_time": start, "open": bucket["open"].iloc[0], "high": bucket["high"].max(),
                         "low": bucket["low"].min(), "close": bucket["close"].iloc[-1], "volume": bucket["volume"].sum()})
    return pd.DataFrame(rows)


def assert_same_candles(ours: pd.DataFrame, reference: pd.DataFrame):
    ours, reference = ours.reset_index(drop=True), reference.reset_index(drop=True)
    assert ours["open_time"].tolist() == reference["open_time"].tolist()
    for col in ("open", "high", "low", "close"):
        assert (ours[col].to_numpy() == reference[col].to_numpy()).all(), col
    assert np.allclose(ours["volume"], reference["volume"], rtol=1e-9, atol=0)


def test_derived_1h_and_4h_are_exact_against_a_roll_up_here_and_the_venues_1h(simulator, derived_defs, instance, warehouse_url):
    materialize_day(derived_defs, instance, "1m", BTC, PLAIN_DAY)
    derived_1h, derived_4h = derive(derived_defs, instance, DERIVED_1H), derive(derived_defs, instance, DERIVED_4H)
    assert derived_1h["derived_candles"] == derived_1h["expected_candles"] == 24 and derived_1h["incomplete_candles"] == 0
    assert derived_4h["derived_candles"] == 6 and "compared_with_venue" not in derived_4h  # no venue 4h fetched

    lo, hi = day_bounds_ms(PLAIN_DAY)
    wh = Warehouse(warehouse_url)
    minutes = load_candles("binance", "BTC/USDT", "1m", lo, hi, warehouse=wh)
    for interval, step in (("1h", HOUR_MS), ("4h", 4 * HOUR_MS)):
        ours = load_candles("binance", "BTC/USDT", interval, lo, hi, warehouse=wh, derived_from="1m")
        assert_same_candles(ours, roll_up_here(minutes, step))
    with pytest.raises(NotInWarehouse, match="derived from 5m"):
        load_candles("binance", "BTC/USDT", "1h", lo, hi, warehouse=wh, derived_from="5m")

    # the venue's own 1h (Binance protocol: its 1h is its 1m rolled up) equals the derived 1h, candle by candle
    metadata, result = materialize_day(derived_defs, instance, "1h", BTC, PLAIN_DAY)
    venue_1h = load_candles("binance", "BTC/USDT", "1h", lo, hi, warehouse=wh)
    assert_same_candles(load_candles("binance", "BTC/USDT", "1h", lo, hi, warehouse=wh, derived_from="1m"), venue_1h)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "consistent_with_1m"]
    assert check.passed and check.metadata["detail"].value == "24 candles compared with the 1h derived from 1m"
    again = derive(derived_defs, instance, DERIVED_1H)  # and from the derived side
    assert again["compared_with_venue"] == 24 and again["differing_from_venue"] == 0
    wh.dispose()


def test_a_derived_candle_with_a_source_candle_missing_is_absent_and_says_why(simulator, derived_defs, instance, warehouse_url):
    materialize_day(derived_defs, instance, "1m", BTC, PLAIN_DAY)
    lo, hi = day_bounds_ms(PLAIN_DAY)
    wh = Warehouse(warehouse_url)
    hole = lo + 5 * HOUR_MS + 17 * MINUTE_MS  # one minute of 05:00-06:00 (4h bucket 04:00-08:00)
    assert wh.delete_candles("binance", "BTC/USDT", "1m", hole, hole + MINUTE_MS) == 1
    derived_1h, derived_4h = derive(derived_defs, instance, DERIVED_1H), derive(derived_defs, instance, DERIVED_4H)
    assert derived_1h["derived_candles"] == 23 and derived_1h["incomplete_candles"] == 1
    assert derived_1h["incomplete"] == {"2026-10-08T05:00:00Z": {"stored": 59, "missing": 1, "classes": ["unscanned"]}}
    assert derived_4h["derived_candles"] == 5 and list(derived_4h["incomplete"]) == ["2026-10-08T04:00:00Z"]
    stored_1h = load_candles("binance", "BTC/USDT", "1h", lo, hi, warehouse=wh, derived_from="1m")
    assert lo + 5 * HOUR_MS not in stored_1h["open_time"].tolist() and len(stored_1h) == 23

    # every source candle of 10:00-11:00 gone (as retention drops them): its derived candle stays
    wh.delete_candles("binance", "BTC/USDT", "1m", lo + 10 * HOUR_MS, lo + 11 * HOUR_MS)
    again = derive(derived_defs, instance, DERIVED_1H)
    assert again["derived_candles"] == 22 and again["incomplete"]["2026-10-08T10:00:00Z"]["stored"] == 0
    kept = load_candles("binance", "BTC/USDT", "1h", lo, hi, warehouse=wh, derived_from="1m")
    assert kept.equals(stored_1h)
    wh.dispose()


def test_a_refetched_source_day_is_derived_again_through_its_lineage(simulator, derived_defs, instance, warehouse_url):
    materialize_day(derived_defs, instance, "1m", BTC, PLAIN_DAY)
    lo, hi = day_bounds_ms(PLAIN_DAY)
    wh = Warehouse(warehouse_url)
    hole = lo + 9 * HOUR_MS
    wh.delete_candles("binance", "BTC/USDT", "1m", hole, hole + 3 * MINUTE_MS)
    assert derive(derived_defs, instance, DERIVED_4H)["derived_candles"] == 5
    derive(derived_defs, instance, DERIVED_1H)
    selection = dg.AssetSelection.groups("derived")
    settled = dg.evaluate_automation_conditions(defs=derived_defs, instance=instance, asset_selection=selection)
    settled = dg.evaluate_automation_conditions(defs=derived_defs, instance=instance, asset_selection=selection,
                                                cursor=settled.cursor)
    assert settled.total_requested == 0  # derived after their source: nothing to do

    materialize_day(derived_defs, instance, "1m", BTC, PLAIN_DAY)  # the day fetched again: the hole is filled
    after = dg.evaluate_automation_conditions(defs=derived_defs, instance=instance, asset_selection=selection,
                                              cursor=settled.cursor)
    key = f"{PLAIN_DAY}|{BTC}"
    assert {str(k) for k in after.get_requested_partitions(DERIVED_1H)} == {key}
    assert {str(k) for k in after.get_requested_partitions(DERIVED_4H)} == {key}
    for asset_key in (DERIVED_1H, DERIVED_4H):  # what the automation sensor launches
        dg.materialize([derived_defs.get_assets_def(asset_key)], partition_key=key, instance=instance,
                       resources=derived_defs.resources)
    minutes = load_candles("binance", "BTC/USDT", "1m", lo, hi, warehouse=wh)
    assert len(minutes) == 1440
    assert_same_candles(load_candles("binance", "BTC/USDT", "4h", lo, hi, warehouse=wh, derived_from="1m"),
                        roll_up_here(minutes, 4 * HOUR_MS))
    wh.dispose()


@pytest.fixture
def polygon_defs(tmp_path, warehouse_url, instance, monkeypatch):
    """Polygon's regular session (its minutes without trades omitted, as the vendor does)."""
    from ohlcv_assets.simulator.server import ExchangeSimulator, SimulatorConfig
    from ohlcv_assets_tests.defs.assets.test_polygon_sessions import CONFIG, KEY, KEY_ENV

    sim = ExchangeSimulator(SimulatorConfig.from_mapping(CONFIG))
    sim.start()
    monkeypatch.setenv(KEY_ENV, KEY)
    path = tmp_path / "universe.yaml"
    path.write_text(f"""
exchanges:
  polygon: {{venue: polygon, api_url: "{sim.url}/polygon", api_key_env: {KEY_ENV}, timeout_seconds: 2, retry_base_seconds: 0.05,
             weight_limit: 100000, weight_window_seconds: 60}}
instruments:
  - {{exchange: polygon, symbol: AAPL, intervals: [1m, 1d], derived: {{1h: 1m, 1d: 1m}}, start: 2025-06-30}}
""")
    sync_instrument_partitions(instance, parse_universe(path.read_text(), str(path)))
    yield build_definitions(str(path), warehouse_url)
    sim.stop()


def test_an_equitys_derived_hours_follow_its_session_and_its_derived_day_is_not_the_vendors(polygon_defs, instance, warehouse_url):
    from ohlcv_assets_tests.defs.assets.test_polygon_sessions import PLAIN

    key = partition_key("polygon.AAPL", PLAIN)
    materialize_day(polygon_defs, instance, "1m", "polygon.AAPL", PLAIN)
    runs = {k: dg.materialize([polygon_defs.get_assets_def(k)], partition_key=key, instance=instance, resources=polygon_defs.resources)
            for k in (derived_key("1h", "1m"), derived_key("1d", "1m"))}
    hours, day = ({k: v.value for k, v in r.get_asset_materialization_events()[0].materialization.metadata.items()}
                  for r in runs.values())
    # 09:30-16:00 New York is 14:30-21:00 UTC in November: 14:00 holds 30 minutes, 15:00-20:00 sixty each; the
    # minutes without trades were confirmed empty at ingest, so every hour is complete
    assert hours["derived_candles"] == hours["expected_candles"] == 7 and hours["incomplete_candles"] == 0
    lo, hi = day_bounds_ms(PLAIN)
    wh = Warehouse(warehouse_url)
    minutes = load_candles("polygon", "AAPL", "1m", lo, hi, warehouse=wh)
    assert 0 < len(minutes) < 390  # some minutes had no trades
    bucket = minutes["open_time"] // HOUR_MS * HOUR_MS
    here = minutes.groupby(bucket).agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
                                       close=("close", "last"), volume=("volume", "sum")).rename_axis("open_time").reset_index()
    assert_same_candles(load_candles("polygon", "AAPL", "1h", lo, hi, warehouse=wh, derived_from="1m"), here)

    # the derived day is the UTC day's stored minutes rolled up; the vendor's daily bar (its official
    # figures: auction prices, all volume) is stored under the same 00:00 UTC but apart, and never compared
    assert day["derived_candles"] == 1 and "compared_with_venue" not in day
    _, vendor_run = materialize_day(polygon_defs, instance, "1d", "polygon.AAPL", PLAIN)
    ours = load_candles("polygon", "AAPL", "1d", lo, hi, warehouse=wh, derived_from="1m")
    vendors = load_candles("polygon", "AAPL", "1d", lo, hi, warehouse=wh)
    assert ours["open_time"].tolist() == vendors["open_time"].tolist() == [lo]
    assert ours["volume"].iloc[0] == pytest.approx(minutes["volume"].sum(), rel=1e-9)
    assert vendors["volume"].iloc[0] != pytest.approx(ours["volume"].iloc[0], rel=1e-6)  # not the same bar
    [check] = [e for e in vendor_run.get_asset_check_evaluations() if e.check_name == "consistent_with_1m"]
    assert check.passed and check.metadata["detail"].value.startswith("not compared: the venue's daily bars")
    wh.dispose()
