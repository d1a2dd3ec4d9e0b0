"""Retention through Dagster on both warehouses: whole spans dropped only when their aggregates
are stored and agree, refused (and told why) otherwise, and the dropped range is `retired`, not a gap."""

import datetime as dt
import json
import os
import subprocess
import sys

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa

from ohlcv_assets.defs.assets.maintenance import build_retention_asset
from ohlcv_assets.exchange.ccxt_source import CcxtCandleSource
from ohlcv_assets.quality.gap_scan import scan
from ohlcv_assets.core.gaps import FILLABLE, RETIRED
from ohlcv_assets.core.intervals import DAY_MS, HOUR_MS, MINUTE_MS, day_bounds_ms, ms_to_iso, now_ms
from ohlcv_assets.quality.checks import aggregate
from ohlcv_assets.defs.resources import WarehouseResource
from ohlcv_assets.core.universe import parse_universe
from ohlcv_assets.warehouse import gap_records
from ohlcv_assets.warehouse.schema import candle_features, candles, retired_ranges
from ohlcv_assets.warehouse.merge import value_columns
from ohlcv_assets_tests.helpers import ingest_day, merge_candles, universe_yaml

TODAY = dt.datetime.now(dt.timezone.utc).date()
THIS_MONTH = TODAY.replace(day=1)
LAST_MONTH = (THIS_MONTH - dt.timedelta(days=1)).replace(day=1)
MONTH_BEFORE = (LAST_MONTH - dt.timedelta(days=1)).replace(day=1)
KEEP_DAYS = (TODAY - THIS_MONTH).days  # the cutoff is the first of this month: last month has expired


def _universe(simulator, retention: str, start: dt.date = MONTH_BEFORE):
    text = universe_yaml(simulator.url).replace("start: 2026-10-01", f"start: {start}") + retention
    return parse_universe(text)


def _minutes(day: dt.date, hours: int = 3) -> pd.DataFrame:
    start = day_bounds_ms(day)[0]
    n = hours * 60
    close = 100 + np.cumsum(np.sin(np.arange(n))) * 0.1
    return pd.DataFrame({"open_time": start + np.arange(n, dtype=np.int64) * MINUTE_MS, "open": close - 0.05,
                         "high": close + 0.2, "low": close - 0.2, "close": close, "volume": 1 + np.arange(n) * 0.5})


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"open_time": frame["open_time"]})
    for column in value_columns(candle_features):
        out[column] = 0 if column == "gap_candles" else (True if column == "warmed_up" else 1.5)
    return out


def _rollup(minutes: pd.DataFrame, step: int) -> pd.DataFrame:
    """Coarser candles of whatever minutes there are (a day of 3 stored hours still has its 1d candle)."""
    grouped = minutes.groupby(minutes["open_time"] // step * step)
    return pd.DataFrame({"open_time": grouped["open_time"].first().index, "open": grouped["open"].first().to_numpy(),
                         "high": grouped["high"].max().to_numpy(), "low": grouped["low"].min().to_numpy(),
                         "close": grouped["close"].last().to_numpy(), "volume": grouped["volume"].sum().to_numpy()})


def _store(warehouse, symbol: str, day: dt.date, with_hours: bool = True) -> pd.DataFrame:
    minutes = _minutes(day)
    bounds = day_bounds_ms(day)
    merge_candles(warehouse, "binance", symbol, "1m", minutes, *bounds, 1)
    warehouse.merge_partition(candle_features, "binance", symbol, "1m", _features(minutes), *bounds, 1)
    if with_hours:
        merge_candles(warehouse, "binance", symbol, "1h", _rollup(minutes, HOUR_MS), *bounds, 1)
        merge_candles(warehouse, "binance", symbol, "1d", _rollup(minutes, DAY_MS), *bounds, 1)
    return minutes


def _count(warehouse, table, symbol: str, interval: str, start: dt.date, end: dt.date) -> int:
    lo, hi = day_bounds_ms(start)[0], day_bounds_ms(end)[0]
    with warehouse.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(
            table.c.symbol == symbol, table.c.timeframe == interval, table.c.open_time >= lo, table.c.open_time < hi)).scalar()


def _retain(universe, warehouse_url) -> dg.AssetMaterialization:
    result = dg.materialize([build_retention_asset(universe)], resources={"warehouse": WarehouseResource(url=warehouse_url)})
    assert result.success
    (materialization,) = result.asset_materializations_for_node("candle_retention")
    return materialization


