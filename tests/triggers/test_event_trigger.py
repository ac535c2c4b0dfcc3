"""``DpcStreamingPipelineEventTrigger``, the asset watchers' trigger, against the emulator."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from typing import Any

import pytest

from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.models import PipelineCommand, PipelineStatus
from tests.guide import FIXTURES, PROJECT_ID, guide_body, wait_for_status
from tests.task_runner import DictStore, no_event_while

pytestmark = pytest.mark.every_line

STORED_PAYLOAD_KEYS = json.loads((FIXTURES / "stored" / "airflow_state.json").read_text())["asset_event_payload_keys"]

HAS_WATCHERS = importlib.util.find_spec("airflow.triggers.base") is not None and hasattr(
    importlib.import_module("airflow.triggers.base"), "BaseEventTrigger"
)
needs_watchers = pytest.mark.skipif(not HAS_WATCHERS, reason="this Airflow has no asset watchers (BaseEventTrigger)")


@pytest.fixture
def streaming(conn_env: Any, fresh_emulator: Any) -> str:
    conn_env("matillion_dpc_default")
    hook = DpcHook()
    pipeline_id = hook.create_streaming_pipeline(PROJECT_ID, guide_body("watched")).streaming_pipeline_id
    hook.send_command(PROJECT_ID, pipeline_id, PipelineCommand.START)
    wait_for_status(hook, pipeline_id, PipelineStatus.STREAMING, within=10)
    return pipeline_id


def trigger(pipeline_id: str, **kwargs: Any) -> Any:
    from airflow_provider_dpc.triggers.streaming_pipeline import DpcStreamingPipelineEventTrigger

    return DpcStreamingPipelineEventTrigger("matillion_dpc_default", PROJECT_ID, pipeline_id, **kwargs)


@needs_watchers
async def test_fires_once_per_drop_never_while_the_pipeline_stays_down(streaming: str, fresh_emulator: Any) -> None:
    events = trigger(streaming, poll_interval=0.1).run()
    nxt = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.5)  # it has read STREAMING, its starting point
    assert not nxt.done()
    await asyncio.to_thread(fresh_emulator.die, streaming)
    first = (await asyncio.wait_for(nxt, 5)).payload
    assert {k: first[k] for k in ("project_id", "pipeline_id", "status", "previous_status")} == {
        "project_id": PROJECT_ID, "pipeline_id": streaming, "status": "NOT_RUNNING", "previous_status": "STREAMING"
    }  # fmt: skip
    assert first["observed_at"].endswith("+00:00")
    assert list(first) == STORED_PAYLOAD_KEYS  # what asset events keep in Airflow's database
    second = asyncio.ensure_future(anext(events))
    await asyncio.sleep(1.0)  # ten polls of NOT_RUNNING
    assert not second.done()
    hook = DpcHook()
    await asyncio.to_thread(hook.send_command, PROJECT_ID, streaming, PipelineCommand.START)
    await asyncio.to_thread(wait_for_status, hook, streaming, PipelineStatus.STREAMING, 10)
    await asyncio.sleep(0.3)
    await asyncio.to_thread(fresh_emulator.die, streaming)
    assert (await asyncio.wait_for(second, 5)).payload["status"] == "NOT_RUNNING"  # the next drop fires again
    await events.aclose()


@needs_watchers
async def test_a_pipeline_already_down_at_start_does_not_fire(conn_env: Any, fresh_emulator: Any) -> None:
    conn_env("matillion_dpc_default")
    pipeline_id = DpcHook().create_streaming_pipeline(PROJECT_ID, guide_body("down")).streaming_pipeline_id
    await no_event_while(trigger(pipeline_id, poll_interval=0.1).run(), asyncio.sleep(0.8))


@needs_watchers
async def test_a_pipeline_that_does_not_exist_fires_once_with_not_found(
    conn_env: Any, fresh_emulator: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    conn_env("matillion_dpc_default")
    missing = "00000000-0000-4000-8000-000000000000"  # the self-healing example's placeholder
    events = trigger(missing, poll_interval=0.1, statuses=["NOT_RUNNING"]).run()
    first = (await asyncio.wait_for(anext(events), 10)).payload
    assert (first["pipeline_id"], first["status"], first["previous_status"]) == (missing, "NOT_FOUND", None)
    assert list(first) == STORED_PAYLOAD_KEYS
    logged = caplog.text + "".join(capfd.readouterr())  # Airflow 3's structlog writes to the console
    assert f"streaming pipeline {missing} does not exist in project {PROJECT_ID}" in logged
    await no_event_while(events, asyncio.sleep(0.8))  # several more reads of the missing pipeline: no second event


async def kept(store: DictStore, writes: int, within: float = 10) -> None:
    """Until the watcher has written to its store ``writes`` times."""
    deadline = time.monotonic() + within
    while store.writes < writes:
        assert time.monotonic() < deadline, f"{writes} writes to the asset's state store within {within} s"
        await asyncio.sleep(0.05)


def watching(pipeline_id: str, store: DictStore, **kwargs: Any) -> Any:
    """A watcher given an asset's state store, as Airflow 3.3's triggerer gives it one."""
    watcher = trigger(pipeline_id, poll_interval=0.1, **kwargs)
    watcher.asset_state_store = store
    return watcher


@needs_watchers
async def test_a_drop_while_no_triggerer_ran_fires_once_after_it(streaming: str, fresh_emulator: Any) -> None:
    store = DictStore()
    await no_event_while(watching(streaming, store).run(), kept(store, 1))
    assert list(store.values.values()) == [{"status": "STREAMING"}]  # what it saw
    await asyncio.to_thread(fresh_emulator.die, streaming)  # while no watcher runs
    events = watching(streaming, store).run()
    payload = (await asyncio.wait_for(anext(events), 5)).payload
    assert (payload["status"], payload["previous_status"]) == ("NOT_RUNNING", "STREAMING")
    await no_event_while(events, asyncio.sleep(0.5))
    # Started again, the pipeline still down: nothing fires.
    await no_event_while(watching(streaming, store).run(), asyncio.sleep(0.8))


@needs_watchers
async def test_a_missing_pipeline_fires_not_found_once_across_restarts(conn_env: Any, fresh_emulator: Any) -> None:
    conn_env("matillion_dpc_default")
    missing = "00000000-0000-4000-8000-000000000000"
    store = DictStore()
    events = watching(missing, store).run()
    assert (await asyncio.wait_for(anext(events), 10)).payload["status"] == "NOT_FOUND"
    await no_event_while(events, asyncio.sleep(0.5))
    await no_event_while(watching(missing, store).run(), asyncio.sleep(0.8))  # a restart: not again


@needs_watchers
def test_kwargs_are_deterministic_and_hold_no_secret(streaming: str) -> None:
    one = trigger(streaming, statuses=["unknown", "not_running"]).serialize()
    two = trigger(streaming.upper(), statuses=("NOT_RUNNING", "UNKNOWN")).serialize()
    assert one == two
    assert one[1]["statuses"] == ["NOT_RUNNING", "UNKNOWN"]
    assert set(one[1]) == {"dpc_conn_id", "project_id", "pipeline_id", "statuses", "poll_interval"}
    with pytest.raises(ValueError, match="pipeline_id must be a UUID"):
        trigger("not-an-id")


@pytest.mark.skipif(HAS_WATCHERS, reason="this Airflow has asset watchers")
def test_without_asset_watchers_the_trigger_is_not_offered() -> None:
    with pytest.raises(ImportError, match="needs Airflow 3's asset watchers"):
        from airflow_provider_dpc.triggers.streaming_pipeline import DpcStreamingPipelineEventTrigger  # noqa: F401
