"""The account's request budget in this process, and reads shared between waits.

DPC allows an account 1,000 requests a minute and answers 429 beyond. Each hook retrying its own
429s on its own schedule makes a thousand triggers fill the limit together, wait out the same
``Retry-After`` and come back together. Instead every call of the process draws from one
:class:`Budget` per account, and waits that read the same resource share one answer
(:class:`SharedReads`), so:

* the budget is a token bucket refilled at a little under ``requests_per_minute`` (a connection
  extra, the documented 1,000 by default), with a burst small enough that no rolling minute holds
  more than the limit; a call that finds it empty waits its turn, so polls stretch rather than fail;
* a 429 slows the whole process, as the AWS SDKs' adaptive retry mode does: every caller waits out
  its ``Retry-After``, the refill rate drops to 70%, and it grows back along a cubic curve;
* N waits on one pipeline cost one request per poll interval: a status read younger than the
  caller's interval, or one in flight, is handed to every caller, each judging it by its own goal.

The budget is shared by threads and event loops alike (a lock guards a few arithmetic steps, never
a wait): a worker's sync calls and a triggerer's async ones in one process draw from the same one.
"""

from __future__ import annotations

import asyncio
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
#: Adaptive retry's multiplicative decrease and the scale of its cubic recovery (AWS SDK values).
BETA = 0.7
CUBIC_SCALE = 0.4
#: Never slower than this many requests a second, so a long run of 429s cannot stall a process.
MIN_RATE = 0.5


class Budget:
    """One account's token bucket, shared by every caller of the process."""

    def __init__(self, requests_per_minute: float = DOCUMENTED_LIMIT, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.requests_per_minute = requests_per_minute
        self.max_rate = max(MIN_RATE, requests_per_minute * REFILL_SHARE / 60.0)
        self.capacity = max(1.0, self.max_rate * BURST_SECONDS)
        self.rate = self.max_rate
        self._tokens = self.capacity
        self._stamp = clock()
        self._blocked_until = 0.0
        self._throttled_at: float | None = None
        self._rate_before_throttle = self.max_rate
        self.throttles = 0

    def reserve(self) -> float:
        """Take one request's place; returns the seconds to wait before sending it (0: at once).

        The bucket may go negative: each caller queues behind those before it, at the current rate.
        """
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
            return max(wait, self._blocked_until - now)

    def limit_to(self, requests_per_minute: float) -> None:
        """Keep to a lower limit from now on (another connection of the account names it)."""
        with self._lock:
            if requests_per_minute >= self.requests_per_minute:
                return
            self.requests_per_minute = requests_per_minute
            self.max_rate = max(MIN_RATE, requests_per_minute * REFILL_SHARE / 60.0)
            self.capacity = max(1.0, self.max_rate * BURST_SECONDS)
            self.rate = min(self.rate, self.max_rate)
            self._tokens = min(self._tokens, self.capacity)

    def throttled(self, retry_after: float | None) -> None:
        """The API answered 429: hold every caller for ``retry_after`` and cut the rate (adaptive retry)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._blocked_until = max(self._blocked_until, now + (1.0 if retry_after is None else retry_after))
            self._rate_before_throttle = self.rate
            self.rate = max(MIN_RATE, self.rate * BETA)
            self._throttled_at = now
            self._tokens = min(self._tokens, 0.0)  # the burst is gone: the server says we are over
            self.throttles += 1

    def _refill(self, now: float) -> None:
        if self._throttled_at is not None and self.rate < self.max_rate:
            # Cubic recovery towards the rate before the 429 and on to the maximum (CUBIC, RFC 8312).
            w_max = self._rate_before_throttle
            k = (w_max * (1 - BETA) / CUBIC_SCALE) ** (1 / 3)
            t = now - self._throttled_at
            self.rate = min(self.max_rate, max(self.rate, CUBIC_SCALE * (t - k) ** 3 + w_max))
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now


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
