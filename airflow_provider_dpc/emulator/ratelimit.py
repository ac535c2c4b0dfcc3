"""The account's request limit: N requests per rolling window (DPC: 1,000 a minute), and its counters.

Pure Python with no server in it, so the benchmark's stand-in server enforces the very same limit.
A refused request does not count against the window, and its ``Retry-After`` is the whole seconds
until the oldest request in the window leaves it, when the next one will be admitted.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from typing import Any

__all__ = ["RateLimiter"]


class RateLimiter:
    """Admits at most ``limit`` requests in any ``window`` seconds; ``limit`` None admits everything.

    Times are the caller's clock (monotonic seconds). Counters: requests admitted and refused per
    minute since the limiter began, and the most requests ever admitted within one window.
    """

    def __init__(self, limit: int | None = None, window: float = 60.0, *, started: float = 0.0) -> None:
        self.limit = limit
        self.window = window
        self.started = started
        self._admitted: deque[float] = deque()
        self.per_minute: Counter[int] = Counter()
        self.refused_per_minute: Counter[int] = Counter()
        self.peak_in_window = 0

    def configure(self, limit: int | None, window: float) -> None:
        self.limit, self.window = limit, window

    def admit(self, now: float) -> float | None:
        """None when the request may go through (it is counted), else the seconds until it may."""
        minute = int((now - self.started) // 60)
        while self._admitted and self._admitted[0] <= now - self.window:
            self._admitted.popleft()
        if self.limit is not None and len(self._admitted) >= self.limit:
            self.refused_per_minute[minute] += 1
            return max(0.0, self._admitted[0] + self.window - now)
        self._admitted.append(now)
        self.per_minute[minute] += 1
        self.peak_in_window = max(self.peak_in_window, len(self._admitted))
        return None

    @staticmethod
    def retry_after(seconds: float) -> str:
        """The ``Retry-After`` header for a refusal: whole seconds, rounded up, at least 1."""
        return str(max(1, math.ceil(seconds)))

    def stats(self) -> dict[str, Any]:
        minutes = range(max([*self.per_minute, *self.refused_per_minute], default=-1) + 1)
        return {
            "limit": self.limit,
            "window_seconds": self.window,
            "admitted": sum(self.per_minute.values()),
            "refused": sum(self.refused_per_minute.values()),
            "peak_in_window": self.peak_in_window,
            "per_minute": [
                {"minute": m, "admitted": self.per_minute[m], "refused": self.refused_per_minute[m]} for m in minutes
            ],
        }
