"""Reading and atomically merging candles; PostgreSQL (COPY + merge) or SQLite (the default).

Every write is one transaction that merges a partition's candles: a crash leaves the old content,
a re-run adds nothing twice, and candles the exchange revised are updated in place. Rows are
never deleted by a write, so a partition re-fetched from an exchange that has since forgotten
old candles keeps them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ohlcv_assets.core.candle_frame import CANDLE_COLUMNS, EXTRA_COLUMNS
from ohlcv_assets.core.settings import check_sqlite_directory
from ohlcv_assets.core.errors import ConfigurationError, connection_refused
from ohlcv_assets.warehouse.partitioning import Span, ensure_partitions, spans_covering
from ohlcv_assets.warehouse.schema import candles

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0012"  # the newest migration (a test holds it to Alembic's head)
_PG_MIGRATION_LOCK = 0x0B1C5  # pg_advisory_xact_lock key serialising concurrent migrations
SQLITE_BUSY_TIMEOUT_MS = 60_000
_KEY = ["exchange", "symbol", "timeframe", "open_time"]


@dataclasses.dataclass(frozen=True)
class MergeResult:
    inserted: int
    revised: int
    unchanged: int
    max_revision: float = 0.0  # largest relative change of a revised value


def normalise_url(url: str) -> str:
    """Uses psycopg 3 for PostgreSQL URLs given without a driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def public_url(url: str) -> str:
    """The URL as it may be shown and recorded: driver, user, host, port, database; never the
    password or the query (which may carry one), even when SQLAlchemy cannot parse it."""
    try:
        return sa.make_url(normalise_url(url)).set(query={}).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("://", 1)[0] + "://…" if "://" in url else "(not a URL)"


@dataclasses.dataclass(frozen=True)
class RowChanges:
    """Per incoming row: new, revised (stored with other values) and by how much (relative)."""

    is_new: np.ndarray
    is_revised: np.ndarray
    revision: np.ndarray

    @property
    def changed(self) -> np.ndarray:
        return self.is_new | self.is_revised

    def result(self, rows: np.ndarray | slice = slice(None)) -> MergeResult:
        new, revised = self.is_new[rows], self.is_revised[rows]
        largest = float(self.revision[rows][revised].max()) if revised.any() else 0.0
        return MergeResult(inserted=int(new.sum()), revised=int(revised.sum()),
                           unchanged=int((~new & ~revised).sum()), max_revision=largest)


def row_changes(existing: pd.DataFrame, incoming: pd.DataFrame, value_columns: list[str]) -> RowChanges:
    """Compares incoming rows with the stored ones of the same open_time (NaN equals NaN)."""
    if existing.empty:
        nothing = np.zeros(len(incoming), dtype=bool)
        return RowChanges(is_new=~nothing, is_revised=nothing, revision=np.zeros(len(incoming)))
    merged = incoming.merge(existing, on="open_time", how="left", suffixes=("", "_stored"), indicator=True)
    is_new = (merged["_merge"] == "left_only").to_numpy()
    differs = np.zeros(len(merged), dtype=bool)
    revision = np.zeros(len(merged))
    for col in value_columns:
        new, old = merged[col].to_numpy(), merged[f"{col}_stored"].to_numpy()
        same = new == old
        if new.dtype.kind == "f":
            same |= pd.isna(new) & pd.isna(old)
            comparable = ~same & ~is_new & (old != 0) & ~pd.isna(old) & ~pd.isna(new)
            with np.errstate(divide="ignore", invalid="ignore"):
                revision = np.where(comparable, np.maximum(revision, np.abs(new / old - 1)), revision)
        differs |= ~same
    return RowChanges(is_new=is_new, is_revised=differs & ~is_new, revision=revision)


def value_columns(table: sa.Table) -> list[str]:
    return [c.name for c in table.columns if c.name not in (*_KEY, "fetched_at")]


class WarehouseMissing(RuntimeError):
    """A read-only tool found no warehouse (or an empty one) where the settings point."""


