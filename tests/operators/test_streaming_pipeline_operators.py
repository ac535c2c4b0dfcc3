"""Operators, sensor and trigger against the emulator over HTTP, polling and deferred.

Deferred paths run the real trigger in an event loop and hand its event to ``execute_complete``,
as the triggerer would; whole DAGs under Airflow are in ``test_example_dags.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpc.exceptions import (
    DpcConflictError,
    DpcNotFoundError,
    DpcPipelineStateError,
    DpcServerError,
    DpcValidationError,
)
from airflow_provider_dpc.hooks.dpc import DpcHook, RetryPolicy
from airflow_provider_dpc.links.dpc import XCOM_PIPELINE_URL
from airflow_provider_dpc.models import PipelineCommand, PipelineStatus
from airflow_provider_dpc.operators.streaming_pipeline import (
    PIPELINE_STATE_KEY,
    DpcCreateStreamingPipelineOperator,
    DpcDeleteStreamingPipelineOperator,
    DpcKeepStreamingOperator,
    DpcStartStreamingPipelineOperator,
    DpcStopStreamingPipelineOperator,
)
from airflow_provider_dpc.sensors.streaming_pipeline import DpcStreamingPipelineSensor
from airflow_provider_dpc.triggers.streaming_pipeline import DpcStreamingPipelineTrigger
from tests.guide import FAST_RETRIES, GUIDE_AGENT_ID, PROJECT_ID, guide_body, requests_to, wait_for_status
from tests.task_runner import DictStore, RecordingTI, first_event, run_task

try:
    from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException, TaskDeferred
except ImportError:  # Airflow 2.11
    from airflow.exceptions import AirflowSensorTimeout, AirflowSkipException, TaskDeferred  # type: ignore[no-redef]

pytestmark = pytest.mark.every_line


run = run_task


@pytest.fixture
def pipeline(hook: DpcHook, fresh_emulator: Any) -> str:
    return hook.create_streaming_pipeline(PROJECT_ID, guide_body("ops")).streaming_pipeline_id


def common(**kwargs: Any) -> dict[str, Any]:
    return {"project_id": PROJECT_ID, "poll_interval": 0.1, "dpc_retry_policy": FAST_RETRIES, **kwargs}


def test_create_returns_the_id_and_pushes_it_with_the_link(hook: DpcHook, fresh_emulator: Any) -> None:
    ti = RecordingTI()
    op = DpcCreateStreamingPipelineOperator(task_id="c", definition=guide_body("new"), **common())
    pipeline_id = run(op, ti)
    assert hook.get_streaming_pipeline(PROJECT_ID, pipeline_id).name == "new"
    assert ti.xcom["pipeline_id"] == pipeline_id
    assert ti.xcom[XCOM_PIPELINE_URL] == f"https://app.matillion.com/projects/{PROJECT_ID}/branches"


def test_the_link_follows_the_connections_pipeline_url_template(conn_env: Any, pipeline: str) -> None:
    template = "{app_url}/projects/{project_id}/streaming/pipelines/{pipeline_id}"
    conn_env("matillion_dpc_default", extra={"app_url": "https://dpc.example.com/", "pipeline_url_template": template})
    ti = RecordingTI()
    run(DpcStopStreamingPipelineOperator(task_id="s", pipeline_id=pipeline, **common()), ti)
    assert ti.xcom[XCOM_PIPELINE_URL] == f"https://dpc.example.com/projects/{PROJECT_ID}/streaming/pipelines/{pipeline}"


@pytest.mark.parametrize(
    ("template", "problem"),
    [("{app_url}/p/{pipelineId}", "unknown placeholder(s) {pipelineId}"), ("{app_url}/p/{", "Single '{'")],
)
def test_a_bad_pipeline_url_template_is_named(conn_env: Any, pipeline: str, template: str, problem: str) -> None:
    conn_env("matillion_dpc_default", extra={"pipeline_url_template": template})
    op = DpcStopStreamingPipelineOperator(task_id="s", pipeline_id=pipeline, **common())
    with pytest.raises(DpcValidationError, match=r"extra 'pipeline_url_template' .*" + re.escape(problem)) as info:
        run(op)
    assert info.value.errors[0].field == "extra.pipeline_url_template"


def test_create_from_a_json_file(hook: DpcHook, fresh_emulator: Any, tmp_path: Path) -> None:
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(guide_body("from-file")))
    pipeline_id = run(DpcCreateStreamingPipelineOperator(task_id="c", definition=str(path), **common()))
    assert hook.get_streaming_pipeline(PROJECT_ID, pipeline_id).name == "from-file"


@pytest.mark.parametrize(
    ("if_exists", "outcome"), [("fail", DpcConflictError), ("reuse", "same"), ("update", "updated")]
)
def test_create_if_exists(hook: DpcHook, fresh_emulator: Any, if_exists: str, outcome: Any) -> None:
    first = hook.create_streaming_pipeline(PROJECT_ID, guide_body("dup")).streaming_pipeline_id
    changed = guide_body("dup")
    changed["advancedProperties"] = {"max.batch.size": "5"}
    op = DpcCreateStreamingPipelineOperator(task_id="c", definition=changed, if_exists=if_exists, **common())
    if outcome is DpcConflictError:
        with pytest.raises(DpcConflictError, match=f"named 'dup' already exists .*{first}"):
            run(op)
    else:
        assert run(op) == first
        batch = hook.get_streaming_pipeline(PROJECT_ID, first).to_wire()["advancedProperties"]["max.batch.size"]
        assert batch == ("5" if outcome == "updated" else "40000")
    assert len(hook.list_streaming_pipelines(PROJECT_ID)) == 1


def test_create_retry_after_a_crash_reuses_its_own_pipeline(hook: DpcHook, fresh_emulator: Any) -> None:
    first = hook.create_streaming_pipeline(PROJECT_ID, guide_body("crash")).streaming_pipeline_id
    op = DpcCreateStreamingPipelineOperator(task_id="c", definition=guide_body("crash"), **common())
    assert run(op, RecordingTI(try_number=2)) == first
    assert len(hook.list_streaming_pipelines(PROJECT_ID)) == 1


def test_create_retry_reads_its_own_pipeline_by_id_from_task_state(hook: DpcHook, fresh_emulator: Any) -> None:
    store = DictStore()
    op = DpcCreateStreamingPipelineOperator(task_id="c", definition=guide_body("kept"), **common())
    first = run_task(op, RecordingTI(), task_state_store=store)
    assert store.values[PIPELINE_STATE_KEY] == {"project_id": PROJECT_ID, "pipeline_id": first}
    by_id = "/streaming-pipelines/{pipelineId}"
    lists, reads = requests_to(fresh_emulator, "GET", "/streaming-pipelines"), requests_to(fresh_emulator, "GET", by_id)
    retry = DpcCreateStreamingPipelineOperator(task_id="c", definition=guide_body("kept"), **common())
    assert run_task(retry, RecordingTI(try_number=2), task_state_store=store) == first
    assert requests_to(fresh_emulator, "GET", "/streaming-pipelines") == lists  # no search by name
    assert requests_to(fresh_emulator, "GET", by_id) == reads + 1  # one read, by id
    # Its pipeline deleted meanwhile: the retry searches by name and creates it again.
    hook.delete_streaming_pipeline(PROJECT_ID, first)
    again = run_task(retry, RecordingTI(try_number=3), task_state_store=store)
    assert again != first
    assert store.values[PIPELINE_STATE_KEY]["pipeline_id"] == again
    assert [p.streaming_pipeline_id for p in hook.list_streaming_pipelines(PROJECT_ID)] == [again]


def test_create_rejects_a_bad_definition_naming_fields(fresh_emulator: Any) -> None:
    body = guide_body("bad")
    del body["streamingSource"]["connection"]["username"]
    op = DpcCreateStreamingPipelineOperator(task_id="c", definition=body, **common())
    with pytest.raises(DpcValidationError, match=r"streamingSource\.connection\.username: must not be empty"):
        run(op)


@pytest.mark.parametrize("deferrable", [False, True])
def test_start_waits_until_streaming_then_stop(hook: DpcHook, pipeline: str, deferrable: bool) -> None:
    ti = RecordingTI()
    start = DpcStartStreamingPipelineOperator(task_id="s", pipeline_id=pipeline, deferrable=deferrable, **common())
    assert run(start, ti) == pipeline
    assert ti.xcom["pipeline_id"] == pipeline
    assert hook.get_status(PROJECT_ID, pipeline) is PipelineStatus.STREAMING
    stop = DpcStopStreamingPipelineOperator(task_id="t", pipeline_id=pipeline, deferrable=deferrable, **common())
    assert run(stop) == pipeline
    assert hook.get_status(PROJECT_ID, pipeline) is PipelineStatus.NOT_RUNNING


def test_start_is_idempotent_and_reattaches(hook: DpcHook, pipeline: str, fresh_emulator: Any) -> None:
    hook.send_command(PROJECT_ID, pipeline, "START")
    start = DpcStartStreamingPipelineOperator(task_id="s", pipeline_id=pipeline, **common())
    run(start)  # it was STARTING: only waits
    run(start)  # it is STREAMING: nothing to do
    commands = fresh_emulator.stats()["requests"]
    assert sum(n for route, n in commands.items() if route.endswith("/commands")) == 1


def test_start_by_names(hook: DpcHook, pipeline: str) -> None:
    start = DpcStartStreamingPipelineOperator(
        task_id="s",
        project_id=None,
        project_name="Test-project",
        pipeline_name="ops",
        poll_interval=0.1,
        dpc_retry_policy=FAST_RETRIES,
    )
    assert run(start) == pipeline


@pytest.mark.parametrize("deferrable", [False, True])
def test_start_failure_names_the_pipeline_and_statuses(pipeline: str, fresh_emulator: Any, deferrable: bool) -> None:
    fresh_emulator.fail_start(pipeline)
    start = DpcStartStreamingPipelineOperator(
        task_id="s", pipeline_id=pipeline, deferrable=deferrable, grace_period=0, **common()
    )
    with pytest.raises(DpcPipelineStateError) as info:
        run(start)
    message = str(info.value)
    assert pipeline in message
    assert "NOT_RUNNING" in message
    assert "STARTING -> NOT_RUNNING" in message
    assert info.value.statuses[-1] == "NOT_RUNNING"


@pytest.mark.parametrize("deferrable", [False, True])
def test_start_timeout_fails_and_leaves_the_pipeline_starting(
    hook: DpcHook, pipeline: str, fresh_emulator: Any, deferrable: bool
) -> None:
    fresh_emulator.configure(starting_seconds=30)
    start = DpcStartStreamingPipelineOperator(
        task_id="s", pipeline_id=pipeline, deferrable=deferrable, timeout=1.0, **common()
    )
    started = time.monotonic()
    with pytest.raises(DpcPipelineStateError, match=r"did not reach STREAMING within 1 s; it was left as it is"):
        run(start)
    assert time.monotonic() - started < 10
    assert hook.get_status(PROJECT_ID, pipeline) is PipelineStatus.STARTING


def test_stop_when_already_stopped_sends_nothing(pipeline: str, fresh_emulator: Any) -> None:
    run(DpcStopStreamingPipelineOperator(task_id="t", pipeline_id=pipeline, **common()))
    assert not any(route.endswith("/commands") for route in fresh_emulator.stats()["requests"])


@pytest.mark.parametrize("deferrable", [False, True])
def test_delete_stops_a_running_pipeline_first(hook: DpcHook, pipeline: str, deferrable: bool) -> None:
    run(DpcStartStreamingPipelineOperator(task_id="s", pipeline_id=pipeline, **common()))
    run(DpcDeleteStreamingPipelineOperator(task_id="d", pipeline_id=pipeline, deferrable=deferrable, **common()))
    assert hook.list_streaming_pipelines(PROJECT_ID) == []


def test_delete_refuses_a_running_pipeline_without_stop_if_running(hook: DpcHook, pipeline: str) -> None:
    hook.send_command(PROJECT_ID, pipeline, "START")
    op = DpcDeleteStreamingPipelineOperator(task_id="d", pipeline_id=pipeline, stop_if_running=False, **common())
    with pytest.raises(DpcConflictError, match="stop it first"):
        run(op)


def test_delete_missing(fresh_emulator: Any) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    run(DpcDeleteStreamingPipelineOperator(task_id="d", pipeline_id=missing, missing_ok=True, **common()))
    with pytest.raises(DpcNotFoundError):
        run(DpcDeleteStreamingPipelineOperator(task_id="d", pipeline_id=missing, **common()))


def sensor(pipeline: str, **kwargs: Any) -> DpcStreamingPipelineSensor:
    options = {"poke_interval": 0.1, "timeout": 20, "dpc_retry_policy": FAST_RETRIES, **kwargs}
    return DpcStreamingPipelineSensor(task_id="w", project_id=PROJECT_ID, pipeline_id=pipeline, **options)


@pytest.mark.parametrize("deferrable", [False, True])
def test_sensor_waits_for_streaming(hook: DpcHook, pipeline: str, deferrable: bool) -> None:
    hook.send_command(PROJECT_ID, pipeline, "start")
    run(sensor(pipeline, deferrable=deferrable, target_status="streaming"))
    assert hook.get_status(PROJECT_ID, pipeline) is PipelineStatus.STREAMING


@pytest.mark.parametrize("deferrable", [False, True])
def test_sensor_fails_when_the_pipeline_dies(
    hook: DpcHook, pipeline: str, fresh_emulator: Any, deferrable: bool
) -> None:
    hook.send_command(PROJECT_ID, pipeline, "start")
    fresh_emulator.fail_start(pipeline)
    with pytest.raises(DpcPipelineStateError, match=f"{pipeline} .* is NOT_RUNNING"):
        run(sensor(pipeline, deferrable=deferrable))


@pytest.mark.parametrize("deferrable", [False, True])
def test_sensor_soft_fail_skips(pipeline: str, deferrable: bool) -> None:
    with pytest.raises(AirflowSkipException, match="NOT_RUNNING"):
        run(sensor(pipeline, deferrable=deferrable, soft_fail=True))


@pytest.mark.parametrize("deferrable", [False, True])
def test_sensor_soft_fail_skips_on_an_api_error(pipeline: str, fresh_emulator: Any, deferrable: bool) -> None:
    fresh_emulator.set_faults(server_errors={"count": 1000, "status": 503})
    with pytest.raises(AirflowSkipException, match=f"could not read the status of streaming pipeline {pipeline}"):
        run(sensor(pipeline, deferrable=deferrable, soft_fail=True))


def test_a_status_read_error_reads_the_same_polled_and_deferred(
    hook: DpcHook, pipeline: str, fresh_emulator: Any
) -> None:
    fresh_emulator.configure(starting_seconds=30)
    hook.send_command(PROJECT_ID, pipeline, "start")
    polled, deferred = sensor(pipeline), sensor(pipeline, deferrable=True)
    assert polled.poke({}) is False
    with pytest.raises(TaskDeferred) as deferral:
        deferred.execute({"ti": RecordingTI()})
    fresh_emulator.set_faults(server_errors={"count": 1000, "status": 503})
    with pytest.raises(DpcServerError) as from_poke:
        polled.poke({})
    event = asyncio.run(first_event(deferral.value.trigger)).payload
    with pytest.raises(DpcServerError) as from_trigger:
        deferred.execute_complete({}, event)
    assert str(from_poke.value) == str(from_trigger.value)
    assert str(from_poke.value).startswith(f"could not read the status of streaming pipeline {pipeline}")
    assert "503 Service Unavailable" in str(from_poke.value)
    assert "recent statuses: STARTING" in str(from_poke.value)
    # Polled, the API's own error (method, path, problem fields) stays attached as the cause.
    cause = from_poke.value.__cause__
    assert isinstance(cause, DpcServerError)
    assert (cause.path or "").endswith(f"{pipeline}/status")


def test_deferred_sensor_times_out_in_the_trigger(hook: DpcHook, pipeline: str, fresh_emulator: Any) -> None:
    fresh_emulator.configure(starting_seconds=30)
    hook.send_command(PROJECT_ID, pipeline, "start")
    with pytest.raises(AirflowSensorTimeout, match="did not reach STREAMING"):
        run(sensor(pipeline, deferrable=True, timeout=1))


def test_sensor_rejects_overlapping_statuses() -> None:
    with pytest.raises(ValueError, match="both target and failure"):
        sensor("00000000-0000-4000-8000-000000000000", target_status="STREAMING", failure_statuses=["streaming"])


def test_trigger_kwargs_hold_no_secret(pipeline: str, emulator: Any) -> None:
    start = DpcStartStreamingPipelineOperator(task_id="s", pipeline_id=pipeline, deferrable=True, **common())
    with pytest.raises(TaskDeferred) as info:
        start.execute({"ti": RecordingTI()})
    text = json.dumps(info.value.trigger.serialize())
    assert emulator.client_secret not in text
    assert "token" not in text.lower()


def test_trigger_reports_api_errors_as_an_event(fresh_emulator: Any, default_conn: str) -> None:
    trigger = DpcStreamingPipelineTrigger(
        dpc_conn_id=default_conn,
        project_id=PROJECT_ID,
        pipeline_id="00000000-0000-4000-8000-000000000000",
        goal={"target": ["STREAMING"]},
        poll_interval=0.1,
        started_at=time.time(),
        retry_policy=FAST_RETRIES,
    )
    event = asyncio.run(first_event(trigger)).payload
    assert event["verdict"] == "error"
    assert "404" in event["message"]


def test_operator_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="project_id or project_name"):
        DpcStartStreamingPipelineOperator(task_id="s", pipeline_id="x")
    with pytest.raises(ValueError, match="if_exists"):
        DpcCreateStreamingPipelineOperator(task_id="c", project_id=PROJECT_ID, definition={}, if_exists="merge")
    with pytest.raises(ValueError, match="unknown retry_policy keys"):
        DpcStartStreamingPipelineOperator(task_id="s", project_id=PROJECT_ID, dpc_retry_policy={"tries": 3})
    with pytest.raises(ValueError, match="poll_interval"):
        DpcStartStreamingPipelineOperator(task_id="s", project_id=PROJECT_ID, poll_interval=0)
    with pytest.raises(DpcValidationError, match="deferrable must be true or false, got 'maybe'"):
        DpcStreamingPipelineSensor(task_id="w", project_id=PROJECT_ID, pipeline_id="x", deferrable="maybe")


@pytest.mark.parametrize(("rendered", "defers"), [("True", True), ("false", False), ("1", True), (" No ", False)])
def test_a_templated_deferrable_is_read_as_a_bool_when_the_task_runs(rendered: str, defers: bool) -> None:
    # What "{{ params.deferrable }}" renders to is text; the task reads it when it waits.
    for task in (
        DpcStartStreamingPipelineOperator(task_id="s", pipeline_id="x", deferrable="{{ params.d }}", **common()),
        DpcStreamingPipelineSensor(task_id="w", project_id=PROJECT_ID, pipeline_id="x", deferrable="{{ params.d }}"),
    ):
        assert "deferrable" in task.template_fields
        assert task.deferrable == "{{ params.d }}"  # left for the template until the task runs
        task.deferrable = rendered
        assert task.defers is defers


def test_arguments_an_operator_never_used_are_ignored_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="does not use 'poll_interval'; it is ignored"):
        create = DpcCreateStreamingPipelineOperator(task_id="c", project_id=PROJECT_ID, definition={}, poll_interval=5)
    assert not hasattr(create, "poll_interval")
    with pytest.warns(DeprecationWarning, match="does not use 'wait_for_stopped'"):
        DpcDeleteStreamingPipelineOperator(task_id="d", project_id=PROJECT_ID, pipeline_id="x", wait_for_stopped=False)
    with pytest.warns(DeprecationWarning, match="does not use 'timeout'"):
        DpcKeepStreamingOperator(task_id="k", project_id=PROJECT_ID, pipeline_id="x", until="2026-01-01", timeout=5)
    # Airflow 3 raises TypeError, 2.11 AirflowException: an argument never accepted is refused.
    with pytest.raises(Exception, match="Invalid arguments were passed to DpcCreateStreamingPipelineOperator"):
        DpcCreateStreamingPipelineOperator(task_id="c", project_id=PROJECT_ID, definition={}, wait_for_stopped=True)


@pytest.mark.slow
def test_declaring_tasks_builds_no_hook_models_or_trigger() -> None:
    """A DAG parse pays for the operators and the sensor only: their checks need none of the rest."""
    code = f"""
