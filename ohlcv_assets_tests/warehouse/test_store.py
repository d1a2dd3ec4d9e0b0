"""The warehouse on SQLite and PostgreSQL: exact round trips, idempotent merges, atomic partitions."""

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ohlcv_assets.core.intervals import MINUTE_MS
from ohlcv_assets.warehouse.schema import (
    candle_features,
    candles,
    day_sources,
    delistings,
    derived_candles,
    exported_files,
    funding_rates,
    gaps,
    open_interest,
    rate_budget,
    retired_ranges,
    source_files,
)
from ohlcv_assets.candle_frame import EXTRA_COLUMNS
from ohlcv_assets.warehouse.engine import HEAD_REVISION, MIGRATIONS
from ohlcv_assets.warehouse.store import Warehouse

DAY_START = 1_790_000_000_000 // 86_400_000 * 86_400_000
from ohlcv_assets_tests.helpers import merge_candles


def minute_frame(n: int, scale: float = 1.0, first: int = 0) -> pd.DataFrame:
    t = DAY_START + (first + np.arange(n, dtype=np.int64)) * MINUTE_MS
    base = (100 + np.arange(n) % 17 * 0.01) * scale
    return pd.DataFrame({"open_time": t, "open": base, "high": base + 0.5, "low": base - 0.5, "close": base + 0.25,
                         "volume": np.round(np.arange(n) * 0.00001 + 1.5, 5)})


def merge(wh: Warehouse, frame: pd.DataFrame):
    return merge_candles(wh, "binance", "BTC/USDT", "1m", frame, DAY_START, DAY_START + 86_400_000, 1)


def stored(wh: Warehouse) -> pd.DataFrame:
    return wh.read_candles("binance", "BTC/USDT", "1m", DAY_START, DAY_START + 86_400_000)


def test_exchange_decimal_strings_round_trip_exactly(warehouse):
    wire = ["94219.13000000", "0.00000001", "9999999.99000000", "1234.56789012", "0.10000000"]
    frame = minute_frame(len(wire))
    frame["close"] = [float(s) for s in wire]
    frame["high"] = frame[["high", "close"]].max(axis=1)
    merge(warehouse, frame)
    back = stored(warehouse)["close"]
    assert [repr(v) for v in back] == [repr(float(s)) for s in wire]
    assert [f"{v:.8f}" for v in back] == [f"{float(s):.8f}" for s in wire]


def test_merging_twice_writes_nothing_twice(warehouse):
    frame = minute_frame(1440)
    assert merge(warehouse, frame).inserted == 1440
    again = merge(warehouse, frame)
    assert (again.inserted, again.revised, again.unchanged) == (0, 0, 1440)
    assert stored(warehouse).equals(frame)


def test_reads_are_ascending_typed_and_empty_when_nothing_is_stored(warehouse):
    assert stored(warehouse).empty and stored(warehouse).dtypes.to_dict() == minute_frame(1).dtypes.to_dict()
    frame = minute_frame(1440)
    merge(warehouse, frame.sample(frac=1, random_state=7))
    back = stored(warehouse)
    assert back.equals(frame) and back.dtypes.to_dict() == frame.dtypes.to_dict()
    before = warehouse.read_candles_before("binance", "BTC/USDT", "1m", int(frame["open_time"].iloc[1000]), 30)
    assert before.equals(frame.iloc[970:1000].reset_index(drop=True))
    assert warehouse.read_candles_before("binance", "BTC/USDT", "1m", DAY_START, 30).empty


def test_the_venues_extras_read_back_with_nan_where_a_venue_gave_none(warehouse):
    frame = minute_frame(1440).assign(**{c: np.nan for c in EXTRA_COLUMNS})
    frame.loc[::3, "trades"] = np.arange(0, 1440, 3, dtype=np.float64) * 7  # some rows: a count, the others NULL
    frame.loc[:99, "quote_volume"] = 1e9 + np.arange(100) / 8
    merge(warehouse, frame)
    back = warehouse.read_candles("binance", "BTC/USDT", "1m", DAY_START, DAY_START + 86_400_000, extras=True)
    assert back.equals(frame[back.columns]) and set(back.dtypes.iloc[1:]) == {np.dtype("float64")}
    assert back["trades"].isna().sum() == 960 and back["vwap"].isna().all()