class NotInWarehouse(LookupError):
    """Candles of an instrument or interval the warehouse has never held were asked for; the
    message names the ones it holds."""


HELD_SHOWN = 40  # instrument-intervals named in a message; the rest are counted


def held_instruments(warehouse: Warehouse, limit: int = 10_000) -> list[tuple[str, str, str]]:
    """The (exchange, symbol, interval) the warehouse holds candles of, in key order, found by
    walking the primary key (one index probe per instrument-interval, never a scan of the
    candles): for messages, not for a hot path."""
    key = (candles.c.exchange, candles.c.symbol, candles.c.timeframe)
    found: list[tuple[str, str, str]] = []
    with warehouse.engine.connect() as conn:
        while len(found) < limit:
            query = sa.select(*key).order_by(*key).limit(1)
            if found:
                query = query.where(sa.tuple_(*key) > sa.tuple_(*(sa.literal(v) for v in found[-1])))
            row = conn.execute(query).first()
            if row is None:
                break
            found.append(tuple(row))
    return found


def describe_held(held: list[tuple[str, str, str]]) -> str:
    """``binance BTC/USDT (1m, 1h); kraken BTC/USD (1h)``, the first ``HELD_SHOWN`` of them."""
    if not held:
        return "no candles"
    by_instrument: dict[tuple[str, str], list[str]] = {}
    for exchange, symbol, interval in held[:HELD_SHOWN]:
        by_instrument.setdefault((exchange, symbol), []).append(interval)
    text = "; ".join(f"{e} {s} ({', '.join(i)})" for (e, s), i in by_instrument.items())
    return text + (f"; and {len(held) - HELD_SHOWN} more instrument-intervals" if len(held) > HELD_SHOWN else "")
