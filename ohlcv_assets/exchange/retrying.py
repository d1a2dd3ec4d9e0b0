"""The retry discipline every candle source shares, whatever its protocol.

Every request draws on the venue's shared budget; rate-limit answers wait for ``Retry-After``
and declare a hold on the budget that stops every process drawing on it: the hold is declared as
soon as a 429 or 418 status line is read (``on_answer``), and each request checks the hold at the
last moment, just before it is written to the socket (``before_send``; both called by the HTTP
adapter, see ``egress``); a request stopped there waits for the hold's end and takes a new slot,
without counting as an attempt; transient failures back off
exponentially with jitter; failures a retry cannot fix fail at once: credentials the venue refuses
(``AuthenticationFailed``), and a refused connection at the source's first contact with the venue
(``VenueUnreachable``: nothing listens at the URL; once the venue has answered, a refused
connection is transient).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ohlcv_assets.core.errors import AuthenticationFailed, VenueUnreachable, connection_refused, public_url
from ohlcv_assets.exchange.rate_budget import LocalRateBudget, RateBudget
from ohlcv_assets.exchange.source import FetchFailed, FetchStats, PermanentFetchError
from ohlcv_assets.http.backoff import backoff_seconds

RETRY_AFTER_MARGIN_SECONDS = 0.25
RATE_LIMITED, PERMANENT, TRANSIENT, AUTH = "rate_limited", "permanent", "transient", "auth"
T = TypeVar("T")
HOLD_STATUSES = (418, 429)  # answers that hold the fleet before anything else is read


class HeldBack(Exception):
    """A request was stopped just before it was written: a hold began after it took its slot."""

if TYPE_CHECKING:
    from ohlcv_assets.core.universe import ExchangeConfig


@dataclasses.dataclass(frozen=True)
class Failure:
    kind: str  # RATE_LIMITED, PERMANENT, TRANSIENT or AUTH
    retry_after: float | None = None  # seconds the venue asked for (rate limits)
    status: int | None = None  # the HTTP status of the answer, if there was one (counted in the stats)


class RetryingCaller:
    """Calls a request function under a venue's budget and retry rules; ``classify`` says what an
    exception means (None: not a venue failure, raised as it is)."""

    def __init__(self, name: str, budget: RateBudget, max_attempts: int, retry_base_seconds: float,
                 sleep: Callable[[float], None], rng: random.Random, stats: FetchStats):
        self.name, self.budget = name, budget
        self.max_attempts, self.retry_base_seconds = max_attempts, retry_base_seconds
        self._sleep, self._rng, self.stats = sleep, rng, stats
        self._lock = threading.Lock()
        self._answers = threading.local()  # when this thread's last answer declared a hold (budget clock)
        self.url: str | None = None  # the venue's base URL, named when nothing answers there
        self.answered = False  # the venue answered a request of this source (a refused connection is then transient)

    def on_budget(self, budget: RateBudget) -> RetryingCaller:
        """A caller with the same rules and counts on another budget (a family of the venue's
        requests that it limits apart: ``RateBudget.apart``)."""
        caller = RetryingCaller(self.name, budget, self.max_attempts, self.retry_base_seconds, self._sleep, self._rng, self.stats)
        caller.url = self.url
        return caller

    def before_send(self) -> None:
        """The last check before a request is written (from the HTTP adapter): a hold declared
        since the request took its slot keeps it from being sent."""
        if self.budget.hold_left() > 0:
            raise HeldBack()

    def on_answer(self, status: int, headers) -> None:
        """A 429 or 418 holds the fleet the moment its status line is read, before the answer is
        parsed: its Retry-After (1 s if absent) plus ``RETRY_AFTER_MARGIN_SECONDS``."""
        self._answers.hold_from = None
        if status not in HOLD_STATUSES:
            return
        try:
            retry_after = float(headers.get("Retry-After", 1.0))
        except ValueError:
            retry_after = 1.0
        seconds = retry_after + RETRY_AFTER_MARGIN_SECONDS
        self._answers.hold_from = self.budget.hold_back(seconds) - seconds

    def call(self, fn: Callable[[], T], weight: int, classify: Callable[[Exception], Failure | None],
             after: Callable[[], None] | None = None) -> T:
        attempt = 0
        while attempt < self.max_attempts:
            self._wait_for_turn(weight)
            self._answers.hold_from = None
            with self._lock:
                self.stats.requests += 1
            try:
                result = fn()
                self.answered = True
                if after is not None:
                    after()
                return result
            except HeldBack:  # not sent: its slot goes back; wait for the hold's end, then take a new one
                self.budget.release(weight)
                with self._lock:
                    self.stats.requests -= 1
                continue
            except Exception as err:
                failure = classify(err)
                if failure is None:
                    raise
                self._count(failure)
                if connection_refused(err) and not self.answered:
                    raise VenueUnreachable(self.name, public_url(self.url or "")) from None
                self.answered = True
                backoff = backoff_seconds(attempt, self.retry_base_seconds, self._rng)
                if failure.kind == AUTH:
                    raise AuthenticationFailed(self.name, str(err)) from None
                if failure.kind == PERMANENT:
                    raise PermanentFetchError(f"{self.name}: {err}") from err
                if failure.kind == RATE_LIMITED:
                    wait = max((1.0 if failure.retry_after is None else failure.retry_after) + RETRY_AFTER_MARGIN_SECONDS, backoff)
                    # Declared already if on_answer saw the status (then from when it was read).
                    self.budget.hold_back(wait, since=self._answers.hold_from)
                    with self._lock:
                        self.stats.rate_limit_waits += 1
                else:
                    wait = backoff
                if attempt == self.max_attempts - 1:
                    raise FetchFailed(f"{self.name}: request still failing after {self.max_attempts} attempts: {err}") from err
                with self._lock:
                    self.stats.retries += 1
                    self.stats.waited_seconds += wait
                self._sleep(wait)
                attempt += 1
        raise AssertionError("unreachable")

    def _wait_for_turn(self, weight: int) -> None:
        """Waits for a slot of the budget, then for the end of any hold declared meanwhile (by
        this process or another): a slot reserved before a hold is given back, and a new one taken."""
        while True:
            wait = self.budget.reserve(weight)
            if wait > 0:
                self._sleep(wait)
            held = self.budget.hold_left()
            if held <= 0:
                return
            self.budget.release(weight)  # the slot is not used: the schedule closes up behind the hold
            with self._lock:
                self.stats.waited_seconds += held
            self._sleep(held)

    def _count(self, failure: Failure) -> None:
        with self._lock:
            self.stats.errors += 1
            if failure.status == 418:
                self.stats.http_418 += 1
            elif failure.kind == RATE_LIMITED:
                self.stats.http_429 += 1
            elif failure.status is not None and failure.status >= 500:
                self.stats.http_5xx += 1


class RetryingSource:
    """What every candle source over a venue's API holds, whatever its protocol: the venue's
    universe entry, the budget its requests draw on (shared between processes, or this process's
    own), its request counts, and the caller that applies the retry rules above."""

    def __init__(self, name: str, config: ExchangeConfig, budget: RateBudget | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 egress_address: str | None = None):
        self.name = name
        self.config = config
        self.egress_address = egress_address
        self.page_limit = config.page_limit
        self.stats = FetchStats()
        self.budget = budget or LocalRateBudget(config)
        self._caller = RetryingCaller(name, self.budget, config.max_attempts, config.retry_base_seconds, sleep,
                                      rng or random.Random(), self.stats)
        self._caller.url = config.api_url