import sys
from airflow import DAG
from airflow_provider_dpc.operators.streaming_pipeline import (
    DpcCreateStreamingPipelineOperator, DpcDeleteStreamingPipelineOperator,
    DpcStartStreamingPipelineOperator, DpcStopStreamingPipelineOperator,
)
from airflow_provider_dpc.sensors.streaming_pipeline import DpcStreamingPipelineSensor
with DAG("parse_only", schedule=None):
    DpcCreateStreamingPipelineOperator(task_id="c", project_id="{PROJECT_ID}", definition={{}}, if_exists="reuse")
    DpcStartStreamingPipelineOperator(
        task_id="s", project_name="p", pipeline_name="x", dpc_retry_policy={{"max_attempts": 2}}
    )
    DpcStopStreamingPipelineOperator(task_id="t", project_name="p", pipeline_name="x", deferrable=True)
    DpcDeleteStreamingPipelineOperator(task_id="d", project_name="p", pipeline_name="x")
    DpcStreamingPipelineSensor(task_id="w", project_name="p", pipeline_name="x", target_status=["streaming"])
heavy = ("airflow_provider_dpc.hooks.dpc", "airflow_provider_dpc.models", "airflow_provider_dpc.lineage",
         "airflow_provider_dpc.triggers.streaming_pipeline")
