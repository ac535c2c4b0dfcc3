"""The fault matrix: every fault the cloud can throw, each through the whole create, start, wait, stop flow.

Each case runs the real operators and sensor against the emulator (``tests/reliability/flows.py``),
polling in the worker and deferred to the real trigger. A case passes when every step ends as
documented (success, or the named error naming the call or the pipeline), the flow stays within
its time bound, the emulator created exactly one pipeline and, unless the emulator lost its state,
exactly one pipeline carries the flow's name and is NOT_RUNNING after the stop.

The ``reliability_heavy`` variant runs seeded random mixes of the recoverable faults.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from airflow_provider_dpc.emulator import EmulatorProcess
from airflow_provider_dpc.exceptions import (
    DpcNotFoundError,
    DpcPipelineStateError,
    DpcRateLimitError,
    DpcServerError,
    DpcTransportError,
)
from tests.reliability.figures import figures
from tests.reliability.flows import (
    MODES,
    Action,
    Case,
    Expect,
    Flow,
    clear_faults,
    die,
    fail_start,
    faults,
    later,
    restart,
)

pytestmark = pytest.mark.slow

STATUS_CALL = r"GET /v1/projects/{project}/streaming-pipelines/{pipeline}/status"
COMMAND_CALL = r"POST /v1/projects/{project}/streaming-pipelines/{pipeline}/commands"


def injected(flow: Flow, name: str) -> int:
    return int(flow.stats["faults_injected"][name])


def _rate_limits_honoured(flow: Flow) -> None:
    assert injected(flow, "rate_limit") == 9
    assert flow.elapsed >= 9 * 0.2, "the 429s' Retry-After of 0.2 s was not waited out"


def _server_errors_ridden_out(flow: Flow) -> None:
    assert injected(flow, "server_errors") == 12


def _drops_ridden_out(flow: Flow) -> None:
    assert injected(flow, "drop_connections") == 5


def _slowness_ridden_out(flow: Flow) -> None:
    assert injected(flow, "latency") >= 2


def _gave_up_quickly(flow: Flow) -> None:
    # Three attempts of 0.3 s each and short backoffs: the start fails within seconds, not minutes.
    assert flow.step_seconds["start"] < 6, flow.step_seconds


def _tokens_refreshed(flow: Flow) -> None:
    assert injected(flow, "expire_tokens") == 3
    assert flow.stats["token_grants"] >= 4


def _short_lived_tokens_renewed(flow: Flow) -> None:
    assert flow.stats["token_grants"] >= 2


def _malformed_bodies_ridden_out(flow: Flow) -> None:
    assert injected(flow, "malformed_json") == 3


def _flapped(flow: Flow) -> None:
    assert injected(flow, "unknown_status_ratio") >= 1


def _restarted(flow: Flow) -> None:
    assert flow.earlier_stats, "the emulator was not restarted"
    assert flow.stats["pipelines_created"] == 0  # the restarted emulator knows no pipeline


RATE_LIMIT = faults(rate_limit={"count": 3, "retry_after": 0.2})
SERVER_ERRORS = faults(server_errors={"count": 3, "status": 503})
DROP = faults(drop_connections={"count": 1})
SLOW = (faults(latency=1.0), later(1.6, clear_faults))
EXPIRE = faults(expire_tokens=True)
MALFORMED = faults(malformed_json={"count": 1})
PIPELINE_STATE = Expect(
    DpcPipelineStateError,
    (r"streaming pipeline {pipeline} \(project {project}\)", r"is NOT_RUNNING after \d+ s while waiting for STREAMING"),
    attrs={"pipeline_id": "{pipeline}"},
)

CASES = [
    Case(
        "429 storm with Retry-After",
        {("create", "list", 1): RATE_LIMIT, ("start", "status", 2): RATE_LIMIT, ("stop", "command", 1): RATE_LIMIT},
        check=_rate_limits_honoured,
    ),
    Case(
        "429 storm beyond the retry budget",
        {
            ("start", "status", 2): faults(rate_limit={"count": 1000, "retry_after": 0}),
            ("stop", "list", 1): clear_faults,
        },
        expect={"start": Expect(DpcRateLimitError, (r"429 Too Many Requests on " + STATUS_CALL,))},
    ),
    Case(
        "503 bursts",
        {
            ("create", "create", 1): SERVER_ERRORS,
            ("start", "command", 1): SERVER_ERRORS,
            ("start", "status", 2): SERVER_ERRORS,
            ("stop", "status", 1): SERVER_ERRORS,
        },
        check=_server_errors_ridden_out,
    ),
    Case(
        "503s beyond the retry budget",
        {("start", "command", 1): faults(server_errors={"count": 1000}), ("stop", "list", 1): clear_faults},
        expect={"start": Expect(DpcServerError, (r"503 Service Unavailable on " + COMMAND_CALL,))},
        modes=("polling",),  # the START is sent before any deferral
    ),
    Case(
        "connections dropped mid-request",
        {
            ("create", "create", 1): DROP,  # the create runs, its answer is lost: no second pipeline
            ("start", "command", 1): DROP,
            ("start", "status", 2): faults(drop_connections={"count": 2}),
            ("stop", "command", 1): DROP,
        },
        check=_drops_ridden_out,
    ),
    Case(
        "responses slower than the client timeout",
        {("create", "create", 1): SLOW, ("start", "status", 2): SLOW},
        timeout=0.5,
        check=_slowness_ridden_out,
    ),
    Case(
        "slow responses beyond the retry budget",
        {("start", "status", 2): faults(latency=3.0), ("stop", "list", 1): clear_faults},
        expect={"start": Expect(DpcTransportError, (STATUS_CALL + r" failed: ReadTimeout",))},
        timeout=0.3,
        retry_policy={"max_attempts": 3, "backoff_base": 0.05, "backoff_max": 0.1, "max_elapsed": 10.0},
        check=_gave_up_quickly,
    ),
    Case(
        "token expiring mid-flow",
        {("start", "status", 2): EXPIRE, ("wait", "status", 1): EXPIRE, ("stop", "command", 1): EXPIRE},
        check=_tokens_refreshed,
    ),
    Case(
        # The token endpoint says "expires_in": 1 but the server drops the token after 0.6 s: the
        # client meets 401s before its own refresh is due, and refreshes on them.
        "tokens expiring sooner than announced",
        {("create", "list", 1): faults(token_ttl=0.6)},
        check=_short_lived_tokens_renewed,
    ),
    Case(
        "malformed JSON bodies",
        {("create", "create", 1): MALFORMED, ("start", "status", 2): MALFORMED, ("stop", "command", 1): MALFORMED},
        check=_malformed_bodies_ridden_out,
    ),
    Case(
        "UNKNOWN status flapping",
        {("start", "status", 1): faults(unknown_status_ratio=0.5, seed=7)},
        check=_flapped,
    ),
    Case(
        "NOT_RUNNING after START",
        {("start", "status", 1): fail_start},
        expect={"start": PIPELINE_STATE},
    ),
    Case(
        "pipeline dying while streaming",
        {("wait", "status", 1): die},
        expect={"wait": PIPELINE_STATE},
    ),
    Case(
        "emulator restart (state lost) during the wait",
        {("start", "status", 2): restart},
        expect={
            "start": Expect(DpcNotFoundError, (r"404 Not Found on " + STATUS_CALL,)),
            "stop": Expect(DpcNotFoundError, (r"no streaming pipeline named '{name}' in project {project}",)),
        },
        state_lost=True,
        check=_restarted,
    ),
]


def conn_id_for(case: Case, emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> str:
    fields = emulator.connection_fields()
    fields["extra"] = {**fields["extra"], "timeout": case.timeout}
    conn_id = f"dpc_chaos_{int(case.timeout * 1000)}ms"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
    return conn_id


def run_case(
    case: Case, mode: str, emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, config: pytest.Config
) -> Flow:
    counts = figures(config)
    counts.scenarios_run += 1
    counts.scenario_names[case.name] += 1
    emulator.reset()
    flow = Flow(case, emulator, conn_id_for(case, emulator, monkeypatch), deferrable=mode == "deferrable")
    try:
        flow.run(monkeypatch)
    finally:
        emulator.reset()
    counts.flows += 1
    counts.pipelines_created += flow.pipelines_created
    counts.duplicates += flow.duplicates
    problems = flow.problems()
    if case.check is not None and not problems:
        try:
            case.check(flow)
        except AssertionError as exc:
            problems.append(f"check {case.check.__name__}: {exc}")
    assert not problems, "\n".join([*problems, flow.describe()])
    counts.scenarios_passed += 1
    return flow


@pytest.mark.parametrize(
    ("case", "mode"), [pytest.param(case, mode, id=f"{case.name}-{mode}") for case in CASES for mode in case.modes]
)
def test_fault_matrix(
    case: Case, mode: str, chaos_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, request: Any
) -> None:
    run_case(case, mode, chaos_emulator, monkeypatch, request.config)


# ---- heavy: seeded random mixes of the faults the flow must ride out -------------------------------

RECOVERABLE: list[tuple[str, Action]] = [
    ("429", faults(rate_limit={"count": 2, "retry_after": 0.05})),
    ("503", faults(server_errors={"count": 2, "status": 503})),
    ("502", faults(server_errors={"count": 1, "status": 502})),
    ("drop", faults(drop_connections={"count": 1})),
    ("malformed", faults(malformed_json={"count": 1})),
    ("expire", faults(expire_tokens=True)),
    ("unknown", faults(unknown_status_ratio=0.3, seed=3)),
    ("429 ratio", faults(rate_limit_ratio=0.2, retry_after=0.05, seed=5)),
]
CUES = [
    ("create", "list", 1),
    ("create", "create", 1),
    ("start", "status", 1),
    ("start", "command", 1),
    ("start", "status", 2),
    ("start", "status", 3),
    ("wait", "status", 1),
    ("stop", "list", 1),
    ("stop", "status", 1),
    ("stop", "command", 1),
    ("stop", "status", 2),
]
SEEDS = range(12)


def random_case(seed: int) -> Case:
    rng = random.Random(seed)
    chosen = rng.sample(CUES, k=rng.randint(2, 5))
    actions: dict[tuple[str, str, int], Action] = {}
    names = []
    for cue in chosen:
        name, action = rng.choice(RECOVERABLE)
        actions[cue] = action
        names.append(f"{name}@{cue[0]}.{cue[1]}{cue[2]}")
    return Case(f"random mix {seed}: " + ", ".join(names), actions, bound=40.0)


@pytest.mark.reliability_heavy
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", SEEDS)
def test_random_fault_mixes(
    seed: int, mode: str, chaos_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, request: Any
) -> None:
    run_case(random_case(seed), mode, chaos_emulator, monkeypatch, request.config)


@pytest.mark.reliability_heavy
@pytest.mark.parametrize("repeat", range(3))
@pytest.mark.parametrize(
    ("case", "mode"), [pytest.param(case, mode, id=f"{case.name}-{mode}") for case in CASES for mode in case.modes]
)
def test_fault_matrix_repeated(
    case: Case, mode: str, repeat: int, chaos_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, request: Any
) -> None:
    run_case(case, mode, chaos_emulator, monkeypatch, request.config)
