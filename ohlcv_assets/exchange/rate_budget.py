"""An exchange's request-weight budget, shared by every process that calls it.

ccxt's limiter lives in one process, but parallel backfill runs, the today schedule and gap
backfills are separate processes against the same IP budget. ``SharedRateBudget`` keeps the
budget in the warehouse database as a GCRA (generic cell rate algorithm) state: one row per
exchange holding the theoretical arrival time. A process reserves a lease of slots with a single
atomic ``INSERT ... ON CONFLICT ... RETURNING`` and each request sleeps until its slot; no lock is
held while waiting.

The steady rate is ``budget_use`` of the exchange's weight limit per window, with a burst of
``budget_burst`` on top, so no window of the exchange (rolling or fixed) can exceed
``budget_use + budget_burst`` of the budget. The exchange's own used-weight header and its 429s
push the shared state forward, so every process backs off, not only the one that was told.

A 429 (or 418, or a venue's own rate-limit error) also declares a hold: until its Retry-After
(plus margin) has passed nobody on that budget sends, whatever slots it has already leased. The
hold's end is kept beside the budget and reaches every process at once; each request checks it
just before it is sent, and a hold cuts the checking process's lease short. The check costs no
round trip: on PostgreSQL the hold is a row of ``rate_budget`` (``<key> hold``) announced on
``HOLD_CHANNEL``, which every process LISTENs on, and the check drains the notifications already
on the socket (a few µs); an SQLite warehouse (one host) keeps its holds in a small database file
beside it (``<warehouse>-holds``), read locally, and written without waiting for the warehouse's
write lock (which a candle write may hold for a while). Only requests already on the wire when
the 429 arrived are sent inside a hold.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ohlcv_assets.core.universe import ExchangeConfig
from ohlcv_assets.warehouse.schema import rate_budget


class RateBudget:
    """GCRA slots over a state store: ``_advance`` is the one atomic step, tat := max(tat, floor) + add
    (``tat`` in epoch seconds). Slots are reserved a lease at a time and handed out in order: the
    same schedule as reserving request by request."""

    def __init__(self, config: ExchangeConfig, clock: Callable[[], float], lease_weight: float):
        self._seconds_per_weight = config.weight_window_seconds / (config.weight_limit * config.budget_use)
        self._burst_seconds = config.weight_limit * config.budget_burst * self._seconds_per_weight
        self._clock = clock
        self._lease_weight = lease_weight
        self._lease_start = 0.0  # when the lease's first weight unit may be sent
        self._lease_left = 0.0
        self._lease_used = 0.0
        self._hold_until = 0.0  # the end of the latest hold this process knows of (epoch seconds)
        self._lock = threading.Lock()

    def _advance(self, floor: float, add: float) -> float:
        raise NotImplementedError

    def _fleet_hold_until(self) -> float:
        """The end of the latest hold any process declared on this budget (0: none known)."""
        return 0.0

    def _declare_hold(self, until: float) -> None:
        """Tells every process on this budget that nobody sends before ``until``."""

    def reserve(self, weight: float) -> float:
        """Reserves ``weight``; returns the seconds to wait before sending the request (then
        ``hold_left`` says whether it may still be sent)."""
        with self._lock:
            now = self._clock()
            if self._hold_until > now:
                self._lease_left = 0.0  # a lease never outlives a hold
            if self._lease_left < weight:
                lease = max(weight, self._lease_weight)
                cost = lease * self._seconds_per_weight
                self._lease_start = self._advance(now, cost) - cost - self._burst_seconds
                self._lease_left, self._lease_used = lease, 0.0
            slot = self._lease_start + self._lease_used * self._seconds_per_weight
            self._lease_used += weight
            self._lease_left -= weight
            return max(0.0, slot - now, self._hold_until - now)

    def hold_left(self) -> float:
        """Seconds until the hold that any process declared on this budget ends (0: none): checked
        just before each request is sent, after waiting for its slot. A hold cuts this process's
        lease short: the slots it leased before the hold are not sent."""
        until = max(self._hold_until, self._fleet_hold_until())
        with self._lock:
            now = self._clock()
            if until <= now:
                return 0.0
            self._hold_until = max(self._hold_until, until)
            self._lease_left = 0.0
            return until - now

    def hold_back(self, seconds: float) -> None:
        """Nobody may send for ``seconds`` from now (a 429's Retry-After, or an over-full window):
        this process's threads stop at once, the other processes at their next request, and the
        shared schedule resumes after the hold."""
        with self._lock:
            until = self._clock() + seconds
            self._hold_until = max(self._hold_until, until)
            self._lease_left = 0.0  # slots already leased must not outrun the hold
            self._declare_hold(until)
            # The schedule resumes at the hold's end with its burst allowance: what the hold kept
            # from being sent may follow at once, as no window then holds more than its share.
            self._advance(until, 0.0)


class LocalRateBudget(RateBudget):
    """The same budget for a single process (CLI probes, tests of the source alone)."""

    def __init__(self, config: ExchangeConfig, clock: Callable[[], float] = time.time):
        super().__init__(config, clock, lease_weight=0.0)
        self._tat = 0.0

    def _advance(self, floor: float, add: float) -> float:
        self._tat = max(self._tat, floor) + add
        return self._tat


HOLD_CHANNEL = "ohlcv_rate_hold"  # PostgreSQL notifications: "<budget key> <hold end, epoch seconds>"
RELISTEN_SECONDS = 1.0  # how often a process whose listening connection failed tries again


def hold_key(key: str) -> str:
    """The warehouse row holding the end of the latest hold of budget ``key``."""
    return f"{key} hold"


class _HoldListener:
    """One PostgreSQL connection per process and database, LISTENing on ``HOLD_CHANNEL``: the hold
    ends other processes declared arrive on its socket, and ``until`` drains them without a round
    trip. While it cannot listen (a restarted server), ``until`` returns None and the caller reads
    the warehouse row instead."""

    _by_url: weakref.WeakValueDictionary[str, _HoldListener] = weakref.WeakValueDictionary()
    _registry_lock = threading.Lock()

    @classmethod
    def for_engine(cls, engine: sa.Engine) -> _HoldListener:
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
        weakref.finalize(self, _HoldListener._close, self.__dict__)

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

        if not self._lock.acquire(blocking=False):  # another thread is draining: what is known will do
            return self._marks.get(key, 0.0) if self._connection is not None and key in self._synced else None
        try:
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
        finally:
            self._lock.release()

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


class _SqliteHoldFile:
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


class SharedRateBudget(RateBudget):
    """The budget of one exchange, kept in the warehouse so that all run processes share it.

    A lease is 8 candle requests, or 1 % of the window's limit if more: one statement for several
    requests. What a process leaves of its last lease is lost to the others: at most one lease.
    Holds reach every process on the budget (see the module's docstring)."""

    def __init__(self, engine: sa.Engine, exchange: str, config: ExchangeConfig, clock: Callable[[], float] = time.time,
                 lease_weight: float | None = None):
        super().__init__(config, clock, lease_weight if lease_weight is not None
                         else max(8 * config.candles_weight, 0.01 * config.weight_limit))
        # One statement per lease: on PostgreSQL it runs in autocommit (one round trip, atomic on
        # its own); SQLite keeps the warehouse's BEGIN IMMEDIATE.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT") if engine.dialect.name == "postgresql" else engine
        self._exchange = exchange
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        self._greatest = sa.func.greatest if engine.dialect.name == "postgresql" else sa.func.max
        self._hold_engine = engine  # the hold's row and its notification commit together
        self._listener = _HoldListener.for_engine(engine) if engine.dialect.name == "postgresql" else None
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self._hold_file = _SqliteHoldFile(f"{database}-holds") if database and database != ":memory:" else None

    def _upsert(self, key: str, floor: float, add: float):
        statement = self._insert(rate_budget).values(exchange=key, tat=floor + add)
        return statement.on_conflict_do_update(
            index_elements=["exchange"], set_={"tat": self._greatest(rate_budget.c.tat, floor) + add},
        ).returning(rate_budget.c.tat)

    def _advance(self, floor: float, add: float) -> float:
        with self._engine.begin() as connection:
            return float(connection.execute(self._upsert(self._exchange, floor, add)).scalar_one())

    def _declare_hold(self, until: float) -> None:
        if self._hold_file is not None:
            self._hold_file.declare(self._exchange, until)
            return
        announced = self._listener is not None and self._listener.announce(self._exchange, until)
        with self._hold_engine.begin() as connection:
            if self._listener is not None and not announced:
                # Announced at commit, which then need not wait for the disk: every ms counts here.
                connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
                connection.execute(sa.select(sa.func.pg_notify(HOLD_CHANNEL, f"{self._exchange} {until!r}")))
            connection.execute(self._upsert(hold_key(self._exchange), until, 0.0))

    def _fleet_hold_until(self) -> float:
        if self._hold_file is not None:
            return self._hold_file.until(self._exchange)
        if self._listener is not None:
            announced = self._listener.until(self._exchange)
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
            cursor.execute(f"SELECT tat FROM rate_budget WHERE exchange = {placeholder}", (hold_key(self._exchange),))
            row = cursor.fetchone()
            cursor.close()
            if self._listener is not None:
                connection.commit()
            until = float(row[0]) if row else 0.0
        finally:
            connection.close()
        if self._listener is not None:
            self._listener.remember(self._exchange, until, synced=True)
        return until
