"""Running published pipelines: the hook, the run operator, the sensor and the trigger against the
emulator over HTTP, polled and deferred, on every Airflow line.

The emulator seeds "Pipeline 1" (SUCCESS after 2 s), "Failing pipeline" (FAILED after 1 s, with a
message), "Long pipeline" (RUNNING until cancelled), "Disabled pipeline" (410), "Forbidden
pipeline" (FORBIDDEN), "Terminated pipeline" (TERMINATED, a status nobody documented), "Load
orders" and "Archived load orders" (answered as the file paths ``orders/Load orders.orch.yaml`` and
``archive/Load orders.orch.yaml``) and "Pipeline 10" in the guide's project and "Environment-1"
(the test session's emulator ends each within 0.5 s). The tests marked with the ``shape`` fixture
run against both answer shapes: the service's as observed, and the API reference's.
Whole DAGs under Airflow are in ``test_example_dags.py``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import httpx
import pytest

from airflow_provider_dpc.exceptions import (
    DpcApiError,
    DpcConflictError,
    DpcNotFoundError,
    DpcPipelineExecutionError,
    DpcTransportError,
    DpcValidationError,
)
from airflow_provider_dpc.hooks._protocol import ConnectionSettings
from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.links.dpc import XCOM_EXECUTION_URL
from airflow_provider_dpc.models import ExecutionStatus, pipeline_candidates, same_pipeline
from airflow_provider_dpc.operators.pipeline_execution import STATE_KEY, DpcRunPipelineOperator
from airflow_provider_dpc.sensors.pipeline_execution import DpcPipelineExecutionSensor
from airflow_provider_dpc.status import StatusWatch, execution_goal
from airflow_provider_dpc.triggers.pipeline_execution import DpcPipelineExecutionTrigger
from tests.guide import FAST_RETRIES, PROJECT_ID, ROOT, requests_to
from tests.task_runner import DictStore, RecordingTI, first_event, run_task

try:
    from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException
except ImportError:  # Airflow 2.11
    from airflow.exceptions import AirflowSensorTimeout, AirflowSkipException  # type: ignore[no-redef]

pytestmark = pytest.mark.every_line

ENV = "Environment-1"


def run_op(pipeline: str, **kwargs: Any) -> DpcRunPipelineOperator:
    options = {"project_id": PROJECT_ID, "poll_interval": 0.1, "dpc_retry_policy": FAST_RETRIES, **kwargs}
    return DpcRunPipelineOperator(task_id="run", pipeline_name=pipeline, environment_name=ENV, **options)


def executions(hook: DpcHook, pipeline: str | None = None) -> list[Any]:
    return list(hook.iter_pipeline_executions(PROJECT_ID, pipeline_name=pipeline))


def wait_for(hook: DpcHook, execution_id: str, status: ExecutionStatus, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while (seen := hook.get_pipeline_execution_status(PROJECT_ID, execution_id)) is not status:
        assert time.monotonic() < deadline, f"execution {execution_id} is {seen}, not {status}, after {within} s"
        time.sleep(0.05)


# ---- the pipeline name rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "answered", "same"),
    [
        ("Pipeline 1", "Pipeline 1", True),
        ("Pipeline 1", "Pipeline 10", False),
        ("Pipeline 1", "pipeline 1", False),
        ("load", "load.orch.yaml", True),
        ("load", "folder/load.orch.yaml", True),
        ("load", "a/b/load.tran.yaml", True),
        ("load.orch.yaml", "folder/load.orch.yaml", True),
        ("folder/load", "folder/load.orch.yaml", True),
        ("folder/load", "other/load.orch.yaml", False),
        ("folder/load", "load.orch.yaml", False),
        ("load", "load.orch.yml", False),
        ("load", "loader.orch.yaml", False),
        ("load", None, False),
    ],
)
def test_one_rule_says_whether_an_answered_name_is_the_pipeline_named(
    asked: str, answered: str | None, same: bool
) -> None:
    assert same_pipeline(asked, answered) is same


def test_a_name_matching_two_folders_has_two_candidates() -> None:
    answered = ["a/load.orch.yaml", "Pipeline 1", "b/load.orch.yaml", "a/load.orch.yaml", None]
    assert pipeline_candidates("load", answered) == ["a/load.orch.yaml", "b/load.orch.yaml"]
    assert pipeline_candidates("b/load", answered) == ["b/load.orch.yaml"]


# ---- hook ------------------------------------------------------------------------------------------


def test_hook_runs_a_published_pipeline_and_reads_it_back(hook: DpcHook, shape: str) -> None:
    assert [p.name for p in hook.list_published_pipelines(PROJECT_ID, ENV)][:3] == [
        "Pipeline 1", "Failing pipeline", "Long pipeline"
    ]  # fmt: skip
    assert hook.list_published_pipelines(PROJECT_ID, "Elsewhere") == []
    execution_id = hook.execute_pipeline(
        PROJECT_ID,
        pipeline_name="Pipeline 1",
        environment_name=ENV,
        scalar_variables={"region": "eu", "batch": 3},
        grid_variables={"tables": [["orders", "daily"]]},
    )
    assert hook.get_pipeline_execution_status(PROJECT_ID, execution_id) is ExecutionStatus.RUNNING
    details = hook.get_pipeline_execution(PROJECT_ID, execution_id)
    assert (details.pipeline_name, details.environment_name, details.trigger) == ("Pipeline 1", ENV, "API")
    # Where the service leaves the ids out of its answer, they come from the request.
    assert (details.pipeline_execution_id, details.project_id, details.finished) == (execution_id, PROJECT_ID, False)
    assert [step.status for step in hook.get_pipeline_execution_steps(PROJECT_ID, execution_id)][-1] == "RUNNING"


def test_steps_are_read_page_by_page_nested_or_flat(hook: DpcHook, shape: str, fresh_emulator: Any) -> None:
    execution_id = hook.execute_pipeline(PROJECT_ID, pipeline_name="Load orders", environment_name=ENV)
    wait_for(hook, execution_id, ExecutionStatus.SUCCESS)
    steps = hook.get_pipeline_execution_steps(PROJECT_ID, execution_id, page_size=3)
    assert [(s.name, s.status) for s in steps] == [
        ("Start", "SUCCESS"), ("Extract orders", "SUCCESS"), ("Load orders", "SUCCESS"), ("End", "SUCCESS")
    ]  # fmt: skip
    # The service pages its steps (two pages of three here) and leaves the times out of some.
    pages, timed = (2, [True, False, True, False]) if shape == "observed" else (1, [True] * 4)
    assert requests_to(fresh_emulator, "GET", "/steps") == pages
    assert [s.finished_at is not None for s in steps] == timed


def test_steps_follow_total_where_the_service_serves_fewer_than_asked() -> None:
    """An edge no emulator setting shows: a page capped below the size asked for. The pages are
    read until ``total``, not stopped at the first short one."""
    pages: list[int] = []

    def service(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        pages.append(page)
        steps = [
            {"name": f"step {i}", "result": {"status": "SUCCESS"}} for i in range(page * 50, min(120, page * 50 + 50))
        ]
        return httpx.Response(200, json={"page": page, "size": 50, "total": 120, "results": steps})

    hook = DpcHook("dpc_offline", retry_policy=FAST_RETRIES)
    hook._settings = ConnectionSettings(
        conn_id="dpc_offline", base_url="http://dpc.offline/dpc", token_url="http://dpc.offline/token",
        audience="https://api.matillion.com", static_token="offline-static-token",
    )  # fmt: skip
    hook._client = httpx.Client(transport=httpx.MockTransport(service))
    steps = hook.get_pipeline_execution_steps(PROJECT_ID, "6f1c3a52-1d7e-4b8e-9b1c-2f0e4c6a9d11")
    assert ([s.name for s in steps][-1], len(steps), pages) == ("step 119", 120, [0, 1, 2])


def test_a_status_read_costs_one_request_while_the_status_tells(hook: DpcHook, fresh_emulator: Any) -> None:
    execution_id = hook.execute_pipeline(PROJECT_ID, pipeline_name="Long pipeline", environment_name=ENV)
    found = hook.read_pipeline_execution(PROJECT_ID, execution_id)
    assert (found.status, found.finished) == (ExecutionStatus.RUNNING, False)
    assert requests_to(fresh_emulator, "GET", "/status") == 1
    assert requests_to(fresh_emulator, "GET", "{pipelineExecutionId}") == 0  # no details read


def test_the_executions_list_is_filtered_by_the_pipeline_name_rule(hook: DpcHook) -> None:
    ids = {
        name: hook.execute_pipeline(PROJECT_ID, pipeline_name=name, environment_name=ENV)
        for name in ("Pipeline 1", "Pipeline 10", "Load orders", "Archived load orders")
    }
    # The API matches "Pipeline 1" partially (Pipeline 10 too); only Pipeline 1's own come back.
    assert [e.pipeline_execution_id for e in executions(hook, "Pipeline 1")] == [ids["Pipeline 1"]]
    assert [e.pipeline_execution_id for e in executions(hook, "pipeline 1")] == []  # case counts
    # Answers name pipelines by file path: a name with or without its folder and suffix finds it.
    for name in ("orders/Load orders", "orders/Load orders.orch.yaml"):
        assert [e.pipeline_execution_id for e in executions(hook, name)] == [ids["Load orders"]]
    both = {e.pipeline_execution_id for e in executions(hook, "Load orders")}
    assert both == {ids["Load orders"], ids["Archived load orders"]}


def test_a_name_standing_for_two_running_pipelines_is_a_conflict_naming_both(hook: DpcHook) -> None:
    slow = {"emulator.seconds": 30}
    for name in ("Load orders", "Archived load orders"):
        hook.execute_pipeline(PROJECT_ID, pipeline_name=name, environment_name=ENV, scalar_variables=slow)
    with pytest.raises(DpcConflictError) as info:
        hook.find_running_execution(PROJECT_ID, "Load orders", ENV)
    assert "'archive/Load orders.orch.yaml', 'orders/Load orders.orch.yaml'" in str(info.value)  # newest first
    assert info.value.errors == [("pipelineName", "is ambiguous")]
    found = hook.find_running_execution(PROJECT_ID, "archive/Load orders", ENV)
    assert found is not None
    assert found.pipeline_name == "archive/Load orders.orch.yaml"


def test_the_executions_list_follows_its_more_tokens_newest_first(hook: DpcHook, fresh_emulator: Any) -> None:
    started = [hook.execute_pipeline(PROJECT_ID, pipeline_name="Long pipeline", environment_name=ENV) for _ in range(3)]
    listed = list(hook.iter_pipeline_executions(PROJECT_ID, pipeline_name="Long pipeline", page_size=2))
    assert [e.pipeline_execution_id for e in listed] == started[::-1]
    assert requests_to(fresh_emulator, "GET", "/v1/pipeline-executions") == 2
    hook.cancel_pipeline_execution(PROJECT_ID, started[0], force=True)
    running = hook.iter_pipeline_executions(PROJECT_ID, status="running")
    assert {e.pipeline_execution_id for e in running} == set(started[1:])


def test_a_misspelt_executions_filter_is_refused_naming_it_before_any_request(
    hook: DpcHook, fresh_emulator: Any
) -> None:
    with pytest.raises(
        TypeError, match="no executions filter is named 'pipline_name'; the filters are environment_name"
    ):
        next(hook.iter_pipeline_executions(PROJECT_ID, pipline_name="Long pipeline"))  # type: ignore[call-arg]
    assert requests_to(fresh_emulator, "GET", "/v1/pipeline-executions") == 0


def test_bad_variables_are_refused_locally_naming_each_field(hook: DpcHook, fresh_emulator: Any) -> None:
    with pytest.raises(DpcValidationError) as info:
        hook.execute_pipeline(
            PROJECT_ID,
            pipeline_name="Pipeline 1",
            environment_name=ENV,
            scalar_variables={"flag": True, "ratio": float("nan")},  # type: ignore[dict-item]
            grid_variables={"tables": [["orders", 7]]},  # type: ignore[list-item]
        )
    assert info.value.errors == [
        ("scalarVariables.ratio", "must be a finite number"),
        ("scalarVariables.flag", "must be a string or a number"),
        ("gridVariables.tables.0.1", "must be a string"),
    ]
    assert fresh_emulator.stats()["executions_started"] == 0


def test_a_disabled_pipeline_and_a_running_tag_are_refused(hook: DpcHook) -> None:
    with pytest.raises(DpcApiError, match=r"410 Gone on POST .*: Pipeline 'Disabled pipeline' is disabled"):
        hook.execute_pipeline(PROJECT_ID, pipeline_name="Disabled pipeline", environment_name=ENV)
    hook.execute_pipeline(PROJECT_ID, pipeline_name="Long pipeline", environment_name=ENV, execution_tag="nightly")
    with pytest.raises(DpcConflictError, match="executionTag 'nightly' is already running"):
        hook.execute_pipeline(PROJECT_ID, pipeline_name="Long pipeline", environment_name=ENV, execution_tag="nightly")


def test_a_lost_answer_to_execute_under_a_tag_finds_the_accepted_execution(hook: DpcHook, fresh_emulator: Any) -> None:
    fresh_emulator.set_faults(drop_connections={"count": 1})
    execution_id = hook.execute_pipeline(
        PROJECT_ID, pipeline_name="Pipeline 1", environment_name=ENV, execution_tag="t"
    )
    assert [e.pipeline_execution_id for e in executions(hook)] == [execution_id]
    assert fresh_emulator.stats()["faults_injected"]["drop_connections"] == 1


def test_a_lost_answer_without_a_tag_is_raised_not_sent_again(hook: DpcHook, fresh_emulator: Any) -> None:
    fresh_emulator.set_faults(drop_connections={"count": 1})
    with pytest.raises(DpcTransportError):
        hook.execute_pipeline(PROJECT_ID, pipeline_name="Pipeline 1", environment_name=ENV)
    assert fresh_emulator.stats()["executions_started"] == 1


# ---- run operator ----------------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True])
def test_pipeline_1_succeeds_and_returns_its_execution_id(hook: DpcHook, deferrable: bool) -> None:
    ti = RecordingTI()
    execution_id = run_task(run_op("Pipeline 1", deferrable=deferrable, scalar_variables={"day": "{{ ds }}"}), ti)
    assert hook.get_pipeline_execution_status(PROJECT_ID, execution_id) is ExecutionStatus.SUCCESS
    assert ti.xcom["pipeline_execution_id"] == execution_id
    assert ti.xcom[XCOM_EXECUTION_URL] == f"https://app.matillion.com/observability-dashboard/pipeline/{execution_id}"
    assert len(executions(hook)) == 1


@pytest.mark.parametrize("deferrable", [False, True])
def test_failing_pipeline_fails_naming_the_execution_its_status_and_message(
    hook: DpcHook,
    shape: str,
    deferrable: bool,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ti = RecordingTI()
    with pytest.raises(DpcPipelineExecutionError) as info:
        run_task(run_op("Failing pipeline", deferrable=deferrable), ti)
    error, execution_id = info.value, ti.xcom["pipeline_execution_id"]
    assert (error.execution_id, error.status) == (execution_id, "FAILED")
    assert error.execution_message == "Table 'ANALYTICS.ORDERS' does not exist or not authorized."
    assert str(error).startswith(f"DPC pipeline 'Failing pipeline' in 'Environment-1', execution {execution_id} (")
    assert "is FAILED after" in str(error)
    assert "ANALYTICS.ORDERS" in str(error)
    # Airflow 3 logs through structlog to stdout, Airflow 2 through logging. Every step, with its status.
    logged = caplog.text + capsys.readouterr().out
    for line in ("step Start: SUCCESS", "step Run: SUCCESS", "step End: FAILED: Table 'ANALYTICS.ORDERS'"):
        assert line in logged


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_forbidden_execution_fails_the_run_task(hook: DpcHook, shape: str, deferrable: bool) -> None:
    ti = RecordingTI()
    # The timeout only guards the test: a FORBIDDEN execution must fail the task when it is read.
    with pytest.raises(DpcPipelineExecutionError) as info:
        run_task(run_op("Forbidden pipeline", deferrable=deferrable, timeout=30), ti)
    assert (info.value.execution_id, info.value.status) == (ti.xcom["pipeline_execution_id"], "FORBIDDEN")
    assert info.value.statuses[-1] == "FORBIDDEN"
    assert info.value.execution_message == "The agent is not permitted to run pipelines of this project."


@pytest.mark.parametrize("deferrable", [False, True])
def test_the_sensor_fails_on_forbidden_at_the_first_read(hook: DpcHook, shape: str, deferrable: bool) -> None:
    execution_id = hook.execute_pipeline(PROJECT_ID, pipeline_name="Forbidden pipeline", environment_name=ENV)
    wait_for(hook, execution_id, ExecutionStatus.FORBIDDEN)
    # A long poke interval: a sensor that waited through FORBIDDEN would time out instead.
    sensor = DpcPipelineExecutionSensor(
        task_id="s", project_id=PROJECT_ID, execution_id=execution_id, poke_interval=60, timeout=120,
        deferrable=deferrable,
    )  # fmt: skip
    started = time.monotonic()
    with pytest.raises(DpcPipelineExecutionError, match=r"is FORBIDDEN after .*not permitted to run"):
        run_task(sensor)
    assert time.monotonic() - started < 30


def test_the_trigger_ends_on_forbidden_within_one_poll(hook: DpcHook, fresh_emulator: Any) -> None:
    execution_id = hook.execute_pipeline(PROJECT_ID, pipeline_name="Forbidden pipeline", environment_name=ENV)
    trigger = execution_trigger(execution_id, poll_interval=0.2, deadline=time.time() + 30)
    event = asyncio.run(first_event(trigger)).payload
    assert (event["verdict"], event["status"], event["history"]) == ("failed", "FORBIDDEN", ["RUNNING", "FORBIDDEN"])


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_status_nobody_documented_ends_the_wait_once_the_execution_finished(
    hook: DpcHook, shape: str, deferrable: bool
) -> None:
    ti = RecordingTI()
    with pytest.raises(DpcPipelineExecutionError) as info:
        run_task(run_op("Terminated pipeline", deferrable=deferrable, timeout=30), ti)
    assert info.value.status == "TERMINATED"
    assert "DPC says the pipeline execution has finished, with a status this provider does not know" in str(info.value)
    assert info.value.execution_message == "Terminated by an administrator."


@pytest.mark.parametrize(
    ("pipeline", "other"),
    [
        ("Pipeline 1", "Pipeline 10"),  # the API's partial name match finds both
        ("orders/Load orders", "Archived load orders"),  # answered as file paths, in two folders
    ],
)
def test_a_retry_reattaches_to_its_own_execution_while_a_similar_name_runs(
    hook: DpcHook, shape: str, pipeline: str, other: str
) -> None:
    slow = {"emulator.seconds": 30}
    hook.execute_pipeline(PROJECT_ID, pipeline_name=other, environment_name=ENV, scalar_variables=slow)
    op = run_op(pipeline, scalar_variables=slow, wait_for_completion=False)
    first_try = RecordingTI()
    earlier = hook.execute_pipeline(
        PROJECT_ID,
        pipeline_name=pipeline,
        environment_name=ENV,
        execution_tag=op.derived_tag({"ti": first_try}),  # type: ignore[arg-type]
        scalar_variables=slow,
    )
    assert run_task(op, RecordingTI(try_number=2)) == earlier
    assert len(executions(hook, pipeline)) == 1


@pytest.mark.parametrize(("route", "deferrable"), [("404", False), ("405", True)])
def test_a_run_works_where_the_status_route_is_missing(
    hook: DpcHook, shape: str, fresh_emulator: Any, route: str, deferrable: bool, caplog: pytest.LogCaptureFixture
) -> None:
    fresh_emulator.configure(execution_status_route=route)
    execution_id = run_task(run_op("Pipeline 1", deferrable=deferrable), RecordingTI())
    assert hook.get_pipeline_execution_status(PROJECT_ID, execution_id) is ExecutionStatus.SUCCESS
    # The route is tried once in the process; the details are read from then on, with one warning.
    assert requests_to(fresh_emulator, "GET", "/status") == 1
    assert requests_to(fresh_emulator, "GET", "{pipelineExecutionId}") >= 2
    warnings = [r for r in caplog.records if "reading execution details instead" in r.getMessage()]
    assert len(warnings) <= 1  # Airflow 3 may send it to stdout instead


def test_an_unknown_execution_is_still_not_found_where_the_status_route_is_missing(
    hook: DpcHook, fresh_emulator: Any
) -> None:
    fresh_emulator.configure(execution_status_route="404")
    with pytest.raises(DpcNotFoundError, match="was not found"):
        hook.get_pipeline_execution_status(PROJECT_ID, "6f1c3a52-1d7e-4b8e-9b1c-2f0e4c6a9d11")
    # The route is not taken to be missing on the word of a 404 for an execution that does not exist.
    assert requests_to(fresh_emulator, "GET", "/status") == 1
    execution_id = hook.execute_pipeline(PROJECT_ID, pipeline_name="Long pipeline", environment_name=ENV)
    assert hook.get_pipeline_execution_status(PROJECT_ID, execution_id) is ExecutionStatus.RUNNING
    assert requests_to(fresh_emulator, "GET", "/status") == 2


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_timeout_cancels_the_long_pipeline_and_fails(hook: DpcHook, deferrable: bool) -> None:
    ti = RecordingTI()
    with pytest.raises(DpcPipelineExecutionError, match=r"did not reach SUCCESS within 1 s; last status RUNNING.*"):
        run_task(run_op("Long pipeline", deferrable=deferrable, timeout=0.6), ti)
    wait_for(hook, ti.xcom["pipeline_execution_id"], ExecutionStatus.CANCELLED)


def test_killing_a_polling_task_cancels_its_execution(hook: DpcHook) -> None:
    op, ti = run_op("Long pipeline"), RecordingTI()

    def kill_once_running() -> None:
        deadline = time.monotonic() + 10
        while "pipeline_execution_id" not in ti.xcom and time.monotonic() < deadline:
            time.sleep(0.02)
        op.on_kill()  # what Airflow calls when the task is killed or marked failed

    killer = threading.Thread(target=kill_once_running, daemon=True)
    killer.start()
    # The task runs in the main thread, as in a worker (Airflow 2's operator guard needs it there).
    with pytest.raises(DpcPipelineExecutionError) as info:
        run_task(op, ti)
    killer.join(timeout=5)
    assert info.value.status == "CANCELLED"
    wait_for(hook, ti.xcom["pipeline_execution_id"], ExecutionStatus.CANCELLED)


def execution_trigger(execution_id: str, **kwargs: Any) -> DpcPipelineExecutionTrigger:
    options = {"poll_interval": 0.1, "started_at": time.time(), "retry_policy": FAST_RETRIES, **kwargs}
    return DpcPipelineExecutionTrigger(
        dpc_conn_id="matillion_dpc_default",
        project_id=PROJECT_ID,
        execution_id=execution_id,
        goal=execution_goal().to_dict(),
        **options,
    )


def test_killing_a_deferred_task_cancels_its_execution_from_the_trigger(hook: DpcHook) -> None:
    execution_id = hook.execute_pipeline(PROJECT_ID, pipeline_name="Long pipeline", environment_name=ENV)
    trigger = execution_trigger(execution_id)
    asyncio.run(trigger.on_kill())  # Airflow 3.3's triggerer calls it when a deferred task is killed
    wait_for(hook, execution_id, ExecutionStatus.CANCELLED)
    kept = DpcPipelineExecutionTrigger(**{**trigger.serialize()[1], "cancel_on_kill": False})
    assert kept.serialize()[1]["cancel_on_kill"] is False


CRASHING_TRY = """
import os, sys
from airflow_provider_dpc.operators.pipeline_execution import DpcRunPipelineOperator
from tests.task_runner import RecordingTI

