"""The account's request budget against the emulator's rate limit: shared reads, a process-wide
slow-down after a 429, and one budget for sync and async callers of a process.

The emulator's limit runs over a short window here (so a test takes seconds, not minutes), and the
connection's ``requests_per_minute`` is set so that the budget's burst and refill fit in it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.models import PipelineCommand
from airflow_provider_dpc.status import StatusGoal
from airflow_provider_dpc.triggers.streaming_pipeline import DpcStreamingPipelineTrigger
from tests.guide import PROJECT_ID, guide_body, requests_to
from tests.task_runner import first_event

pytestmark = pytest.mark.every_line

STATUS = "/streaming-pipelines/{pipelineId}/status"


def pipelines(hook: DpcHook, n: int, start: bool = False) -> list[str]:
    ids = [
        hook.create_streaming_pipeline(PROJECT_ID, guide_body(f"budget-{i}")).streaming_pipeline_id for i in range(n)
    ]
    for pipeline_id in ids if start else ():
        hook.send_command(PROJECT_ID, pipeline_id, PipelineCommand.START)
    return ids


def trigger(
    conn_id: str, pipeline_id: str, interval: float, goal: StatusGoal | None = None, deadline: float | None = None
) -> DpcStreamingPipelineTrigger:
    return DpcStreamingPipelineTrigger(
        dpc_conn_id=conn_id,
        project_id=PROJECT_ID,
        pipeline_id=pipeline_id,
        goal=(goal or StatusGoal.of("STREAMING")).to_dict(),
        poll_interval=interval,
        started_at=time.time(),
        deadline=deadline,
        retry_policy={"max_attempts": 8, "backoff_base": 0.05, "backoff_max": 0.2, "max_elapsed": 60},
    )


async def all_events(triggers: list[DpcStreamingPipelineTrigger]) -> list[Any]:
    return await asyncio.gather(*(first_event(t) for t in triggers))


def test_waits_on_one_pipeline_share_one_read_per_interval(conn_env: Any, fresh_emulator: Any) -> None:
    conn = conn_env("budget")
    # SNAPSHOTTING lasts ten poll intervals, so the waits for it see it whatever the machine's load.
    fresh_emulator.configure(snapshotting_seconds=2.0)
    (pipeline_id,) = pipelines(DpcHook(conn), 1, start=True)
    reads_before = requests_to(fresh_emulator, "GET", STATUS)
    interval, waits = 0.2, 20
    # Half wait for SNAPSHOTTING, half for STREAMING: each wait judges the shared answers by its own goal.
    goals = [StatusGoal.of("SNAPSHOTTING"), StatusGoal.of("STREAMING")] * (waits // 2)
    deadline = time.time() + 60  # a wait that misses its status times out instead of hanging the test
    triggers = [trigger(conn, pipeline_id, interval, goal, deadline) for goal in goals]
    started = time.monotonic()
    events = asyncio.run(all_events(triggers))
    elapsed = time.monotonic() - started
    assert [e.payload["status"] for e in events] == ["SNAPSHOTTING", "STREAMING"] * (waits // 2)
    reads = requests_to(fresh_emulator, "GET", STATUS) - reads_before
    rounds = elapsed / interval + 1
    assert reads <= rounds + 1, f"{reads} status reads for {waits} waits over {rounds:.1f} poll rounds"


def test_a_429_holds_every_caller_of_the_process(conn_env: Any, fresh_emulator: Any) -> None:
    conn = conn_env("budget", extra={"requests_per_minute": 100_000})  # only the server limits here
    hook = DpcHook(conn)
    (pipeline_id,) = pipelines(hook, 1)
    fresh_emulator.configure(rate_limit=4, rate_window=1.5)
    for _ in range(3):
        hook.get_status(PROJECT_ID, pipeline_id)  # with the create, the window's whole allowance
    budget = hook.budget(hook.settings)
    seen: dict[str, Any] = {}

    async def callers() -> list[Any]:
        hooks = [DpcHook(conn) for _ in range(6)]
        for other in hooks:
            await other.__aenter__()
        first = asyncio.create_task(hooks[0].aget_status(PROJECT_ID, pipeline_id))  # meets the 429
        while not budget.throttles:
            await asyncio.sleep(0.01)
        # The other callers (reads not shared: each its own request) start now, and wait out the
        # same Retry-After (2 s) instead of asking and being refused one by one.
        others = [asyncio.create_task(h.aget_streaming_pipeline(PROJECT_ID, pipeline_id)) for h in hooks[1:]]
        await asyncio.sleep(1.0)
        seen["during"] = fresh_emulator.stats()["rate_limit"]
        fresh_emulator.configure(rate_limit=None)  # the rest of the test need not wait on the window
        answers = await asyncio.gather(first, *others)
        for other in hooks:
            await other.__aexit__(None, None, None)
        return answers

    answers = asyncio.run(callers())
    assert len(answers) == 6
    during = seen["during"]
    assert (during["refused"], during["admitted"]) == (1, 1 + 3), during  # the create, three reads; then nothing
    assert budget.rate < budget.max_rate  # and the process goes on more slowly, recovering


def test_a_sync_caller_and_a_triggerer_in_one_process_share_the_budget(conn_env: Any, fresh_emulator: Any) -> None:
    # 240 a minute is 3.8 a second with a burst of 11.4: within the server's 20 per 2 s at any moment,
    # for one caller; a sync caller and a triggerer each with a budget of their own would go over.
    conn = conn_env("budget", extra={"requests_per_minute": 240})
    hook = DpcHook(conn)
    fresh_emulator.configure(rate_limit=20, rate_window=2)
    ids = pipelines(hook, 4)  # not started: the triggers poll until stopped
    budget = hook.budget(hook.settings)
    stop = threading.Event()

    def triggerer() -> None:
        async def watch() -> None:
            tasks = [asyncio.create_task(first_event(trigger(conn, p, 0.1))) for p in ids]
            while not stop.is_set():
                await asyncio.sleep(0.05)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run(watch())

    before = fresh_emulator.stats()["rate_limit"]["admitted"]
    thread = threading.Thread(target=triggerer)
    started = time.monotonic()
    thread.start()
    try:
        while fresh_emulator.stats()["rate_limit"]["admitted"] < before + len(ids):  # the triggers are polling
            time.sleep(0.05)
        reads = [hook.get_status(PROJECT_ID, ids[0]) for _ in range(8)]
    finally:
        stop.set()
        thread.join(timeout=30)
    elapsed = time.monotonic() - started
    limit = fresh_emulator.stats()["rate_limit"]
    sent = limit["admitted"] - before
    assert len(reads) == 8
    assert (limit["refused"], limit["peak_in_window"] <= 20) == (0, True), limit
    assert sent > 8 + 2 * len(ids), "the triggers polled beside the sync caller"
    # Both drew from one budget: what they sent together fits its burst and refill.
    assert sent <= budget.capacity + budget.max_rate * elapsed + 1, (sent, elapsed)
