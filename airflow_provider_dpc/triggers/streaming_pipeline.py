"""Deferrable wait on a streaming pipeline's status, run by Airflow's triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_dpc._compat import find_or_none
from airflow_provider_dpc.exceptions import DpcError
from airflow_provider_dpc.hooks._retry import RetryPolicy
from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.models import check_uuid
from airflow_provider_dpc.status import StatusGoal, StatusWatch
from airflow_provider_dpc.status import statuses as normalised


class DpcStreamingPipelineTrigger(BaseTrigger):
    """Polls a pipeline's status until it reaches a target or failure status, or the deadline passes.

    Fully async: the connection is read through Airflow's async path and one async client (see
    :attr:`DpcHook.async_transport`) serves the whole run. Its kwargs hold ids, the connection id,
    timings and the retry policy, never a secret. It yields exactly one event, a
    :class:`~airflow_provider_dpc.status.WaitResult`, which the deferring task reads with the same
    function a poke uses.

    :param goal: target and failure statuses and the grace period, as ``StatusGoal.to_dict()``.
    :param started_at: epoch seconds when the wait began (the grace period counts from it).
    :param deadline: epoch seconds after which the wait times out; None waits forever.
    :param carry: what the deferring task needs when it resumes, handed back in the event as it
        was given (a supervising task's restart count and history): a resume reads it from the
        event, which every way of running a trigger delivers, and a triggerer restart keeps it.
    """

    def __init__(
        self,
        *,
        dpc_conn_id: str,
        project_id: str,
        pipeline_id: str,
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
        self.pipeline_id = pipeline_id
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
                "pipeline_id": self.pipeline_id,
                "goal": self.goal.to_dict(),
                "poll_interval": self.poll_interval,
                "started_at": self.started_at,
                "deadline": self.deadline,
                "retry_policy": self.retry_policy.to_dict(),
                "history": list(self.history),
                **({} if self.carry is None else {"carry": self.carry}),
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = StatusWatch(
            self.goal,
            self.project_id,
            self.pipeline_id,
            started_at=self.started_at,
            deadline=self.deadline,
            history=self.history,
        )
        hook = DpcHook(self.dpc_conn_id, retry_policy=self.retry_policy)
        try:
            async with hook:
                while True:
                    status = await hook.aget_status(self.project_id, self.pipeline_id)
                    now = time.time()
                    result = watch.observe(status, now)
                    if result is not None:
                        break
                    await asyncio.sleep(watch.next_poll(self.poll_interval, now))
        except DpcError as exc:
            result = watch.error(exc, time.time())
        self.log.info("streaming pipeline %s: %s (%s)", self.pipeline_id, result.verdict, result.status)
        event = result.to_event()
        if self.carry is not None:
            event["carry"] = self.carry
        yield TriggerEvent(event)


_BaseEventTrigger: Any = find_or_none("BaseEventTrigger", "airflow.triggers.base")


def _event_trigger_class() -> type:
    """The event trigger, where Airflow has asset watchers (3.0+)."""

    class DpcStreamingPipelineEventTrigger(_BaseEventTrigger):
        """Fires each time a streaming pipeline moves into one of ``statuses``, for Airflow 3's asset
        watchers: ``AssetWatcher(name=..., trigger=DpcStreamingPipelineEventTrigger(...))``.

        A change, not a level: a pipeline that drops to NOT_RUNNING and stays there fires once, and
        again only after it has left the watched statuses. Its first read is its starting point, so
        after a triggerer restart a pipeline already down does not fire again. The event's payload
        is JSON: ``project_id``, ``pipeline_id``, ``status``, ``previous_status`` and ``observed_at``
        (ISO 8601, UTC). Its kwargs are ids, statuses and timings, always in the same form, so
        Airflow identifies the watcher by them, and never a secret. A read error is logged and the
        watch goes on. Its kwargs are flat (strings, a list, a number): Airflow 3.2 hands an asset
        watcher's nested kwargs to the trigger still encoded.
        """

        def __init__(
            self,
            dpc_conn_id: str,
            project_id: str,
            pipeline_id: str,
            statuses: Iterable[str] = ("NOT_RUNNING", "UNKNOWN"),
            poll_interval: float = 60.0,
        ) -> None:
            super().__init__()
            self.dpc_conn_id = dpc_conn_id
            self.project_id = check_uuid(project_id, "project_id")
            self.pipeline_id = check_uuid(pipeline_id, "pipeline_id")
            # Sorted and upper case, so the same watch always serializes alike (Airflow hashes it).
            self.statuses = sorted({str(status) for status in normalised(statuses)})
            if not self.statuses:
                raise ValueError("statuses must name at least one status")
            self.poll_interval = float(poll_interval)

        def serialize(self) -> tuple[str, dict[str, Any]]:
            return (
                f"{type(self).__module__}.DpcStreamingPipelineEventTrigger",
                {
                    "dpc_conn_id": self.dpc_conn_id,
                    "project_id": self.project_id,
                    "pipeline_id": self.pipeline_id,
                    "statuses": list(self.statuses),
                    "poll_interval": self.poll_interval,
                },
            )

        async def run(self) -> AsyncIterator[TriggerEvent]:
            previous: str | None = None
            async with DpcHook(self.dpc_conn_id) as hook:
                while True:
                    try:
                        status = str(await hook.aget_status(self.project_id, self.pipeline_id))
                    except DpcError as exc:
                        self.log.warning("streaming pipeline %s: status not read (%s)", self.pipeline_id, exc)
                    else:
                        if previous is not None and status in self.statuses and previous not in self.statuses:
                            self.log.info("streaming pipeline %s moved %s -> %s", self.pipeline_id, previous, status)
                            yield TriggerEvent(
                                {
                                    "project_id": self.project_id,
                                    "pipeline_id": self.pipeline_id,
                                    "status": status,
                                    "previous_status": previous,
                                    "observed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                                }
                            )
                        previous = status
                    await asyncio.sleep(self.poll_interval)

    return DpcStreamingPipelineEventTrigger


if _BaseEventTrigger is not None:
    DpcStreamingPipelineEventTrigger = _event_trigger_class()
else:

    def __getattr__(name: str) -> Any:
        if name == "DpcStreamingPipelineEventTrigger":
            raise ImportError(
                "DpcStreamingPipelineEventTrigger needs Airflow 3's asset watchers (BaseEventTrigger); "
                "this Airflow has none"
            )
        raise AttributeError(name)
