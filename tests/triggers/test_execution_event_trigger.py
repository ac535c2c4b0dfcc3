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
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.guide import FIXTURES, PROJECT_ID, ROOT, requests_to
from tests.task_runner import DictStore, no_event_while

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


def watching(store: DictStore, pipeline_name: str = "Pipeline 1", **kwargs: Any) -> Any:
    """A watcher given an asset's state store, as Airflow 3.3's triggerer gives it one."""
    watcher = trigger(pipeline_name, poll_interval=0.1, **kwargs)
    watcher.asset_state_store = store
    return watcher


async def collect_while(events: AsyncIterator[Any], meanwhile: Any) -> list[dict[str, Any]]:
    """The payloads ``events`` yields until ``meanwhile`` is done."""
    payloads: list[dict[str, Any]] = []

    async def collect() -> None:
        async for event in events:
            payloads.append(event.payload)

    collector = asyncio.ensure_future(collect())
    try:
        await meanwhile
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
        await events.aclose()
    return payloads


@needs_watchers
async def test_a_watcher_started_again_fires_every_run_that_ended_while_none_watched(
    conn_env: Any, fresh_emulator: Any
) -> None:
    conn_env("matillion_dpc_default")
    store = DictStore()
    before = await run(fresh_emulator, "Pipeline 1", ENV, seconds=0)

    async def one_run() -> str:
        await reads(fresh_emulator, 2)  # its first start ever: the starting point
        execution_id = await run(fresh_emulator, "Pipeline 1", ENV, seconds=0)
        await reads(fresh_emulator, 3)
        return execution_id

    first_run = asyncio.ensure_future(one_run())
    fired = await collect_while(watching(store).run(), first_run)
    assert [p["pipeline_execution_id"] for p in fired] == [first_run.result()]  # not the one before it
    assert store.writes >= 1

    # No triggerer runs: two runs end, and one of another pipeline.
    one = await run(fresh_emulator, "Pipeline 1", ENV, seconds=0)
    await run(fresh_emulator, "Pipeline 10", ENV, seconds=0)
    two = await run(fresh_emulator, "Pipeline 1", ENV, seconds=0)
    fired = await collect_while(watching(store).run(), reads(fresh_emulator, 4))
    assert [p["pipeline_execution_id"] for p in fired] == [one, two]  # oldest first, each once
    assert before not in [p["pipeline_execution_id"] for p in fired]

    # Started again with nothing new: nothing fires.
    await no_event_while(watching(store).run(), reads(fresh_emulator, 4))
    # A watcher of other statuses on the same asset keeps a memory of its own.
    assert len(store.values) == 1
    await no_event_while(watching(store, statuses=["FAILED"]).run(), reads(fresh_emulator, 3))
    assert len(store.values) == 2


