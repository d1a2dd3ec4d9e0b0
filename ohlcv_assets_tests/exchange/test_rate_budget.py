"""The shared request budget: GCRA arithmetic, and separate processes that together stay under
the exchange's limit (while separate in-process budgets do not)."""

import multiprocessing
import time

import pytest
import requests

from ohlcv_assets.exchange.ccxt_source import CcxtCandleSource
from ohlcv_assets.http.egress import budget_key
from ohlcv_assets.core.names import venue_pool
from ohlcv_assets.exchange.rate_budget import LocalRateBudget, SharedRateBudget
from ohlcv_assets.exchange.source import FetchFailed
from ohlcv_assets.core.intervals import MINUTE_MS, day_bounds_ms
from ohlcv_assets.core.universe import ExchangeConfig
from ohlcv_assets.warehouse.store import Warehouse
from ohlcv_assets.warehouse.summaries import budget_states
from ohlcv_assets_tests.helpers import PLAIN_DAY

CONFIG = ExchangeConfig(ccxt_id="binance", weight_limit=600, weight_window_seconds=60, budget_use=0.9, budget_burst=0.05)


class Clock:
    def __init__(self):
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def reservations(budget, count: int, weight: float = 2) -> list[float]:
    return [budget.reserve(weight) for _ in range(count)]


@pytest.fixture(params=["local", "shared"])
def budget_and_clock(request, warehouse_url):
    clock = Clock()
    if request.param == "local":
        yield LocalRateBudget(CONFIG, clock), clock
        return
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    yield SharedRateBudget(warehouse.engine, "binance", CONFIG, clock), clock
    warehouse.dispose()


def test_a_burst_then_the_steady_rate(budget_and_clock):
    budget, _ = budget_and_clock
    waits = reservations(budget, 30)
    # 600 weight/min at 90 %: one weight every 1/9 s; the 5 % burst lets 30 weight (15 requests) through at once.
    assert waits[:16] == [0.0] * 16
    assert waits[16] == pytest.approx(2 / 9)
    assert waits[29] == pytest.approx(14 * 2 / 9)


def test_no_window_exceeds_the_limit(budget_and_clock):
    budget, clock = budget_and_clock
    sent = sorted(clock.now + wait for wait in reservations(budget, 400))
    for i, start in enumerate(sent):
        in_window = sum(1 for t in sent[i:] if t < start + 60)
        assert in_window * 2 <= CONFIG.weight_limit * (CONFIG.budget_use + CONFIG.budget_burst) + 2


def test_a_hold_back_delays_everyone(budget_and_clock):
    budget, clock = budget_and_clock
    budget.hold_back(7.0)
    assert budget.reserve(2) == pytest.approx(7.0)


def test_a_budget_apart_paces_its_own_requests_and_holds_only_them(budget_and_clock):
    """A family of requests the venue limits apart (USDⓈ-M's open interest: requests per window,
    not weight) counts on a budget of its own: it neither draws on the weight budget nor waits for
    it, and a hold of one leaves the other free."""
    budget, clock = budget_and_clock
    apart = budget.apart("open_interest", 20, 10.0)  # 20 requests per 10 s: 1.8/s steady, 1 in a burst
    reservations(budget, 16)  # the weight budget's burst spent
    waits = reservations(apart, 4, weight=1)
    assert waits[:2] == [0.0, 0.0] and waits[2] == pytest.approx(1 / 1.8) and waits[3] == pytest.approx(2 / 1.8)
    assert budget.reserve(2) == pytest.approx(2 / 9)  # the weight budget's schedule, as if no open interest was asked
    apart.hold_back(30.0)
    assert apart.hold_left() == pytest.approx(30.0) and budget.hold_left() == 0.0


def test_a_budget_apart_is_keyed_before_the_egress_address(warehouse_url):
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    try:
        apart = SharedRateBudget(warehouse.engine, budget_key("binanceusdm", "127.0.0.2"), CONFIG).apart("open_interest", 1000, 300.0)
        apart.reserve(1)
        assert "binanceusdm:open_interest@127.0.0.2" in budget_states(warehouse)
    finally:
        warehouse.dispose()


