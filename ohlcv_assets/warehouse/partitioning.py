"""PostgreSQL table partitioning of the per-candle tables: by interval, then by time.

``candles`` and ``candle_features`` are LIST-partitioned by ``timeframe`` and each interval's
table is RANGE-partitioned by ``open_time``, so that:

- retention drops whole tables (``DROP TABLE candles_1m_2024_01``), never deletes rows, and drops
  one interval without touching the others (a month of 1m goes while its 1h candles stay);
- each partition's primary-key index stays the size of one span of one interval, so merges, gap
  scans and the checks' read-backs touch an index that fits in memory however long history grows;
- a read of one instrument-month is pruned to one table.

Intervals shorter than an hour are cut by calendar month (200 instruments of 1m: about 8.6 M
rows a month), longer ones by calendar year (the same instruments' 1h: 1.75 M rows a year), so no
interval produces thousands of tiny tables. Partitions are created on demand before every write
(``ensure_partitions``) and ahead of time by the migration and by retention, so an insert never
meets a missing partition. SQLite keeps one plain table.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import zlib

import sqlalchemy as sa

from ohlcv_assets.core.intervals import HOUR_MS, interval_ms, ms_to_datetime

PARTITIONED_TABLES = ("candles", "candle_features")
_NAME_PART = re.compile(r"[^a-z0-9]")


@dataclasses.dataclass(frozen=True, order=True)
class Span:
    """One range partition: the candles of one interval opening in [start_ms, end_ms)."""

    start_ms: int
    end_ms: int
    label: str  # 2025_01 (month) or 2025 (year)


def spans_by_month(interval: str) -> bool:
    return interval_ms(interval) < HOUR_MS


def _utc_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)


def span_of(interval: str, open_ms: int) -> Span:
    """The partition an interval's candle opening at ``open_ms`` belongs to."""
    at = ms_to_datetime(open_ms).date()
    if spans_by_month(interval):
        first = at.replace(day=1)
        after = (first + dt.timedelta(days=32)).replace(day=1)
        return Span(_utc_ms(first), _utc_ms(after), f"{first.year}_{first.month:02d}")
    first = at.replace(month=1, day=1)
    return Span(_utc_ms(first), _utc_ms(first.replace(year=first.year + 1)), str(first.year))


def spans_covering(interval: str, start_ms: int, end_ms: int) -> list[Span]:
    """Every partition of an interval holding candles that open in [start_ms, end_ms)."""
    spans: list[Span] = []
    at = start_ms
    while at < end_ms:
        span = span_of(interval, at)
        spans.append(span)
        at = span.end_ms
    return spans


def interval_table(table: str, interval: str) -> str:
    """Name of an interval's table under a partitioned parent: candles_1m, candles_1h."""
    return f"{table}_{_NAME_PART.sub('_', interval.lower())}"


def span_table(table: str, interval: str, span: Span) -> str:
    return f"{interval_table(table, interval)}_{span.label}"


def _lock_key(table: str) -> int:
    return 0x0B1C6000 + zlib.crc32(table.encode()) % 4096


def ensure_partitions(connection: sa.Connection, table: str, interval: str, start_ms: int, end_ms: int) -> list[str]:
    """Creates the interval table and the range partitions covering [start_ms, end_ms) that do not
    exist yet; returns the names it created. Serialised per table by an advisory lock, so that
    concurrent runs writing the same new month do not race on the catalogue. A table not (yet)
    partitioned, before its migration, needs nothing."""
    if not is_partitioned(connection, table):
        return []
    connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(table))))
    existing = set(connection.execute(sa.text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY(:parents)"),
        {"parents": [table, interval_table(table, interval)]}).scalars())
    created = []
    parent = interval_table(table, interval)
    if parent not in existing:
        connection.exec_driver_sql(
            f"CREATE TABLE {parent} PARTITION OF {table} FOR VALUES IN ('{interval}') PARTITION BY RANGE (open_time)")
        created.append(parent)
    for span in spans_covering(interval, start_ms, end_ms):
        name = span_table(table, interval, span)
        if name not in existing:
            connection.exec_driver_sql(
                f"CREATE TABLE {name} PARTITION OF {parent} FOR VALUES FROM ({span.start_ms}) TO ({span.end_ms})")
            created.append(name)
    return created


@dataclasses.dataclass(frozen=True)
class StoredSpan:
    table: str  # the partition's own table name
    interval: str
    span: Span


def stored_spans(connection: sa.Connection, table: str) -> list[StoredSpan]:
    """The range partitions under a partitioned table, from the catalogue, oldest first."""
    rows = connection.execute(sa.text(
        "SELECT child.relname, pg_get_expr(child.relpartbound, child.oid), pg_get_expr(mid.relpartbound, mid.oid) "
        "FROM pg_inherits i1 JOIN pg_class mid ON mid.oid = i1.inhrelid "
        "JOIN pg_class parent ON parent.oid = i1.inhparent "
        "JOIN pg_inherits i2 ON i2.inhparent = mid.oid JOIN pg_class child ON child.oid = i2.inhrelid "
        "WHERE parent.relname = :table"), {"table": table}).all()
    spans = []
    for name, bound, list_bound in rows:
        interval = re.search(r"IN \('([^']+)'\)", list_bound).group(1)
        low, high = (int(v) for v in re.findall(r"\('?(-?\d+)'?\)", bound))
        spans.append(StoredSpan(name, interval, Span(low, high, span_of(interval, low).label)))
    return sorted(spans, key=lambda s: (s.interval, s.span))


def is_partitioned(connection: sa.Connection, table: str) -> bool:
    return bool(connection.execute(sa.text(
        "SELECT 1 FROM pg_partitioned_table t JOIN pg_class c ON c.oid = t.partrelid WHERE c.relname = :table"),
        {"table": table}).first())
