"""Several processes on one account: budgets of their own against one limit converge on shares of it.

Each "process" here is a :class:`Budget` of its own, as each triggerer or worker process has,
against the emulator's own limiter (``emulator/ratelimit.py``) on a fake clock, so minutes of the
account's rolling window take milliseconds. The last test sends real requests over HTTP.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_dpc.emulator.ratelimit import RateLimiter
from airflow_provider_dpc.hooks._budget import BETA, PEAK, UNNAMED_HOLD, Budget
from airflow_provider_dpc.hooks.dpc import DpcHook
from tests.guide import PROJECT_ID, guide_body

pytestmark = pytest.mark.every_line


class Account:
    """One account's limit on a fake clock, and the events of the processes sharing it."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.now = 0.0
        self.limiter = RateLimiter(limit, window, started=0.0)
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    def budget(self, requests_per_minute: float) -> Budget:
        return Budget(requests_per_minute, clock=self.clock)

    def at(self, when: float, event: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._order), event))

    def run(self, until: float) -> None:
        while self._events and self._events[0][0] <= until:
            self.now, _, event = heapq.heappop(self._events)
            event()
        self.now = until

    def send(self, budget: Budget, place: int) -> bool:
        """Send the request of ``place`` now: True if admitted, else the budget hears of the 429."""
        wait = self.limiter.admit(self.now)
        if wait is None:
            return True
        budget.throttled(float(self.limiter.retry_after(wait)), place)
        return False

    def request(self, budget: Budget, done: Callable[[bool], None] | None = None) -> int:
        """A caller's request as the hook makes it: take a place, sleep, ask again, send."""
        place, wait = budget.take()

        def turn() -> None:
            wait = budget.wait(place)
            if wait > 0:
                self.at(self.now + wait, turn)
                return
            admitted = self.send(budget, place)
            if done is not None:
                done(admitted)

        self.at(self.now + wait, turn)
        return place

    def fill(self, n: int) -> None:
        """Another process's ``n`` requests, admitted now."""
        for _ in range(n):
            assert self.limiter.admit(self.now) is None


def admitted_moments(account: Account, budget: Budget, places: list[int]) -> list[float]:
    """When each of ``places`` goes, following the waits the budget gives (and nothing else sent)."""
    moments: dict[int, float] = {}

    def waiter(place: int) -> Callable[[], None]:
        def turn() -> None:
            wait = budget.wait(place)
            if wait > 0:
                account.at(account.now + wait, turn)
            else:
                moments[place] = account.now

        return turn

    for place in places:
        account.at(account.now, waiter(place))
    account.run(account.now + 3600)
    return [moments[p] for p in places]


def test_a_burst_of_429s_is_one_congestion_event() -> None:
    account = Account(limit=600)
    mine, other = account.budget(600), account.budget(600)
    account.fill(600)  # the account's minute is used up, and will be for another second
    account.now = 59.2
    burst = [mine.take() for _ in range(10)]
    assert all(wait < 1.0 for _, wait in burst), "the budget's burst: out within a second"
    assert not account.send(mine, burst[0][0])
    cut = mine.rate
    assert cut <= mine.max_rate * BETA
    for place, _ in burst[1:]:  # sent before the first 429 came back: all ten are refused
        assert not account.send(mine, place)
    assert (mine.throttles, mine.cuts, mine.rate) == (10, 1, cut)
    # The other process learns of the full account from its own 429: its own one cut.
    (place, _) = other.take()
    assert not account.send(other, place)
    assert (other.throttles, other.cuts) == (1, 1)
    # After the block, a request of the slower rate meeting a 429 is a new event: a second cut.
    account.now = 61.0
    account.fill(600)
    account.now = 120.5
    place, wait = mine.take()
    assert wait == 0
    assert not account.send(mine, place)
    assert (mine.throttles, mine.cuts) == (11, 2)
    assert mine.rate <= cut * BETA


def test_a_429_naming_no_retry_after_holds_briefly_and_cuts_once() -> None:
    """Not the call's own backoff (up to a minute) and not the rate's floor: a short hold and one cut."""
    now = [100.0]
    budget = Budget(1000, clock=lambda: now[0])
    place, _ = budget.take()
    budget.throttled(None, place)
    assert (budget.cuts, budget.rate) == (1, pytest.approx(budget.max_rate * BETA))
    budget.throttled(None, place)  # another 429 of the same request's moment: the same event
    assert budget.cuts == 1
    (later, wait) = budget.take()
    started = now[0]
    while wait > 0:  # slept as a caller sleeps: looking again on waking
        now[0] += wait
        wait = budget.wait(later)
    assert UNNAMED_HOLD <= now[0] - started < UNNAMED_HOLD + 1.0


