"""Where the shared rate budgets and their holds are kept (``rate_budget`` rows, PostgreSQL
notifications, an SQLite warehouse's ``<warehouse>-holds`` file): the storage side of
``ohlcv_assets.exchange.rate_budget``, which holds the rules.

``BudgetRows`` is one exchange's budget in the warehouse: its GCRA state (row ``<key>``) and the
end of its latest hold (row ``<key> hold``). On PostgreSQL a hold is also announced on
``HOLD_CHANNEL``, which every process LISTENs on (``HoldListener``): checking for a hold drains
the notifications already on the socket, with no round trip. An SQLite warehouse (one host) keeps
its holds in a small database file beside it (``HoldFile``), read locally and written without
waiting for the warehouse's write lock (which a candle write may hold for a while)."""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ohlcv_assets.warehouse.schema import rate_budget

Engine = sa.Engine  # what the rate budget's callers hand down, named here so exchange/ needs no SQLAlchemy
HOLD_CHANNEL = "ohlcv_rate_hold"  # PostgreSQL notifications: "<budget key> <hold end, epoch seconds>"
RELISTEN_SECONDS = 1.0  # how often a process whose listening connection failed tries again


def hold_key(key: str) -> str:
    """The warehouse row holding the end of the latest hold of budget ``key``."""
    return f"{key} hold"


class HoldListener:
    """One PostgreSQL connection per process and database, LISTENing on ``HOLD_CHANNEL``: the hold
    ends other processes declared arrive on its socket, and ``until`` drains them without a round
    trip. While it cannot listen (a restarted server), ``until`` returns None and the caller reads
    the warehouse row instead."""

    _by_url: weakref.WeakValueDictionary[str, HoldListener] = weakref.WeakValueDictionary()
    _registry_lock = threading.Lock()

    @classmethod
    def for_engine(cls, engine: sa.Engine) -> HoldListener:
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with cls._registry_lock:
            listener = cls._by_url.get(url)
            if listener is None:
                listener = cls._by_url[url] = cls(url)
            return listener

    def __init__(self, url: str):
        self._url = url
        self._marks: dict[str, float] = {}
        self._synced: set[str] = set()  # keys whose row was read since this connection listens
        self._connection = None
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._connect()
        weakref.finalize(self, HoldListener._close, self.__dict__)

    @staticmethod
    def _close(state: dict) -> None:
        if state.get("_connection") is not None:
            state["_connection"].close()

    def _connect(self) -> None:
        import psycopg

        try:
            connection = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            connection.execute(f"LISTEN {HOLD_CHANNEL}")
            # Its announcements need not wait for the disk (it writes nothing else): every ms counts.
            connection.execute("SET synchronous_commit = off")
            self._connection, self._synced = connection, set()
        except psycopg.Error:
            self._connection, self._retry_at = None, time.monotonic() + RELISTEN_SECONDS

    def until(self, key: str) -> float | None:
        """The latest hold end known for ``key``; None while not listening, or before the row
        was read since this connection listens (a hold declared before it is not announced):
        the caller then reads the row and passes it to ``remember``."""
        import psycopg

        # Waits for a thread that is draining: it may be reading the very hold this request must
        # not outrun (a few µs; or one round trip while this process announces a hold).
        with self._lock:
            if self._connection is None:
                if time.monotonic() < self._retry_at:
                    return None
                self._connect()
                return None
            if key not in self._synced:
                return None
            try:
                for note in self._connection.notifies(timeout=0):
                    name, _, until = note.payload.rpartition(" ")
                    self._marks[name] = max(self._marks.get(name, 0.0), float(until))
            except psycopg.Error:
                self._connection.close()
                self._connection, self._retry_at = None, time.monotonic() + RELISTEN_SECONDS
                return None
            return self._marks.get(key, 0.0)

    def announce(self, key: str, until: float) -> bool:
        """Tells every listening process (this one too) of a hold: one round trip on this
        connection. False if it cannot (the caller announces it with the row instead)."""
        import psycopg

        with self._lock:
            self._marks[key] = max(self._marks.get(key, 0.0), until)
            if self._connection is None:
                return False
            try:
                self._connection.execute("SELECT pg_notify(%s, %s)", (HOLD_CHANNEL, f"{key} {until!r}"))
                return True
            except psycopg.Error:
                self._connection.close()
                self._connection, self._retry_at = None, time.monotonic() + RELISTEN_SECONDS
                return False

    def remember(self, key: str, until: float, synced: bool = False) -> None:
        """A hold end this process declared, or (``synced``) the row as read after listening."""
        with self._lock:
            self._marks[key] = max(self._marks.get(key, 0.0), until)
            if synced and self._connection is not None:
                self._synced.add(key)


