"""Shared fixtures: one DPC emulator process per test session, and clients and connections for it.

Nothing here imports Airflow, so the emulator tests also run where Airflow is not installed.
Connections reach Airflow through ``AIRFLOW_CONN_<ID>`` variables, which every Airflow version reads.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_dpc.emulator import EmulatorProcess
from tests.guide import GUIDE

# Airflow reads its configuration at import: point it at a throw-away home before any test imports it.
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="dpc-airflow-home-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).parent.parent / "example_dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
    }
)

# Short phases keep state-machine tests quick while leaving each status observable.
PHASE_SECONDS = 0.3

ConnEnv = Callable[..., str]


def quick_seed() -> dict[str, Any]:
    """The default seed with its published pipelines' executions ending within 0.5 s."""
    from airflow_provider_dpc.emulator.config import DEFAULT_SEED

    quick = [p.model_copy(update={"seconds": min(p.seconds, 0.5)}) for p in DEFAULT_SEED.published_pipelines]
    seed: dict[str, Any] = DEFAULT_SEED.model_copy(update={"published_pipelines": quick}).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    return seed


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorProcess]:
    """The session's emulator, with 0.3 s STARTING, SNAPSHOTTING, STOPPING and CANCELLING phases, and
    executions of "Pipeline 1" and "Failing pipeline" ending after 0.5 s."""
    with EmulatorProcess(
        starting_seconds=PHASE_SECONDS,
        snapshotting_seconds=PHASE_SECONDS,
        stopping_seconds=PHASE_SECONDS,
        cancelling_seconds=PHASE_SECONDS,
        seed=quick_seed(),
    ) as process:
        yield process


@pytest.fixture
def fresh_emulator(emulator: EmulatorProcess) -> Iterator[EmulatorProcess]:
    """The session's emulator reset to its startup state (no pipelines, tokens, faults; zero counters).

    Reset again afterwards, so a test's faults or settings never leak into the next test.
    """
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def api(fresh_emulator: EmulatorProcess) -> Iterator[httpx.Client]:
    """A client for ``emulator.base_url`` (``.../dpc``) holding a valid bearer token.

    It builds on ``fresh_emulator``, as a reset revokes tokens: the token must come after the reset.
    """
    headers = {"Authorization": f"Bearer {fresh_emulator.token()}"}
    with httpx.Client(base_url=fresh_emulator.base_url, headers=headers, timeout=10.0) as client:
        yield client


@pytest.fixture
def guide() -> Callable[[str], Any]:
    """Load one of the guide's JSON examples by file stem, e.g. ``guide("create_request")``."""

    def load(name: str) -> Any:
        return json.loads((GUIDE / f"{name}.json").read_text(encoding="utf-8"))

    return load


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's metadata database (SQLite in the tests' AIRFLOW_HOME), created once, for ``dag.test()``
    and the CLI."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
    )
    _build_the_in_process_api_once()


def _build_the_in_process_api_once() -> None:
    """Have ``dag.test()`` build Airflow's in-process Task Execution API once per process, as 3.3 does.

    Airflow 3.0 to 3.2 build it anew for every task ``dag.test()`` runs (a FastAPI app whose
    versioned routers take seconds of CPU to generate); 3.3 keeps one per process
    (``functools.lru_cache`` on ``supervisor.in_process_api_server``). The suite does the same on
    every line, so a DAG test costs its tasks, not the app's construction. Airflow 2 has no such API.
    """
    try:
        from airflow.sdk.execution_time import supervisor
    except ImportError:
        return
    build = getattr(supervisor, "in_process_api_server", None)
    if build is not None and not hasattr(build, "cache_info"):
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(build)


@pytest.fixture
def conn_env(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> ConnEnv:
    """Define an Airflow connection to the emulator for this test; returns its conn id.

    ``conn_env("name", password="wrong", extra={"account_id": "a"})`` overrides fields; ``extra``
    is merged into the emulator's (which holds ``oauth_url``).
    """

    def define(conn_id: str, **overrides: Any) -> str:
        fields = emulator.connection_fields()
        extra = {**fields["extra"], **overrides.pop("extra", {})}
        fields.update(overrides, extra=extra)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
        return conn_id

    return define


@pytest.fixture
def dpc_conn(conn_env: ConnEnv) -> str:
    """The id of an Airflow connection to the session's emulator."""
    return conn_env("dpc_emulator")


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> None:
    """Each test starts with no cached access token, a full request budget and no route known to
    be missing, so token-grant counts, waits and fallbacks are its own."""
    from airflow_provider_dpc.hooks._budget import BUDGETS
    from airflow_provider_dpc.hooks._calls import NO_STATUS_ROUTE
    from airflow_provider_dpc.hooks._protocol import TOKENS

    TOKENS.clear()
    BUDGETS.clear()
    NO_STATUS_ROUTE.clear()


@pytest.fixture(autouse=True)
def _no_secret_leaks(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Fail any test that leaks a client secret or an access token.

    Logs, captured output, XCom values, trigger kwargs and events, provider exceptions and rendered
    template fields are searched for every secret of the connections read and every token issued;
    see ``tests/reliability/leakguard.py``. Yields the guard, for tests of the guard itself.
    """
    from tests.reliability.leakguard import guard_test

    yield from guard_test(request)
