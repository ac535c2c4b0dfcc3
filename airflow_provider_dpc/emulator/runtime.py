"""The live emulator: its state, its faults and the settings it started with.

API routes, admin routes and the fault middleware share one :class:`Emulator`, kept on the
FastAPI app, so a reset or a settings change is seen by all of them at once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from airflow_provider_dpc.emulator.config import RUNTIME_SETTINGS, ConfigError, EmulatorConfig
from airflow_provider_dpc.emulator.faults import FaultPlan
from airflow_provider_dpc.emulator.state import Clock, EmulatorState

__all__ = ["Emulator"]


@dataclasses.dataclass
class Emulator:
    initial: EmulatorConfig
    state: EmulatorState
    faults: FaultPlan

    @classmethod
    def start(cls, config: EmulatorConfig, clock: Clock = time.monotonic) -> Emulator:
        emulator = cls(config, EmulatorState(config, clock), FaultPlan())
        emulator.apply_faults(config.faults)
        return emulator

    @property
    def config(self) -> EmulatorConfig:
        return self.state.config

    def reset(self) -> None:
        """Back to how the process started: no pipelines or tokens, zero counters, startup settings and faults."""
        self.state = EmulatorState(self.initial, self.state.clock)
        self.faults = FaultPlan()
        self.apply_faults(self.initial.faults)

    def configure(self, changes: Mapping[str, Any]) -> EmulatorConfig:
        """Change settings at run time; only :data:`RUNTIME_SETTINGS` may change."""
        unknown = set(changes) - RUNTIME_SETTINGS
        if unknown:
            raise ConfigError(
                f"cannot change {', '.join(sorted(unknown))} at run time; "
                f"changeable: {', '.join(sorted(RUNTIME_SETTINGS))}"
            )
        self.state.config = self.config.replace(**changes)
        self.state.limiter.configure(self.config.rate_limit, self.config.rate_window)
        return self.state.config

    def apply_faults(self, body: Mapping[str, Any]) -> None:
        """Replace the faults in force (raises :class:`~.faults.FaultError`)."""
        if self.faults.configure(body):
            self.state.tokens.expire_all()

    def token_ttl(self) -> float:
        ttl = self.faults.token_ttl
        return self.config.token_ttl if ttl is None else ttl

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(sorted(self.state.requests.items())),
            "token_grants": self.state.token_grants,
            "pipelines_created": self.state.pipelines_created,
            "executions_started": len(self.state.executions.executions),
            "faults_injected": dict(self.faults.injected),
            "rate_limit": self.state.limiter.stats(),
        }
