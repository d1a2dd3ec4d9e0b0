"""A perpetual's mark, index and premium index klines as candles assets (``candles/mark_1h``,
``candles/idx_1h``, ``candles/prem_1h``...) and its funding settlements (``funding_rates``):
registered, materialized by real Dagster runs over HTTP against the simulator, checked, and
gap-scanned, exact on both warehouses; from Binance USDⓈ-M's own endpoints, and through ccxt's
unified methods for a generic ccxt venue."""

import datetime as dt
import hashlib
import io
import urllib.request
import zipfile

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ohlcv_assets.core.intervals import DAY_MS, HOUR_MS, day_bounds_ms, interval_ms, ms_to_iso, now_ms, utc_day
from ohlcv_assets.core.names import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    candles_key,
    funding_key,
    gap_report_key,
    instruments_partitions_name,
    open_interest_key,
)
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.defs.sensors.gap_backfill import gap_partitions
from ohlcv_assets.definitions import build_definitions
from ohlcv_assets.defs.partitions import partition_key, sync_instrument_partitions
from ohlcv_assets.core.gaps import EXCHANGE_DOWNTIME, FILLABLE
from ohlcv_assets.warehouse import gap_records, provenance
from ohlcv_assets.warehouse.schema import CONFIRMED_EMPTY, DETECTED, FILLED
from ohlcv_assets.ingest.open_interest import rest_horizon_ms
from ohlcv_assets.warehouse.funding import delete_funding, read_funding
from ohlcv_assets.warehouse.open_interest import read_open_interest
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets.simulator.market import FUNDING_CAP
from ohlcv_assets_tests.helpers import FUNDING_NEVER, PERP_SIMULATOR_CONFIG

FIRST, LAST = dt.date(2026, 10, 4), dt.date(2026, 10, 6)
SCALE = {"mark": 100, "index": 100, "premium": 10**8}  # the market's integer units per exchange unit
SERIES_OF = {"mark": "mark", "idx": "index", "prem": "premium"}


@pytest.fixture(scope="module")
def perp_sim(simulators):
    return simulators(PERP_SIMULATOR_CONFIG)


@pytest.fixture
def perp_setup(perp_sim, tmp_path, warehouse_url):
    perp_sim.reconfigure({"faults": [], "reset_stats": True, "venues": PERP_SIMULATOR_CONFIG["venues"]})
    url, common = perp_sim.url, "timeout_seconds: 2, retry_base_seconds: 0.05"
    path = tmp_path / "universe.yaml"
    path.write_text(f"""
exchanges:
  perps: {{ccxt_id: binanceusdm, api_url: "{url}/fapi/v1", {common}}}
  generic: {{venue: ccxt, ccxt_id: binanceusdm, api_urls: {{fapiPublic: "{url}/fapi/v1"}}, {common}}}
instruments:
  - {{exchange: perps, symbol: BTC/USDT:USDT, intervals: [1m, 1h], start: 2026-10-01, series: [mark, index, premium, funding]}}
  - {{exchange: perps, symbol: ETH/USDT:USDT, intervals: [1h], start: 2026-10-01, series: [funding]}}
  - {{exchange: generic, symbol: ETH/USDT:USDT, intervals: [1h], start: 2026-10-01, series: [mark, premium, funding]}}
""")
    universe = parse_universe(path.read_text(), str(path))
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        yield universe, build_definitions(str(path), warehouse_url), instance


def run_range(defs, instance, code: str, instrument: str, first: dt.date, last: dt.date) -> tuple[dict, dict]:
    """One ranged run of ``candles/<code>`` (``funding``: of ``funding_rates``); each day's
    materialization metadata and check evaluations."""
    return run_range_of(defs, instance, funding_key() if code == "funding" else candles_key(code), instrument, first, last)


