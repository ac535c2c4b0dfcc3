"""Executions of published pipelines: their status machine, the one-per-tag rule and the list.

Status machine of one execution (``seconds`` and ``outcome`` come from the published pipeline's seed)::

    RUNNING --seconds--> SUCCESS | FAILED | FORBIDDEN | ...   (outcome RUNNING: runs until cancelled)
    RUNNING --cancel--> CANCELLING --cancelling_seconds--> CANCELLED
    RUNNING --cancel with forceUpdate--> CANCELLED

Cancelling an execution that has ended, or is already cancelling, changes nothing. Statuses are
computed lazily from the clock whenever an execution is read, as for streaming pipelines.

Answers come in the shape the emulator is set to (``api_shape``): "observed", as clients that ran
against the service found them (details wrapped in ``result`` without the ids, steps nested under
``result`` and paged, some ended steps without times, timestamps with five fractional digits and an
offset, ``2026-02-02T22:53:51.41235+00:00``), or "documented", flat as the reference shows
(milliseconds and ``Z``). List items are flat in either shape.

Besides the executions an API client starts, the emulator starts some on its own, as DPC's
scheduler does (trigger ``SCHEDULE``): one now (:meth:`ExecutionStore.start` from the admin routes),
or one every N seconds for a schedule (:meth:`ExecutionStore.repeat`). Interval runs are started
lazily too: whenever executions are read, every run due by then is there, started at its due time.
"""

from __future__ import annotations

import base64
import dataclasses
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from airflow_provider_dpc.emulator.config import PublishedPipelineSeed
from airflow_provider_dpc.models import ExecutionRequest, ExecutionStatus
from airflow_provider_dpc.status import EXECUTION_UNDER_WAY

__all__ = [
    "SECONDS_VARIABLE",
    "Execution",
    "ExecutionStore",
    "Interval",
    "Outcome",
    "decode_token",
    "encode_token",
    "epoch_seconds",
    "iso",
    "run_seconds",
]

Clock = Callable[[], float]
#: The scalar variable of an execute request that sets how long that execution runs, in seconds.
SECONDS_VARIABLE = "emulator.seconds"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How an execution the emulator starts on its own ends, where it differs from its published
    pipeline's seed: ``status`` (SUCCESS, FAILED, FORBIDDEN, RUNNING...), after ``seconds``, with
    ``message``. None keeps the seed's. ``clock_skew`` seconds are added to the ``startedAt`` it
    answers, as a DPC whose clock disagrees (or that writes local times as UTC) would."""

    status: str | None = None
    seconds: float | None = None
    message: str | None = None
    clock_skew: float = 0.0


#: An execution that ends as its published pipeline's seed says.
AS_SEEDED = Outcome()


@dataclasses.dataclass
class Execution:
    """One execution: what was asked for and where its status machine stands."""

    execution_id: str
    project_id: str
    pipeline: PublishedPipelineSeed
    request: ExecutionRequest
    started: float  # clock time
    started_wall: float  # epoch seconds, for startedAt
    run_seconds: float  # from RUNNING to the outcome
    status: ExecutionStatus = ExecutionStatus.RUNNING
    since: float = 0.0
    phase_seconds: float = 0.0
    message: str | None = None
    #: Epoch seconds of clock time zero, to write clock times as timestamps.
    epoch_offset: float = 0.0
    #: Who started it: ``API`` (an execute call) or ``SCHEDULE`` (the emulator, as DPC's scheduler).
    trigger: str = "API"
    schedule_id: str | None = None
    outcome: Outcome = dataclasses.field(default_factory=Outcome)

    @property
    def tag(self) -> str | None:
        return self.request.execution_tag

    @property
    def ends_with(self) -> str:
        return self.outcome.status or self.pipeline.outcome

    def settle(self, now: float) -> ExecutionStatus:
        """Apply the transition due by ``now`` and return the status."""
        end = self.since + self.phase_seconds
        if self.status is ExecutionStatus.RUNNING and self.ends_with != "RUNNING" and now >= end:
            self.status, self.since = ExecutionStatus(self.ends_with), end
            if self.status is not ExecutionStatus.SUCCESS:
                seeded = self.pipeline.message if self.outcome.status is None else None
                self.message = self.outcome.message or seeded or f"The pipeline ended {self.status}"
        elif self.status is ExecutionStatus.CANCELLING and now >= end:
            self.status, self.since = ExecutionStatus.CANCELLED, end
        return self.status

    def cancel(self, now: float, force: bool, cancelling_seconds: float) -> None:
        status = self.settle(now)
        if status is ExecutionStatus.RUNNING or (force and status is ExecutionStatus.CANCELLING):
            self.status, self.since, self.phase_seconds = ExecutionStatus.CANCELLING, now, cancelling_seconds
            self.message = "Cancelled through the API"
            if force or cancelling_seconds == 0:
                self.status = ExecutionStatus.CANCELLED

    def wall(self, clock_time: float, shape: str) -> str:
        return iso(self.epoch_offset + clock_time, shape)

    def body(self, now: float, shape: str = "documented", *, item: bool = False) -> dict[str, Any]:
        """The execution as ``GET .../pipeline-executions/{id}`` answers it in ``shape``: observed,
        wrapped in ``result`` without the execution's and the project's ids; documented, flat. An
        ``item`` of the executions list is flat in either shape, its times in the shape's form."""
        status = self.settle(now)
        details = {
            "pipelineExecutionId": self.execution_id,
            "pipelineName": self.pipeline.answered_name,
            "environmentName": self.pipeline.environment_name,
            "projectId": self.project_id,
            "pipelineType": "ORCHESTRATION",
            "status": status.value,
            "startedAt": iso(self.started_wall, shape),
            "finishedAt": None if status in EXECUTION_UNDER_WAY else self.wall(self.since, shape),
            "message": self.message,
            "trigger": self.trigger,
            "scheduleId": self.schedule_id,
            "user": None,
        }
        if shape == "observed" and not item:
            del details["pipelineExecutionId"], details["projectId"]
            return {"result": details}
        return details

    def steps(self, now: float, shape: str = "documented") -> list[dict[str, Any]]:
        """One result per seeded step: those done, the one running, and where a failure stopped.

        Observed: ``{"id", "name", "result": {status, message, times}}``, and every second ended
        step without times; documented: flat ``{"name", "status", "message", times}``.
        """
        status = self.settle(now)
        names = self.pipeline.steps
        if status is ExecutionStatus.SUCCESS:
            done = len(names)
        else:
            share = (now - self.started) / self.run_seconds if self.run_seconds else 1.0
            done = min(len(names) - 1, int(share * len(names)))
        current = "RUNNING" if status is ExecutionStatus.RUNNING else status.value
        results = []
        for index, name in enumerate(names[: done + 1]):
            finished = index < done
            ended_at = None if not finished and status is ExecutionStatus.RUNNING else self.wall(self.since, shape)
            result: dict[str, Any] = {
                "status": "SUCCESS" if finished else current,
                "message": None if finished else self.message,
                "startedAt": iso(self.started_wall, shape),
                "finishedAt": ended_at,
            }
            if shape != "observed":
                results.append({"name": name, **result})
                continue
            if finished and index % 2:
                del result["startedAt"], result["finishedAt"]
            results.append({"id": f"{self.execution_id[:8]}-{index}", "name": name, "result": result})
        return results