def test_revised_candles_are_updated_and_counted(warehouse):
    merge(warehouse, minute_frame(100))
    revised = minute_frame(100)
    revised.loc[97:, "volume"] += 1.0
    result = merge(warehouse, pd.concat([revised, minute_frame(5, first=100)], ignore_index=True))
    assert (result.inserted, result.revised) == (5, 3)
    assert stored(warehouse)["volume"].iloc[97:100].tolist() == revised["volume"].iloc[97:].tolist()


def test_rows_missing_from_a_new_fetch_are_kept(warehouse):
    merge(warehouse, minute_frame(100))
    merge(warehouse, minute_frame(40))
    assert len(stored(warehouse)) == 100


def test_a_merge_returns_each_day_as_reading_it_back_does(warehouse):
    """``merge_candle_days`` hands the checks each day's candles as stored (so they need not read
    them back): new, revised, unchanged and stored-but-not-refetched candles, unordered input,
    a day with none, and a candle outside the bounds (written, but not a day's)."""
    days = [(DAY_START + n * 86_400_000, DAY_START + (n + 1) * 86_400_000) for n in range(3)]
    merge(warehouse, minute_frame(100))  # day 0, minutes 0-99, stored before
    incoming = minute_frame(110).iloc[50:].reset_index(drop=True)  # 50-89 unchanged, 90-99 revised, 100-109 new
    revised = incoming["open_time"].between(DAY_START + 90 * MINUTE_MS, DAY_START + 99 * MINUTE_MS)
    incoming.loc[revised, "close"] += 0.125
    incoming.loc[revised, "high"] += 0.125
    later = minute_frame(30, first=2 * 1440 + 7)  # day 2; day 1 gets nothing
    outside = minute_frame(1, first=3 * 1440 + 1)  # after the last day's bounds
    frame = pd.concat([later, incoming, outside], ignore_index=True).sample(frac=1, random_state=3).reset_index(drop=True)
    results, by_day = warehouse.merge_candle_days("binance", "BTC/USDT", "1m", frame, days, 1)
    assert [(r.inserted, r.revised, r.unchanged) for r in results] == [(10, 10, 40), (0, 0, 0), (30, 0, 0)]
    for (start, end), day in zip(days, by_day):
        back = warehouse.read_candles("binance", "BTC/USDT", "1m", start, end)
        assert day.equals(back) and day.dtypes.to_dict() == back.dtypes.to_dict()
    assert [len(day) for day in by_day] == [110, 0, 30]
    assert (by_day[0]["close"].iloc[90:100] == incoming["close"].iloc[40:50].to_numpy()).all()  # the revised values


def test_migrations_are_idempotent_and_versioned(warehouse):
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION
    warehouse.migrate()
    assert warehouse.schema_revision() == HEAD_REVISION
    with warehouse.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == HEAD_REVISION
        assert {"candles", "candle_features", "gaps", "rate_budget"} <= set(sa.inspect(conn).get_table_names())


def test_the_migrated_schema_matches_the_table_definitions(warehouse):
    with warehouse.engine.connect() as conn:
        for table in (candles, candle_features, gaps, rate_budget, retired_ranges, exported_files, delistings, day_sources, source_files,
                      derived_candles, funding_rates, open_interest):
            migrated = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
            assert migrated == {c.name for c in table.columns}, table.name


def test_upgrading_from_the_first_release_keeps_the_candles(warehouse_url):
    """A user on revision 0001 with data upgrades in place: nothing dropped."""
    old = Warehouse(warehouse_url)
    old.migrate("0001")
    with old.engine.begin() as connection:  # as that release wrote them: its columns only
        first_release = sa.table("candles", *(sa.column(c) for c in ("exchange", "symbol", "timeframe", "open_time", "open",
                                                                      "high", "low", "close", "volume", "fetched_at")))
        connection.execute(sa.insert(first_release), [
            {**row, "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m", "fetched_at": 1}
            for row in minute_frame(50).to_dict("records")])
    old.migrate()
    assert stored(old).equals(minute_frame(50))
    extras = old.read_candles("binance", "BTC/USDT", "1m", DAY_START, DAY_START + 86_400_000, extras=True)
    assert extras[EXTRA_COLUMNS].isna().all().all()  # added as NULL: nothing invented
    old.dispose()


