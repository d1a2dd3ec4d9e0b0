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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ohlcv_assets.universe import ExchangeConfig
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
        self._lock = threading.Lock()

    def _advance(self, floor: float, add: float) -> float:
        raise NotImplementedError

    def reserve(self, weight: float) -> float:
        """Reserves ``weight``; returns the seconds to wait before sending the request."""
        with self._lock:
            now = self._clock()
            if self._lease_left < weight:
                lease = max(weight, self._lease_weight)
                cost = lease * self._seconds_per_weight
                self._lease_start = self._advance(now, cost) - cost - self._burst_seconds
                self._lease_left, self._lease_used = lease, 0.0
            slot = self._lease_start + self._lease_used * self._seconds_per_weight
            self._lease_used += weight
            self._lease_left -= weight
            return max(0.0, slot - now)

    def hold_back(self, seconds: float) -> None:
        """Nobody may send for ``seconds`` from now (a 429's Retry-After, or an over-full window)."""
        with self._lock:
            self._lease_left = 0.0  # slots already leased must not outrun the hold
            self._advance(self._clock() + seconds + self._burst_seconds, 0.0)


class LocalRateBudget(RateBudget):
    """The same budget for a single process (CLI probes, tests of the source alone)."""

    def __init__(self, config: ExchangeConfig, clock: Callable[[], float] = time.time):
        super().__init__(config, clock, lease_weight=0.0)
        self._tat = 0.0

    def _advance(self, floor: float, add: float) -> float:
        self._tat = max(self._tat, floor) + add
        return self._tat


class SharedRateBudget(RateBudget):
    """The budget of one exchange, kept in the warehouse so that all run processes share it.

    A lease is 8 candle requests, or 1 % of the window's limit if more: one statement for several
    requests. What a process leaves of its last lease is lost to the others: at most one lease."""

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

    def _advance(self, floor: float, add: float) -> float:
        statement = self._insert(rate_budget).values(exchange=self._exchange, tat=floor + add)
        statement = statement.on_conflict_do_update(
            index_elements=["exchange"], set_={"tat": self._greatest(rate_budget.c.tat, floor) + add},
        ).returning(rate_budget.c.tat)
        with self._engine.begin() as connection:
            return float(connection.execute(statement).scalar_one())
