"""What Airflow keeps for this provider outlives an upgrade of it: trigger classpaths, their kwargs
and the events tasks resume from (``tests/fixtures/stored/airflow_state.json``).

Today's code must write exactly today's forms (so a change to them is a decision, made by adding
an entry with a reader, never an accident), rebuild every trigger from every stored form, and
complete every task from every stored event, earlier forms included.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpc import exceptions
from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.models import parse_time
from airflow_provider_dpc.operators.pipeline_execution import DpcRunPipelineOperator
from airflow_provider_dpc.operators.streaming_pipeline import (
    DpcKeepStreamingOperator,
    DpcStartStreamingPipelineOperator,
)
from airflow_provider_dpc.sensors.pipeline_execution import DpcPipelineExecutionSensor
from airflow_provider_dpc.sensors.streaming_pipeline import DpcStreamingPipelineSensor
from airflow_provider_dpc.status import NewEndings, PipelineRunsWatch, StatusGoal, StatusWatch
from tests.guide import PROJECT_ID, guide_body
from tests.task_runner import DictStore, RecordingTI, first_event

pytestmark = pytest.mark.every_line

STORED = json.loads((Path(__file__).parent / "fixtures" / "stored" / "airflow_state.json").read_text())
#: ``asset_state`` entry names: what each asset watcher keeps in its asset's state store (Airflow 3.3+).
STATE = {entry["name"]: entry for entry in STORED["asset_state"]}
PIPELINE_ID = "6f1c3a52-1d7e-4b8e-9b1c-2f0e4c6a9d11"
EXECUTION_ID = "0b6a1f7e-3c2d-4e5f-8a9b-1c2d3e4f5a6b"
HAS_WATCHERS = hasattr(importlib.import_module("airflow.triggers.base"), "BaseEventTrigger")


def tasks() -> dict[str, Any]:
    """One task of each kind that defers, as the stored entries name them."""
    common = {"project_id": PROJECT_ID, "dpc_retry_policy": {"max_attempts": 1}}
    return {
        "start": DpcStartStreamingPipelineOperator(task_id="start", pipeline_id=PIPELINE_ID, **common),
        "keep": DpcKeepStreamingOperator(
            task_id="keep", pipeline_id=PIPELINE_ID, until="2026-01-01T08:00:00", **common
        ),
        "run": DpcRunPipelineOperator(
            task_id="run", pipeline_name="Pipeline 1", environment_name="Environment-1", **common
        ),
        "execution_sensor": DpcPipelineExecutionSensor(task_id="wait", execution_id=EXECUTION_ID, **common),
        "pipeline_sensor": DpcStreamingPipelineSensor(task_id="sense", pipeline_id=PIPELINE_ID, **common),
        "runs_sensor": DpcPipelineExecutionSensor(
            task_id="wait_runs", pipeline_name="Pipeline 1", environment_name="Environment-1", **common
        ),
    }


def entry_id(entry: dict[str, Any]) -> str:
    return str(entry["name"])


def rebuilt(entry: dict[str, Any]) -> Any:
    module, _, name = entry["classpath"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**entry["kwargs"])


def needs(entry: dict[str, Any]) -> None:
    if entry["classpath"].endswith("EventTrigger") and not HAS_WATCHERS:
        pytest.skip("this Airflow has no asset watchers (BaseEventTrigger), so no such trigger is stored")


@pytest.mark.parametrize("entry", STORED["triggers"], ids=entry_id)
def test_todays_tasks_write_exactly_the_stored_trigger(entry: dict[str, Any]) -> None:
    needs(entry)
    kwargs = entry["kwargs"]
    if entry["task"] == "watcher":
        from airflow_provider_dpc.triggers.streaming_pipeline import DpcStreamingPipelineEventTrigger

        written = DpcStreamingPipelineEventTrigger(kwargs["dpc_conn_id"], kwargs["project_id"], kwargs["pipeline_id"])
    elif entry["task"] == "execution_watcher":
        from airflow_provider_dpc.triggers.pipeline_execution import DpcPipelineExecutionEventTrigger

        written = DpcPipelineExecutionEventTrigger(
            kwargs["dpc_conn_id"], kwargs["project_id"], kwargs["pipeline_name"], kwargs["environment_name"]
        )
    else:
        task = tasks()[entry["task"]]
        task.dpc_retry_policy = type(task.dpc_retry_policy)()  # the default policy, as stored
        goal = StatusGoal.from_dict(kwargs["goal"])
        timings = {"started_at": kwargs["started_at"], "deadline": kwargs["deadline"], "history": kwargs["history"]}
        if entry["task"] == "runs_sensor":
            moment = parse_time(kwargs["started_after"])
            assert moment is not None
            watch: StatusWatch = PipelineRunsWatch(
                goal,
                kwargs["project_id"],
                kwargs["pipeline_name"],
                environment_name=kwargs["environment_name"],
                started_after=moment,
                **timings,
            )
        else:
            resource_id = kwargs.get("execution_id") or kwargs["pipeline_id"]
            watch = StatusWatch(goal, kwargs["project_id"], resource_id, **timings)
        written = task.status_trigger(watch, kwargs["poll_interval"], kwargs.get("carry"))
    assert written.serialize() == (entry["classpath"], kwargs)


@pytest.mark.parametrize("entry", STORED["triggers"] + STORED["earlier_triggers"], ids=entry_id)
def test_every_stored_trigger_is_rebuilt(entry: dict[str, Any]) -> None:
    needs(entry)
    trigger = rebuilt(entry)
    classpath, kwargs = trigger.serialize()
    assert classpath == entry["classpath"]
    if entry in STORED["triggers"]:
        assert kwargs == entry["kwargs"]
    # A second round trip changes nothing: what the triggerer stores after a restart is stable.
    assert rebuilt({"classpath": classpath, "kwargs": kwargs}).serialize() == (classpath, kwargs)


@pytest.mark.parametrize("entry", STORED["events"] + STORED["earlier_events"], ids=entry_id)
def test_every_stored_event_completes_its_task(entry: dict[str, Any], conn_env: Any, fresh_emulator: Any) -> None:
    conn_env("matillion_dpc_default")  # a failed execution's task reads its message (404 here: it only warns)
    task = tasks()[entry["task"]]
    resume = getattr(task, entry["method"])
    context = {"ti": RecordingTI()}
    if "raises" in entry:
        with pytest.raises(getattr(exceptions, entry["raises"]), match=entry["match"]):
            resume(context, entry["event"])
    else:
        assert resume(context, entry["event"]) == entry["returns"]


def test_an_execution_wait_deferred_before_forbidden_was_known_still_ends_on_it(
    conn_env: Any, fresh_emulator: Any
) -> None:
    """Its stored goal does not name FORBIDDEN: the execution's finishedAt ends the wait all the same."""
    conn_env("matillion_dpc_default")
    execution_id = DpcHook().execute_pipeline(
        PROJECT_ID, pipeline_name="Forbidden pipeline", environment_name="Environment-1"
    )
    (entry,) = [e for e in STORED["earlier_triggers"] if "FORBIDDEN" in e["name"]]
    kwargs = {**entry["kwargs"], "execution_id": execution_id, "poll_interval": 0.1}
    kwargs.update(started_at=time.time(), deadline=time.time() + 30)
    event = asyncio.run(first_event(rebuilt({**entry, "kwargs": kwargs}))).payload
    assert (event["verdict"], event["status"]) == ("failed", "FORBIDDEN")


