"""Run an operator or sensor as a worker would, following a deferral through its real trigger."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any

try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 2.11
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined,unused-ignore]


class RecordingTI:
    """Stands in for the task instance: records XCom pushes."""

    def __init__(self, try_number: int = 1, *, dag_id: str = "dpc_tests", run_id: str = "manual__1") -> None:
        self.try_number = try_number
        self.dag_id = dag_id
        self.task_id = "task"
        self.run_id = run_id
        self.map_index = -1
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def run_task(task: Any, ti: RecordingTI | None = None, **context_extra: Any) -> Any:
    """``execute`` the task; on deferral, rebuild the trigger from its kwargs as the triggerer does,
    run it to its event and hand that to the task's resume method."""
    context: dict[str, Any] = {"ti": ti or RecordingTI(), **context_extra}
    step: Any = lambda: task.execute(context)  # noqa: E731
    while True:
        try:
            return step()
        except TaskDeferred as deferred:
            classpath, kwargs = deferred.trigger.serialize()
            module, _, name = classpath.rpartition(".")
            rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
            if rebuilt.serialize() != deferred.trigger.serialize():
                raise AssertionError(f"the trigger does not survive serialization: {kwargs}") from None
            event = asyncio.run(first_event(rebuilt))
            resume = getattr(task, deferred.method_name)
            # A resumed task may defer again (a hold that restarts its pipeline): run that deferral too.
            step = functools.partial(resume, context, event.payload, **(deferred.kwargs or {}))


#: Seconds a test waits for a trigger's event: well under pytest's timeout, so a trigger that never
#: fires fails the test naming what it waited for instead of hanging it.
EVENT_DEADLINE = 120.0


async def no_event_while(events: AsyncIterator[Any], meanwhile: Awaitable[Any]) -> None:
    """Asserts that ``events`` (a trigger's run) yields nothing while ``meanwhile`` runs, then stops
    waiting on it."""
    nxt = asyncio.ensure_future(anext(events))
    await meanwhile
    assert not nxt.done(), f"the trigger fired or ended while nothing should have happened: {nxt!r}"
    nxt.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await nxt


async def first_event(trigger: Any, within: float = EVENT_DEADLINE) -> Any:
    try:
        async with asyncio.timeout(within):
            async for event in trigger.run():
                return event
    except TimeoutError:
        raise AssertionError(f"no event within {within:.0f} s from {trigger.serialize()}") from None
    raise AssertionError("the trigger yielded no event")


class DictStore:
    """Airflow 3.3's state stores as a task (``task_state_store``: get/set) or an asset watcher's
    trigger (one asset's ``asset_state_store``: aget/aset) meets them; values kept as JSON, as
    Airflow's database keeps them. Airflow's own stores are used under the real triggerer
    (tests/cluster)."""

    def __init__(self, **values: Any) -> None:
        self.values = dict(values)
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.writes += 1
        self.values[key] = json.loads(json.dumps(value))

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.set(key, value)
