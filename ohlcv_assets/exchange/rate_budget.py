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
hold is declared the moment the answer's status line is read (``RetryingCaller.on_answer``, from
the HTTP adapter every request goes through), and every request checks it at the last moment,
in that adapter just before the request is written to the socket (``RetryingCaller.before_send``).
The hold's end is kept beside the budget and reaches every process at once (see
``ohlcv_assets.warehouse.rate_holds``: a PostgreSQL notification, or a file beside an SQLite
warehouse); the check costs no round trip. A hold cuts every process's lease short, and the
slots a process leased but did not send are given back to the budget, so that the hold costs the
fleet only its own length. Only requests already on the wire when the 429 arrived are sent
inside a hold.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ohlcv_assets.core.universe import ExchangeConfig
from ohlcv_assets.http.egress import apart_budget_key
from ohlcv_assets.warehouse.rate_holds import BudgetRows

if TYPE_CHECKING:
    from ohlcv_assets.warehouse.rate_holds import Engine


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

    def apart(self, name: str, limit: int, window_seconds: float) -> RateBudget:
        """The budget of the same venue and address that one family of its requests counts on
        instead of this one (a venue's endpoint limited per IP by request count, not weight:
        Binance USDⓈ-M's open interest), ``limit`` requests per ``window_seconds``, kept as this one
        is (the same store, with holds of its own)."""
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
                self._cut_lease()  # a lease never outlives a hold
            if self._lease_left < weight:
                lease = max(weight, self._lease_weight)
                cost = lease * self._seconds_per_weight
                self._lease_start = self._advance(now, cost) - cost - self._burst_seconds
                self._lease_left, self._lease_used = lease, 0.0
            slot = self._lease_start + self._lease_used * self._seconds_per_weight
            self._lease_used += weight
            self._lease_left -= weight
            return max(0.0, slot - now, self._hold_until - now)

    def _cut_lease(self) -> None:
        """Ends this process's lease at a hold: the slots it leased and did not send are given
        back to the budget (the fleet's schedule closes up behind the hold instead of losing them)."""
        if self._lease_left > 0:
            self._advance(0.0, -self._lease_left * self._seconds_per_weight)
        self._lease_left = 0.0

    def release(self, weight: float) -> None:
        """Gives back a slot reserved and not sent (a hold began before its turn came)."""
        with self._lock:
            self._advance(0.0, -weight * self._seconds_per_weight)

    def hold_left(self) -> float:
        """Seconds until the hold that any process declared on this budget ends (0: none): checked
        just before each request is sent. A hold cuts this process's lease short (``_cut_lease``)."""
        until = max(self._hold_until, self._fleet_hold_until())
        with self._lock:
            now = self._clock()
            until = max(self._hold_until, until)  # a hold this process declared meanwhile
            if until <= now:
                return 0.0
            self._hold_until = until
            self._cut_lease()
            return until - now

    def hold_back(self, seconds: float, since: float | None = None) -> float:
        """Nobody may send for ``seconds`` from ``since`` (default now; a 429's Retry-After, or an
        over-full window): this process's threads stop at once, the other processes at their next
        request, and the shared schedule resumes after the hold. A hold this process already
        declared or learned of that lasts as long is not declared again. Returns the hold's end."""
        with self._lock:
            until = (self._clock() if since is None else since) + seconds
            if until <= self._hold_until:
                self._cut_lease()
                return until
            self._hold_until = until  # this process's threads stop at once,
            self._declare_hold(until)  # then the others: nothing may come before this round trip
            self._cut_lease()  # slots already leased must not outrun the hold
            # The schedule resumes at the hold's end with its burst allowance: what the hold kept
            # from being sent may follow at once, as no window then holds more than its share.
            self._advance(until, 0.0)
            return until


def _apart_config(config: ExchangeConfig, limit: int, window_seconds: float) -> ExchangeConfig:
    return config.model_copy(update={"weight_limit": limit, "weight_window_seconds": window_seconds})


class LocalRateBudget(RateBudget):
    """The same budget for a single process (CLI probes, tests of the source alone)."""

    def __init__(self, config: ExchangeConfig, clock: Callable[[], float] = time.time):
        super().__init__(config, clock, lease_weight=0.0)
        self._tat = 0.0
        self._config = config

    def apart(self, name: str, limit: int, window_seconds: float) -> RateBudget:
        return LocalRateBudget(_apart_config(self._config, limit, window_seconds), self._clock)

    def _advance(self, floor: float, add: float) -> float:
        self._tat = max(self._tat, floor) + add
        return self._tat


class SharedRateBudget(RateBudget):
    """The budget of one exchange, kept in the warehouse so that all run processes share it.

    A lease is 8 candle requests, or 1 % of the window's limit if more: one statement for several
    requests. What a process leaves of its last lease is lost to the others: at most one lease.
    Holds reach every process on the budget (see the module's docstring)."""

    def __init__(self, engine: Engine, exchange: str, config: ExchangeConfig, clock: Callable[[], float] = time.time,
                 lease_weight: float | None = None):
        super().__init__(config, clock, lease_weight if lease_weight is not None
                         else max(8 * config.candles_weight, 0.01 * config.weight_limit))
        self._rows = BudgetRows(engine, exchange)
        self._engine, self._key, self._config = engine, exchange, config

    def apart(self, name: str, limit: int, window_seconds: float) -> RateBudget:
        """Keyed ``<venue>:<name>[@<egress>]`` (e.g. ``binanceusdm:open_interest``: its own row, not
        read as the venue's budget); a lease is 1 % of its window's limit."""
        return SharedRateBudget(self._engine, apart_budget_key(self._key, name), _apart_config(self._config, limit, window_seconds),
                                self._clock, lease_weight=max(1.0, 0.01 * limit))

    def _advance(self, floor: float, add: float) -> float:
        return self._rows.advance(floor, add)

    def _declare_hold(self, until: float) -> None:
        self._rows.declare_hold(until)

    def _fleet_hold_until(self) -> float:
        return self._rows.hold_until()