print(sorted(m for m in heavy if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], env=os.environ.copy(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_retry_policy_round_trips() -> None:
    policy = RetryPolicy(max_attempts=3, backoff_base=0.5)
    assert RetryPolicy.coerce(policy.to_dict()) == policy


# ---- the start operator checks the pipeline's agent ---------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("down", [{"connected": False}, {"agentStatus": "stopped"}])
def test_start_fails_at_once_when_the_agent_is_down(
    pipeline: str, fresh_emulator: Any, deferrable: bool, down: dict[str, Any]
) -> None:
    fresh_emulator.set_agent(GUIDE_AGENT_ID, **down)
    op = DpcStartStreamingPipelineOperator(
        task_id="s", pipeline_id=pipeline, deferrable=deferrable, timeout=600, **common()
    )
    began = time.monotonic()
    with pytest.raises(DpcPipelineStateError) as failed:
        run(op)
    assert time.monotonic() - began < 5  # not the 600 s timeout
    message = str(failed.value)
    assert f"agent Test-agent ({GUIDE_AGENT_ID})" in message
    assert pipeline in message
    assert ("is not connected" if "connected" in down else "is stopped") in message
    assert requests_to(fresh_emulator, "POST", "/commands") == 0  # no START was sent


def test_a_pipeline_whose_agent_is_down_stays_not_running_after_start(
    hook: DpcHook, pipeline: str, fresh_emulator: Any
) -> None:
    fresh_emulator.set_agent(GUIDE_AGENT_ID, connected=False)
    op = DpcStartStreamingPipelineOperator(
        task_id="s", pipeline_id=pipeline, check_agent=False, grace_period=0.5, timeout=30, **common()
    )
    with pytest.raises(DpcPipelineStateError, match="is NOT_RUNNING"):
        run(op)
    assert requests_to(fresh_emulator, "POST", "/commands") == 1
    assert hook.get_status(PROJECT_ID, pipeline) is PipelineStatus.NOT_RUNNING


def test_start_checks_a_connected_agent_and_streams(hook: DpcHook, pipeline: str, fresh_emulator: Any) -> None:
    op = DpcStartStreamingPipelineOperator(task_id="s", pipeline_id=pipeline, **common())
    assert run(op) == pipeline
    assert requests_to(fresh_emulator, "GET", "/agents/{agentId}") == 1
    assert hook.get_status(PROJECT_ID, pipeline) is PipelineStatus.STREAMING


# ---- holding a pipeline in STREAMING -------------------------------------------------------------


def _streaming(hook: DpcHook, pipeline: str) -> None:
    hook.send_command(PROJECT_ID, pipeline, PipelineCommand.START)
    wait_for_status(hook, pipeline, PipelineStatus.STREAMING, within=10)


def _later(seconds: float, action: Any) -> threading.Thread:
    thread = threading.Timer(seconds, action)
    thread.start()
    return thread


@pytest.mark.parametrize("deferrable", [False, True])
def test_keep_streaming_restarts_a_dropped_pipeline_once_and_holds_until_the_end(
    hook: DpcHook, pipeline: str, fresh_emulator: Any, deferrable: bool
) -> None:
    _streaming(hook, pipeline)
    until = datetime.now(UTC) + timedelta(seconds=4)
    op = DpcKeepStreamingOperator(
        task_id="k", pipeline_id=pipeline, until=until.isoformat(), max_restarts=1, grace_period=2,
        deferrable=deferrable, **common(poll_interval=0.2),
    )  # fmt: skip
    _later(1.0, lambda: fresh_emulator.die(pipeline))
    outcome = run(op)
    assert datetime.now(UTC) >= until
    assert outcome["restarts"] == 1
    assert 0 < outcome["seconds_not_streaming"] < 3
    assert requests_to(fresh_emulator, "POST", "/commands") == 2  # the test's START and one restart
    assert hook.get_status(PROJECT_ID, pipeline) is PipelineStatus.STREAMING  # left running


@pytest.mark.parametrize("deferrable", [False, True])
def test_keep_streaming_without_restarts_fails_within_a_poll_of_the_drop(
    hook: DpcHook, pipeline: str, fresh_emulator: Any, deferrable: bool
) -> None:
    _streaming(hook, pipeline)
    op = DpcKeepStreamingOperator(
        task_id="k", pipeline_id=pipeline, until=datetime.now(UTC) + timedelta(minutes=10),
        deferrable=deferrable, **common(poll_interval=0.3),
    )  # fmt: skip
    killed: list[float] = []
    _later(0.5, lambda: (fresh_emulator.die(pipeline), killed.append(time.monotonic())))
    with pytest.raises(DpcPipelineStateError) as failed:
        run(op)
    assert time.monotonic() - killed[0] < 0.3 + 1.0  # one poll interval, and the emulator's round trip
    message = str(failed.value)
    assert f"streaming pipeline {pipeline} (project {PROJECT_ID}) dropped to NOT_RUNNING at 20" in message
    assert "0 of max_restarts=0" in message
    assert "recent statuses: STREAMING -> NOT_RUNNING" in message
    assert requests_to(fresh_emulator, "POST", "/commands") == 1


def test_keep_streaming_past_its_end_returns_at_once_and_names_a_bad_until(pipeline: str) -> None:
    past = DpcKeepStreamingOperator(task_id="k", pipeline_id=pipeline, until="2020-01-01T00:00:00", **common())
    assert run(past) == {"restarts": 0, "seconds_not_streaming": 0.0}
    bad = DpcKeepStreamingOperator(task_id="k", pipeline_id=pipeline, until="tomorrow", **common())
    with pytest.raises(DpcValidationError, match="until must be a datetime or an ISO 8601 string, got 'tomorrow'"):
        run(bad)