def test_a_block_holds_requests_already_given_their_moment() -> None:
    # Another process's 20 requests fill the account's 6 s window at once.
    account = Account(limit=20, window=6.0)
    budget = account.budget(600)  # 9.5 a second, a burst of 28
    account.fill(20)
    account.now = 1.0
    places = [budget.take() for _ in range(40)]  # a triggerer's polls, queued in the budget
    first_moments = [account.now + wait for _, wait in places]
    assert not account.send(budget, places[0][0])  # the first meets the 429: Retry-After 5 s
    blocked_until = account.now + 5.0
    # Had they gone at the moments first given, most of the others would have met 429s too.
    assert sum(m < blocked_until for m in first_moments[1:]) >= 30
    moments = admitted_moments(account, budget, [place for place, _ in places[1:]])
    assert min(moments) >= blocked_until, "no request goes out while the block holds"
    assert moments == sorted(moments), "they keep their order behind the block"
    assert budget.throttles == 1


def test_no_refill_while_blocked_and_the_queue_leaves_at_the_budgets_pace() -> None:
    account = Account(limit=600)
    idle, blocked = account.budget(600), account.budget(600)
    account.fill(600)
    account.now = 50.0
    (place, _) = blocked.take()
    assert not account.send(blocked, place)  # Retry-After 10 s
    account.now = 60.0  # the block's end
    # A budget idle as long sends its burst at once (paced within it) ...
    burst = [wait for _, wait in (idle.take() for _ in range(28))]
    assert max(burst) < 28 / (PEAK * idle.max_rate) + 0.01
    # ... one held meanwhile has nothing saved up: its queue leaves at its rate, not at once.
    queued = [place for place, _ in (blocked.take() for _ in range(20))]
    moments = admitted_moments(account, blocked, queued)
    first_second = sum(m < 61.0 for m in moments)
    assert first_second <= blocked.max_rate * BETA + 1, first_second
    gaps = [b - a for a, b in itertools.pairwise(moments)]
    assert min(gaps) >= 1 / (PEAK * idle.max_rate) - 1e-6, "never two at once"
    assert moments[-1] - 60.0 >= 19 / blocked.max_rate, "twenty requests take twenty turns"


def test_waits_shorten_when_the_rate_recovers() -> None:
    account = Account(limit=600)
    budget = account.budget(600)
    account.fill(600)
    (place, _) = budget.take()
    assert not account.send(budget, place)  # held 60 s: the minute was gone, the rate cut deep
    slow = budget.rate
    assert slow <= budget.max_rate * 0.1
    account.now = 61.0
    queued = [budget.take()[0] for _ in range(30)]
    at_the_cut_rate = account.now + 30 / slow  # what the last one's wait would be, fixed at once
    wakes, sent_at = 0, None

    def turn() -> None:
        nonlocal wakes, sent_at
        wakes += 1
        wait = budget.wait(queued[-1])
        if wait > 0:
            account.at(account.now + wait, turn)
        else:
            sent_at = account.now

    account.at(account.now, turn)
    account.run(account.now + 3600)
    assert sent_at is not None
    assert sent_at < at_the_cut_rate - 20, "the rate grew while it waited: it went sooner"
    assert wakes <= 12, "a long wait looks again a few times, not every second"


