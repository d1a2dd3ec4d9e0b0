"""An exchange's request-weight budget, shared by every process that calls it.

ccxt's limiter lives in one process, but parallel backfill runs, the today schedule and gap
backfills are separate processes against the same IP budget. ``SharedRateBudget`` keeps the
budget in the warehouse database as a GCRA (generic cell rate algorithm) state: one row per
exchange holding the theoretical arrival time. A request reserves its weight with a single atomic
``UPDATE ... RETURNING`` and sleeps until its slot; no lock is held while waiting.

The steady rate is ``budget_use`` of the exchange's weight limit per window, with a burst of
``budget_burst`` on top, so no window of the exchange (rolling or fixed) can exceed
``budget_use + budget_burst`` of the budget. The exchange's own used-weight header and its 429s
push the shared state forward, so every process backs off, not only the one that was told.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ohlcv_assets.universe import ExchangeConfig
from ohlcv_assets.warehouse.schema import rate_budget


class RateBudget(Protocol):
    def reserve(self, weight: float) -> float:
        """Reserves ``weight`` and returns the seconds to wait before sending the request."""

    def hold_back(self, seconds: float) -> None:
        """Nobody may send for ``seconds`` from now (a 429's Retry-After, or an over-full window)."""


class _Gcra:
    """Slot arithmetic shared by both budgets; ``tat`` is in epoch seconds."""

    def __init__(self, config: ExchangeConfig):
        self.seconds_per_weight = config.weight_window_seconds / (config.weight_limit * config.budget_use)
        self.burst_seconds = config.weight_limit * config.budget_burst * self.seconds_per_weight

    def cost(self, weight: float) -> float:
        return weight * self.seconds_per_weight

    def wait(self, new_tat: float, cost: float, now: float) -> float:
        return max(0.0, new_tat - cost - self.burst_seconds - now)


class LocalRateBudget:
    """The same budget for a single process (CLI probes, tests of the source alone)."""

    def __init__(self, config: ExchangeConfig, clock: Callable[[], float] = time.time):
        self._gcra = _Gcra(config)
        self._clock = clock
        self._tat = 0.0
        self._lock = threading.Lock()

    def reserve(self, weight: float) -> float:
        cost = self._gcra.cost(weight)
        with self._lock:
            now = self._clock()
            self._tat = max(self._tat, now) + cost
            return self._gcra.wait(self._tat, cost, now)

    def hold_back(self, seconds: float) -> None:
        with self._lock:
            self._tat = max(self._tat, self._clock() + seconds + self._gcra.burst_seconds)


class SharedRateBudget:
    """The budget of one exchange, kept in the warehouse so that all run processes share it.

    A process reserves a lease at a time (8 candle requests, or 1 % of the window's limit if more:
    one statement for several requests) and hands its slots out in order: the same schedule as
    reserving request by request, with a fraction of the database round trips. What a process
    leaves of its last lease is lost to the others: at most one lease."""

    def __init__(self, engine: sa.Engine, exchange: str, config: ExchangeConfig, clock: Callable[[], float] = time.time,
                 lease_weight: float | None = None):
        # One statement per lease: on PostgreSQL it runs in autocommit (one round trip, atomic on
        # its own); SQLite keeps the warehouse's BEGIN IMMEDIATE.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT") if engine.dialect.name == "postgresql" else engine
        self._exchange = exchange
        self._gcra = _Gcra(config)
        self._clock = clock
        self._lease_weight = lease_weight if lease_weight is not None else max(8 * config.candles_weight, 0.01 * config.weight_limit)
        self._lease_start = 0.0  # when the lease's first weight unit may be sent
        self._lease_left = 0.0
        self._lease_used = 0.0
        self._lock = threading.Lock()
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        self._greatest = sa.func.greatest if engine.dialect.name == "postgresql" else sa.func.max

    def _advance(self, floor: float, add: float) -> float:
        """tat := max(tat, floor) + add, atomically; returns the new tat."""
        statement = self._insert(rate_budget).values(exchange=self._exchange, tat=floor + add)
        statement = statement.on_conflict_do_update(
            index_elements=["exchange"], set_={"tat": self._greatest(rate_budget.c.tat, floor) + add},
        ).returning(rate_budget.c.tat)
        with self._engine.begin() as connection:
            return float(connection.execute(statement).scalar_one())

    def reserve(self, weight: float) -> float:
        with self._lock:
            now = self._clock()
            if self._lease_left < weight:
                lease = max(weight, self._lease_weight)
                cost = self._gcra.cost(lease)
                self._lease_start = self._advance(now, cost) - cost - self._gcra.burst_seconds
                self._lease_left, self._lease_used = lease, 0.0
            slot = self._lease_start + self._gcra.cost(self._lease_used)
            self._lease_used += weight
            self._lease_left -= weight
            return max(0.0, slot - now)

    def hold_back(self, seconds: float) -> None:
        with self._lock:
            self._lease_left = 0.0  # slots already leased must not outrun the hold
            self._advance(self._clock() + seconds + self._gcra.burst_seconds, 0.0)