class Warehouse:
    def __init__(self, url: str):
        self.url = normalise_url(url)
        try:
            self.engine = self._create_engine()
        except sa.exc.ArgumentError as err:
            problem = (f"unknown scheme {url.split('://', 1)[0]!r}" if isinstance(err, sa.exc.NoSuchModuleError)
                       else "not a database URL")
            raise ConfigurationError(f"warehouse URL {public_url(url)}: {problem} (expected "
                                     "postgresql://user@host:port/database or sqlite:////absolute/path.db)") from None
        self._ready_spans: set[tuple[str, str, Span]] = set()

    def open_and_migrate(self) -> None:
        """The first contact of a run: the schema brought to the head. Nothing listening at the
        warehouse's address now cannot heal by retrying the run's step (``ConfigurationError``);
        later, a warehouse that goes away is transient."""
        try:
            self.migrate()
        except sa.exc.OperationalError as err:
            if connection_refused(err):
                self.dispose()
                raise ConfigurationError(f"no warehouse answers at {public_url(self.url)} (connection refused)") from None
            raise

    @classmethod
    def open_existing(cls, url: str) -> Warehouse:
        """For tools that only read: never creates a database, fails when none (or no candle) is there."""
        shown = public_url(url)
        if url.startswith("sqlite"):
            database = sa.make_url(url).database
            if not database or database == ":memory:" or not Path(database).is_file():
                raise WarehouseMissing(f"no warehouse at {shown}: the file does not exist")
        warehouse = cls(url)
        try:
            with warehouse.engine.connect() as conn:
                if not sa.inspect(conn).has_table(candles.name):
                    raise WarehouseMissing(f"the warehouse at {shown} has no `candles` table: no run has written to it")
                if conn.execute(sa.select(candles.c.open_time).limit(1)).first() is None:
                    raise WarehouseMissing(f"the warehouse at {shown} holds no candles yet")
        except sa.exc.SQLAlchemyError as err:
            warehouse.dispose()
            if connection_refused(err):
                raise WarehouseMissing(f"no warehouse answers at {shown} (connection refused)") from None
            detail = " ".join(str(getattr(err, "orig", None) or err).split())  # one line
            raise WarehouseMissing(f"the warehouse at {shown} cannot be read: {type(err).__name__}: {detail}"[:500]) from None
        except WarehouseMissing:
            warehouse.dispose()
            raise
        return warehouse

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def _create_engine(self) -> sa.Engine:
        if not self.url.startswith("sqlite"):
            engine = sa.create_engine(self.url, pool_pre_ping=True)

            @sa.event.listens_for(engine, "connect")
            def _aggregate_per_partition(dbapi_connection, _record):
                # Aggregates over the monthly partitions (the status's count per instrument) are
                # then computed partition by partition and combined, not over a merge of every row:
                # 3.3 s -> 1.0 s on 10.5 M candles. Committed, or the pool's rollback would undo it.
                dbapi_connection.execute("SET enable_partitionwise_aggregate = on")
                dbapi_connection.commit()

            return engine
        check_sqlite_directory(self.url)  # SQLite would create the file, never its directory: no quiet new tree
        engine = sa.create_engine(self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @sa.event.listens_for(engine, "connect")
        def _configure(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # transactions are begun below, IMMEDIATE
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(connection):
            # Take the write lock up front: a deferred transaction that reads first cannot wait
            # for a concurrent writer and fails with "database is locked" instead.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def migrate(self, revision: str = "head") -> None:
        """Brings the schema to the newest migration (or to ``revision``, for upgrade tests and
        benchmarks of an older schema); safe to call from concurrent runs. A schema already at the
        head costs one query: every run process migrates, and Alembic's import alone is 0.3 s."""
        if revision == "head" and self.schema_revision() == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            if self.is_postgres:
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def schema_revision(self) -> str | None:
        """The migration the schema is at (None before the first)."""
        with self.engine.connect() as connection:
            if not sa.inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def ensure_partitions(self, table: str, interval: str, start_ms: int, end_ms: int) -> list[str]:
        """PostgreSQL: creates the partitions rows opening in [start_ms, end_ms) need, in a short
        transaction of its own (once per span and process); returns the tables it created."""
        spans = [s for s in spans_covering(interval, start_ms, end_ms) if (table, interval, s) not in self._ready_spans]
        if not spans or not self.is_postgres:
            return []
        with self.engine.begin() as connection:
            created = ensure_partitions(connection, table, interval, spans[0].start_ms, spans[-1].end_ms)
        self._ready_spans.update((table, interval, s) for s in spans)
        return created

    def forget_partitions(self) -> None:
        """After partitions were dropped (retention), the next write checks the catalogue again."""
        self._ready_spans.clear()

    def dispose(self) -> None:
        self.engine.dispose()

    def read_rows(self, table: sa.Table, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int,
                  connection: sa.Connection | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """One instrument's rows of a table with open_time in [start_ms, end_ms), ascending (all its
        value columns unless ``columns`` names some)."""
        columns = columns or ["open_time", *value_columns(table)]
        query = (
            sa.select(*(table.c[c] for c in columns))
            .where(table.c.exchange == exchange, table.c.symbol == symbol, table.c.timeframe == timeframe,
                   table.c.open_time >= start_ms, table.c.open_time < end_ms)
            .order_by(table.c.open_time)
        )
        return self._frame(query, table, columns, connection)

    def read_candles(self, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int,
                     connection: sa.Connection | None = None, extras: bool = False) -> pd.DataFrame:
        """OHLCV candles (the fast binary read on PostgreSQL); with ``extras`` also what the venue
        gave beyond OHLCV (NaN where it did not)."""
        columns = [*CANDLE_COLUMNS, *EXTRA_COLUMNS] if extras else CANDLE_COLUMNS
        return self.read_rows(candles, exchange, symbol, timeframe, start_ms, end_ms, connection, columns)

    def read_open_times(self, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> np.ndarray:
        """Stored candle open times in [start_ms, end_ms), ascending."""
        return self.read_rows(candles, exchange, symbol, timeframe, start_ms, end_ms, columns=["open_time"])["open_time"].to_numpy()

    def latest_open_time(self, exchange: str, symbol: str, timeframe: str) -> int | None:
        """Open time of the instrument's latest stored candle, or None."""
        return self._open_time_bound(sa.func.max, exchange, symbol, timeframe)

    def earliest_open_time(self, exchange: str, symbol: str, timeframe: str) -> int | None:
        """Open time of the instrument's earliest stored candle, or None."""
        return self._open_time_bound(sa.func.min, exchange, symbol, timeframe)

    def _open_time_bound(self, bound, exchange: str, symbol: str, timeframe: str) -> int | None:
        query = sa.select(bound(candles.c.open_time)).where(
            candles.c.exchange == exchange, candles.c.symbol == symbol, candles.c.timeframe == timeframe)
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar()
        return None if found is None else int(found)

    def read_candles_before(self, exchange: str, symbol: str, timeframe: str, before_ms: int, count: int) -> pd.DataFrame:
        """The last ``count`` stored candles opening before ``before_ms``, ascending."""
        query = (
            sa.select(*(candles.c[c] for c in CANDLE_COLUMNS))
            .where(candles.c.exchange == exchange, candles.c.symbol == symbol, candles.c.timeframe == timeframe,
                   candles.c.open_time < before_ms)
            .order_by(candles.c.open_time.desc())
            .limit(count)
        )
        return self._frame(query, candles, CANDLE_COLUMNS, None)

    def _frame(self, query, table: sa.Table, columns: list[str], connection: sa.Connection | None) -> pd.DataFrame:
        """The query's rows (``columns``, open_time among them), ascending by open_time."""
        if connection is None:
            with self.engine.connect() as conn:
                return self._frame(query, table, columns, conn)
        if self.is_postgres and all(_binary_read(table.c[c]) for c in columns):
            return _pg_binary_read(connection, query, table, columns)
        rows = connection.execute(query).all()
        dtypes = {c: _pandas_dtype(table.c[c]) for c in columns}
        return pd.DataFrame(rows, columns=columns).astype(dtypes).sort_values("open_time", kind="stable", ignore_index=True)

    def merge_partition(self, table: sa.Table, exchange: str, symbol: str, timeframe: str, frame: pd.DataFrame,
                        start_ms: int, end_ms: int, fetched_at_ms: int) -> MergeResult:
        """Merges one partition's rows ([start_ms, end_ms)) into a table in a single transaction."""
        return self.merge_partitions(table, exchange, symbol, timeframe, frame, [(start_ms, end_ms)], fetched_at_ms)[0]

    def merge_partitions(self, table: sa.Table, exchange: str, symbol: str, timeframe: str, frame: pd.DataFrame,
                         bounds: list[tuple[int, int]], fetched_at_ms: int) -> list[MergeResult]:
        """Merges the rows of several partitions (ascending, disjoint [start, end) bounds) in one
        transaction, so a ranged run pays one round of COPY and merge per batch, not per day."""
        if self.is_postgres and len(frame):
            times = frame["open_time"].to_numpy()
            self.ensure_partitions(table.name, timeframe, int(times.min()), int(times.max()) + 1)
        frame = frame.assign(**{c: np.nan for c in value_columns(table) if c not in frame})  # e.g. extras a venue lacks
        with self.engine.begin() as connection:
            existing = self.read_rows(table, exchange, symbol, timeframe, bounds[0][0], bounds[-1][1], connection)
            changes = row_changes(existing, frame, value_columns(table))
            changed = frame[changes.changed]
            if len(changed):
                rows = changed.assign(exchange=exchange, symbol=symbol, timeframe=timeframe, fetched_at=fetched_at_ms)
                rows = rows[[c.name for c in table.columns]]
                if self.is_postgres:
                    _copy_merge(connection, table, rows, all_new=not changes.is_revised.any())
                else:
                    _sqlite_merge(connection, table, rows)
        times = frame["open_time"].to_numpy()
        return [changes.result((times >= start) & (times < end)) for start, end in bounds]


_PANDAS_TYPES = {sa.BigInteger: "int64", sa.Float: "float64", sa.Boolean: "bool", sa.String: "object"}
_COPY_TYPES = {sa.BigInteger: "int8", sa.Float: "float8", sa.Boolean: "bool", sa.String: "text"}


def _upsert_set(table: sa.Table, excluded) -> dict:
    return {c: excluded[c] for c in [*value_columns(table), "fetched_at"]}


def _sqlite_merge(connection: sa.Connection, table: sa.Table, rows: pd.DataFrame) -> None:
    statement = sqlite_insert(table)
    statement = statement.on_conflict_do_update(index_elements=_KEY, set_=_upsert_set(table, statement.excluded))
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    connection.execute(statement, records)


_PG_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + np.zeros(2, ">i4").tobytes()
_PG_BINARY_TRAILER = np.array([-1], ">i2").tobytes()
_BINARY_TYPES = {sa.BigInteger: ">i8", sa.Float: ">f8", sa.Boolean: "?"}


def _binary_rows(kinds: dict[str, str | None]) -> np.dtype:
    """One row of PostgreSQL's binary COPY format for fixed-width fields: a field count, then a
    length and a big-endian value per field (a NULL field, kind None, is its length -1 alone)."""
    fields = [("count", ">i2")]
    for name, kind in kinds.items():
        fields += [(f"{name}_length", ">i4")] + ([(name, kind)] if kind is not None else [])
    return np.dtype(fields)


def pg_binary_copy(table: sa.Table, rows: pd.DataFrame) -> memoryview | None:
    """The rows as one PostgreSQL binary COPY payload, built with numpy (no per-row Python) in a
    single buffer that psycopg sends as it is (header and trailer in place: joining bytes copied
    the payload twice, half the client's CPU of a COPY). A column NULL in every row (a venue's
    missing extras) is written as NULLs; None when a column is NULL in only some rows or a text
    column varies: those rows go through write_row."""
    kinds, values = {}, {"count": len(table.columns)}
    for column in table.columns:
        data = rows[column.name]
        if isinstance(column.type, sa.String):
            first = data.iloc[0] if len(data) else ""
            if first is None or (data.to_numpy() != first).any():
                return None
            encoded = str(first).encode()
            kind, value = f"S{len(encoded)}", encoded
        else:
            kind, value = _BINARY_TYPES[type(column.type)], data.to_numpy()
            missing = pd.isna(value)
            if len(value) and missing.all() and column.nullable:
                kinds[column.name], values[f"{column.name}_length"] = None, -1
                continue
            if value.dtype.kind == "O" or missing.any():
                return None
        kinds[column.name] = kind
        values[f"{column.name}_length"] = np.dtype(kind).itemsize
        values[column.name] = value
    row = _binary_rows(kinds)
    buffer = np.empty(len(_PG_BINARY_HEADER) + len(rows) * row.itemsize + len(_PG_BINARY_TRAILER), np.uint8)
    buffer[:len(_PG_BINARY_HEADER)] = np.frombuffer(_PG_BINARY_HEADER, np.uint8)
    buffer[len(buffer) - len(_PG_BINARY_TRAILER):] = np.frombuffer(_PG_BINARY_TRAILER, np.uint8)
    payload = buffer[len(_PG_BINARY_HEADER):len(buffer) - len(_PG_BINARY_TRAILER)].view(row)
    for name, value in values.items():
        payload[name] = value
    return memoryview(buffer)


def _pandas_dtype(column: sa.Column) -> str:
    """A column's dtype in a frame: a nullable integer is float64 (NaN for NULL)."""
    if column.nullable and type(column.type) is sa.BigInteger:
        return "float64"
    return _PANDAS_TYPES[type(column.type)]


def _binary_read(column: sa.Column) -> tuple[str, str, str] | None:
    """How a column is read as a fixed-width array: (SQL expression, numpy kind, pandas dtype); a
    nullable number as float8 with NaN for NULL, as its frame dtype holds it. None: not so readable."""
    kind = _BINARY_TYPES.get(type(column.type))
    if kind is None or (column.nullable and kind == "?"):
        return None
    if column.nullable:
        return f"coalesce({column.name}::float8, 'NaN')", ">f8", _pandas_dtype(column)
    return column.name, kind, _pandas_dtype(column)


def _pg_binary_read(connection: sa.Connection, query, table: sa.Table, columns: list[str]) -> pd.DataFrame:
    """Reads fixed-width columns without a Python object per value: the server sends each column
    as one array (binary COPY of a single row of ``array_agg``), numpy reads the arrays in place.
    A COPY of the rows themselves costs a message, so a Python step, per row, and SQLAlchemy rows
    far more: for a year of 1m candles more than the checks that read them. Rows come ascending by
    open_time."""
    sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    reads = [_binary_read(table.c[c]) for c in columns]
    arrays = ", ".join(f"array_agg({expression})" for expression, _, _ in reads)
    with connection.connection.driver_connection.cursor() as cursor:
        with cursor.copy(f"COPY (SELECT {arrays} FROM ({sql}) AS q) TO STDOUT (FORMAT BINARY)") as copy:
            data = b"".join(bytes(block) for block in copy)
    values, offset = {}, len(_PG_BINARY_HEADER) + 2
    for c, (_, kind, dtype) in zip(columns, reads):
        length = int(np.frombuffer(data, ">i4", 1, offset)[0])
        offset += 4
        if length < 0:  # no rows: array_agg is NULL
            values[c] = np.empty(0, dtype)
            continue
        count = int(np.frombuffer(data, ">i4", 1, offset + 12)[0])
        elements = np.frombuffer(data, np.dtype([("length", ">i4"), ("value", kind)]), count, offset + 20)
        values[c], offset = elements["value"].astype(dtype), offset + length
    frame = pd.DataFrame(values, columns=columns)
    times = frame["open_time"].to_numpy()
    if len(times) > 1 and not (times[1:] > times[:-1]).all():
        frame = frame.sort_values("open_time", kind="stable", ignore_index=True)
    return frame


def _copy_merge(connection: sa.Connection, table: sa.Table, rows: pd.DataFrame, all_new: bool) -> None:
    """Rows that are all new go straight into the table by binary COPY (a concurrent writer of the
    same rows makes the transaction fail on the key, and the retry merges). Otherwise they are
    COPYed into a transaction-local staging table and merged with INSERT ... ON CONFLICT."""
    columns = [c.name for c in table.columns]
    target = table.name if all_new else f"{table.name}_staging"
    driver_connection = connection.connection.driver_connection
    with driver_connection.cursor() as cursor:
        if not all_new:
            cursor.execute(f"CREATE TEMP TABLE {target} (LIKE {table.name}) ON COMMIT DROP")
        with cursor.copy(f"COPY {target} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            payload = pg_binary_copy(table, rows)
            if payload is not None:
                copy.write(payload)
            else:
                copy.set_types([_COPY_TYPES[type(c.type)] for c in table.columns])
                # integers NULL in some rows arrive as floats (NaN for NULL): written as integers
                exact = rows.astype({c.name: "Int64" for c in table.columns if isinstance(c.type, sa.BigInteger)})
                for row in exact.astype(object).where(exact.notna(), None).itertuples(index=False, name=None):
                    copy.write_row(row)
    if all_new:
        return
    staged = sa.table(target, *(sa.column(c) for c in columns))
    statement = pg_insert(table).from_select(columns, sa.select(*(staged.c[c] for c in columns)))
    statement = statement.on_conflict_do_update(index_elements=_KEY, set_=_upsert_set(table, statement.excluded))
    connection.execute(statement)