def test_upgrading_to_per_interval_file_records_keeps_the_sources_recorded(warehouse_url):
    """A warehouse at 0010 with a file record and a day's source upgrades in place: both kept (the
    day with no kept candles), and the file may then hold a record per interval; a downgrade keeps
    the newest record of each file."""
    from alembic import command
    from alembic.config import Config

    from ohlcv_assets.warehouse import provenance

    old = Warehouse(warehouse_url)
    old.migrate("0010")
    with old.engine.begin() as conn:
        conn.execute(sa.table("source_files", *(sa.column(c) for c in (
            "exchange", "file", "sha256", "symbol", "timeframe", "candles", "revisions", "first_ingested_ms", "ingested_ms"))).insert(),
            [{"exchange": "kraken", "file": "Kraken_OHLCVT.zip", "sha256": "a" * 64, "symbol": "BTC/USD", "timeframe": "1h",
              "candles": 120, "revisions": 1, "first_ingested_ms": 1, "ingested_ms": 2}])
        conn.execute(sa.table("day_sources", *(sa.column(c) for c in (
            "exchange", "symbol", "timeframe", "day", "source", "file", "sha256", "recorded_ms"))).insert(),
            [{"exchange": "kraken", "symbol": "BTC/USD", "timeframe": "1h", "day": "2026-06-01", "source": "archive",
              "file": "Kraken_OHLCVT.zip", "sha256": "a" * 64, "recorded_ms": 2}])
    old.migrate()
    try:
        [day] = provenance.sources_of(old, "kraken", "BTC/USD", "1h").items()
        assert day == (dt.date(2026, 6, 1), provenance.DaySource("archive", "Kraken_OHLCVT.zip", "a" * 64))
        assert (day[1].candles, day[1].kept_from, day[1].kept_candles) == (None, None, 0)
        assert provenance.record_file(old, "kraken", "BTC/USD", "4h", "Kraken_OHLCVT.zip", "a" * 64, 30, 3) == 0
        assert provenance.record_file(old, "kraken", "BTC/USD", "1h", "Kraken_OHLCVT.zip", "b" * 64, 121, 4) == 2
        with old.engine.connect() as conn:
            rows = conn.execute(sa.select(source_files.c.timeframe, source_files.c.candles, source_files.c.revisions)
                                .order_by(source_files.c.timeframe)).all()
        assert [tuple(r) for r in rows] == [("1h", 121, 2), ("4h", 30, 0)]
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with old.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0010")
        with old.engine.connect() as conn:
            assert [tuple(r) for r in conn.exec_driver_sql("SELECT timeframe, candles FROM source_files")] == [("1h", 121)]
            assert "kept_from" not in {c["name"] for c in sa.inspect(conn).get_columns("day_sources")}
    finally:
        old.dispose()


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    import sqlalchemy as sa
    from ohlcv_assets_tests.warehouse.test_store import merge, minute_frame
    from ohlcv_assets.warehouse.engine import HEAD_REVISION, MIGRATIONS
    from ohlcv_assets.warehouse.store import Warehouse
    wh = Warehouse(sys.argv[1])

    @sa.event.listens_for(wh.engine, "commit")
    def _stall(conn):
        print("WRITTEN-NOT-COMMITTED", flush=True)
        time.sleep(600)

    merge(wh, minute_frame(1440, scale=2.0))
""")


def test_a_writer_killed_mid_write_leaves_the_old_partition(warehouse, warehouse_url):
    old = minute_frame(1000)
    merge(warehouse, old)
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, warehouse_url], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        assert writer.stdout.readline().strip() == "WRITTEN-NOT-COMMITTED"
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    finally:
        writer.kill()
    assert stored(warehouse).equals(old)
    new = minute_frame(1440, scale=2.0)
    merge(warehouse, new)
    assert stored(warehouse).equals(new)