needs_watchers = pytest.mark.skipif(not HAS_WATCHERS, reason="this Airflow has no asset watchers (BaseEventTrigger)")


@needs_watchers
@pytest.mark.parametrize("entry", STORED["asset_state"], ids=entry_id)
def test_todays_watchers_keep_their_memory_under_the_stored_key(entry: dict[str, Any]) -> None:
    module = "pipeline_execution" if entry["watcher"] == "execution_watcher" else "streaming_pipeline"
    name = (
        "DpcPipelineExecutionEventTrigger"
        if entry["watcher"] == "execution_watcher"
        else ("DpcStreamingPipelineEventTrigger")
    )
    watcher = getattr(importlib.import_module(f"airflow_provider_dpc.triggers.{module}"), name)(**entry["kwargs"])
    assert watcher.memory_key() == entry["key"]
    # Another poll interval is the same watch: what it kept is still found.
    assert type(watcher)(**{**entry["kwargs"], "poll_interval": 5.0}).memory_key() == entry["key"]


def test_a_kept_memory_of_the_dpc_run_watcher_is_read_and_written_alike() -> None:
    value = STATE["DPC-run watcher's memory"]["value"]
    endings = NewEndings("Pipeline 1", "Environment-1", ["SUCCESS"])
    endings.restore(value)
    assert endings.memory() == value


@needs_watchers
async def test_watchers_go_on_from_the_stored_memory(conn_env: Any, fresh_emulator: Any) -> None:
    from airflow_provider_dpc.triggers.pipeline_execution import DpcPipelineExecutionEventTrigger
    from airflow_provider_dpc.triggers.streaming_pipeline import DpcStreamingPipelineEventTrigger

    conn_env("matillion_dpc_default")
    runs = STATE["DPC-run watcher's memory"]
    started = await asyncio.to_thread(fresh_emulator.run_pipeline, "Pipeline 1", "Environment-1", seconds=0)
    watcher = DpcPipelineExecutionEventTrigger(**{**runs["kwargs"], "poll_interval": 0.1})
    watcher.asset_state_store = DictStore(**{runs["key"]: runs["value"]})
    # What it kept is older than the run: the run ended while no triggerer watched, and fires.
    event = await asyncio.wait_for(anext(watcher.run()), 10)
    assert event.payload["pipeline_execution_id"] == started["pipelineExecutionId"]

    drops = STATE["stream-drop watcher's memory"]
    pipeline_id = DpcHook().create_streaming_pipeline(PROJECT_ID, guide_body("kept")).streaming_pipeline_id
    stream = DpcStreamingPipelineEventTrigger(**{**drops["kwargs"], "pipeline_id": pipeline_id, "poll_interval": 0.1})
    key = stream.memory_key()
    stream.asset_state_store = DictStore(**{key: drops["value"]})
    # It was STREAMING when last seen and is NOT_RUNNING now: it dropped while no triggerer watched.
    event = await asyncio.wait_for(anext(stream.run()), 10)
    assert (event.payload["previous_status"], event.payload["status"]) == ("STREAMING", "NOT_RUNNING")
