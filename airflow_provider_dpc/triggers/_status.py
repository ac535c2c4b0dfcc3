"""What the status triggers share: one async client per run, the watch, and one event at the end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_dpc.exceptions import DpcError
from airflow_provider_dpc.hooks._retry import RetryPolicy
from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.status import Reading, Status, StatusGoal, StatusWatch, WatchState


def flat_kwargs(trigger: BaseTrigger, *names: str) -> tuple[str, dict[str, Any]]:
    """An asset watcher's trigger serialized: its classpath and the attributes named, as they are
    (strings, lists, numbers). Airflow identifies a watcher by these kwargs, so they stay flat and
    in one form: Airflow 3.2 hands a watcher's nested kwargs to the trigger still encoded."""
    cls = type(trigger)
    return f"{cls.__module__}.{cls.__name__}", {name: getattr(trigger, name) for name in names}


class DpcStatusTrigger(BaseTrigger):
    """Polls one resource's status until the goal is reached or fails, or the deadline passes.

    Fully async: the connection is read through Airflow's async path and one async client (see
    :attr:`DpcHook.async_transport`) serves the whole run. Triggers of one triggerer watching the
    same resource share its reads, one per poll interval, and the account's request budget. Its
    kwargs hold ids, the connection id, timings and the retry policy, never a secret. It yields exactly one event, a
    :class:`~airflow_provider_dpc.status.WaitResult`, which the deferring task reads with the same
    function a poke uses; subclasses say which id they watch and how its status is read.

    :param goal: target and failure statuses and the grace period, as ``StatusGoal.to_dict()``.
    :param started_at: epoch seconds when the wait began (the grace period counts from it).
    :param deadline: epoch seconds after which the wait times out; None waits forever.
    :param carry: what the deferring task needs when it resumes, handed back in the event as it
        was given: a resume reads it from the event, which every way of running a trigger
        delivers, and a triggerer restart keeps it.
    """

    #: The name of the watched id among the kwargs.
    id_field: ClassVar[str]

    def __init__(
        self,
        *,
        dpc_conn_id: str,
        project_id: str,
        resource_id: str,
        goal: Mapping[str, Any],
        poll_interval: float,
        started_at: float,
        deadline: float | None = None,
        retry_policy: Mapping[str, Any] | None = None,
        history: Iterable[str] = (),
        carry: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.dpc_conn_id = dpc_conn_id
        self.project_id = project_id
        self.resource_id = resource_id
        self.goal = StatusGoal.from_dict(goal)
        self.poll_interval = float(poll_interval)
        self.started_at = float(started_at)
        self.deadline = None if deadline is None else float(deadline)
        self.retry_policy = RetryPolicy.coerce(retry_policy)
        self.history = list(history)
        self.carry = None if carry is None else dict(carry)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "dpc_conn_id": self.dpc_conn_id,
                "project_id": self.project_id,
                self.id_field: self.resource_id,
                "goal": self.goal.to_dict(),
                "poll_interval": self.poll_interval,
                "started_at": self.started_at,
                "deadline": self.deadline,
                "retry_policy": self.retry_policy.to_dict(),
                "history": list(self.history),
                **({} if self.carry is None else {"carry": self.carry}),
                **self.extra_kwargs(),
            },
        )

    def extra_kwargs(self) -> dict[str, Any]:
        """A subclass's own kwargs."""
        return {}

    def hook(self) -> DpcHook:
        return DpcHook(self.dpc_conn_id, retry_policy=self.retry_policy)

    async def read(self, hook: DpcHook, watch: StatusWatch) -> Reading | Status:
        """One read of the watched resource, for ``watch`` to observe."""
        raise NotImplementedError

    def make_watch(self) -> StatusWatch:
        """The watch the task handed over, rebuilt from the kwargs."""
        return StatusWatch(self.goal, self.project_id, self.resource_id, **self.watch_state())

    def watch_state(self) -> WatchState:
        """What every watch carries from the task through the trigger: when the wait began, its
        deadline and the statuses seen."""
        return {"started_at": self.started_at, "deadline": self.deadline, "history": self.history}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = self.make_watch()
        try:
            async with self.hook() as hook:
                while True:
                    reading = await self.read(hook, watch)
                    now = time.time()
                    result = watch.observe(reading, now)
                    if result is not None:
                        break
                    await asyncio.sleep(watch.next_poll(self.poll_interval, now))
        except DpcError as exc:
            result = watch.error(exc, time.time())
        self.log.info("%s %s: %s (%s)", self.goal.kind, self.resource_id, result.verdict, result.status)
        result.carry = self.carry
        yield TriggerEvent(result.to_event())