def truth(sim, symbol: str, code: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The simulator's own series: what every stored candle must equal (volume 0: these series have none)."""
    series = SERIES_OF[code.split("_")[0]]
    step, now = interval_ms(code), now_ms()
    c = sim.market.candles(sim.config.symbols[symbol], step, day_bounds_ms(first)[0], day_bounds_ms(last)[1], now,
                           venue="binanceusdm", series=series)
    frame = pd.DataFrame({k: getattr(c, k) / SCALE[series] for k in ("open", "high", "low", "close")})
    frame.insert(0, "open_time", c.open_time)
    frame["volume"] = 0.0
    return frame


def stored(warehouse_url: str, exchange: str, symbol: str, code: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    wh = Warehouse(warehouse_url)
    try:
        return wh.read_candles(exchange, symbol, code, day_bounds_ms(first)[0], day_bounds_ms(last)[1])
    finally:
        wh.dispose()


def test_each_price_series_is_a_candles_asset_registered_for_its_instruments(perp_setup):
    universe, defs, instance = perp_setup
    for code in ("mark_1m", "mark_1h", "idx_1m", "idx_1h", "prem_1m", "prem_1h"):
        assert defs.get_assets_def(candles_key(code)) and defs.get_assets_def(gap_report_key(code))
    assert instance.get_dynamic_partitions(instruments_partitions_name("mark_1h")) == ["perps.BTC-USDT_USDT", "generic.ETH-USDT_USDT"]
    assert instance.get_dynamic_partitions(instruments_partitions_name("idx_1m")) == ["perps.BTC-USDT_USDT"]
    assert instance.get_dynamic_partitions(instruments_partitions_name("funding")) == [
        "perps.BTC-USDT_USDT", "perps.ETH-USDT_USDT", "generic.ETH-USDT_USDT"]
    assert defs.get_assets_def(funding_key())
    checks = {spec.name for spec in defs.get_assets_def(candles_key("prem_1h")).check_specs}
    assert checks == {"candles_valid", "completeness", "consistent_with_1m", "sources_agree",
                      "premium_vs_basis"}  # no log-return spikes across zero
    mark_checks = {spec.name for spec in defs.get_assets_def(candles_key("mark_1h")).check_specs}
    assert "price_spikes" in mark_checks and "mark_vs_last" in mark_checks and "premium_vs_basis" not in mark_checks
    assert not {"mark_vs_last", "premium_vs_basis"} & {spec.name for spec in defs.get_assets_def(candles_key("1h")).check_specs}


@pytest.mark.parametrize("code", ["mark_1m", "mark_1h", "idx_1h", "prem_1m", "prem_1h"])
def test_usdm_price_series_are_stored_exactly_from_their_endpoints(perp_sim, perp_setup, warehouse_url, code):
    _, defs, instance = perp_setup
    if code.endswith("_1h"):  # the 1h candles are checked against the same series' 1m
        run_range(defs, instance, code.replace("_1h", "_1m"), "perps.BTC-USDT_USDT", FIRST, LAST)
    meta, checks = run_range(defs, instance, code, "perps.BTC-USDT_USDT", FIRST, LAST)
    got, want = stored(warehouse_url, "perps", "BTC/USDT:USDT", code, FIRST, LAST), truth(perp_sim, "BTCUSDT", code, FIRST, LAST)
    assert len(want) == 3 * 86_400_000 // interval_ms(code)
    pd.testing.assert_frame_equal(got, want)
    assert all(m["candles_new"] == 86_400_000 // interval_ms(code) for m in meta.values())
    assert all(e.passed for day in checks.values() for e in day.values()), checks
    if code.endswith("_1h"):
        assert checks[FIRST]["consistent_with_1m"].metadata["detail"].value == "24 candles compared"
    if code.startswith("prem"):
        assert (got["close"] < 0).any() and (got["close"] > 0).any()  # stored with its sign, none refused
    endpoint = {"mark": "markPriceKlines", "idx": "indexPriceKlines", "prem": "premiumIndexKlines"}[code.split("_")[0]]
    assert perp_sim.stats[f"requests.fapi.{endpoint}"] >= 1 and perp_sim.stats["requests.fapi.klines"] == 0


@pytest.mark.parametrize("code", ["mark_1h", "prem_1h"])
def test_a_generic_ccxt_venue_takes_the_unified_methods_and_is_exact(perp_sim, perp_setup, warehouse_url, code):
    _, defs, instance = perp_setup
    _, checks = run_range(defs, instance, code, "generic.ETH-USDT_USDT", FIRST, LAST)
    pd.testing.assert_frame_equal(stored(warehouse_url, "generic", "ETH/USDT:USDT", code, FIRST, LAST),
                                  truth(perp_sim, "ETHUSDT", code, FIRST, LAST))
    assert all(e.passed for day in checks.values() for e in day.values())


def test_price_series_under_faults_are_exact(perp_sim, perp_setup, warehouse_url):
    _, defs, instance = perp_setup
    perp_sim.reconfigure({"faults": [{"kind": "status", "endpoint": "markPriceKlines", "every": 3},
                                     {"kind": "truncated", "endpoint": "markPriceKlines", "count": 1},
                                     {"kind": "rate_limit", "endpoint": "markPriceKlines", "count": 1, "seconds": 1}]})
    run_range(defs, instance, "mark_1m", "perps.BTC-USDT_USDT", FIRST, LAST)
    pd.testing.assert_frame_equal(stored(warehouse_url, "perps", "BTC/USDT:USDT", "mark_1m", FIRST, LAST),
                                  truth(perp_sim, "BTCUSDT", "mark_1m", FIRST, LAST))
    assert all(f.fired for f in perp_sim.config.faults)


def test_a_broken_premium_candle_fails_the_run_naming_it_and_nothing_is_written(perp_sim, perp_setup, warehouse_url):
    _, defs, instance = perp_setup
    perp_sim.reconfigure({"faults": [{"kind": "corrupt", "endpoint": "premiumIndexKlines", "every": 1}]})
    result = dg.materialize([defs.get_assets_def(candles_key("prem_1h"))], instance=instance, resources=defs.resources,
                            partition_key=partition_key("perps.BTC-USDT_USDT", FIRST), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.event_specific_data.error)
    assert "high is below open, close or low" in message and f"{FIRST}T00:00:00Z" in message
    assert stored(warehouse_url, "perps", "BTC/USDT:USDT", "prem_1h", FIRST, FIRST).empty


def test_a_missing_mark_candle_is_a_gap_the_scan_finds(perp_sim, perp_setup, warehouse_url):
    _, defs, instance = perp_setup
    run_range(defs, instance, "mark_1h", "perps.BTC-USDT_USDT", FIRST, LAST)
    hole = day_bounds_ms(dt.date(2026, 10, 5))[0] + 6 * HOUR_MS
    wh = Warehouse(warehouse_url)
    try:
        assert wh.delete_candles("perps", "BTC/USDT:USDT", "mark_1h", hole, hole + 2 * HOUR_MS) == 2
        report, candles = defs.get_assets_def(gap_report_key("mark_1h")), defs.get_assets_def(candles_key("mark_1h"))
        result = dg.materialize([report, candles], selection=[gap_report_key("mark_1h")], instance=instance,
                                resources=defs.resources, partition_key="perps.BTC-USDT_USDT")
        assert result.success
        open_gaps = [(r.start_ms, r.end_ms, r.reason) for r in gap_records.instrument_gaps(wh, "perps", "BTC/USDT:USDT", "mark_1h")
                     if r.status == "detected"]
        assert (hole, hole + 2 * HOUR_MS, "fillable") in open_gaps
        assert not gap_records.instrument_gaps(wh, "perps", "BTC/USDT:USDT", "1h")  # its own interval's records only
    finally:
        wh.dispose()


def funding_truth(sim, symbol: str, first: dt.date, last: dt.date, marks: bool = True) -> pd.DataFrame:
    events = sim.market.funding_events(sim.config.symbols[symbol], now_ms())
    keep = (events["nominal"] >= day_bounds_ms(first)[0]) & (events["nominal"] < day_bounds_ms(last)[1])
    return pd.DataFrame({"open_time": events["nominal"][keep], "raw_time": events["time"][keep],
                         "rate": events["rate"][keep] / 10**8,
                         "mark_price": events["mark"][keep] / 100 if marks else np.full(int(keep.sum()), np.nan)})


def stored_funding(warehouse_url: str, exchange: str, symbol: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    wh = Warehouse(warehouse_url)
    try:
        return read_funding(wh, exchange, symbol, day_bounds_ms(first)[0], day_bounds_ms(last)[1])
    finally:
        wh.dispose()


@pytest.mark.parametrize("symbol,counts,hours", [
    ("BTC", [3, 5, 6], ["8", "4, 8", "4"]),  # 8 h -> 4 h at 2026-10-05 08:00
    ("ETH", [24, 24, 3], ["1", "1", "8"]),  # a 1 h stretch from 2026-10-04 to 2026-10-06
])
def test_funding_settlements_are_stored_exactly_across_an_interval_change(perp_sim, perp_setup, warehouse_url, symbol, counts, hours):
    _, defs, instance = perp_setup
    meta, checks = run_range(defs, instance, "funding", f"perps.{symbol}-USDT_USDT", FIRST, LAST)
    got = stored_funding(warehouse_url, "perps", f"{symbol}/USDT:USDT", FIRST, LAST)
    pd.testing.assert_frame_equal(got, funding_truth(perp_sim, f"{symbol}USDT", FIRST, LAST))
    assert (got["open_time"] % HOUR_MS == 0).all() and (got["raw_time"] > got["open_time"]).any()  # keyed by the hour, ms kept
    days = sorted(meta)
    assert [meta[d]["settlements_stored"] for d in days] == counts == [meta[d]["settlements_expected"] for d in days]
    assert [meta[d]["funding_interval_hours"] for d in days] == hours
    assert all(day["funding_complete"].passed for day in checks.values())
    assert perp_sim.stats["requests.fapi.fundingRate"] >= 1 and perp_sim.stats["requests.fapi.fundingInfo"] == 1


def test_a_missing_settlement_is_a_gap_named_and_filled_by_the_next_run(perp_sim, perp_setup, warehouse_url):
    _, defs, instance = perp_setup
    perp_sim.reconfigure({"faults": [{"kind": "short", "endpoint": "fundingRate", "count": 1}]})  # a page with less than it has
    meta, checks = run_range(defs, instance, "funding", "perps.BTC-USDT_USDT", FIRST, LAST)
    assert meta[LAST]["settlements_missing"] == 6 and not checks[LAST]["funding_complete"].passed
    assert checks[LAST]["funding_complete"].metadata["missing"].value.startswith(f"{LAST}T00:00:00Z")
    meta, checks = run_range(defs, instance, "funding", "perps.BTC-USDT_USDT", FIRST, LAST)
    assert all(m["settlements_missing"] == 0 for m in meta.values()) and all(c["funding_complete"].passed for c in checks.values())
    pd.testing.assert_frame_equal(stored_funding(warehouse_url, "perps", "BTC/USDT:USDT", FIRST, LAST),
                                  funding_truth(perp_sim, "BTCUSDT", FIRST, LAST))


def test_funding_under_faults_is_exact(perp_sim, perp_setup, warehouse_url):
    _, defs, instance = perp_setup
    perp_sim.reconfigure({"faults": [{"kind": "status", "endpoint": "fundingRate", "count": 1},
                                     {"kind": "corrupt", "endpoint": "fundingRate", "count": 1},
                                     {"kind": "truncated", "endpoint": "fundingRate", "count": 1},
                                     {"kind": "rate_limit", "endpoint": "fundingRate", "count": 1, "seconds": 1}]})
    run_range(defs, instance, "funding", "perps.ETH-USDT_USDT", FIRST, LAST)
    pd.testing.assert_frame_equal(stored_funding(warehouse_url, "perps", "ETH/USDT:USDT", FIRST, LAST),
                                  funding_truth(perp_sim, "ETHUSDT", FIRST, LAST))
    assert all(f.fired for f in perp_sim.config.faults)


def test_a_generic_ccxt_venue_takes_funding_from_the_unified_method(perp_sim, perp_setup, warehouse_url):
    _, defs, instance = perp_setup
    meta, checks = run_range(defs, instance, "funding", "generic.ETH-USDT_USDT", FIRST, LAST)
    pd.testing.assert_frame_equal(stored_funding(warehouse_url, "generic", "ETH/USDT:USDT", FIRST, LAST),
                                  funding_truth(perp_sim, "ETHUSDT", FIRST, LAST, marks=False))  # ccxt's structure has none
    assert all(day["funding_complete"].passed for day in checks.values())
    assert perp_sim.stats["requests.fapi.fundingInfo"] == 0  # the generic venue publishes no interval: inferred


def scan_gaps(defs, instance, code: str, instrument: str) -> dict:
    """One ``gap_report/<code>`` run of the instrument (``funding``, ``oi_5m``); its report's metadata."""
    scanned = funding_key() if code == "funding" else open_interest_key()
    result = dg.materialize([defs.get_assets_def(gap_report_key(code)), defs.get_assets_def(scanned)],
                            selection=[gap_report_key(code)], instance=instance, resources=defs.resources,
                            partition_key=instrument)
    assert result.success
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


def test_a_missing_settlement_is_a_gap_record_scanned_classified_and_backfilled(perp_sim, perp_setup, warehouse_url):
    """Missing settlements on both sides of BTCUSDT's 8 h -> 4 h change are found by the gap scan as
    fillable records (one per run of consecutive settlements, counted in settlements), the one the
    venue never made is confirmed as downtime after asking twice; the gap backfill sensor asks for
    exactly the funding partitions of the fillable ones, and once they are stored the scan settles them."""
    _, defs, instance = perp_setup
    today = dt.datetime.now(dt.timezone.utc).date()
    run_range(defs, instance, "funding", "perps.BTC-USDT_USDT", dt.date(2026, 10, 1), today)
    ms = lambda d, h: day_bounds_ms(d)[0] + h * HOUR_MS  # noqa: E731
    deleted = [ms(dt.date(2026, 10, 5), 0), ms(dt.date(2026, 10, 6), 12), ms(dt.date(2026, 10, 6), 16)]  # 8 h side, 4 h side
    never = int(FUNDING_NEVER.timestamp() * 1000)
    wh = Warehouse(warehouse_url)
    try:
        assert sum(delete_funding(wh, "perps", "BTC/USDT:USDT", t, t + 1) for t in deleted) == 3
        meta = scan_gaps(defs, instance, "funding", "perps.BTC-USDT_USDT")
        records = {(r.start_ms, r.end_ms, r.reason, r.status, r.candles)
                   for r in gap_records.instrument_gaps(wh, "perps", "BTC/USDT:USDT", "funding")}
        assert records == {(deleted[0], deleted[0] + HOUR_MS, FILLABLE, DETECTED, 1),
                           (deleted[1], deleted[2] + HOUR_MS, FILLABLE, DETECTED, 2),  # consecutive on the 4 h grid: one gap
                           (never, never + HOUR_MS, EXCHANGE_DOWNTIME, CONFIRMED_EMPTY, 1)}
        assert meta["missing_fillable"] == 3 and meta["missing_exchange_downtime"] == 1
        assert meta["expected_candles"] == meta["stored_candles"] + 4
        assert perp_sim.stats["requests.fapi.fundingRate"] >= 3  # the confirmed one asked twice

        sensor = defs.get_sensor_def("gap_backfill_funding")
        with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources) as context:
            [request] = sensor(context).run_requests
        asked = {(key.to_user_string(), str(pk)) for key, pk in request.asset_graph_subset.iterate_asset_partitions()}
        assert asked == {("funding_rates", f"{d}|perps.BTC-USDT_USDT") for d in ("2026-10-05", "2026-10-06")}
        assert {r.status for r in gap_records.instrument_gaps(wh, "perps", "BTC/USDT:USDT", "funding")} == {
            "backfill_requested", CONFIRMED_EMPTY}

        # the backfill's runs (no daemon here), then the re-scan the sensor asks for after them
        for record in gap_records.in_flight(wh, "funding"):
            for partition in gap_partitions(record):
                assert dg.materialize([defs.get_assets_def(funding_key())], instance=instance, resources=defs.resources,
                                      partition_key=partition).success
        meta = scan_gaps(defs, instance, "funding", "perps.BTC-USDT_USDT")
        assert meta["missing_fillable"] == 0 and meta["missing_exchange_downtime"] == 1 and meta["new_gap_records"] == 0
        statuses = {(r.start_ms, r.status) for r in gap_records.instrument_gaps(wh, "perps", "BTC/USDT:USDT", "funding")}
        assert statuses == {(deleted[0], FILLED), (deleted[1], FILLED), (never, CONFIRMED_EMPTY)}
        pd.testing.assert_frame_equal(stored_funding(warehouse_url, "perps", "BTC/USDT:USDT", dt.date(2026, 10, 1), today),
                                      funding_truth(perp_sim, "BTCUSDT", dt.date(2026, 10, 1), today))
    finally:
        wh.dispose()
    # the confirmed settlement is no longer missing from its day
    meta, checks = run_range(defs, instance, "funding", "perps.BTC-USDT_USDT", FUNDING_NEVER.date(), FUNDING_NEVER.date())
    assert meta[FUNDING_NEVER.date()]["settlements_missing"] == 0 and checks[FUNDING_NEVER.date()]["funding_complete"].passed


@pytest.mark.parametrize("code", ["mark_1h", "idx_1h", "prem_1h"])
def test_price_series_come_from_their_archive_trees_verified_and_agree_with_rest(perp_sim, tmp_path, warehouse_url, code):
    """August 2026 from the series' monthly futures/um file, the range's edges from daily files,
    the rest from REST; a file failing its checksum and a holey one are holes REST fills. Exact
    against the simulator, and the same rows as an exchange without the archive stores from REST."""
    tree = {"mark": "markPriceKlines", "idx": "indexPriceKlines", "prem": "premiumIndexKlines"}[code.split("_")[0]]
    url, common = perp_sim.url, "timeout_seconds: 2, retry_base_seconds: 0.05"
    perp_sim.reconfigure({"faults": [], "reset_stats": True, "archive_faults": [
        {"kind": "bad_checksum", "file": f"{tree}/BTCUSDT/1h/BTCUSDT-1h-2026-07-30.zip"},
        {"kind": "holey", "file": f"{tree}/BTCUSDT/1h/BTCUSDT-1h-2026-09-01.zip"}]})
    path = tmp_path / "universe.yaml"
    path.write_text(f"""
exchanges:
  archived: {{ccxt_id: binanceusdm, api_url: "{url}/fapi/v1", {common}, archive: {{url: "{url}/archive/binance"}}}}
  rest: {{ccxt_id: binanceusdm, api_url: "{url}/fapi/v1", {common}}}
instruments:
  - {{exchange: archived, symbol: BTC/USDT:USDT, intervals: [1h], start: 2026-07-01, series: [mark, index, premium]}}
  - {{exchange: rest, symbol: BTC/USDT:USDT, intervals: [1h], start: 2026-07-01, series: [mark, index, premium]}}
""")
    universe = parse_universe(path.read_text(), str(path))
    first, last = dt.date(2026, 7, 30), dt.date(2026, 9, 2)
    try:
        with dg.instance_for_test() as instance:
            sync_instrument_partitions(instance, universe)
            defs = build_definitions(str(path), warehouse_url)
            meta, checks = run_range(defs, instance, code, "archived.BTC-USDT_USDT", first, last)
            run_range(defs, instance, code, "rest.BTC-USDT_USDT", first, last)
        got = stored(warehouse_url, "archived", "BTC/USDT:USDT", code, first, last)
        pd.testing.assert_frame_equal(got, truth(perp_sim, "BTCUSDT", code, first, last))
        pd.testing.assert_frame_equal(got, stored(warehouse_url, "rest", "BTC/USDT:USDT", code, first, last))
        name = "data/futures/um/{}/" + tree + "/BTCUSDT/1h/BTCUSDT-1h-{}.zip"
        assert {meta[dt.date(2026, 8, d)]["archive_file"] for d in (1, 31)} == {name.format("monthly", "2026-08")}
        assert meta[dt.date(2026, 7, 31)]["archive_file"] == name.format("daily", "2026-07-31")
        assert meta[first]["source"] == "rest" and meta[dt.date(2026, 9, 1)]["source"] == "rest"  # the bad files' days
        assert all(e.passed for day in checks.values() for e in day.values()), checks
        assert all(f.fired for f in perp_sim.config.archive_faults)
    finally:
        perp_sim.reconfigure({"archive_faults": []})


FUNDING_FILE = "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2026-10.zip"


@pytest.mark.parametrize("fault", [None, "bad_checksum", "holey", "malformed", "missing"])
def test_funding_comes_from_the_monthly_archive_across_an_interval_change_and_agrees_with_rest(perp_sim, tmp_path, warehouse_url, fault):
    """October 2026 (BTCUSDT's 8 h -> 4 h change on the 5th) from its verified monthly fundingRate
    file, the days around it from REST; the same settlements (times, rates) as an exchange without the
    archive stores from REST (the file has no mark prices). A file that fails its checksum, is not
    published, or has another width is a hole REST fills; a file lacking settlements has its days
    from REST too: exact either way."""
    url, common = perp_sim.url, "timeout_seconds: 2, retry_base_seconds: 0.05"
    perp_sim.reconfigure({"faults": [], "reset_stats": True,
                          "archive_faults": [{"kind": fault, "file": "fundingRate-2026-10"}] if fault else []})
    path = tmp_path / "universe.yaml"
    path.write_text(f"""
exchanges:
  archived: {{ccxt_id: binanceusdm, api_url: "{url}/fapi/v1", {common}, archive: {{url: "{url}/archive/binance"}}}}
  rest: {{ccxt_id: binanceusdm, api_url: "{url}/fapi/v1", {common}}}
instruments:
  - {{exchange: archived, symbol: BTC/USDT:USDT, intervals: [1h], start: 2026-09-01, series: [funding]}}
  - {{exchange: rest, symbol: BTC/USDT:USDT, intervals: [1h], start: 2026-09-01, series: [funding]}}
""")
    universe = parse_universe(path.read_text(), str(path))
    first, last = dt.date(2026, 9, 29), dt.date(2026, 11, 2)
    try:
        with dg.instance_for_test() as instance:
            sync_instrument_partitions(instance, universe)
            defs = build_definitions(str(path), warehouse_url)
            meta, checks = run_range(defs, instance, "funding", "archived.BTC-USDT_USDT", first, last)
            run_range(defs, instance, "funding", "rest.BTC-USDT_USDT", first, last)
        got = stored_funding(warehouse_url, "archived", "BTC/USDT:USDT", first, last)
        from_rest = stored_funding(warehouse_url, "rest", "BTC/USDT:USDT", first, last)
        want = funding_truth(perp_sim, "BTCUSDT", first, last)
        pd.testing.assert_frame_equal(from_rest, want)
        archived_days = {d for d, m in meta.items() if m["source"] == "archive"}
        in_file = np.isin(pd.to_datetime(want["open_time"], unit="ms").dt.date.to_numpy(), list(archived_days))
        want.loc[in_file, "mark_price"] = np.nan  # the archive's file holds no mark price
        pd.testing.assert_frame_equal(got, want)
        october = {dt.date(2026, 10, d) for d in range(1, 32)}
        if fault in (None, "holey"):
            assert {meta[d]["archive_file"] for d in october if d in archived_days} == {FUNDING_FILE}
            days = pd.to_datetime(want["open_time"], unit="ms").dt.date
            in_october = days[[d in october for d in days]].tolist()
            hole = set(in_october[len(in_october) // 2:len(in_october) // 2 + 3]) if fault == "holey" else set()
            # the days a file lacks expected settlements of come from REST too: the hole's, and the venue's own
            # missing settlement (not yet confirmed by a gap scan) on FUNDING_NEVER's day
            assert archived_days == october - hole - {FUNDING_NEVER.date()}
            assert "lacks 1 settlement(s)" in meta[FUNDING_NEVER.date()]["archive_note"]
        else:
            assert not archived_days and all("fundingRate-2026-10" in meta[d]["archive_note"] for d in october)
        assert meta[dt.date(2026, 10, 5)]["funding_interval_hours"] == "4, 8"
        assert [d for d, day in checks.items() if not day["funding_complete"].passed] == [FUNDING_NEVER.date()]
        assert all(f.fired for f in perp_sim.config.archive_faults)
        # provenance, as klines record it: each archive day names the file and its sha256, and every
        # settlement stored in it is a row of that very file; the other days (and the REST-only
        # exchange's) are REST's, with no file
        files = assert_provenance(perp_sim, warehouse_url, "archived", "funding", archived_days, first, last,
                                  lambda rows: (rows[0].astype("int64"), rows[2].astype("float64")), ("raw_time", "rate"))
        assert files == ({FUNDING_FILE} if archived_days else set())
        assert not assert_provenance(perp_sim, warehouse_url, "rest", "funding", set(), first, last)
    finally:
        perp_sim.reconfigure({"archive_faults": []})


def archive_file(sim, name: str) -> tuple[str, pd.DataFrame]:
    """The sha256 of an archive file as the simulator serves it, and the rows of its CSV (header or not)."""
    with urllib.request.urlopen(f"{sim.url}/archive/binance/{name}", timeout=10) as answer:
        data = answer.read()
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        [member] = zipped.namelist()
        text = zipped.read(member)
    return hashlib.sha256(data).hexdigest(), pd.read_csv(io.BytesIO(text), header=None, skiprows=int(text[:1].isalpha()))


def assert_provenance(sim, warehouse_url: str, exchange: str, code: str, archived_days: set, first: dt.date, last: dt.date,
                      rows_of=None, columns: tuple[str, ...] = ()) -> set[str]:
    """Asserts what ``day_sources`` and ``source_files`` hold of an event series' days (settlements,
    samples): an archived day the file and its sha256 (the served file's), with the day's rows, each
    one a row of the file (``rows_of`` the CSV's rows as ``columns``); any other day REST, without a
    file; each file once, with the rows of its days. Returns the files recorded."""
    wh = Warehouse(warehouse_url)
    try:
        sources = provenance.sources_of(wh, exchange, "BTC/USDT:USDT", code)
        files = provenance.files_of(wh, exchange, "BTC/USDT:USDT", code)
        table = {"funding": read_funding, "oi_5m": read_open_interest}[code]
        served: dict = {}
        for day in (first + dt.timedelta(days=d) for d in range((last - first).days + 1)):
            held = table(wh, exchange, "BTC/USDT:USDT", *day_bounds_ms(day))
            source = sources[day]
            assert source.candles == len(held) > 0, (day, source)
            if day not in archived_days:
                assert (source.source, source.file, source.sha256) == ("rest", None, None), (day, source)
                continue
            assert source.source == "archive" and source.file in files, (day, source)
            if source.file not in served:
                served[source.file] = archive_file(sim, source.file)
            sha, rows = served[source.file]
            assert source.sha256 == sha == files[source.file][0], (day, source)
            in_file = pd.DataFrame(dict(zip(columns, rows_of(rows))))
            traced = held[list(columns)].merge(in_file, how="left", on=columns[0], suffixes=("", "_file"))
            assert traced[f"{columns[1]}_file"].notna().all() and (traced[columns[1]] == traced[f"{columns[1]}_file"]).all(), day
        for file, (_, rows) in files.items():
            assert rows == sum(s.candles for s in sources.values() if s.file == file), file
        return set(files)
    finally:
        wh.dispose()


def test_mark_and_premium_are_checked_against_the_last_price_and_the_basis(perp_sim, perp_setup, warehouse_url):
    """With the trade candles, mark and index of the same interval stored, the mark is compared with
    the last price and the premium with (mark - index) / index, candle by candle (warnings)."""
    _, defs, instance = perp_setup
    for code in ("1h", "mark_1h", "idx_1h"):
        run_range(defs, instance, code, "perps.BTC-USDT_USDT", FIRST, LAST)
    _, marks = run_range(defs, instance, "mark_1h", "perps.BTC-USDT_USDT", FIRST, LAST)
    _, premiums = run_range(defs, instance, "prem_1h", "perps.BTC-USDT_USDT", FIRST, LAST)
    for checks, name, against in ((marks, "mark_vs_last", "the trade closes"), (premiums, "premium_vs_basis", "(mark - index) / index")):
        assert all(day[name].passed and day[name].metadata["detail"].value == f"24 candles compared with {against}"
                   for day in checks.values()), checks
    _, alone = run_range(defs, instance, "mark_1h", "generic.ETH-USDT_USDT", FIRST, FIRST)  # no trade candles 1h stored yet
    assert alone[FIRST]["mark_vs_last"].metadata["detail"].value.startswith("skipped")


def test_a_funding_rate_beyond_the_published_cap_is_reported_and_kept(perp_sim, perp_setup, warehouse_url):
    """fundingInfo publishes a cap and floor of 0.0001 for BTCUSDT: the settlements beyond them are
    named by funding_within_cap (a warning), and stored as the venue paid them."""
    _, defs, instance = perp_setup
    perp_sim.reconfigure({"venues": {"binanceusdm": {**PERP_SIMULATOR_CONFIG["venues"]["binanceusdm"], "funding_cap": 10_000}}})
    try:
        _, checks = run_range(defs, instance, "funding", "perps.BTC-USDT_USDT", FIRST, LAST)
    finally:  # the market's own cap again (venue settings are merged, not replaced)
        perp_sim.reconfigure({"venues": {"binanceusdm": {**PERP_SIMULATOR_CONFIG["venues"]["binanceusdm"], "funding_cap": FUNDING_CAP}}})
    want = funding_truth(perp_sim, "BTCUSDT", FIRST, LAST)
    pd.testing.assert_frame_equal(stored_funding(warehouse_url, "perps", "BTC/USDT:USDT", FIRST, LAST), want)
    beyond = want[want["rate"].abs() > 0.0001]
    assert 0 < len(beyond) < len(want)
    named = [t for day in checks.values() for t in (day["funding_within_cap"].metadata.get("outside").value.split(", ")
                                                     if "outside" in day["funding_within_cap"].metadata else [])]
    assert len(named) == len(beyond) and all(not checks[d]["funding_within_cap"].passed
                                             for d in {dt.datetime.utcfromtimestamp(t / 1000).date() for t in beyond["open_time"]})
    assert all(c["funding_within_cap"].severity == dg.AssetCheckSeverity.WARN for c in checks.values())
    _, eth = run_range(defs, instance, "funding", "perps.ETH-USDT_USDT", FIRST, FIRST)
    assert eth[FIRST]["funding_within_cap"].passed


def oi_truth(sim, symbol: str, lo: int, hi: int) -> pd.DataFrame:
    rows = sim.market.open_interest(sim.config.symbols[symbol], 300_000, lo, hi, now_ms())
    return pd.DataFrame({"open_time": rows["time"], "amount": rows["amount"] / 1000, "value": rows["value"] / 10**5})


def test_open_interest_is_stored_every_5_minutes_from_rest_and_the_metrics_archive_beyond_rests_30_days(perp_sim, tmp_path, warehouse_url):
    """Open interest of the 33 days before today: with the archive, exact from the daily metrics
    files for the days older than REST's 30 days and from openInterestHist for the rest; without it,
    the older samples are never asked for (no 400 from the venue) and are recorded as gaps
    beyond_history (unfillable), as Kraken's 720-candle horizon is; a generic ccxt venue takes ccxt's
    fetch_open_interest_history (its fapiData URL pointed at the simulator)."""
    url, common = perp_sim.url, "timeout_seconds: 2, retry_base_seconds: 0.05"
    perp_sim.reconfigure({"faults": [], "archive_faults": [], "reset_stats": True})
    today = utc_day(now_ms())
    first, last = today - dt.timedelta(days=33), today - dt.timedelta(days=1)
    path = tmp_path / "universe.yaml"
    path.write_text(f"""
exchanges:
  archived: {{ccxt_id: binanceusdm, api_url: "{url}/fapi/v1", {common}, archive: {{url: "{url}/archive/binance"}}}}
  rest: {{ccxt_id: binanceusdm, api_url: "{url}/fapi/v1", {common}}}
  generic: {{venue: ccxt, ccxt_id: binanceusdm, api_urls: {{fapiPublic: "{url}/fapi/v1", fapiData: "{url}/futures/data"}}, {common}}}
instruments:
  - {{exchange: archived, symbol: BTC/USDT:USDT, intervals: [1h], start: {first}, series: [open_interest]}}
  - {{exchange: rest, symbol: BTC/USDT:USDT, intervals: [1h], start: {first}, series: [open_interest]}}
  - {{exchange: generic, symbol: ETH/USDT:USDT, intervals: [1h], start: {first}, series: [open_interest]}}
""")
    universe = parse_universe(path.read_text(), str(path))
    lo, hi = day_bounds_ms(first)[0], day_bounds_ms(last)[1]
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        defs = build_definitions(str(path), warehouse_url)
        run = lambda inst, a, b: run_range_of(defs, instance, open_interest_key(), inst, a, b)  # noqa: E731
        archived, checks = run("archived.BTC-USDT_USDT", first, last)
        from_rest, rest_checks = run("rest.BTC-USDT_USDT", first, last)
        run("generic.ETH-USDT_USDT", last - dt.timedelta(days=2), last)
    wh = Warehouse(warehouse_url)
    try:
        pd.testing.assert_frame_equal(read_open_interest(wh, "archived", "BTC/USDT:USDT", lo, hi), oi_truth(perp_sim, "BTCUSDT", lo, hi))
        horizon = rest_horizon_ms(universe.exchanges["rest"].profile, now_ms())
        got = read_open_interest(wh, "rest", "BTC/USDT:USDT", lo, hi)
        assert got["open_time"].min() >= horizon - 10 * 60_000  # nothing older than the venue serves
        pd.testing.assert_frame_equal(got, oi_truth(perp_sim, "BTCUSDT", int(got["open_time"].min()), hi))
        glo = day_bounds_ms(last - dt.timedelta(days=2))[0]
        pd.testing.assert_frame_equal(read_open_interest(wh, "generic", "ETH/USDT:USDT", glo, hi), oi_truth(perp_sim, "ETHUSDT", glo, hi))
        beyond = [(r.reason, r.status) for r in gap_records.instrument_gaps(wh, "rest", "BTC/USDT:USDT", "oi_5m")]
        assert beyond and set(beyond) == {("beyond_history", "unfillable")}
        assert not gap_records.instrument_gaps(wh, "archived", "BTC/USDT:USDT", "oi_5m")
    finally:
        wh.dispose()
    assert archived[first]["source"] == "archive" and archived[first]["archive_file"] == (
        f"data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-{first}.zip") and archived[last]["source"] == "rest"
    # provenance, as klines record it: each day from a metrics file names it and its sha256, every stored sample a row
    # of it; the days REST served are REST's; the REST-only exchange's days beyond REST's reach have no source at all
    archived_days = {d for d, m in archived.items() if m["source"] == "archive"}
    metrics = lambda rows: (pd.to_datetime(rows[0]).astype("datetime64[ms]").astype("int64"), rows[2].astype("float64"))  # noqa: E731
    files = assert_provenance(perp_sim, warehouse_url, "archived", "oi_5m", archived_days, first, last, metrics, ("open_time", "amount"))
    assert files == {f"data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-{d}.zip" for d in archived_days} and len(files) >= 2
    rest_days = [d for d, m in from_rest.items() if m["samples_expected"]]
    assert not assert_provenance(perp_sim, warehouse_url, "rest", "oi_5m", set(), rest_days[0] + dt.timedelta(days=1), last)
    wh = Warehouse(warehouse_url)
    try:
        unserved = [d for d, m in from_rest.items() if not m["samples_expected"]]
        assert unserved and not set(unserved) & set(provenance.sources_of(wh, "rest", "BTC/USDT:USDT", "oi_5m"))
    finally:
        wh.dispose()
    assert archived[first]["samples_stored"] == 288 and from_rest[first]["samples_beyond_history"] == 288
    assert all(day["open_interest_complete"].passed for day in [*checks.values(), *rest_checks.values()])
    assert perp_sim.stats["status.400"] == 0 and perp_sim.stats["requests.fapi.data.openInterestHist"] >= 3


def run_range_of(defs, instance, key, instrument: str, first: dt.date, last: dt.date) -> tuple[dict, dict]:
    """One ranged run of an asset over instrument x day; each day's metadata and check evaluations."""
    result = dg.materialize([defs.get_assets_def(key)], instance=instance, resources=defs.resources,
                            tags={RANGE_START_TAG: f"{first}|{instrument}", RANGE_END_TAG: f"{last}|{instrument}"})
    assert result.success
    meta = {dt.date.fromisoformat(m.partition.split("|")[0]): {k: v.value for k, v in m.metadata.items()}
            for m in (ev.event_specific_data.materialization for ev in result.get_asset_materialization_events())}
    checks: dict = {}
    for evaluation in result.get_asset_check_evaluations():
        checks.setdefault(dt.date.fromisoformat(evaluation.partition.split("|")[0]), {})[evaluation.check_name] = evaluation
    return meta, checks


def oi_universe(tmp_path, url: str, first: dt.date) -> str:
    """A universe of one USDⓈ-M perpetual's open interest over REST only (no archive), and a
    generic ccxt venue's (ccxt's fetch_open_interest_history), both from ``first``."""
    common = "timeout_seconds: 2, retry_base_seconds: 0.05"
    path = tmp_path / "universe.yaml"
    path.write_text(f"""
exchanges:
  rest: {{ccxt_id: binanceusdm, api_url: "{url}/fapi/v1", {common}}}
  generic: {{venue: ccxt, ccxt_id: binanceusdm, api_urls: {{fapiPublic: "{url}/fapi/v1", fapiData: "{url}/futures/data"}}, {common}}}
instruments:
  - {{exchange: rest, symbol: BTC/USDT:USDT, intervals: [1h], start: {first}, series: [open_interest]}}
  - {{exchange: generic, symbol: ETH/USDT:USDT, intervals: [1h], start: {first}, series: [open_interest]}}
""")
    return str(path)


def test_a_missing_open_interest_stretch_is_a_gap_record_scanned_classified_and_backfilled(perp_sim, tmp_path, warehouse_url):
    """Open interest from 31 days ago over REST (30 days): a page the venue answered empty leaves a
    stretch missing, found by gap_report/oi_5m as fillable and backfilled by gap_backfill_oi_5m
    (the open_interest partitions of its days); a stretch the venue never had (its downtime) is
    exchange_downtime after asking twice, and its day's check passes once it is confirmed; what
    REST no longer serves is beyond_history (unfillable), as Kraken's 720-candle horizon is."""
    now = now_ms()
    today = utc_day(now)
    first, yesterday = today - dt.timedelta(days=31), today - dt.timedelta(days=1)
    down = (day_bounds_ms(yesterday)[0] + 5 * HOUR_MS, day_bounds_ms(yesterday)[0] + 5 * HOUR_MS + 30 * 60_000)
    perp_sim.reconfigure({"faults": [{"kind": "empty", "endpoint": "openInterestHist", "count": 1}], "archive_faults": [],
                          "reset_stats": True, "downtime": [{"start": ms_to_iso(down[0]), "end": ms_to_iso(down[1]),
                                                             "venue": "binanceusdm"}]})
    path = oi_universe(tmp_path, perp_sim.url, first)
    universe = parse_universe(open(path).read(), path)
    wh = Warehouse(warehouse_url)
    try:
        with dg.instance_for_test() as instance:
            sync_instrument_partitions(instance, universe)
            defs = build_definitions(path, warehouse_url)
            assert instance.get_dynamic_partitions(instruments_partitions_name("oi_5m")) == [
                "rest.BTC-USDT_USDT", "generic.ETH-USDT_USDT"]
            run_range_of(defs, instance, open_interest_key(), "rest.BTC-USDT_USDT", first, today)
            assert all(f.fired for f in perp_sim.config.faults)
            meta = scan_gaps(defs, instance, "oi_5m", "rest.BTC-USDT_USDT")
            records = gap_records.instrument_gaps(wh, "rest", "BTC/USDT:USDT", "oi_5m")
            open_ = [r for r in records if r.status not in (FILLED, "superseded")]
            by_reason = {r.reason: r for r in open_}
            assert sorted(by_reason) == sorted([EXCHANGE_DOWNTIME, FILLABLE, "beyond_history"]) and len(open_) == 3
            assert (by_reason[EXCHANGE_DOWNTIME].start_ms, by_reason[EXCHANGE_DOWNTIME].end_ms) == down
            assert by_reason[EXCHANGE_DOWNTIME].status == CONFIRMED_EMPTY and by_reason["beyond_history"].status == "unfillable"
            fillable = by_reason[FILLABLE]
            assert fillable.status == DETECTED and fillable.candles == 500  # the page answered empty
            assert by_reason["beyond_history"].start_ms == day_bounds_ms(first)[0]
            assert by_reason["beyond_history"].end_ms == rest_horizon_ms(universe.exchanges["rest"].profile, now_ms()) \
                or by_reason["beyond_history"].end_ms == rest_horizon_ms(universe.exchanges["rest"].profile, now)
            assert meta["missing_fillable"] == 500 and meta["missing_exchange_downtime"] == 6
            assert meta["missing_beyond_history"] == (by_reason["beyond_history"].end_ms - by_reason["beyond_history"].start_ms) // 300_000

            sensor = defs.get_sensor_def("gap_backfill_oi_5m")
            with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources) as context:
                [request] = sensor(context).run_requests
            asked = {(key.to_user_string(), str(pk)) for key, pk in request.asset_graph_subset.iterate_asset_partitions()}
            assert asked == {("open_interest", pk) for pk in gap_partitions(fillable)}
            for record in gap_records.in_flight(wh, "oi_5m"):  # the backfill's runs (no daemon here)
                for partition in gap_partitions(record):
                    assert dg.materialize([defs.get_assets_def(open_interest_key())], instance=instance,
                                          resources=defs.resources, partition_key=partition).success
            meta = scan_gaps(defs, instance, "oi_5m", "rest.BTC-USDT_USDT")
            assert meta["missing_fillable"] == 0 and meta["missing_exchange_downtime"] == 6 and meta["new_gap_records"] == 0
            assert {r.status for r in gap_records.instrument_gaps(wh, "rest", "BTC/USDT:USDT", "oi_5m")
                    if r.id == fillable.id} == {FILLED}
            lo, hi = fillable.start_ms, day_bounds_ms(yesterday)[1]  # from the horizon the run had
            pd.testing.assert_frame_equal(read_open_interest(wh, "rest", "BTC/USDT:USDT", lo, hi),
                                          oi_truth(perp_sim, "BTCUSDT", lo, hi))  # the downtime's samples exist nowhere
            _, checks = run_range_of(defs, instance, open_interest_key(), "rest.BTC-USDT_USDT", yesterday, yesterday)
            assert checks[yesterday]["open_interest_complete"].passed  # the confirmed downtime is not expected
    finally:
        wh.dispose()
        perp_sim.reconfigure({"faults": [], "downtime": []})


def test_a_generic_venue_asked_for_open_interest_older_than_it_serves_records_it_beyond_history(perp_sim, tmp_path, warehouse_url):
    """A generic ccxt venue states no open interest horizon; asked for 32 days, it refuses the older
    windows (a 400): the run finds the oldest time it serves (a few one-sample probes), records the
    days before as beyond_history (unfillable), stores the rest exactly and succeeds; its gap scan
    classifies the same range beyond_history without failing."""
    perp_sim.reconfigure({"faults": [], "archive_faults": [], "reset_stats": True})
    now = now_ms()
    today = utc_day(now)
    first, last = today - dt.timedelta(days=32), today - dt.timedelta(days=1)
    path = oi_universe(tmp_path, perp_sim.url, first)
    universe = parse_universe(open(path).read(), path)
    wh = Warehouse(warehouse_url)
    try:
        with dg.instance_for_test() as instance:
            sync_instrument_partitions(instance, universe)
            defs = build_definitions(path, warehouse_url)
            meta, checks = run_range_of(defs, instance, open_interest_key(), "generic.ETH-USDT_USDT", first, today)
            served = int(read_open_interest(wh, "generic", "ETH/USDT:USDT", 0, now)["open_time"].min())
            assert now - 30 * DAY_MS <= served <= now - 30 * DAY_MS + 10 * 60_000  # the oldest the venue serves
            hi = day_bounds_ms(last)[1]
            pd.testing.assert_frame_equal(read_open_interest(wh, "generic", "ETH/USDT:USDT", 0, hi), oi_truth(perp_sim, "ETHUSDT", served, hi))
            assert meta[first]["samples_beyond_history"] == 288 and meta[first]["samples_expected"] == 0
            assert meta[last]["samples_beyond_history"] == 0 and meta[last]["samples_stored"] == 288
            assert all(day["open_interest_complete"].passed for day in checks.values())
            records = gap_records.instrument_gaps(wh, "generic", "ETH/USDT:USDT", "oi_5m")
            assert records and {(r.reason, r.status) for r in records} == {("beyond_history", "unfillable")}
            assert min(r.start_ms for r in records) == day_bounds_ms(first)[0] and max(r.end_ms for r in records) == served
            assert 0 < perp_sim.stats["status.400"] <= 25  # the probes, not a request per day

            report = scan_gaps(defs, instance, "oi_5m", "generic.ETH-USDT_USDT")
            assert report["missing_fillable"] == 0 and report["missing_exchange_downtime"] == 0
            assert report["missing_beyond_history"] >= (served - day_bounds_ms(first)[0]) // 300_000
    finally:
        wh.dispose()


def test_open_interest_requests_keep_to_their_own_budget_which_the_simulator_enforces(perp_sim, tmp_path, warehouse_url):
    """Binance USDⓈ-M limits openInterestHist per IP by request count (1,000 per 5 minutes), apart
    from request weight: the simulator answers 429 over it. Scaled down to 6 requests per 3 s on both
    sides, a month of open interest (18 requests) is paced on that budget: no 429, exact."""
    perp_sim.reconfigure({"faults": [], "archive_faults": [], "reset_stats": True,
                          "venues": {"binanceusdm": {"data_limit": 6, "data_window_seconds": 3}}})
    try:
        now = now_ms()
        first, last = utc_day(now) - dt.timedelta(days=29), utc_day(now) - dt.timedelta(days=1)
        path = tmp_path / "universe.yaml"
        path.write_text(f"""
exchanges:
  rest: {{ccxt_id: binanceusdm, api_url: "{perp_sim.url}/fapi/v1", timeout_seconds: 2, retry_base_seconds: 0.05,
          open_interest_limit: 6, open_interest_window_seconds: 3}}
instruments:
  - {{exchange: rest, symbol: BTC/USDT:USDT, intervals: [1h], start: {first}, series: [open_interest]}}
""")
        universe = parse_universe(path.read_text(), str(path))
        assert parse_universe(path.read_text().replace("open_interest_limit: 6, open_interest_window_seconds: 3", ""),
                              str(path)).exchanges["rest"].open_interest_limit == 1000  # the venue's own, by default
        with dg.instance_for_test() as instance:
            sync_instrument_partitions(instance, universe)
            defs = build_definitions(str(path), warehouse_url)
            run_range_of(defs, instance, open_interest_key(), "rest.BTC-USDT_USDT", first, last)
        assert perp_sim.stats["requests.fapi.data.openInterestHist"] >= 17 and perp_sim.stats["status.429"] == 0
        wh = Warehouse(warehouse_url)
        try:
            lo, hi = day_bounds_ms(first)[0], day_bounds_ms(last)[1]
            got = read_open_interest(wh, "rest", "BTC/USDT:USDT", lo, hi)
            pd.testing.assert_frame_equal(got, oi_truth(perp_sim, "BTCUSDT", int(got["open_time"].min()), hi))
        finally:
            wh.dispose()
    finally:
        perp_sim.reconfigure({"venues": {"binanceusdm": {"data_limit": 1000, "data_window_seconds": 300}}})


def test_two_usdm_perpetuals_and_a_generic_venue_backfill_every_series_exactly_under_faults(perp_sim, tmp_path, warehouse_url):
    """The issue's "done when" over REST: two USDⓈ-M perpetuals (BTC across its 8 h -> 4 h funding
    change, ETH across 8 h -> 1 h -> 8 h) and a generic ccxt perpetual venue backfill every series
    they offer (trade candles, mark, index, premium, funding, open interest) through Dagster, each
    exact against the simulator's truth, with a 5xx, a 429 and a truncated page injected on every
    endpoint. (The archive side of each series is covered by the archive tests above.)"""
    endpoints = ["klines", "markPriceKlines", "indexPriceKlines", "premiumIndexKlines", "fundingRate", "openInterestHist"]
    perp_sim.reconfigure({"archive_faults": [], "reset_stats": True, "faults": [
        fault for endpoint in endpoints for fault in (
            {"kind": "status", "endpoint": endpoint, "count": 1}, {"kind": "truncated", "endpoint": endpoint, "count": 1},
            {"kind": "rate_limit", "endpoint": endpoint, "count": 1, "seconds": 1})]})
    url, common = perp_sim.url, "timeout_seconds: 2, retry_base_seconds: 0.05"
    now = now_ms()
    oi_first, oi_last = utc_day(now) - dt.timedelta(days=3), utc_day(now) - dt.timedelta(days=1)
    text = f"""
exchanges:
  perps: {{ccxt_id: binanceusdm, api_url: "{url}/fapi/v1", {common}}}
  generic: {{venue: ccxt, ccxt_id: binanceusdm, api_urls: {{fapiPublic: "{url}/fapi/v1", fapiData: "{url}/futures/data"}}, {common}}}
instruments:
  - {{exchange: perps, symbol: BTC/USDT:USDT, intervals: [1h], start: 2026-10-01, series: [mark, index, premium, funding, open_interest]}}
  - {{exchange: perps, symbol: ETH/USDT:USDT, intervals: [1h], start: 2026-10-01, series: [mark, index, premium, funding, open_interest]}}
  - {{exchange: generic, symbol: ETH/USDT:USDT, intervals: [1h], start: 2026-10-01, series: [mark, premium, funding, open_interest]}}
"""
    path = tmp_path / "universe.yaml"
    path.write_text(text)
    universe = parse_universe(text, str(path))
    wh = Warehouse(warehouse_url)
    try:
        with dg.instance_for_test() as instance:
            sync_instrument_partitions(instance, universe)
            defs = build_definitions(str(path), warehouse_url)
            for exchange, base, codes in [("perps", "BTC", ["1h", "mark_1h", "idx_1h", "prem_1h"]),
                                          ("perps", "ETH", ["1h", "mark_1h", "idx_1h", "prem_1h"]),
                                          ("generic", "ETH", ["1h", "mark_1h", "prem_1h"])]:
                instrument, symbol = f"{exchange}.{base}-USDT_USDT", f"{base}/USDT:USDT"
                for code in codes:
                    run_range_of(defs, instance, candles_key(code), instrument, FIRST, LAST)
                    want = (truth(perp_sim, f"{base}USDT", code, FIRST, LAST) if "_" in code else pd.DataFrame(
                        perp_sim.market.candles(perp_sim.config.symbols[f"{base}USDT"], HOUR_MS, day_bounds_ms(FIRST)[0],
                                                day_bounds_ms(LAST)[1], now_ms(), venue="binanceusdm").as_floats()))
                    pd.testing.assert_frame_equal(stored(warehouse_url, exchange, symbol, code, FIRST, LAST), want, check_dtype=False)
                run_range_of(defs, instance, funding_key(), instrument, FIRST, LAST)
                pd.testing.assert_frame_equal(stored_funding(warehouse_url, exchange, symbol, FIRST, LAST),
                                              funding_truth(perp_sim, f"{base}USDT", FIRST, LAST, marks=exchange == "perps"))
                run_range_of(defs, instance, open_interest_key(), instrument, oi_first, oi_last)
                lo, hi = day_bounds_ms(oi_first)[0], day_bounds_ms(oi_last)[1]
                pd.testing.assert_frame_equal(read_open_interest(wh, exchange, symbol, lo, hi), oi_truth(perp_sim, f"{base}USDT", lo, hi))
    finally:
        wh.dispose()
        fired = {(f.endpoint, f.kind) for f in perp_sim.config.faults if f.fired}
        perp_sim.reconfigure({"faults": []})
    assert fired == {(e, k) for e in endpoints for k in ("status", "truncated", "rate_limit")}


def test_funding_and_open_interest_are_kept_fresh_by_their_today_schedules(perp_sim, tmp_path, warehouse_url):
    """As candles are: each series' today schedule asks for one run over every registered
    instrument's current day; that run stores today's settlements and samples so far exactly; both
    assets carry a freshness policy."""
    perp_sim.reconfigure({"faults": [], "archive_faults": [], "reset_stats": True})
    today = utc_day(now_ms())
    path = tmp_path / "universe.yaml"
    path.write_text(f"""
exchanges:
  perps: {{ccxt_id: binanceusdm, api_url: "{perp_sim.url}/fapi/v1", timeout_seconds: 2, retry_base_seconds: 0.05}}
instruments:
  - {{exchange: perps, symbol: BTC/USDT:USDT, intervals: [1h], start: {today - dt.timedelta(days=2)}, series: [funding, open_interest]}}
  - {{exchange: perps, symbol: ETH/USDT:USDT, intervals: [1h], start: {today - dt.timedelta(days=2)}, series: [funding, open_interest]}}
""")
    universe = parse_universe(path.read_text(), str(path))
    lo, hi = day_bounds_ms(today)
    with dg.instance_for_test() as instance:
        sync_instrument_partitions(instance, universe)
        defs = build_definitions(str(path), warehouse_url)
        for key, schedule_name in ((funding_key(), "funding_rates_today"), (open_interest_key(), "open_interest_today")):
            asset = defs.get_assets_def(key)
            assert asset.specs_by_key[key].freshness_policy is not None
            with dg.build_schedule_context(instance=instance, scheduled_execution_time=dt.datetime.now(dt.timezone.utc),
                                           repository_def=defs.get_repository_def()) as context:
                requests = list(defs.get_schedule_def(schedule_name).evaluate_tick(context).run_requests)
            [request] = [r for r in requests if r.tags[RANGE_START_TAG].startswith(str(today))]
            assert request.asset_selection == [key]
            result = dg.materialize([asset], instance=instance, resources=defs.resources, tags=request.tags)
            assert result.success
            assert {str(e.materialization.partition) for e in result.get_asset_materialization_events()} == {
                f"{today}|perps.BTC-USDT_USDT", f"{today}|perps.ETH-USDT_USDT"}
    for symbol in ("BTC", "ETH"):
        funding = stored_funding(warehouse_url, "perps", f"{symbol}/USDT:USDT", today, today)
        truth_so_far = funding_truth(perp_sim, f"{symbol}USDT", today, today)  # now: at most one more than at the run
        assert len(truth_so_far) - 1 <= len(funding) <= len(truth_so_far)
        pd.testing.assert_frame_equal(funding, truth_so_far.iloc[:len(funding)].reset_index(drop=True))
        wh = Warehouse(warehouse_url)
        try:
            samples = read_open_interest(wh, "perps", f"{symbol}/USDT:USDT", lo, hi)
        finally:
            wh.dispose()
        served = oi_truth(perp_sim, f"{symbol}USDT", lo, hi)
        assert len(served) - 1 <= len(samples) <= len(served)
        pd.testing.assert_frame_equal(samples, served.iloc[:len(samples)].reset_index(drop=True))
