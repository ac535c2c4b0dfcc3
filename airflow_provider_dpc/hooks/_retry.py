"""The retry policy: plain data, checked when a task is declared and carried to the triggerer.

A module of its own so that operators can check a policy while a DAG file is parsed without
importing the hook.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying a call that met a 429, a 502/503/504 or a broken connection.

    The defaults ride out the API's documented rate limit (Matillion recommends long backoff and at
    least five retries). The policy is plain data so that it travels with a deferred trigger.
    """

    max_attempts: int = 8
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_elapsed: float = 600.0

    def __post_init__(self) -> None:
        for name in ("backoff_base", "backoff_max", "max_elapsed"):
            if getattr(self, name) < 0:
                raise ValueError(f"RetryPolicy.{name} must not be negative, got {getattr(self, name)}")
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be at least 1, got {self.max_attempts}")

    @classmethod
    def coerce(cls, value: RetryPolicy | Mapping[str, Any] | None) -> RetryPolicy:
        if value is None:
            return cls()
        if isinstance(value, RetryPolicy):
            return value
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown retry_policy keys: {sorted(unknown)}")
        return cls(**value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter for the wait after ``attempt`` (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)
