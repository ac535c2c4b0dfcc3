"""Injected faults: which of the next API calls fail, and how.

A client's retry, backoff and token-refresh paths are only exercised when calls fail, so the emulator
can be told to fail them on purpose (``PUT /_emulator/faults``). Count-based faults hit the next N
calls; ratio-based faults hit a share of calls chosen by a seeded ``random.Random``, so a run is
repeatable. Rate limits and server errors answer without running the call; dropped connections and
malformed bodies run it first (a create still creates), as when a network fails on the way back.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from collections import Counter
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["FAULT_NAMES", "Fault", "FaultAction", "FaultError", "FaultPlan", "FaultSettings"]

Seconds = Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)]
Latency = Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)]
Ratio = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]

# Keys of the ``faults_injected`` counters, always all present in the stats.
FAULT_NAMES = (
    "rate_limit",
    "rate_limit_ratio",
    "server_errors",
    "latency",
    "drop_connections",
    "malformed_json",
    "unknown_status_ratio",
    "expire_tokens",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateLimit(_Strict):
    count: Count
    retry_after: Seconds | None = 1.0  # None: the 429 names no Retry-After


class ServerErrors(_Strict):
    count: Count
    status: Literal[500, 502, 503, 504] = 503


class Repeat(_Strict):
    count: Count


class FaultSettings(_Strict):
    """The body of ``PUT /_emulator/faults``; every field is optional."""

    rate_limit: RateLimit | None = None
    rate_limit_ratio: Ratio | None = None
    retry_after: Seconds = 1.0  # Retry-After of ratio-based rate limits
    server_errors: ServerErrors | None = None
    latency: Latency | None = None
    drop_connections: Repeat | None = None
    malformed_json: Repeat | None = None
    unknown_status_ratio: Ratio | None = None
    expire_tokens: bool = False
    token_ttl: Seconds | None = None
    include_token_endpoint: bool = False
    seed: int = 0  # of the random choices of ratio-based faults


class FaultError(ValueError):
    """A fault body is invalid; ``errors`` lists ``field: message`` strings."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class Fault(enum.Enum):
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    DROP_CONNECTION = "drop_connection"
    MALFORMED_JSON = "malformed_json"


@dataclasses.dataclass(frozen=True)
class FaultAction:
    fault: Fault
    status: int = 200
    retry_after: float | None = 0.0  # None: no Retry-After header


class FaultPlan:
    """The faults in force and what is left of their counts."""

    def __init__(self) -> None:
        self.settings = FaultSettings()
        self.injected: Counter[str] = Counter(dict.fromkeys(FAULT_NAMES, 0))
        self._random = random.Random(0)

    def configure(self, body: Mapping[str, Any]) -> bool:
        """Replace the faults in force; return whether tokens must expire now (a one-shot fault)."""
        try:
            settings = FaultSettings.model_validate(body)
        except ValidationError as exc:
            raise FaultError(
                [f"{'.'.join(map(str, e['loc'])) or '(body)'}: {e['msg']}" for e in exc.errors(include_url=False)]
            ) from None
        self.settings = settings.model_copy(update={"expire_tokens": False})
        self._random = random.Random(settings.seed)
        if settings.expire_tokens:
            self.injected["expire_tokens"] += 1
        return settings.expire_tokens

    def clear(self) -> None:
        self.settings = FaultSettings()
        self._random = random.Random(0)

    def describe(self) -> dict[str, Any]:
        """The faults in force, with remaining counts, as JSON."""
        return self.settings.model_dump(mode="json", exclude_defaults=True)

    def reset_counters(self) -> None:
        self.injected = Counter(dict.fromkeys(FAULT_NAMES, 0))

    def applies_to_token_endpoint(self) -> bool:
        return self.settings.include_token_endpoint

    @property
    def token_ttl(self) -> float | None:
        return self.settings.token_ttl

    def latency(self) -> float:
        """Seconds to wait before answering this call."""
        seconds = self.settings.latency or 0.0
        if seconds:
            self.injected["latency"] += 1
        return seconds

    def pick(self) -> FaultAction | None:
        """The fault for this call, if any; uses up one of its count."""
        s = self.settings
        if s.rate_limit is not None and s.rate_limit.count > 0:
            s.rate_limit.count -= 1
            self.injected["rate_limit"] += 1
            return FaultAction(Fault.RATE_LIMIT, 429, s.rate_limit.retry_after)
        if s.server_errors is not None and s.server_errors.count > 0:
            s.server_errors.count -= 1
            self.injected["server_errors"] += 1
            return FaultAction(Fault.SERVER_ERROR, s.server_errors.status)
        if s.drop_connections is not None and s.drop_connections.count > 0:
            s.drop_connections.count -= 1
            self.injected["drop_connections"] += 1
            return FaultAction(Fault.DROP_CONNECTION)
        if s.malformed_json is not None and s.malformed_json.count > 0:
            s.malformed_json.count -= 1
            self.injected["malformed_json"] += 1
            return FaultAction(Fault.MALFORMED_JSON)
        if s.rate_limit_ratio and self._random.random() < s.rate_limit_ratio:
            self.injected["rate_limit_ratio"] += 1
            return FaultAction(Fault.RATE_LIMIT, 429, s.retry_after)
        return None

    def unknown_status(self) -> bool:
        """Whether this status read answers UNKNOWN."""
        ratio = self.settings.unknown_status_ratio
        if ratio and self._random.random() < ratio:
            self.injected["unknown_status_ratio"] += 1
            return True
        return False
