"""The account's request budget in this process, and reads shared between waits.

DPC allows an account 1,000 requests a minute and answers 429 beyond. Each hook retrying its own
429s on its own schedule makes a thousand triggers fill the limit together, wait out the same
``Retry-After`` and come back together. Instead every call of the process draws from one
:class:`Budget` per account, and waits that read the same resource share one answer
(:class:`SharedReads`), so:

* the budget is a token bucket refilled at a little under ``requests_per_minute`` (a connection
  extra, the documented 1,000 by default), with a burst small enough that no rolling minute holds
  more than the limit; a call that finds it empty queues for its turn, so polls stretch rather
  than fail;
* a 429 slows the whole process, as the AWS SDKs' adaptive retry mode and TCP congestion control
  do, so that several processes on one account (triggerers, workers' sensors) settle on shares of
  the limit without talking to each other: see :class:`Budget`;
* N waits on one pipeline cost one request per poll interval: a status read younger than the
  caller's interval, or one in flight, is handed to every caller, each judging it by its own goal.

The budget is shared by threads and event loops alike (a lock guards a few arithmetic steps, never
a wait): a worker's sync calls and a triggerer's async ones in one process draw from the same one.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

__all__ = ["BUDGETS", "DOCUMENTED_LIMIT", "Budget", "BudgetRegistry", "SharedReads"]

T = TypeVar("T")

#: The API's documented limit per account, requests a minute.
DOCUMENTED_LIMIT = 1000.0
#: Share of the limit the budget refills at, leaving room for its burst within any rolling minute.
REFILL_SHARE = 0.95
#: Seconds of refill the bucket holds: 3 s at the full rate is 4.75% of a minute's limit.
BURST_SECONDS = 3.0
#: A burst goes out at this many times the rate, not at once: when the account is full, only the
#: few requests sent within one round trip meet a 429, not the whole burst.
PEAK = 2.0
#: The cut of a congestion event: the rate becomes this share of what the process was sending, or
#: less when ``Retry-After`` says the account's minute was used up early (see :meth:`Budget.throttled`).
BETA = 0.7
#: The window the API counts its limit over: the documented limit is per minute.
WINDOW_SECONDS = 60.0
#: Seconds the rate takes to grow back from a 70% cut to what it was, when that was the full rate
#: (less when it was less: the cubic's shape, RFC 8312). CUBIC's own pace assumes the signal comes
#: within a round trip; an overshoot of a rolling minute shows as a 429 only once that minute is
#: spent, so the rate grows back over two of them, and the next event finds it little past its share.
RECOVERY_SECONDS = 120.0
#: Never slower than this many requests a second, so a long run of 429s cannot stall a process.
MIN_RATE = 0.5
#: A wait longer than this while the rate recovers is slept in halves, each re-evaluated.
STEP_SECONDS = 1.0
#: Seconds over which the process's own sending rate is measured (what a cut applies to).
MEASURE_SECONDS = 5.0
#: The hold of a 429 that names no ``Retry-After``: long enough for the account's rolling minute to
#: shed some requests, short enough that one answer without the header never stalls the process.
UNNAMED_HOLD = 2.0


class Budget:
    """One account's token bucket, shared by every caller of the process.

    A caller takes a numbered place (:meth:`take`) and sends when the refill reaches it
    (:meth:`wait`); the bucket may go negative, the queue of places behind the tokens. A 429
    (:meth:`throttled`) is a congestion event, handled so that processes sharing an account
    converge on shares of its limit:

    * **one cut per event**: the rate drops to 70% of what the process was sending (less after a
      long ``Retry-After``). 429s of requests sent before that cut, or arriving while its
      ``Retry-After`` holds, belong to the same event and cut nothing (a burst of 429s is one
      signal, not twenty);
    * **the block holds every request of the process**, those already given a moment to go
      included: when their sleep ends they find the block and queue behind it, in their order;
    * **no refill while blocked**, and the burst is gone: after the block the queue leaves at the
      budget's rate, never all at once;
    * **waits follow the rate**: a waiter's place is kept, not its moment; the moment is worked out
      again when it wakes, and a long wait during a recovery is slept in steps, so it shortens as
      the rate grows back (along a cubic curve, from the end of the block, to the rate before the
      cut and on to the full rate).
    """

    def __init__(self, requests_per_minute: float = DOCUMENTED_LIMIT, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._set_limit(requests_per_minute)
        self.rate = self.max_rate
        now = clock()
        self._tokens = self.capacity
        self._paced = 1.0  # the burst's own bucket, refilled at PEAK x rate, holding one request
        self._stamp = now
        #: Places handed out so far; place n may go once ``_issued + _tokens >= n`` (and as much
        #: of the burst's pacing, ``_paced``), and no block holds.
        self._issued = 0
        self._blocked_until = -math.inf
        #: The last place handed out before the latest cut: a 429 of one up to it is that event's.
        self._cut_place = 0
        #: Recovery from the latest cut: when it starts (the block's end), toward which rate, how long.
        self._recover_from = -math.inf
        self._w_max = self.max_rate
        self._k = 0.0
        #: The process's own sending rate (places taken a second), measured over MEASURE_SECONDS.
        self._sent_rate = self.max_rate
        self._mark, self._mark_issued = now, 0
        self.throttles = 0
        self.cuts = 0

    def _set_limit(self, requests_per_minute: float) -> None:
        self.requests_per_minute = requests_per_minute
        self.max_rate = max(MIN_RATE, requests_per_minute * REFILL_SHARE / 60.0)
        self.capacity = max(1.0, self.max_rate * BURST_SECONDS)
        #: The cubic's scale: from BETA x max_rate back to max_rate in RECOVERY_SECONDS.
        self._cubic = self.max_rate * (1 - BETA) / RECOVERY_SECONDS**3

    def take(self) -> tuple[int, float]:
        """Take one request's place: ``(place, seconds to sleep before asking :meth:`wait` again)``,
        0 seconds when it may be sent at once."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            self._tokens -= 1.0
            self._paced -= 1.0
            self._issued += 1
            if self._tokens >= 0.0 and self._paced >= 0.0 and now >= self._blocked_until:
                return self._issued, 0.0
            return self._issued, self._wait(self._issued, now)

    def wait(self, place: int) -> float:
        """Seconds ``place`` is still to sleep (0: send now), worked out anew: a block begun, or the
        rate changed, since it was last asked moves its moment."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            return self._wait(place, now)

    def _wait(self, place: int, now: float) -> float:
        behind = place - self._issued  # places after this one's: 0 or less
        ahead = max(behind - self._tokens, (behind - self._paced) / PEAK)  # in refills of the rate
        blocked = max(0.0, self._blocked_until - now)
        if ahead <= 1e-9:  # rounding's remainder: a wait shorter than the clock can tell
            return blocked
        wait = blocked + ahead / self.rate
        if self.rate < self.max_rate and wait > STEP_SECONDS:
            # The rate grows while this one sleeps: look again halfway, so the wait shortens with it.
            return max(STEP_SECONDS, wait / 2)
        return wait

    def limit_to(self, requests_per_minute: float) -> None:
        """Keep to a lower limit from now on (another connection of the account names it)."""
        with self._lock:
            if requests_per_minute >= self.requests_per_minute:
                return
            self._set_limit(requests_per_minute)
            self.rate = min(self.rate, self.max_rate)
            self._w_max = min(self._w_max, self.max_rate)
            self._tokens = min(self._tokens, self.capacity)

    def throttled(self, retry_after: float | None, place: int | None = None) -> None:
        """The API answered 429 to the request of ``place``: hold every caller for ``retry_after``
        (:data:`UNNAMED_HOLD` when the answer named none) and, once per congestion event, cut the rate."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            self.throttles += 1
            self._tokens = min(self._tokens, 0.0)  # the burst is gone: the server says we are over
            self._paced = min(self._paced, 0.0)
            hold = UNNAMED_HOLD if retry_after is None else retry_after
            same_event = now < self._blocked_until or (place is not None and place <= self._cut_place)
            self._blocked_until = max(self._blocked_until, now + hold)
            if same_event:
                self._recover_from = max(self._recover_from, self._blocked_until)
                return
            self.cuts += 1
            sent = min(self.rate, self._sent_rate)
            # Held for B seconds means the account's minute was spent in 60 - B: every process cutting
            # to that share brings the account to its limit at once (all starting together, say).
            self._w_max = sent
            self.rate = max(MIN_RATE, sent * min(BETA, max(0.0, 1 - hold / WINDOW_SECONDS)))
            self._k = (max(0.0, self._w_max - self.rate) / self._cubic) ** (1 / 3)
            self._recover_from = self._blocked_until
            self._cut_place = self._issued

    def _advance(self, now: float) -> None:
        """Bring the rate and the tokens to ``now``: no refill while blocked, and the recovery's
        cubic (RFC 8312) from the block's end. The common case, a full rate and no block, costs
        a few comparisons: it runs on every request."""
        since = self._stamp
        if now <= since:
            return
        self._stamp = now
        if since < self._blocked_until:
            if now <= self._blocked_until:
                self._mark, self._mark_issued = now, self._issued  # a block's queue is not a rate
                return
            since = self._blocked_until
        if now - self._mark >= MEASURE_SECONDS:
            self._sent_rate = (self._sent_rate + (self._issued - self._mark_issued) / (now - self._mark)) / 2
            self._mark, self._mark_issued = now, self._issued
        rate = self.rate
        if rate < self.max_rate and now > self._recover_from:
            grown = self._cubic * (now - self._recover_from - self._k) ** 3 + self._w_max
            grown = self.max_rate if grown > self.max_rate else rate if grown < rate else grown
            self.rate, rate = grown, (rate + grown) / 2
        refill = (now - since) * rate
        tokens, paced = self._tokens + refill, self._paced + PEAK * refill
        self._tokens = tokens if tokens < self.capacity else self.capacity
        self._paced = paced if paced < 1.0 else 1.0