def test_a_hold_declared_elsewhere_cuts_a_leased_lease_short(warehouse_url):
    """Two budgets on one warehouse (as two processes): the first leases 8 slots and sends one;
    the second is told 429 and holds back 5 s. The first's remaining slots are not sent: its
    check before each request says how long the hold still lasts, and its next slot lies after it."""
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    clock = Clock()
    try:
        first = SharedRateBudget(warehouse.engine, "binance", CONFIG, clock)
        second = SharedRateBudget(warehouse.engine, "binance", CONFIG, clock)
        assert first.reserve(2) == 0.0 and first.hold_left() == 0.0
        second.hold_back(5.0)
        assert first.hold_left() == pytest.approx(5.0)
        assert first.reserve(2) >= 5.0
        clock.now += 5.0
        assert first.hold_left() == 0.0
    finally:
        warehouse.dispose()


def test_slots_not_sent_before_a_hold_go_back_to_the_fleet(warehouse_url):
    """Two processes hold leases of 8 slots (no burst, so that nothing hides a lost slot); the
    first sends one request and is told 429 (1 s). Neither sends the rest of its lease, nor the
    slot the second had reserved: all of it goes back to the shared schedule, so that a process
    asking when the hold ends is served at once. The hold costs the fleet its own length, no more."""
    config = ExchangeConfig(ccxt_id="binance", weight_limit=600, weight_window_seconds=60, budget_use=0.9, budget_burst=0.0)
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    clock = Clock()
    try:
        first, second, third = (SharedRateBudget(warehouse.engine, "binance", config, clock) for _ in range(3))
        assert first.reserve(2) == 0.0  # sent at once
        assert second.reserve(2) == pytest.approx(16 / 9)  # its lease follows the first's
        first.hold_back(1.0)
        assert second.hold_left() == pytest.approx(1.0)  # its lease is cut short
        second.release(2)  # and the slot it had reserved is given back (as RetryingCaller does)
        clock.now += 1.0
        assert third.hold_left() == 0.0 and third.reserve(2) == 0.0
    finally:
        warehouse.dispose()


def test_a_hold_keeps_the_burst_for_after_it():
    """What a hold kept from being sent may follow at once when it ends (the burst), never before."""
    clock = Clock()
    budget = LocalRateBudget(CONFIG, clock)
    budget.hold_back(7.0)
    clock.now += 7.0
    waits = reservations(budget, 16)
    assert waits == [0.0] * 16 and budget.hold_left() == 0.0


def _hammer(api_url: str, warehouse_url: str | None, limit: int, window: float, pages: int, queue,
            egress: str | None = None, key: str = "binance") -> None:
    # One attempt: a 429 (or a 418 ban) ends the process instead of waiting it out. The used-weight
    # header is not read, so that only the budget keeps the processes apart.
    config = ExchangeConfig(ccxt_id="binance", api_url=f"{api_url}/api/v3", weight_limit=limit, weight_window_seconds=window,
                            max_attempts=1, used_weight_header=None)
    budget = None
    if warehouse_url:
        warehouse = Warehouse(warehouse_url)
        budget = SharedRateBudget(warehouse.engine, key, config)
    source = CcxtCandleSource("binance", config, budget, egress_address=egress)
    assert source.exchange  # ccxt imported (at first use) and the client built before the clock starts
    start = day_bounds_ms(PLAIN_DAY)[0]
    try:
        began = time.time()
        for page in range(pages):
            source.fetch_page("BTC/USDT", "1m", start + page * 10 * MINUTE_MS, start + (page + 1) * 10 * MINUTE_MS - 1)
        queue.put("done" if egress is None else ("done", egress, began, time.time()))
    except FetchFailed as err:
        queue.put(str(err))


def run_processes(simulator, warehouse_url: str | None, processes: int = 4, pages: int = 100) -> list[str]:
    limit, window = 400, 4.0  # Binance's 6000 weight a minute, counted over 4 s so that the test is short
    simulator.reconfigure({"weight_limit": limit, "weight_window_seconds": window, "reset_stats": True})
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_hammer, args=(simulator.url, warehouse_url, limit, window, pages, queue))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return [queue.get(timeout=5) for _ in workers]