class DyingTI(RecordingTI):
    def xcom_push(self, key, value):
        print(value, flush=True)
        os._exit(3)  # the worker dies after the execute call, before anything reached XCom

op = DpcRunPipelineOperator(
    task_id="run", project_id=sys.argv[1], pipeline_name="Pipeline 1", environment_name="Environment-1",
    scalar_variables={"emulator.seconds": 3},  # still running when the retry starts, however slow the machine
)
op.execute({"ti": DyingTI()})
"""


@pytest.mark.slow
def test_a_retry_after_a_crash_waits_for_its_own_execution(hook: DpcHook, default_conn: str) -> None:
    crashed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASHING_TRY), PROJECT_ID],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert crashed.returncode == 3, crashed.stderr
    first = crashed.stdout.split()[-1]
    retry = RecordingTI(try_number=2)
    assert run_task(run_op("Pipeline 1", scalar_variables={"emulator.seconds": 3}), retry) == first
    assert [e.pipeline_execution_id for e in executions(hook)] == [first]
    assert hook.get_pipeline_execution_status(PROJECT_ID, first) is ExecutionStatus.SUCCESS


def test_a_lost_answer_to_execute_leaves_one_execution_and_a_green_task(hook: DpcHook, fresh_emulator: Any) -> None:
    fresh_emulator.set_faults(drop_connections={"count": 1})
    execution_id = run_task(run_op("Pipeline 1", deferrable=True), RecordingTI())
    assert [e.pipeline_execution_id for e in executions(hook)] == [execution_id]
    assert fresh_emulator.stats()["faults_injected"]["drop_connections"] == 1


def test_a_users_own_running_tag_fails_the_task_instead_of_reattaching(hook: DpcHook) -> None:
    hook.execute_pipeline(PROJECT_ID, pipeline_name="Long pipeline", environment_name=ENV, execution_tag="mine")
    with pytest.raises(DpcConflictError, match=r"execution_tag 'mine' is already running.*leave execution_tag unset"):
        run_task(run_op("Long pipeline", execution_tag="mine"))
    assert len(executions(hook)) == 1


def test_task_state_resumes_a_succeeded_execution_and_reruns_a_failed_one(hook: DpcHook) -> None:
    store = DictStore()
    first = run_task(run_op("Pipeline 1"), RecordingTI(), task_state_store=store)
    assert store.values[STATE_KEY] == {"project_id": PROJECT_ID, "execution_id": first}
    # A retry after the execution succeeded (say the worker died before reporting) returns it.
    assert run_task(run_op("Pipeline 1"), RecordingTI(try_number=2), task_state_store=store) == first
    assert len(executions(hook)) == 1
    store.values[STATE_KEY]["execution_id"] = failed = hook.execute_pipeline(
        PROJECT_ID, pipeline_name="Failing pipeline", environment_name=ENV
    )
    wait_for(hook, failed, ExecutionStatus.FAILED)
    again = run_task(run_op("Pipeline 1"), RecordingTI(try_number=3), task_state_store=store)
    assert again not in (first, failed)
    assert store.values[STATE_KEY]["execution_id"] == again


def test_without_waiting_it_returns_at_once_and_the_sensor_waits(hook: DpcHook) -> None:
    ti = RecordingTI()
    execution_id = run_task(run_op("Pipeline 1", wait_for_completion=False), ti)
    assert hook.get_pipeline_execution_status(PROJECT_ID, execution_id) is ExecutionStatus.RUNNING
    sensor = DpcPipelineExecutionSensor(
        task_id="s", project_id=PROJECT_ID, execution_id=execution_id, poke_interval=0.1, deferrable=True
    )
    assert run_task(sensor) is None
    assert hook.get_pipeline_execution_status(PROJECT_ID, execution_id) is ExecutionStatus.SUCCESS


@pytest.mark.parametrize("deferrable", [False, True])
def test_the_sensor_fails_on_a_failed_execution_or_skips_with_soft_fail(hook: DpcHook, deferrable: bool) -> None:
    execution_id = hook.execute_pipeline(PROJECT_ID, pipeline_name="Failing pipeline", environment_name=ENV)
    common = {"project_id": PROJECT_ID, "execution_id": execution_id, "poke_interval": 0.1, "deferrable": deferrable}
    with pytest.raises(DpcPipelineExecutionError, match=r"pipeline execution .* is FAILED .*ANALYTICS.ORDERS"):
        run_task(DpcPipelineExecutionSensor(task_id="s", **common))
    with pytest.raises(AirflowSkipException):
        run_task(DpcPipelineExecutionSensor(task_id="s", soft_fail=True, **common))


def test_the_deferred_sensor_times_out_in_the_trigger(hook: DpcHook) -> None:
    execution_id = hook.execute_pipeline(PROJECT_ID, pipeline_name="Long pipeline", environment_name=ENV)
    sensor = DpcPipelineExecutionSensor(
        task_id="s", project_id=PROJECT_ID, execution_id=execution_id, poke_interval=0.1, timeout=0.5, deferrable=True
    )
    with pytest.raises(AirflowSensorTimeout, match="did not reach SUCCESS"):
        run_task(sensor)
    assert (
        hook.get_pipeline_execution_status(PROJECT_ID, execution_id) is ExecutionStatus.RUNNING
    )  # a sensor only watches


def test_the_trigger_kwargs_hold_ids_and_timings_only() -> None:
    watch = StatusWatch(execution_goal(), PROJECT_ID, "6f1c3a52-1d7e-4b8e-9b1c-2f0e4c6a9d11", started_at=1, deadline=2)
    trigger = run_op("Pipeline 1", cancel_on_kill=False).status_trigger(watch, 5.0)
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_dpc.triggers.pipeline_execution.DpcPipelineExecutionTrigger"
    assert kwargs["execution_id"] == "6f1c3a52-1d7e-4b8e-9b1c-2f0e4c6a9d11"
    assert (kwargs["deadline"], kwargs["cancel_on_kill"], kwargs["goal"]["kind"]) == (2.0, False, "pipeline execution")


def test_bad_arguments_fail_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="give project_id or project_name"):
        DpcRunPipelineOperator(task_id="r", pipeline_name="P", environment_name="E")
    with pytest.raises(ValueError, match="timeout must be positive"):
        run_op("P", timeout=0)
    with pytest.raises(ValueError, match="give execution_id"):
        DpcPipelineExecutionSensor(task_id="s", project_id=PROJECT_ID, execution_id="")