class HoldFile:
    """Holds beside an SQLite warehouse: one row per budget in ``<warehouse>-holds``."""

    def __init__(self, path: str):
        self._connection = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("CREATE TABLE IF NOT EXISTS holds (budget TEXT PRIMARY KEY, until REAL NOT NULL)")

    def declare(self, key: str, until: float) -> None:
        with self._lock:
            self._connection.execute("INSERT INTO holds VALUES (?, ?) ON CONFLICT (budget) DO UPDATE SET until = "
                                     "max(until, excluded.until)", (key, until))

    def until(self, key: str) -> float:
        with self._lock:
            row = self._connection.execute("SELECT until FROM holds WHERE budget = ?", (key,)).fetchone()
        return float(row[0]) if row else 0.0


class BudgetRows:
    """One exchange's budget (``key``) in the warehouse of ``engine``: its GCRA state, advanced
    atomically, and its holds, which reach every process on the budget."""

    def __init__(self, engine: sa.Engine, key: str):
        # One statement per advance: on PostgreSQL it runs in autocommit (one round trip, atomic on
        # its own); SQLite keeps the warehouse's BEGIN IMMEDIATE.
        postgres = engine.dialect.name == "postgresql"
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT") if postgres else engine
        self._key = key
        self._insert = pg_insert if postgres else sqlite_insert
        self._greatest = sa.func.greatest if postgres else sa.func.max
        self._hold_engine = engine  # the hold's row and its notification commit together
        self._listener = HoldListener.for_engine(engine) if postgres else None
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self._hold_file = HoldFile(f"{database}-holds") if database and database != ":memory:" else None

    def _upsert(self, key: str, floor: float, add: float):
        statement = self._insert(rate_budget).values(exchange=key, tat=floor + add)
        return statement.on_conflict_do_update(
            index_elements=["exchange"], set_={"tat": self._greatest(rate_budget.c.tat, floor) + add},
        ).returning(rate_budget.c.tat)

    def advance(self, floor: float, add: float) -> float:
        """tat := max(tat, floor) + add, atomically; returns the new tat."""
        with self._engine.begin() as connection:
            return float(connection.execute(self._upsert(self._key, floor, add)).scalar_one())

    def declare_hold(self, until: float) -> None:
        """Tells every process on this budget that nobody sends before ``until``: the
        notification first (what the others wait for), then the row (for processes not listening)."""
        if self._hold_file is not None:
            self._hold_file.declare(self._key, until)
            return
        announced = self._listener is not None and self._listener.announce(self._key, until)
        with self._hold_engine.begin() as connection:
            if self._listener is not None and not announced:
                # Announced at commit, which then need not wait for the disk: every ms counts here.
                connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
                connection.execute(sa.select(sa.func.pg_notify(HOLD_CHANNEL, f"{self._key} {until!r}")))
            connection.execute(self._upsert(hold_key(self._key), until, 0.0))

    def hold_until(self) -> float:
        """The end of the latest hold any process declared on this budget (0: none)."""
        if self._hold_file is not None:
            return self._hold_file.until(self._key)
        if self._listener is not None:
            announced = self._listener.until(self._key)
            if announced is not None:
                return announced
        return self._read_hold()

    def _read_hold(self) -> float:
        """The hold row, read outside any transaction (on an in-memory SQLite warehouse, without
        the write lock the warehouse's transactions take)."""
        connection = self._hold_engine.raw_connection()
        try:
            cursor = connection.cursor()
            placeholder = "%s" if self._listener is not None else "?"
            cursor.execute(f"SELECT tat FROM rate_budget WHERE exchange = {placeholder}", (hold_key(self._key),))
            row = cursor.fetchone()
            cursor.close()
            if self._listener is not None:
                connection.commit()
            until = float(row[0]) if row else 0.0
        finally:
            connection.close()
        if self._listener is not None:
            self._listener.remember(self._key, until, synced=True)
        return until