def run_on_addresses(simulator, warehouse_url: str, keys: dict[str, str], pages: int) -> dict[str, float]:
    """One process per egress address, each drawing on the budget named in ``keys``; returns the
    share of its own address's budget each address used while its process fetched. The budget is
    small (25 weight/s) so that the request rate, not a busy 2-core machine, sets the pace."""
    limit, window = 100, 4.0
    simulator.reconfigure({"weight_limit": limit, "weight_window_seconds": window, "reset_stats": True})
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_hammer, args=(simulator.url, warehouse_url, limit, window, pages, queue, address, key))
               for address, key in keys.items()]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
    outcomes = [queue.get(timeout=5) for _ in workers]
    assert all(o[0] == "done" for o in outcomes), outcomes
    assert simulator.stats["status.429"] == 0 and simulator.stats["status.418"] == 0
    return {address: simulator.stats[f"weight_by_client.{address}"] / (limit / window * (end - began))
            for _, address, began, end in outcomes}


def test_two_egress_addresses_get_two_budgets(simulator, postgres_url):
    """Two workers leaving from 127.0.0.2 and 127.0.0.3 (OHLCV_EGRESS_ADDRESS) each use most of
    their own address's budget, with no 429; keyed as one budget (the control, as two workers
    behind one IP must be) each gets about half."""
    warehouse = Warehouse(postgres_url)
    warehouse.migrate()
    warehouse.dispose()
    addresses = ["127.0.0.2", "127.0.0.3"]
    apart = run_on_addresses(simulator, postgres_url, {a: budget_key("binance", a) for a in addresses}, pages=100)
    assert all(share >= 0.85 for share in apart.values()), apart
    together = run_on_addresses(simulator, postgres_url, {a: "binance" for a in addresses}, pages=60)
    assert all(share < 0.6 for share in together.values()), together


def test_separate_processes_share_one_budget(simulator, warehouse_url):
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    warehouse.dispose()
    outcomes = run_processes(simulator, warehouse_url)
    assert outcomes == ["done"] * 4
    assert simulator.stats["requests.klines"] == 4 * 100
    assert simulator.stats["status.429"] == 0 and simulator.stats["status.418"] == 0


def test_per_process_budgets_overrun_the_exchange(simulator):
    """The control: the same load with a budget per process earns 429s."""
    outcomes = run_processes(simulator, None)
    assert any("429" in outcome or "418" in outcome for outcome in outcomes), outcomes
    assert simulator.stats["status.429"] > 0


def spend_most_of_the_window_then_fetch(simulator, header: str | None) -> CcxtCandleSource:
    """Another client on the same IP spends most of a 10 s window (long enough that a slow, busy
    machine still fits everything in one window); then a source with its own budget (which believes
    the whole window is free) fetches 15 pages, failing on its first 429."""
    simulator.reconfigure({"weight_limit": 200, "weight_window_seconds": 10})
    config = ExchangeConfig(ccxt_id="binance", api_url=f"{simulator.url}/api/v3", weight_limit=200, weight_window_seconds=10,
                            max_attempts=1, used_weight_header=header)
    source = CcxtCandleSource("binance", config)
    source.check_symbol("BTC/USDT")  # 20 weight
    start = day_bounds_ms(PLAIN_DAY)[0]
    other = requests.Session()
    for _ in range(85):  # 170 weight at once: 190 in the window with ours
        other.get(f"{simulator.url}/api/v3/klines", params={"symbol": "ETHUSDT", "interval": "1m", "startTime": start, "limit": 5})
    for page in range(15):
        source.fetch_page("BTC/USDT", "1m", start + page * 10 * MINUTE_MS, start + (page + 1) * 10 * MINUTE_MS - 1)
    return source


def test_the_exchanges_used_weight_header_holds_a_client_back(simulator):
    source = spend_most_of_the_window_then_fetch(simulator, "X-MBX-USED-WEIGHT-1M")
    assert source.stats.used_weight_holds >= 1
    assert simulator.stats["status.429"] == 0 and simulator.stats["status.418"] == 0


def test_without_the_header_the_same_client_runs_into_a_429(simulator):
    with pytest.raises(FetchFailed, match="429|Too much request weight"):
        spend_most_of_the_window_then_fetch(simulator, None)


def test_the_venue_pool_is_keyed_by_egress_address_as_the_budget_is():
    assert venue_pool("binance", None) == "exchange/binance" and budget_key("binance", None) == "binance"
    assert venue_pool("binance", "127.0.0.2") == "exchange/binance@127.0.0.2"
    assert budget_key("binance", "127.0.0.2") == "binance@127.0.0.2"
