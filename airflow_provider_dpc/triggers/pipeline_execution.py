"""Deferrable waits on orchestration pipeline executions, run by Airflow's triggerer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from airflow.triggers.base import TriggerEvent

from airflow_provider_dpc._compat import base_event_trigger, without_event_triggers
from airflow_provider_dpc.exceptions import DpcError
from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.memory import WatchMemory, memory_key
from airflow_provider_dpc.models import PipelineExecution, check_uuid, parse_time
from airflow_provider_dpc.status import (
    EXECUTION_UNDER_WAY,
    NewEndings,
    PipelineRunsWatch,
    Reading,
    ReadWindow,
    StatusKind,
    StatusWatch,
    execution_event,
)
from airflow_provider_dpc.status import statuses as normalised
from airflow_provider_dpc.triggers._status import DpcStatusTrigger, flat_kwargs

__all__ = ["DpcNextPipelineExecutionTrigger", "DpcPipelineExecutionTrigger"]


class DpcPipelineExecutionTrigger(DpcStatusTrigger):
    """Polls an execution's status until it ends or the deadline passes, then yields one event.

    The deadline is the task's ``timeout``: the trigger, not Airflow, enforces it, so the task
    always gets its event and cancels the execution itself. See
    :class:`~airflow_provider_dpc.triggers._status.DpcStatusTrigger` for the other kwargs; the
    watched id is ``execution_id``.

    :param cancel_on_kill: cancel the execution when a user marks the deferred task failed or
        success, or clears it (Airflow calls a trigger's ``on_kill`` from 3.3).
    """

    id_field = "execution_id"

    def __init__(self, *, execution_id: str, cancel_on_kill: bool = True, **kwargs: Any) -> None:
        super().__init__(resource_id=execution_id, **kwargs)
        self.cancel_on_kill = bool(cancel_on_kill)

    @property
    def execution_id(self) -> str:
        return self.resource_id

    def extra_kwargs(self) -> dict[str, Any]:
        return {"cancel_on_kill": self.cancel_on_kill}

    async def read(self, hook: DpcHook, watch: StatusWatch) -> Reading:
        found = await hook.aread_pipeline_execution(self.project_id, self.resource_id, max_age=self.poll_interval)
        return Reading.of(found)

    async def on_kill(self) -> None:
        if not self.cancel_on_kill:
            return
        try:
            async with self.hook() as hook:
                await hook.acancel_pipeline_execution(self.project_id, self.resource_id)
        except DpcError as exc:
            self.log.warning("could not cancel execution %s of the killed task: %s", self.resource_id, exc)
            return
        self.log.info("cancelled execution %s of the killed task", self.resource_id)


class DpcNextPipelineExecutionTrigger(DpcStatusTrigger):
    """Reads a pipeline's executions (the account's executions list) until one that started after
    ``started_after`` has succeeded, or failed the wait, or the deadline passes: the deferred wait
    of :class:`~airflow_provider_dpc.sensors.pipeline_execution.DpcPipelineExecutionSensor` given a
    pipeline's name. The list is judged by :class:`~airflow_provider_dpc.status.PipelineRunsWatch`,
    as a poke judges it; waits of one triggerer on the same pipeline, environment and moment share
    one list read per poll interval.

    See :class:`~airflow_provider_dpc.triggers._status.DpcStatusTrigger` for the other kwargs; the
    watched id is ``pipeline_name``. ``fail_on_failure`` is the goal's: failure statuses, or none.

    :param environment_name: the environment the pipeline runs in.
    :param started_after: ISO 8601; only executions that started after it count.
    """

    id_field = "pipeline_name"

    def __init__(self, *, pipeline_name: str, environment_name: str, started_after: str, **kwargs: Any) -> None:
        super().__init__(resource_id=pipeline_name, **kwargs)
        moment = parse_time(started_after)
        if moment is None:
            raise ValueError(f"started_after must be an ISO 8601 date and time, got {started_after!r}")
        self.environment_name = environment_name
        self.started_after = moment

    @property
    def pipeline_name(self) -> str:
        return self.resource_id

    def extra_kwargs(self) -> dict[str, Any]:
        return {"environment_name": self.environment_name, "started_after": self.started_after.isoformat()}

    def make_watch(self) -> PipelineRunsWatch:
        return PipelineRunsWatch(
            self.goal,
            self.project_id,
            self.pipeline_name,
            environment_name=self.environment_name,
            started_after=self.started_after,
            log=self.log,
            **self.watch_state(),
        )

    async def read(self, hook: DpcHook, watch: StatusWatch) -> Reading:
        assert isinstance(watch, PipelineRunsWatch)
        found = await hook.alist_pipeline_executions(
            self.project_id,
            pipeline_name=self.pipeline_name,
            environment_name=self.environment_name,
            started_after=self.started_after,
            max_age=self.poll_interval,
        )
        return watch.judge(found)


_BaseEventTrigger: Any = base_event_trigger()
_log = logging.getLogger(__name__)


class ExecutionsRead(NamedTuple):
    """One read of a project's executions list, shared by the DPC-run watchers of a triggerer:
    how far back it reached, and every execution it listed."""

    since: datetime
    executions: tuple[PipelineExecution, ...]


def _event_trigger_class() -> type:
    """The event trigger, where Airflow has asset watchers (3.0+)."""

    class DpcPipelineExecutionEventTrigger(_BaseEventTrigger):
        """Fires once per execution of a published pipeline that ends with one of ``statuses``
        (SUCCESS by default), for Airflow 3's asset watchers: ``AssetWatcher(name=...,
        trigger=DpcPipelineExecutionEventTrigger(...))`` on ``published_pipeline_uri(project, name)``.

        Whoever started the execution (DPC's own scheduler, a user in DPC, another DAG) it counts,
        by the pipeline name rule (``Pipeline 1`` is never ``Pipeline 10``; a run of another
        pipeline the name also stands for is reported once and skipped). It reads the executions list
        once per ``poll_interval``, back to the earliest run under way (a day at most:
        :class:`~airflow_provider_dpc.status.NewEndings`). Its first start ever is its starting
        point: an execution that ended before it never fires, one under way then fires when it ends.
        Never twice for one execution.

        Where Airflow keeps an asset watcher's state (3.3+), it remembers what it fired for in the
        asset's state store, so after a triggerer restart or a move to another triggerer every
        execution that ended meanwhile fires, oldest first; and the watchers of one triggerer on the
        same connection, project and interval share one read of the project's executions list
        (Airflow's shared streams). Before 3.3 each watcher reads its pipeline's list itself (watchers
        of one pipeline share the read within a triggerer), and a restarted watcher starts afresh.

        The event's payload: ``project_id``, ``pipeline_name``, ``environment_name``,
        ``pipeline_execution_id``, ``status``, ``started_at``, ``finished_at`` (as DPC wrote them)
        and ``message``. Its kwargs are flat (strings, a list, a number: Airflow 3.2 hands an asset
        watcher's nested kwargs to the trigger still encoded), always in the same form, so Airflow
        identifies the watcher by them, and never a secret. A read error is logged and the watch
        goes on.
        """

        def __init__(
            self,
            dpc_conn_id: str,
            project_id: str,
            pipeline_name: str,
            environment_name: str,
            statuses: Iterable[str] = ("SUCCESS",),
            poll_interval: float = 60.0,
        ) -> None:
            super().__init__()
            self.dpc_conn_id = dpc_conn_id
            self.project_id = check_uuid(project_id, "project_id")
            for field, value in (("pipeline_name", pipeline_name), ("environment_name", environment_name)):
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(f"{field} must be a non-empty string, got {value!r}")
            self.pipeline_name = pipeline_name
            self.environment_name = environment_name
            found = set(normalised(statuses, StatusKind.PIPELINE_EXECUTION))
            if not found or found & EXECUTION_UNDER_WAY:
                raise ValueError(
                    f"statuses must name statuses an execution ends with (SUCCESS, FAILED, ...), got {sorted(found)}"
                )
            # Sorted and upper case, so the same watch always serializes alike (Airflow hashes it).
            self.statuses = sorted(str(status) for status in found)
            self.poll_interval = float(poll_interval)
            if self.poll_interval <= 0:
                raise ValueError(f"poll_interval must be positive, got {poll_interval}")

        def serialize(self) -> tuple[str, dict[str, Any]]:
            return flat_kwargs(
                self, "dpc_conn_id", "project_id", "pipeline_name", "environment_name", "statuses", "poll_interval"
            )

        def memory_key(self) -> str:
            """Where it keeps what it fired for in its asset's state store (see :meth:`NewEndings.memory`)."""
            return memory_key(
                "pipeline_runs", self.project_id, self.environment_name, self.pipeline_name, *self.statuses
            )

        async def run(self) -> AsyncIterator[TriggerEvent]:
            """The watch on its own reads: Airflow 3.0-3.2, which share no stream between watchers."""
            async with DpcHook(self.dpc_conn_id) as hook:
                async for event in self._watch(lambda endings: self._own_reads(hook, endings)):
                    yield event

        # ---- one read for many watchers (Airflow 3.3's shared streams) ---------------------------

        def shared_stream_key(self) -> Hashable:
            return ("matillion_dpc.pipeline_executions", self.dpc_conn_id, self.project_id, self.poll_interval)

        @classmethod
        async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[ExecutionsRead]:
            """The project's executions list, read once per interval for every watcher of the group."""
            window = ReadWindow()
            poll_interval = float(kwargs["poll_interval"])
            async with DpcHook(kwargs["dpc_conn_id"]) as hook:
                while True:
                    now = datetime.now(UTC)
                    since = window.since(now)
                    try:
                        found = await hook.alist_pipeline_executions(
                            kwargs["project_id"], pipeline_name=None, environment_name=None, started_after=since
                        )
                    except DpcError as exc:
                        _log.warning("project %s: executions not read (%s)", kwargs["project_id"], exc)
                    else:
                        window.advance(found, now)
                        yield ExecutionsRead(since, tuple(found))
                    await asyncio.sleep(poll_interval)

        async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
            async for event in self._watch(lambda endings: self._shared_reads(shared_stream, endings)):
                yield event

        async def _shared_reads(
            self, shared_stream: AsyncIterator[ExecutionsRead], endings: NewEndings
        ) -> AsyncIterator[list[PipelineExecution]]:
            caught_up = False
            async for read in shared_stream:
                if not caught_up and endings.started_after is not None and read.since > endings.started_after:
                    # What it kept reaches further back than the group's read (a group running
                    # before this watcher joined it): one read of its own from there, once.
                    async with DpcHook(self.dpc_conn_id) as hook:
                        async for found in self._own_reads(hook, endings, once=True):
                            yield found
                caught_up = True
                yield list(read.executions)

        # ---- the watch, whichever way it reads ---------------------------------------------------

        async def _own_reads(
            self, hook: DpcHook, endings: NewEndings, once: bool = False
        ) -> AsyncIterator[list[PipelineExecution]]:
            while True:
                try:
                    yield await hook.alist_pipeline_executions(
                        self.project_id,
                        pipeline_name=self.pipeline_name,
                        environment_name=self.environment_name,
                        started_after=endings.since(datetime.now(UTC)),
                        max_age=self.poll_interval,
                    )
                except DpcError as exc:
                    self.log.warning("DPC pipeline %r: executions not read (%s)", self.pipeline_name, exc)
                if once:
                    return
                await asyncio.sleep(self.poll_interval)

        async def _watch(
            self, reads: Callable[[NewEndings], AsyncIterator[list[PipelineExecution]]]
        ) -> AsyncIterator[TriggerEvent]:
            endings = NewEndings(self.pipeline_name, self.environment_name, self.statuses, log=self.log)
            memory = WatchMemory(self, self.memory_key(), self.log)
            kept = await memory.load()
            if kept:
                endings.restore(kept)
                self.log.info(
                    "DPC pipeline %r: going on from what this watcher kept (runs started after %s)",
                    self.pipeline_name,
                    endings.started_after,
                )
            first = not kept
            async for found in reads(endings):
                ended = endings.observe(found)
                if first and endings.started_after is None:  # a misspelt name reads nothing, ever
                    self.log.warning(
                        "DPC pipeline %r: no execution in environment %r started in the last day; "
                        "check both names (the watch goes on)",
                        self.pipeline_name,
                        self.environment_name,
                    )
                first = False
                for execution in ended:
                    self.log.info(
                        "DPC pipeline %r: execution %s ended %s",
                        self.pipeline_name,
                        execution.pipeline_execution_id,
                        execution.status,
                    )
                    yield TriggerEvent(
                        execution_event(self.project_id, self.pipeline_name, self.environment_name, execution)
                    )
                # Fired, then kept: Airflow holds the events fired until its next sync, a second or so.
                await memory.save(endings.memory())

    return DpcPipelineExecutionEventTrigger


if _BaseEventTrigger is not None:
    DpcPipelineExecutionEventTrigger = _event_trigger_class()
    __all__ += ["DpcPipelineExecutionEventTrigger"]
else:
    __getattr__ = without_event_triggers("DpcPipelineExecutionEventTrigger")