@dataclasses.dataclass
class Interval:
    """A schedule's runs every ``every`` seconds, the next one due at ``next_at`` (clock time)."""

    project_id: str
    schedule_id: str
    pipeline: PublishedPipelineSeed
    every: float
    next_at: float
    outcome: Outcome = dataclasses.field(default_factory=Outcome)


class ExecutionStore:
    """Every execution of one emulator run, oldest first, and the schedules' interval runs."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        # Epoch seconds of clock time zero, so clock times read as wall-clock timestamps.
        self._epoch_offset = time.time() - clock()
        self.executions: OrderedDict[str, Execution] = OrderedDict()
        self.intervals: dict[str, Interval] = {}

    def wall(self, clock_time: float, shape: str = "documented") -> str:
        return iso(self._epoch_offset + clock_time, shape)

    def start(
        self,
        project_id: str,
        pipeline: PublishedPipelineSeed,
        request: ExecutionRequest,
        *,
        at: float | None = None,
        trigger: str = "API",
        schedule_id: str | None = None,
        outcome: Outcome = AS_SEEDED,
    ) -> Execution:
        """Start an execution now (or at clock time ``at``, for a run that was due then)."""
        now = self.clock() if at is None else at
        seconds = run_seconds(request, pipeline) if outcome.seconds is None else outcome.seconds
        execution = Execution(
            execution_id=str(uuid.uuid4()),
            project_id=project_id,
            pipeline=pipeline,
            request=request,
            started=now,
            started_wall=self._epoch_offset + now + outcome.clock_skew,
            run_seconds=seconds,
            since=now,
            phase_seconds=seconds,
            epoch_offset=self._epoch_offset,
            trigger=trigger,
            schedule_id=schedule_id,
            outcome=outcome,
        )
        self.executions[execution.execution_id] = execution
        return execution

    def run_on_schedule(
        self, project_id: str, pipeline: PublishedPipelineSeed, schedule_id: str | None, outcome: Outcome
    ) -> Execution:
        """Start an execution now as DPC's scheduler does: trigger ``SCHEDULE``."""
        self.catch_up()
        request = ExecutionRequest(pipeline_name=pipeline.name, environment_name=pipeline.environment_name)
        return self.start(project_id, pipeline, request, trigger="SCHEDULE", schedule_id=schedule_id, outcome=outcome)

    def repeat(
        self,
        project_id: str,
        schedule_id: str,
        pipeline: PublishedPipelineSeed,
        every: float,
        outcome: Outcome,
        first_in: float | None = None,
    ) -> Interval:
        """Run the schedule's pipeline every ``every`` seconds, the first in ``first_in`` (``every``)."""
        self.catch_up()
        due = self.clock() + (every if first_in is None else first_in)
        interval = Interval(project_id, schedule_id, pipeline, every, due, outcome)
        self.intervals[schedule_id] = interval
        return interval

    def stop_repeating(self, schedule_id: str) -> bool:
        self.catch_up()
        return self.intervals.pop(schedule_id, None) is not None

    def catch_up(self) -> None:
        """Start every interval run due by now, each at its due time, oldest first."""
        now = self.clock()
        due: list[tuple[float, Interval]] = []
        for interval in self.intervals.values():
            while interval.next_at <= now:
                due.append((interval.next_at, interval))
                interval.next_at += interval.every
        for at, interval in sorted(due, key=lambda item: item[0]):
            request = ExecutionRequest(
                pipeline_name=interval.pipeline.name, environment_name=interval.pipeline.environment_name
            )
            self.start(
                interval.project_id,
                interval.pipeline,
                request,
                at=at,
                trigger="SCHEDULE",
                schedule_id=interval.schedule_id,
                outcome=interval.outcome,
            )

    def next_run(self, schedule_id: str) -> str | None:
        """When the schedule's next interval run is due, as a timestamp; None without one."""
        self.catch_up()
        interval = self.intervals.get(schedule_id)
        return None if interval is None else self.wall(interval.next_at)

    def running_with_tag(self, project_id: str, environment_name: str, tag: str) -> Execution | None:
        """The execution holding ``tag`` in the environment: only one may run at a time."""
        self.catch_up()
        now = self.clock()
        for execution in self.executions.values():
            if (
                execution.tag == tag
                and execution.project_id == project_id
                and execution.pipeline.environment_name == environment_name
                and execution.settle(now) is ExecutionStatus.RUNNING
            ):
                return execution
        return None

    def find(self, project_id: str, execution_id: str) -> Execution | None:
        self.catch_up()
        execution = self.executions.get(execution_id)
        return execution if execution is not None and execution.project_id == project_id else None

    def matching(
        self,
        project_ids: Iterable[str],
        pipeline_name: str | None,
        environment_name: str | None,
        status: str | None,
        started_after: datetime | None,
        started_before: datetime | None = None,
        schedule_id: str | None = None,
    ) -> list[Execution]:
        """Executions of ``project_ids`` passing the list's filters, newest first.

        ``pipeline_name`` matches as the API documents it: partially and in any case, so "Pipeline 1"
        also finds "Pipeline 10".
        """
        self.catch_up()
        now, projects = self.clock(), set(project_ids)
        after = None if started_after is None else epoch_seconds(started_after)
        before = None if started_before is None else epoch_seconds(started_before)
        part = None if pipeline_name is None else pipeline_name.casefold()
        found = [
            (index, e)
            for index, e in enumerate(self.executions.values())
            if e.project_id in projects
            and (part is None or part in e.pipeline.answered_name.casefold() or part in e.pipeline.name.casefold())
            and (environment_name is None or e.pipeline.environment_name == environment_name)
            and (status is None or e.settle(now).value == status.upper())
            and (after is None or e.started_wall > after)
            and (before is None or e.started_wall < before)
            and (schedule_id is None or e.schedule_id == schedule_id)
        ]
        return [e for _, e in sorted(found, key=lambda item: (item[1].started_wall, item[0]), reverse=True)]


def run_seconds(request: ExecutionRequest, pipeline: PublishedPipelineSeed) -> float:
    """How long an execution runs: the request's ``emulator.seconds`` variable, else the seed's;
    raises ValueError for a value that is not a number of seconds from 0 to 86400."""
    value = (request.scalar_variables or {}).get(SECONDS_VARIABLE)
    if value is None:
        return pipeline.seconds
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86400:
        raise ValueError("must be a number of seconds from 0 to 86400")
    return seconds


def encode_token(offset: int) -> str:
    """An opaque ``more`` token for the page starting at ``offset``."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int | None:
    """The offset a token stands for, or None when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, number = text.partition(":")
        offset = int(number)
    except (ValueError, UnicodeDecodeError):
        return None
    return offset if prefix == "offset" and offset >= 0 else None


def iso(epoch: float, shape: str = "documented") -> str:
    """A timestamp as the shape writes it: observed, five fractional digits and an offset, as the
    service answers (``2026-02-02T22:53:51.41235+00:00``); documented, milliseconds and ``Z``."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    if shape == "observed":
        return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 10:05d}+00:00"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_seconds(moment: datetime) -> float:
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()
