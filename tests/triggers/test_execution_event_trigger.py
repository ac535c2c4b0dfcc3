"""``DpcPipelineExecutionEventTrigger``, the asset watchers' trigger on a published pipeline's runs,
against the emulator, whose runs start as DPC's scheduler starts them (``run_pipeline``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import importlib.util
import json
import time
from typing import Any

import pytest

from tests.guide import FIXTURES, PROJECT_ID, ROOT, requests_to
from tests.task_runner import no_event_while

pytestmark = pytest.mark.every_line

STORED_PAYLOAD_KEYS = json.loads((FIXTURES / "stored" / "airflow_state.json").read_text())[
    "execution_asset_event_payload_keys"
]
HAS_WATCHERS = hasattr(importlib.import_module("airflow.triggers.base"), "BaseEventTrigger")
needs_watchers = pytest.mark.skipif(not HAS_WATCHERS, reason="this Airflow has no asset watchers (BaseEventTrigger)")
ENV = "Environment-1"
EXAMPLE = ROOT / "example_dags" / "example_dpc_after_dpc_runs.py"


def trigger(pipeline_name: str = "Pipeline 1", **kwargs: Any) -> Any:
    from airflow_provider_dpc.triggers.pipeline_execution import DpcPipelineExecutionEventTrigger

    return DpcPipelineExecutionEventTrigger("matillion_dpc_default", PROJECT_ID, pipeline_name, ENV, **kwargs)


async def run(emulator: Any, *args: Any, **kwargs: Any) -> str:
    started: dict[str, Any] = await asyncio.to_thread(emulator.run_pipeline, *args, **kwargs)
    return str(started["pipelineExecutionId"])


async def reads(emulator: Any, more: int, within: float = 10) -> None:
    """Until the watchers have made ``more`` list reads beyond those made so far (a watcher reads
    one after another, so its second read means its first was judged)."""
    count = functools.partial(requests_to, emulator, "GET", "/v1/pipeline-executions")
    target = await asyncio.to_thread(count) + more
    deadline = time.monotonic() + within
    while await asyncio.to_thread(count) < target:
        assert time.monotonic() < deadline, f"{more} more reads of the executions list within {within} s"
        await asyncio.sleep(0.05)


async def until(probe: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not probe():
        assert time.monotonic() < deadline, f"{what} within {within} s"
        await asyncio.sleep(0.05)


@needs_watchers
async def test_fires_once_per_successful_run_ended_after_it_started(conn_env: Any, fresh_emulator: Any) -> None:
    conn_env("matillion_dpc_default")
    earlier = await run(fresh_emulator, "Pipeline 1", ENV, seconds=0)
    under_way = await run(fresh_emulator, "Pipeline 1", ENV, seconds=3)  # running when the watcher starts
    payloads: list[dict[str, Any]] = []
    events = trigger(poll_interval=0.1).run()

    async def collect() -> None:
        async for event in events:
            payloads.append(event.payload)

    collector = asyncio.ensure_future(collect())
    await reads(fresh_emulator, 2)  # its first read, the starting point, is done
    assert payloads == []  # the run that ended before it started never fires
    failed = await run(fresh_emulator, "Pipeline 1", ENV, outcome="FAILED", seconds=0, message="Warehouse suspended")
    await run(fresh_emulator, "Pipeline 10", ENV, seconds=0)  # a name that merely contains the one watched
    succeeded = await run(fresh_emulator, "Pipeline 1", ENV, seconds=0.2)
    await until(lambda: len(payloads) >= 2, 10, "two events")
    await reads(fresh_emulator, 5)  # more polls: nothing fires twice, nor for the failed run
    collector.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await collector
    assert sorted(p["pipeline_execution_id"] for p in payloads) == sorted([under_way, succeeded])
    assert {earlier, failed}.isdisjoint(p["pipeline_execution_id"] for p in payloads)
    first = next(p for p in payloads if p["pipeline_execution_id"] == succeeded)
    assert list(first) == STORED_PAYLOAD_KEYS  # what asset events keep in Airflow's database
    assert (first["project_id"], first["pipeline_name"], first["environment_name"], first["status"]) == (
        PROJECT_ID, "Pipeline 1", ENV, "SUCCESS"
    )  # fmt: skip
    assert first["started_at"]
    assert first["finished_at"]
    assert first["message"] is None

    # A watcher started again, as after a triggerer restart, fires for none of them.
    await no_event_while(trigger(poll_interval=0.1).run(), reads(fresh_emulator, 4))


@needs_watchers
async def test_a_name_no_execution_has_is_warned_about_once(
    conn_env: Any, fresh_emulator: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    conn_env("matillion_dpc_default")
    warning = "DPC pipeline 'Pipline 1': no execution in environment 'Environment-1' started in the last day"
    console: list[str] = []

    def warned() -> int:
        # Logging's records, or the console where Airflow 3's structlog writes (3.0 writes to both).
        console.append("".join(capfd.readouterr()))
        return max(caplog.text.count(warning), "".join(console).count(warning))

    async def warned_then_read_on() -> None:
        await until(lambda: warned() >= 1, 10, "the warning")
        await reads(fresh_emulator, 4)

    await no_event_while(trigger("Pipline 1", poll_interval=0.1).run(), warned_then_read_on())  # misspelt
    assert warned() == 1


@needs_watchers
async def test_it_fires_for_the_statuses_it_is_given(conn_env: Any, fresh_emulator: Any) -> None:
    conn_env("matillion_dpc_default")
    events = trigger(statuses=["failed", "forbidden"], poll_interval=0.1).run()
    nxt = asyncio.ensure_future(anext(events))
    await reads(fresh_emulator, 2)  # its starting point
    await run(fresh_emulator, "Pipeline 1", ENV, seconds=0)
    forbidden = await run(fresh_emulator, "Pipeline 1", ENV, outcome="FORBIDDEN", seconds=0, message="Not permitted")
    payload = (await asyncio.wait_for(nxt, 10)).payload
    assert (payload["pipeline_execution_id"], payload["status"], payload["message"]) == (
        forbidden, "FORBIDDEN", "Not permitted"
    )  # fmt: skip
    await events.aclose()


@needs_watchers
def test_kwargs_are_deterministic_flat_and_hold_no_secret() -> None:
    one = trigger(statuses=["failed", "success"], poll_interval=30).serialize()
    two = trigger(statuses=("SUCCESS", "FAILED", "SUCCESS"), poll_interval=30.0).serialize()
    assert one == two
    assert one[0] == "airflow_provider_dpc.triggers.pipeline_execution.DpcPipelineExecutionEventTrigger"
    assert one[1] == {
        "dpc_conn_id": "matillion_dpc_default",
        "project_id": PROJECT_ID,
        "pipeline_name": "Pipeline 1",
        "environment_name": ENV,
        "statuses": ["FAILED", "SUCCESS"],
        "poll_interval": 30.0,
    }
    with pytest.raises(ValueError, match="project_id must be a UUID"):
        type(trigger())("matillion_dpc_default", "not-an-id", "Pipeline 1", ENV)
    with pytest.raises(ValueError, match="pipeline_name must be a non-empty string"):
        trigger(" ")
    with pytest.raises(ValueError, match="statuses must name statuses an execution ends with"):
        trigger(statuses=["RUNNING"])


@needs_watchers
def test_the_example_dag_schedules_on_the_watcher() -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # older releases keep it in models
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(EXAMPLE))
    assert not bag.import_errors, bag.import_errors
    assert "Needs Airflow 3" in (bag.dags["example_dpc_after_dpc_runs"].description or "")
    spec = importlib.util.spec_from_file_location("example_dpc_after_dpc_runs", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.pipeline_succeeded.uri == f"matillion-dpc://{PROJECT_ID}/pipelines/Pipeline%201"
    (watcher,) = module.pipeline_succeeded.watchers
    assert watcher.trigger.serialize()[1]["statuses"] == ["SUCCESS"]


@pytest.mark.skipif(HAS_WATCHERS, reason="this Airflow has asset watchers")
def test_without_asset_watchers_the_trigger_is_not_offered_and_the_example_defines_no_dag() -> None:
    from airflow.models.dagbag import DagBag  # type: ignore[attr-defined,unused-ignore]

    with pytest.raises(ImportError, match="needs Airflow 3's asset watchers"):
        from airflow_provider_dpc.triggers.pipeline_execution import DpcPipelineExecutionEventTrigger  # noqa: F401
    bag = DagBag(dag_folder=str(EXAMPLE))
    assert (bag.import_errors, bag.dags) == ({}, {})
