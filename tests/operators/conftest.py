"""What the operator, sensor and trigger tests share: the default connection on the emulator, a hook
with quick retries, and the emulator's two answer shapes."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_dpc.hooks.dpc import DpcHook
from tests.guide import FAST_RETRIES


@pytest.fixture(autouse=True)
def default_conn(conn_env: Any) -> str:
    """The operators' default connection, ``matillion_dpc_default``, points at the emulator."""
    return conn_env("matillion_dpc_default")


@pytest.fixture
def hook(default_conn: str, fresh_emulator: Any) -> DpcHook:
    return DpcHook(default_conn, retry_policy=FAST_RETRIES)


@pytest.fixture(params=["observed", "documented"])
def shape(request: pytest.FixtureRequest, fresh_emulator: Any) -> str:
    """The emulator answering as the service does (observed: executions' details wrapped, times with
    five fractional digits) or as its reference shows (documented)."""
    fresh_emulator.configure(api_shape=request.param)
    return str(request.param)
