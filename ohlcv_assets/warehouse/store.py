"""The warehouse: reading and atomically merging candles, on PostgreSQL or SQLite (the default).

Every write is one transaction that merges a partition's candles: a crash leaves the old content,
a re-run adds nothing twice, and candles the exchange revised are updated in place. Rows are
never deleted by a write, so a partition re-fetched from an exchange that has since forgotten
old candles keeps them. The same transaction counts the candles it inserted into ``candle_days``.

The parts: ``urls`` (URLs shown and resolved), ``engine`` (connecting and migrating), ``merge``
(which rows are new or revised), ``dialect`` (what differs between PostgreSQL and SQLite, chosen
once per warehouse), ``pg_copy`` (PostgreSQL's binary COPY), ``candle_days`` (stored counts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ohlcv_assets.candle_frame import CANDLE_COLUMNS, EXTRA_COLUMNS
from ohlcv_assets.core.errors import ConfigurationError, connection_refused
from ohlcv_assets.warehouse import candle_days, engine
from ohlcv_assets.warehouse.dialect import Dialect, dialect_for
from ohlcv_assets.warehouse.merge import MergeResult, row_changes, value_columns
from ohlcv_assets.warehouse.partitioning import PARTITIONED_TABLES, Span, spans_covering
from ohlcv_assets.warehouse.schema import candle_features, candles, funding_rates, open_interest
from ohlcv_assets.warehouse.urls import normalise_url, public_url

__all__ = ["NotInWarehouse", "Warehouse", "WarehouseMissing", "describe_held", "held_instruments"]


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


def series_span(warehouse: Warehouse, table: sa.Table, timeframe: str, exchange: str, symbol: str) -> tuple[int, int] | None:
    """Times (open_time) of an instrument's first and last row of an event table (funding
    settlements, open interest samples: one timeframe each), or None (none stored)."""
    t = table.c
    query = sa.select(sa.func.min(t.open_time), sa.func.max(t.open_time)).where(
        t.exchange == exchange, t.symbol == symbol, t.timeframe == timeframe)
    with warehouse.engine.connect() as connection:
        first, last = connection.execute(query).one()
    return None if first is None else (int(first), int(last))


def series_instruments(warehouse: Warehouse, table: sa.Table, timeframe: str) -> list[tuple[str, str]]:
    """The (exchange, symbol) an event table holds rows of: for messages."""
    t = table.c
    query = sa.select(t.exchange, t.symbol).where(t.timeframe == timeframe).distinct().order_by(t.exchange, t.symbol)
    with warehouse.engine.connect() as connection:
        return [(e, s) for e, s in connection.execute(query)]


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
        self.dialect: Dialect = dialect_for(self.url)
        try:
            self.engine = self.dialect.create_engine(self.url)
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
        """For tools that only read: never creates a database, fails when none is there or it holds
        nothing yet (no candle, funding settlement or open-interest sample)."""
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
                held = (table for table in (candles, funding_rates, open_interest) if sa.inspect(conn).has_table(table.name))
                if not any(conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() for table in held):
                    raise WarehouseMissing(f"the warehouse at {shown} holds no candles, funding rates or open interest yet")
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
        return self.dialect.partitioned

    def migrate(self, revision: str = "head") -> None:
        """Brings the schema to the newest migration (``engine.migrate``)."""
        engine.migrate(self.engine, self.dialect, revision)

    def schema_revision(self) -> str | None:
        return engine.schema_revision(self.engine)

    def ensure_partitions(self, table: str, interval: str, start_ms: int, end_ms: int) -> list[str]:
        """PostgreSQL: creates the partitions rows opening in [start_ms, end_ms) need, in a short
        transaction of its own (once per span and process); returns the tables it created."""
        if table not in PARTITIONED_TABLES or not self.dialect.partitioned:  # e.g. funding_rates: one plain table
            return []
        spans = [s for s in spans_covering(interval, start_ms, end_ms) if (table, interval, s) not in self._ready_spans]
        if not spans:
            return []
        with self.engine.begin() as connection:
            created = self.dialect.ensure_partitions(connection, table, interval, spans[0].start_ms, spans[-1].end_ms)
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
        return self.dialect.read_frame(connection, query, table, columns)

    def merge_partition(self, table: sa.Table, exchange: str, symbol: str, timeframe: str, frame: pd.DataFrame,
                        start_ms: int, end_ms: int, fetched_at_ms: int) -> MergeResult:
        """Merges one partition's rows ([start_ms, end_ms)) into a table in a single transaction."""
        return self.merge_partitions(table, exchange, symbol, timeframe, frame, [(start_ms, end_ms)], fetched_at_ms)[0]

    def merge_partitions(self, table: sa.Table, exchange: str, symbol: str, timeframe: str, frame: pd.DataFrame,
                         bounds: list[tuple[int, int]], fetched_at_ms: int) -> list[MergeResult]:
        """Merges the rows of several partitions (ascending, disjoint [start, end) bounds) in one
        transaction, so a ranged run pays one round of COPY and merge per batch, not per day."""
        return self._merge(table, exchange, symbol, timeframe, frame, bounds, fetched_at_ms)[0]

    def merge_candle_days(self, exchange: str, symbol: str, timeframe: str, frame: pd.DataFrame,
                          bounds: list[tuple[int, int]], fetched_at_ms: int) -> tuple[list[MergeResult], list[pd.DataFrame]]:
        """``merge_partitions`` of candles, also returning each partition's candles (``CANDLE_COLUMNS``,
        ascending) as the transaction left them: the rows stored before it (read in it) with the
        merged rows in their place, what reading them back after the commit returns unless another
        writer changed the same candles meanwhile (the checks of a batch read them from here)."""
        results, existing, frame = self._merge(candles, exchange, symbol, timeframe, frame, bounds, fetched_at_ms)
        incoming = frame[CANDLE_COLUMNS]
        if len(existing):
            kept = existing.loc[~np.isin(existing["open_time"].to_numpy(), incoming["open_time"].to_numpy()), CANDLE_COLUMNS]
            incoming = pd.concat([kept, incoming], ignore_index=True)
        times = incoming["open_time"].to_numpy()
        if len(times) > 1 and not (times[1:] > times[:-1]).all():
            incoming = incoming.sort_values("open_time", kind="stable", ignore_index=True)
            times = incoming["open_time"].to_numpy()
        return results, [incoming.iloc[np.searchsorted(times, start):np.searchsorted(times, end)].reset_index(drop=True)
                         for start, end in bounds]

    def _merge(self, table: sa.Table, exchange: str, symbol: str, timeframe: str, frame: pd.DataFrame,
               bounds: list[tuple[int, int]], fetched_at_ms: int) -> tuple[list[MergeResult], pd.DataFrame, pd.DataFrame]:
        """The merge; returns its results, the rows stored before it (read in its transaction) and the rows merged."""
        if len(frame):
            times = frame["open_time"].to_numpy()
            self.ensure_partitions(table.name, timeframe, int(times.min()), int(times.max()) + 1)
        frame = frame.assign(**{c: np.nan for c in value_columns(table) if c not in frame})  # e.g. extras a venue lacks
        times = frame["open_time"].to_numpy()
        # the stored rows of every incoming one, even one outside the bounds: what is new is then exact
        first, end = (bounds[0][0], bounds[-1][1]) if not len(times) else (
            min(bounds[0][0], int(times.min())), max(bounds[-1][1], int(times.max()) + 1))
        with self.engine.begin() as connection:
            existing = self.read_rows(table, exchange, symbol, timeframe, first, end, connection)
            changes = row_changes(existing, frame, value_columns(table))
            changed = frame[changes.changed]
            if len(changed):
                rows = changed.assign(exchange=exchange, symbol=symbol, timeframe=timeframe, fetched_at=fetched_at_ms)
                rows = rows[[c.name for c in table.columns]]
                inserted = self.dialect.merge_rows(connection, table, rows, changes.is_new[changes.changed])
                if table is candles:
                    candle_days.add(connection, self.dialect, exchange, symbol, timeframe, inserted)
        return [changes.result((times >= start) & (times < end)) for start, end in bounds], existing, frame

    def delete_candles(self, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> int:
        """Deletes an instrument's candles (and features) opening in [start_ms, end_ms), its days
        counted again in the same transaction; returns the candles deleted. For an operator's
        repair: the runs never delete (retention drops whole spans)."""
        with self.engine.begin() as connection:
            deleted = [connection.execute(sa.delete(table).where(
                table.c.exchange == exchange, table.c.symbol == symbol, table.c.timeframe == timeframe,
                table.c.open_time >= start_ms, table.c.open_time < end_ms)).rowcount for table in (candles, candle_features)]
            candle_days.recount(connection, exchange, symbol, timeframe, start_ms, end_ms)
        return deleted[0]

    def stored_counts(self) -> dict[tuple[str, str, str], candle_days.Stored]:
        """Per (exchange, symbol, interval) holding candles: how many, first and last open time,
        from the per-day counts (``candle_days``), never a scan of the candles."""
        with self.engine.connect() as connection:
            return candle_days.totals(connection)