class BudgetRegistry:
    """The budget of each account in this process, by the connection's account key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._budgets: dict[Hashable, Budget] = {}

    def get(self, key: Hashable, requests_per_minute: float) -> Budget:
        """The account's budget, keeping to the lowest limit any of its connections names."""
        with self._lock:
            budget = self._budgets.get(key)
            if budget is None:
                budget = self._budgets[key] = Budget(requests_per_minute)
        budget.limit_to(requests_per_minute)
        return budget

    def clear(self) -> None:
        with self._lock:
            self._budgets.clear()


BUDGETS = BudgetRegistry()


class _OwnerGone(Exception):
    """The caller doing a shared read was cancelled: those waiting on it read for themselves."""


class _Read:
    """The last read of one key: its answer and when it came, or the caller reading it now."""

    __slots__ = ("answered_at", "pending", "value", "waiters")

    def __init__(self) -> None:
        self.answered_at = float("-inf")  # -inf also after a failed read: the next caller reads again
        self.pending = False
        self.value: Any = None
        self.waiters: asyncio.Future[Any] | None = None  # made only when a second caller comes


class SharedReads:
    """Reads of one resource shared by the waits of one event loop.

    A caller asking for a key gets the answer of a read still in flight, or of one answered less
    than ``max_age`` seconds ago; otherwise it reads itself, and others asking meanwhile wait for
    its answer (or its error). If it is cancelled, they read for themselves. A read nobody shares
    costs a dictionary look-up and a few attributes: no task, no future.
    """

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, _Read]] = weakref.WeakKeyDictionary()
    #: Beyond this many keys, those not read for ten minutes are forgotten (ended executions).
    _PRUNE_AT = 4096

    @classmethod
    async def read(cls, key: Hashable, fetch: Callable[[], Awaitable[T]], max_age: float) -> T:
        loop = asyncio.get_running_loop()
        reads = cls._by_loop.get(loop)
        if reads is None:
            reads = cls._by_loop[loop] = {}
        entry = reads.get(key)
        if entry is None:
            if len(reads) >= cls._PRUNE_AT:
                cls._prune(reads, time.monotonic() - 600)
            entry = reads[key] = _Read()
        elif entry.pending:
            if entry.waiters is None:
                entry.waiters = loop.create_future()
            try:
                shared: T = await asyncio.shield(entry.waiters)
                return shared
            except _OwnerGone:
                pass
        elif time.monotonic() - entry.answered_at < max_age:
            answered: T = entry.value
            return answered
        entry.pending = True
        try:
            value = await fetch()
        except BaseException as exc:
            entry.pending, entry.answered_at = False, float("-inf")
            waiters, entry.waiters = entry.waiters, None
            if waiters is not None:
                waiters.set_exception(_OwnerGone() if isinstance(exc, asyncio.CancelledError) else exc)
                waiters.exception()  # retrieved: an error no other caller awaited is not reported as lost
            raise
        entry.pending, entry.value, entry.answered_at = False, value, time.monotonic()
        waiters, entry.waiters = entry.waiters, None
        if waiters is not None:
            waiters.set_result(value)
        return value

    @staticmethod
    def _prune(reads: dict[Hashable, _Read], before: float) -> None:
        for key in [k for k, r in reads.items() if not r.pending and r.answered_at < before]:
            del reads[key]