def pollers(
    account: Account, budget: Budget, n: int, interval: float, until: float, start: float = 0.0
) -> dict[str, int]:
    """``n`` waits polling every ``interval`` after each answer, as triggers on distinct pipelines do."""
    counts = {"admitted": 0, "refused": 0}

    def poll() -> None:
        def done(admitted: bool) -> None:
            counts["admitted" if admitted else "refused"] += 1
            if account.now < until:
                account.at(account.now + (interval if admitted else 0.0), poll)  # a 429 is retried

        account.request(budget, done)

    for i in range(n):
        account.at(start + i * 0.01, poll)
    return counts


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_on_one_account_converge_on_shares_of_its_limit(processes: int) -> None:
    # Four processes of 25 waits each at 5 s want 1,200 requests a minute of the 1,000 the account
    # has; two of 50 each the same. Each keeps to a budget of the whole limit: on their own they
    # would overrun it by far.
    account = Account(limit=1000)
    budgets = [account.budget(1000) for _ in range(processes)]
    minutes = 6
    counts = [pollers(account, b, 100 // processes, 5.0, until=minutes * 60) for b in budgets]
    account.run(minutes * 60 + 120)
    stats = account.limiter.stats()
    per_minute = stats["per_minute"][:minutes]
    later = per_minute[1:]  # the first minute begins on an empty window, all at full rate
    refused = sum(m["refused"] for m in later)
    sent = sum(m["admitted"] + m["refused"] for m in later)
    assert refused <= 0.01 * sent, per_minute
    assert stats["peak_in_window"] <= 1000
    assert all(m["admitted"] >= 900 for m in later), "the account's limit is used, not wasted"
    # One cut per congestion event: a handful each over six minutes, not one per 429.
    assert all(b.cuts <= minutes + 1 for b in budgets), [b.cuts for b in budgets]
    shares = [c["admitted"] for c in counts]
    assert min(shares) >= 0.8 * max(shares), shares


def test_a_triggerer_beside_poke_mode_sensors() -> None:
    # 100 pipelines in a triggerer, and 20 poke-mode sensors each in a worker process of its own.
    account = Account(limit=1000)
    triggerer = account.budget(1000)
    sensors = [account.budget(1000) for _ in range(20)]
    minutes = 6
    pollers(account, triggerer, 100, 5.0, until=minutes * 60)
    for i, sensor in enumerate(sensors):
        pollers(account, sensor, 1, 5.0, until=minutes * 60, start=i * 0.25)
    account.run(minutes * 60 + 120)
    later = account.limiter.stats()["per_minute"][1:minutes]
    refused = sum(m["refused"] for m in later)
    assert refused <= 0.03 * sum(m["admitted"] + m["refused"] for m in later), later
    assert all(m["admitted"] >= 900 for m in later)


# ---- over HTTP ---------------------------------------------------------------------------------


@pytest.mark.edge_lines
def test_two_processes_over_http_settle_on_shares_without_429s(conn_env: Any, fresh_emulator: Any) -> None:
    """Two hooks, each with a budget of its own as two processes have, each allowed the account's
    whole limit and wanting several times that (twelve pipelines each, read every 0.2 s): together
    they overrun the account until their budgets settle. Once they have (after two of the
    emulator's 4 s windows), about 1% of requests meet a 429, and the two get even shares. Before
    budgets converged (a cut per 429, a block that let scheduled requests through, a refill while
    blocked) the same run met 13% refused in its second half, one process getting twice the
    other's share."""
    conn = conn_env("budget_processes", extra={"requests_per_minute": 600})
    setup = DpcHook(conn)
    ids = [
        setup.create_streaming_pipeline(PROJECT_ID, guide_body(f"shares-{i}")).streaming_pipeline_id for i in range(24)
    ]
    fresh_emulator.configure(rate_limit=40, rate_window=4.0)  # 600 a minute, counted over 4 s
    stop = threading.Event()
    budgets = [Budget(600), Budget(600)]
    reads = [0, 0]

    def process(k: int) -> None:
        async def poll(pipeline_id: str) -> None:
            async with DpcHook(conn, retry_policy={"max_attempts": 50}) as hook:
                hook._budget = budgets[k]  # this "process's" own budget
                while not stop.is_set():
                    await hook.aget_status(PROJECT_ID, pipeline_id)
                    reads[k] += 1
                    await asyncio.sleep(0.2)

        async def main() -> None:
            await asyncio.gather(*(poll(p) for p in ids[k::2]))

        asyncio.run(main())

    threads = [threading.Thread(target=process, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(8.0)
    settled = fresh_emulator.stats()["rate_limit"]
    time.sleep(8.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    end = fresh_emulator.stats()["rate_limit"]
    admitted, refused = end["admitted"] - settled["admitted"], end["refused"] - settled["refused"]
    assert end["peak_in_window"] <= 40
    assert refused <= 0.04 * (admitted + refused), (admitted, refused, [b.cuts for b in budgets])
    assert admitted >= 0.6 * 40 * 8 / 4, "settled near the limit, not far below it"
    assert min(reads) >= 0.7 * max(reads), reads