@needs_watchers
async def test_a_stray_pipeline_of_the_same_name_and_a_clock_ahead_stall_nothing(
    conn_env: Any, fresh_emulator: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    conn_env("matillion_dpc_default")
    watcher = watching(DictStore(), "load")
    fired: list[str] = []

    async def runs_of_load() -> None:
        await reads(fresh_emulator, 2)
        first = await run(fresh_emulator, "load", ENV, seconds=0)
        await until(lambda: fired == [first], 10, "the first run of load")
        await run(fresh_emulator, "Scratch load", ENV, seconds=0)  # scratch/load.orch.yaml: "load" too
        await reads(fresh_emulator, 3)
        # DPC dates a run a day ahead; a run after it must still be read.
        ahead = await run(fresh_emulator, "load", ENV, seconds=0, clock_skew_seconds=86400)
        await until(lambda: len(fired) == 2, 10, "the run dated a day ahead")
        later = await run(fresh_emulator, "load", ENV, seconds=0)
        await until(lambda: len(fired) == 3, 10, "the run after it")
        await reads(fresh_emulator, 3)
        assert fired == [first, ahead, later]

    async def collect() -> None:
        async for event in watcher.run():
            fired.append(event.payload["pipeline_execution_id"])

    collector = asyncio.ensure_future(collect())
    try:
        await runs_of_load()
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
    # Logging's records, or the console where Airflow 3's structlog writes (3.0 writes to both).
    console = "".join(capfd.readouterr())
    reported = "DPC pipeline name 'load' stands for 2 pipelines run in environment 'Environment-1'"
    assert max(caplog.text.count(reported), console.count(reported)) == 1, caplog.text + console
    assert "'load.orch.yaml', 'scratch/load.orch.yaml'; watching 'load.orch.yaml'" in caplog.text + console


_BASE = importlib.import_module("airflow.triggers.base")
HAS_SHARED_STREAMS = HAS_WATCHERS and hasattr(_BASE.BaseEventTrigger, "shared_stream_key")


@pytest.mark.skipif(not HAS_SHARED_STREAMS, reason="this Airflow has no shared streams for asset watchers (3.3+)")
async def test_many_watchers_share_one_read_of_the_list_per_interval(conn_env: Any, fresh_emulator: Any) -> None:
    from airflow.triggers.shared_stream import SharedStreamManager

    conn_env("matillion_dpc_default")
    names = ("Pipeline 1", "Pipeline 10", "load")
    watchers = [trigger(names[i % 3], poll_interval=0.2) for i in range(1000)]
    assert len({w.shared_stream_key() for w in watchers}) == 1
    manager = SharedStreamManager()
    fired: dict[int, list[str]] = {i: [] for i in range(len(watchers))}

    async def follow(i: int, watcher: Any) -> None:
        stream = manager.subscribe(trigger_id=i, trigger=watcher, key=watcher.shared_stream_key())
        async for event in watcher.filter_shared_stream(stream):
            fired[i].append(event.payload["pipeline_execution_id"])

    before = requests_to(fresh_emulator, "GET", "/v1/pipeline-executions")
    started = time.monotonic()
    tasks = [asyncio.ensure_future(follow(i, w)) for i, w in enumerate(watchers)]
    try:
        await reads(fresh_emulator, 2)  # the group's first read: every watcher's starting point
        ran = {name: await run(fresh_emulator, name, ENV, seconds=0) for name in names}
        await until(lambda: all(fired.values()), 60, "every watcher's event")
        await reads(fresh_emulator, 3)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await manager.stop_all()
    elapsed = time.monotonic() - started
    assert all(fired[i] == [ran[names[i % 3]]] for i in fired), fired  # each once, its own pipeline's run
    made = requests_to(fresh_emulator, "GET", "/v1/pipeline-executions") - before
    assert made <= elapsed / 0.2 + 2, (made, elapsed)  # one read per interval, not one per watcher


@pytest.mark.skipif(not HAS_SHARED_STREAMS, reason="this Airflow has no shared streams for asset watchers (3.3+)")
async def test_a_watcher_joining_a_running_group_catches_up_from_what_it_kept(
    conn_env: Any, fresh_emulator: Any
) -> None:
    from airflow.triggers.shared_stream import SharedStreamManager

    conn_env("matillion_dpc_default")
    manager = SharedStreamManager()
    early = trigger("Pipeline 10", poll_interval=0.2)
    group = asyncio.ensure_future(
        no_event_while(
            early.filter_shared_stream(manager.subscribe(trigger_id=1, trigger=early, key=early.shared_stream_key())),
            asyncio.sleep(3600),
        )
    )
    try:
        await reads(fresh_emulator, 2)
        # A run of Pipeline 1 that started an hour ago and ended while its watcher was down; the
        # group's reads have moved on past it (Pipeline 10's run is newer by an hour).
        missed = await run(fresh_emulator, "Pipeline 1", ENV, seconds=0, clock_skew_seconds=-3600)
        await run(fresh_emulator, "Pipeline 10", ENV, seconds=0)
        await reads(fresh_emulator, 3)
        kept = {"started_after": (datetime.now(UTC) - timedelta(hours=2)).isoformat(), "ended": {}}
        late = watching(DictStore(), "Pipeline 1")
        late.poll_interval = 0.2  # the group's interval, so it joins the group
        late.asset_state_store.values[late.memory_key()] = kept
        stream = manager.subscribe(trigger_id=2, trigger=late, key=late.shared_stream_key())
        event = await asyncio.wait_for(anext(late.filter_shared_stream(stream)), 10)
        assert event.payload["pipeline_execution_id"] == missed
    finally:
        group.cancel()
        await asyncio.gather(group, return_exceptions=True)
        await manager.stop_all()


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