def test_retention_drops_whole_expired_spans_only_when_their_aggregates_are_stored(simulator, warehouse, warehouse_url):
    universe = _universe(simulator, "retention: {1m: {keep_days: %d}}\n" % KEEP_DAYS)
    _store(warehouse, "BTC/USDT", LAST_MONTH + dt.timedelta(days=3))
    _store(warehouse, "BTC/USDT", MONTH_BEFORE + dt.timedelta(days=5))
    _store(warehouse, "ETH/USDT", LAST_MONTH + dt.timedelta(days=4), with_hours=False)  # its 5m aggregates are missing
    _store(warehouse, "BTC/USDT", THIS_MONTH if TODAY > THIS_MONTH else TODAY)  # not expired

    first = _retain(universe, warehouse.url)
    meta = first.metadata
    # The month before last holds only BTC, whose 1h and 1d are stored; last month also holds ETH without its 5m.
    assert meta["spans_dropped"].value == 1 and meta["spans_refused"].value == 1, meta["outcomes"].value
    assert "binance ETH/USDT: 36 5m candles missing" in meta["outcomes"].value
    assert _count(warehouse, candles, "BTC/USDT", "1m", MONTH_BEFORE, LAST_MONTH) == 0
    assert _count(warehouse, candle_features, "BTC/USDT", "1m", MONTH_BEFORE, LAST_MONTH) == 0
    assert _count(warehouse, candles, "BTC/USDT", "1h", MONTH_BEFORE, LAST_MONTH) == 3  # aggregates are kept
    assert _count(warehouse, candles, "BTC/USDT", "1m", LAST_MONTH, THIS_MONTH) == 180  # refused: kept whole
    assert _count(warehouse, candles, "BTC/USDT", "1m", THIS_MONTH, TODAY + dt.timedelta(days=1)) == 180

    eth = _minutes(LAST_MONTH + dt.timedelta(days=4))
    five = aggregate(eth, 5 * MINUTE_MS, MINUTE_MS)
    five.loc[7, "high"] += 1.0  # stored, but one 5m candle disagrees with its minutes
    merge_candles(warehouse, "binance", "ETH/USDT", "5m", five, *day_bounds_ms(LAST_MONTH + dt.timedelta(days=4)), 1)
    second = _retain(universe, warehouse.url).metadata
    assert second["spans_dropped"].value == 0 and "1 5m candles differ" in second["outcomes"].value
    assert _count(warehouse, candles, "ETH/USDT", "1m", LAST_MONTH, THIS_MONTH) == 180

    five.loc[7, "high"] -= 1.0
    merge_candles(warehouse, "binance", "ETH/USDT", "5m", five, *day_bounds_ms(LAST_MONTH + dt.timedelta(days=4)), 2)
    third = _retain(universe, warehouse.url).metadata
    assert (third["spans_dropped"].value, third["spans_refused"].value, third["candles_dropped"].value) == (1, 0, 360)
    assert _count(warehouse, candles, "ETH/USDT", "1m", LAST_MONTH, THIS_MONTH) == 0
    assert _count(warehouse, candles, "BTC/USDT", "1m", THIS_MONTH, TODAY + dt.timedelta(days=1)) == 180
    with warehouse.engine.connect() as conn:
        retired = conn.execute(sa.select(retired_ranges.c.symbol, retired_ranges.c.start_ms, retired_ranges.c.candles)
                               .order_by(retired_ranges.c.start_ms, retired_ranges.c.symbol)).all()
        detail = conn.execute(sa.select(retired_ranges.c.detail)).scalars().first()
        if warehouse.is_postgres:
            tables = set(conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'candle%_1m_%'")).scalars())
            month = f"{LAST_MONTH.year}_{LAST_MONTH.month:02d}"
            assert f"candles_1m_{month}" not in tables and f"candle_features_1m_{month}" not in tables
            assert f"candles_1m_{THIS_MONTH.year}_{THIS_MONTH.month:02d}" in tables
    assert retired == [("BTC/USDT", day_bounds_ms(MONTH_BEFORE)[0], 180), ("BTC/USDT", day_bounds_ms(LAST_MONTH)[0], 180),
                       ("ETH/USDT", day_bounds_ms(LAST_MONTH)[0], 180)]
    assert detail.startswith("dropped partition" if warehouse.is_postgres else "deleted rows")
    last = _retain(universe, warehouse.url).metadata
    assert last["spans_dropped"].value == 0  # nothing left to drop
    if warehouse.is_postgres:  # the first run created the partitions the next weeks need; none was missing since
        ahead = first.metadata["partitions_created_ahead"].value
        next_month = (THIS_MONTH + dt.timedelta(days=32)).replace(day=1)
        if (TODAY + dt.timedelta(days=35)) >= next_month:
            assert f"candles_1m_{next_month.year}_{next_month.month:02d}" in ahead, ahead
        assert last["partitions_created_ahead"].value == "none needed"


def test_an_instrument_without_coarser_intervals_is_never_dropped_unless_told(simulator, warehouse):
    universe = _universe(simulator, "retention: {1m: {keep_days: %d}}\n" % KEEP_DAYS)
    _store(warehouse, "LATE/USDT", LAST_MONTH, with_hours=False)
    meta = _retain(universe, warehouse.url).metadata
    assert meta["spans_dropped"].value == 0
    assert "LATE/USDT has no coarser interval to keep its aggregates" in meta["outcomes"].value
    told = _universe(simulator, "retention: {1m: {keep_days: %d, requires: []}}\n" % KEEP_DAYS)
    assert _retain(told, warehouse.url).metadata["candles_dropped"].value == 180


def test_a_retired_range_is_reported_retired_not_missing(simulator, warehouse):
    start = LAST_MONTH + dt.timedelta(days=20)
    universe = _universe(simulator, "retention: {1m: {keep_days: %d}}\n" % KEEP_DAYS, start=start)
    instrument = universe.instrument("binance.BTC-USDT")
    source = CcxtCandleSource("binance", universe.exchanges["binance"])
    now = now_ms()
    for day in (start, start + dt.timedelta(days=1)):
        ingest_day(source, warehouse, instrument, "1m", day, now)
        ingest_day(source, warehouse, instrument, "1h", day, now)
        ingest_day(source, warehouse, instrument, "1d", day, now)
    assert _retain(universe, warehouse.url).metadata["candles_dropped"].value == 2 * 1440

    result = scan(source, warehouse, instrument, "1m", now, universe.refresh_minutes)
    month_end = day_bounds_ms(THIS_MONTH)[0]
    retired = [(g.start_ms, g.end_ms) for g in result.gaps if g.reason == RETIRED]
    assert retired == [(day_bounds_ms(start)[0], month_end)]
    assert all(g.start_ms >= month_end for g in result.gaps if g.reason == FILLABLE)
    records = gap_records.instrument_gaps(warehouse, "binance", "BTC/USDT", "1m")
    assert [(r.reason, r.status) for r in records if r.reason == RETIRED] == [(RETIRED, "unfillable")]


def test_status_shows_retired_ranges_and_counts_no_retired_day_as_a_source(simulator, warehouse, tmp_path):
    """`ohlcv-status` (the installed command, reading this warehouse): the dropped month is listed
    as retired, and its days leave `day_sources`; the kept day still counts."""
    start = LAST_MONTH + dt.timedelta(days=20)
    text = universe_yaml(simulator.url).replace("start: 2026-10-01", f"start: {start}") + \
        "retention: {1m: {keep_days: %d}}\n" % KEEP_DAYS
    universe = parse_universe(text)
    instrument = universe.instrument("binance.BTC-USDT")
    source = CcxtCandleSource("binance", universe.exchanges["binance"])
    now = now_ms()
    for day in (start, start + dt.timedelta(days=1), TODAY - dt.timedelta(days=1) if TODAY > THIS_MONTH else TODAY):
        for interval in ("1m", "1h", "1d"):
            ingest_day(source, warehouse, instrument, interval, day, now)
    assert _retain(universe, warehouse.url).metadata["candles_dropped"].value == 2 * 1440

    (tmp_path / "universe.yaml").write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update({"OHLCV_UNIVERSE": str(tmp_path / "universe.yaml"), "OHLCV_WAREHOUSE_URL": warehouse.url})
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ohlcv-status"), "--json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {(r["symbol"], r["interval"]): r for r in json.loads(out.stdout)}
    btc = rows[("BTC/USDT", "1m")]
    assert btc["retired"] == [f"{ms_to_iso(day_bounds_ms(LAST_MONTH)[0])}..{ms_to_iso(day_bounds_ms(THIS_MONTH)[0])} (2,880 candles)"]
    assert btc["day_sources"] == {"rest": 1}, btc
    assert rows[("BTC/USDT", "1h")]["retired"] == [] and rows[("BTC/USDT", "1h")]["day_sources"] == {"rest": 3}
