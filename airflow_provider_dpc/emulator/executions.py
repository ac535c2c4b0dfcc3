"""Executions of published pipelines: their status machine, the one-per-tag rule and the list.

Status machine of one execution (``seconds`` and ``outcome`` come from the published pipeline's seed)::

    RUNNING --seconds--> SUCCESS | FAILED | FORBIDDEN | ...   (outcome RUNNING: runs until cancelled)
    RUNNING --cancel--> CANCELLING --cancelling_seconds--> CANCELLED
    RUNNING --cancel with forceUpdate--> CANCELLED

Cancelling an execution that has ended, or is already cancelling, changes nothing. Statuses are
computed lazily from the clock whenever an execution is read, as for streaming pipelines.

Answers come in the shape the emulator is set to (``api_shape``): "observed", as clients that ran
against the service found them (details wrapped in ``result`` without the ids, steps nested under
``result`` and paged, some ended steps without times), or "documented", flat as the reference shows.
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

__all__ = ["SECONDS_VARIABLE", "Execution", "ExecutionStore", "decode_token", "encode_token", "run_seconds"]

Clock = Callable[[], float]
_UNDER_WAY = frozenset({ExecutionStatus.RUNNING, ExecutionStatus.CANCELLING})
#: The scalar variable of an execute request that sets how long that execution runs, in seconds.
SECONDS_VARIABLE = "emulator.seconds"


@dataclasses.dataclass
class Execution:
    """One execution: what was asked for and where its status machine stands."""

    execution_id: str
    project_id: str
    pipeline: PublishedPipelineSeed
    request: ExecutionRequest
    started: float  # clock time
    started_wall: float  # epoch seconds, for startedAt
    run_seconds: float  # from RUNNING to the seeded outcome
    status: ExecutionStatus = ExecutionStatus.RUNNING
    since: float = 0.0
    phase_seconds: float = 0.0
    message: str | None = None

    @property
    def tag(self) -> str | None:
        return self.request.execution_tag

    def settle(self, now: float) -> ExecutionStatus:
        """Apply the transition due by ``now`` and return the status."""
        end = self.since + self.phase_seconds
        if self.status is ExecutionStatus.RUNNING and self.pipeline.outcome != "RUNNING" and now >= end:
            self.status, self.since = ExecutionStatus(self.pipeline.outcome), end
            if self.status is not ExecutionStatus.SUCCESS:
                self.message = self.pipeline.message or f"The pipeline ended {self.status}"
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

    def body(self, now: float, wall: Callable[[float], str], shape: str = "documented") -> dict[str, Any]:
        """The execution as ``GET .../pipeline-executions/{id}`` answers it in ``shape``: observed,
        wrapped in ``result`` without the execution's and the project's ids; documented, flat."""
        status = self.settle(now)
        details = {
            "pipelineExecutionId": self.execution_id,
            "pipelineName": self.pipeline.answered_name,
            "environmentName": self.pipeline.environment_name,
            "projectId": self.project_id,
            "pipelineType": "ORCHESTRATION",
            "status": status.value,
            "startedAt": _iso(self.started_wall),
            "finishedAt": None if status in _UNDER_WAY else wall(self.since),
            "message": self.message,
            "trigger": "API",
            "scheduleId": None,
            "user": None,
        }
        if shape == "observed":
            del details["pipelineExecutionId"], details["projectId"]
            return {"result": details}
        return details

    def steps(self, now: float, wall: Callable[[float], str], shape: str = "documented") -> list[dict[str, Any]]:
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
            result: dict[str, Any] = {
                "status": "SUCCESS" if finished else current,
                "message": None if finished else self.message,
                "startedAt": _iso(self.started_wall),
                "finishedAt": None if not finished and status is ExecutionStatus.RUNNING else wall(self.since),
            }
            if shape != "observed":
                results.append({"name": name, **result})
                continue
            if finished and index % 2:
                del result["startedAt"], result["finishedAt"]
            results.append({"id": f"{self.execution_id[:8]}-{index}", "name": name, "result": result})
        return results


class ExecutionStore:
    """Every execution of one emulator run, oldest first."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        # Epoch seconds of clock time zero, so clock times read as wall-clock timestamps.
        self._epoch_offset = time.time() - clock()
        self.executions: OrderedDict[str, Execution] = OrderedDict()

    def wall(self, clock_time: float) -> str:
        return _iso(self._epoch_offset + clock_time)

    def start(self, project_id: str, pipeline: PublishedPipelineSeed, request: ExecutionRequest) -> Execution:
        now = self.clock()
        seconds = run_seconds(request, pipeline)
        execution = Execution(
            execution_id=str(uuid.uuid4()),
            project_id=project_id,
            pipeline=pipeline,
            request=request,
            started=now,
            started_wall=self._epoch_offset + now,
            run_seconds=seconds,
            since=now,
            phase_seconds=seconds,
        )
        self.executions[execution.execution_id] = execution
        return execution

    def running_with_tag(self, project_id: str, environment_name: str, tag: str) -> Execution | None:
        """The execution holding ``tag`` in the environment: only one may run at a time."""
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
        execution = self.executions.get(execution_id)
        return execution if execution is not None and execution.project_id == project_id else None

    def matching(
        self,
        project_ids: Iterable[str],
        pipeline_name: str | None,
        environment_name: str | None,
        status: str | None,
        started_after: datetime | None,
    ) -> list[Execution]:
        """Executions of ``project_ids`` passing the list's filters, newest first.

        ``pipeline_name`` matches as the API documents it: partially and in any case, so "Pipeline 1"
        also finds "Pipeline 10".
        """
        now, projects = self.clock(), set(project_ids)
        after = None if started_after is None else started_after.timestamp()
        part = None if pipeline_name is None else pipeline_name.casefold()
        return [
            e
            for e in reversed(self.executions.values())
            if e.project_id in projects
            and (part is None or part in e.pipeline.answered_name.casefold() or part in e.pipeline.name.casefold())
            and (environment_name is None or e.pipeline.environment_name == environment_name)
            and (status is None or e.settle(now).value == status.upper())
            and (after is None or e.started_wall > after)
        ]


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


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
