"""What a status means for a task that waits on it: the one place that decides, for streaming
pipelines and pipeline executions alike.

The operators' polling loops, the sensors' ``poke``, the triggers and every ``execute_complete`` go
through :class:`StatusWatch` and :func:`conclude`, so a status is judged the same way whether the
task polls in a worker or defers to the triggerer.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, NotRequired, TypedDict, Unpack

from airflow_provider_dpc import exceptions
from airflow_provider_dpc.enums import ExecutionStatus, PipelineStatus
from airflow_provider_dpc.exceptions import (
    DpcApiError,
    DpcError,
    DpcPipelineExecutionError,
    DpcPipelineStateError,
)

if TYPE_CHECKING:
    from airflow_provider_dpc.models import PipelineExecution

HISTORY_LENGTH = 10

Status = PipelineStatus | ExecutionStatus


class Verdict(enum.StrEnum):
    REACHED = "reached"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    ERROR = "error"


class StatusKind(enum.StrEnum):
    """What a wait watches; each kind reads its statuses with its own enum."""

    STREAMING_PIPELINE = "streaming pipeline"
    PIPELINE_EXECUTION = "pipeline execution"
    #: The executions of a published pipeline, named with its environment: a wait for the next one
    #: to succeed (see :class:`PipelineRunsWatch`).
    PIPELINE_RUNS = "pipeline runs"

    @property
    def status_type(self) -> type[PipelineStatus] | type[ExecutionStatus]:
        return PipelineStatus if self is StatusKind.STREAMING_PIPELINE else ExecutionStatus


def statuses(
    values: Iterable[Status | str] | Status | str, kind: StatusKind = StatusKind.STREAMING_PIPELINE
) -> tuple[Status, ...]:
    """Normalise one status or several, in any case, to a tuple of ``kind``'s statuses."""
    if isinstance(values, str):
        values = [values]
    return tuple(kind.status_type(v) for v in values)


class Reading(NamedTuple):
    """One read of a watched resource: its status, and whether it says it has finished (an
    execution's ``finishedAt``; a streaming pipeline never does). A read of a pipeline's executions
    that found one ending the wait names it in ``execution`` (see :func:`execution_event`)."""

    status: Status
    finished: bool = False
    execution: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, execution: PipelineExecution) -> Reading:
        """What a read of ``execution`` says: its status, and whether DPC says it finished."""
        return cls(execution.status, execution.finished)


@dataclass(frozen=True)
class StatusGoal:
    """The statuses a task waits for, those that fail it, and how long a failure status is forgiven.

    ``grace_period`` covers the moment right after START when the API may still answer NOT_RUNNING
    because the agent has not picked the command up yet.
    """

    target: tuple[Status, ...]
    failure: tuple[Status, ...] = ()
    grace_period: float = 0.0
    kind: StatusKind = StatusKind.STREAMING_PIPELINE

    def __post_init__(self) -> None:
        overlap = set(self.target) & set(self.failure)
        if overlap:
            raise ValueError(f"statuses {sorted(overlap)} are both target and failure statuses")
        if not self.target:
            raise ValueError("target_status must name at least one status")

    @classmethod
    def of(
        cls,
        target: Iterable[Status | str] | str,
        failure: Iterable[Status | str] | str = (),
        grace_period: float = 0.0,
        kind: StatusKind | str = StatusKind.STREAMING_PIPELINE,
    ) -> StatusGoal:
        kind = StatusKind(kind)
        return cls(statuses(target, kind), statuses(failure, kind), float(grace_period), kind)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": [str(s) for s in self.target],
            "failure": [str(s) for s in self.failure],
            "grace_period": self.grace_period,
            "kind": str(self.kind),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StatusGoal:
        return cls.of(
            data["target"],
            data.get("failure", ()),
            data.get("grace_period", 0.0),
            data.get("kind", StatusKind.STREAMING_PIPELINE),
        )

    def describe(self) -> str:
        return " or ".join(map(str, self.target))


@dataclass
class WaitResult:
    """How a wait ended. Serialised as the trigger's event payload.

    ``resource_id`` is the streaming pipeline's id or the execution's, as ``goal.kind`` says.
    """

    verdict: Verdict
    project_id: str
    resource_id: str
    goal: StatusGoal
    status: str | None = None
    history: list[str] = field(default_factory=list)
    waited: float = 0.0
    message: str | None = None
    # For an ERROR: the class and HTTP status of the API error, so a deferred wait raises the same
    # error as a polling one (DpcTransportError, DpcNotFoundError...).
    error_type: str | None = None
    status_code: int | None = None
    # The API error itself, where the wait ran (polling): raised as the cause. Not in the event.
    cause: Exception | None = field(default=None, repr=False, compare=False)
    #: What the waiting task handed to its wait, handed back (a supervising task's restart count).
    carry: dict[str, Any] | None = None
    #: For a wait on a pipeline's runs: the execution that ended it, as :func:`execution_event` says it.
    execution: dict[str, Any] | None = None

    @property
    def pipeline_id(self) -> str:
        return self.resource_id

    @property
    def execution_id(self) -> str | None:
        """The execution the wait was about: the watched one, or the run that ended a wait on a
        pipeline's runs (None where none did)."""
        if self.goal.kind is StatusKind.PIPELINE_RUNS:
            return None if self.execution is None else str(self.execution["pipeline_execution_id"])
        return self.resource_id if self.goal.kind is StatusKind.PIPELINE_EXECUTION else None

    def to_event(self) -> dict[str, Any]:
        optional = ("cause", "carry", "execution")
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in optional}
        data.update(verdict=str(self.verdict), goal=self.goal.to_dict(), history=list(self.history))
        for name in ("carry", "execution"):  # only where set: the events of other waits keep their form
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return data

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> WaitResult:
        """The result a trigger's event holds, in this version's form or an earlier one's: Airflow
        keeps events across a provider upgrade (the watched id was ``pipeline_id`` before executions)."""
        return cls(
            verdict=Verdict(event["verdict"]),
            project_id=event["project_id"],
            resource_id=event["resource_id"] if "resource_id" in event else event["pipeline_id"],
            goal=StatusGoal.from_dict(event["goal"]),
            status=event.get("status"),
            history=list(event.get("history") or []),
            waited=float(event.get("waited") or 0.0),
            message=event.get("message"),
            error_type=event.get("error_type"),
            status_code=event.get("status_code"),
            carry=None if event.get("carry") is None else dict(event["carry"]),
            execution=None if event.get("execution") is None else dict(event["execution"]),
        )

    @classmethod
    def of(cls, event: WaitResult | Mapping[str, Any]) -> WaitResult:
        """What a task's continuation was handed: a polled wait's result, or a trigger's event."""
        return event if isinstance(event, WaitResult) else cls.from_event(event)


class WatchState(TypedDict):
    """What a watch carries from the task through the trigger (see :class:`StatusWatch`)."""

    started_at: float
    deadline: NotRequired[float | None]
    history: NotRequired[Iterable[str]]


class StatusWatch:
    """Judges the statuses read one after another while waiting for a goal.

    Times are wall-clock epoch seconds so that a watch can move from a worker to the triggerer and
    keep its deadline and grace period.
    """

    def __init__(
        self,
        goal: StatusGoal,
        project_id: str,
        resource_id: str,
        *,
        started_at: float,
        deadline: float | None = None,
        history: Iterable[str] = (),
    ) -> None:
        self.goal = goal
        self.project_id = project_id
        self.resource_id = resource_id
        self.started_at = started_at
        self.deadline = math.inf if deadline is None else deadline
        self.history = list(history)[-HISTORY_LENGTH:]

    def observe(self, reading: Reading | Status, now: float) -> WaitResult | None:
        """The result once the status read ends the wait, else None (keep waiting).

        A :class:`Reading` that says the resource has finished fails the wait short of the goal,
        whatever the status, so a status nobody documented cannot hold a wait until its timeout.
        """
        status, finished, execution = reading if isinstance(reading, Reading) else (reading, False, None)
        if not self.history or self.history[-1] != str(status):
            self.history = [*self.history, str(status)][-HISTORY_LENGTH:]
        ended = None if execution is None else {"execution": dict(execution)}
        if status in self.goal.target:
            return self._result(Verdict.REACHED, now, status, **(ended or {}))
        if finished or (status in self.goal.failure and now - self.started_at >= self.goal.grace_period):
            return self._result(Verdict.FAILED, now, status, **(ended or {}))
        if now >= self.deadline:
            return self._result(Verdict.TIMED_OUT, now, status)
        return None

    def scope(self) -> dict[str, Any]:
        """What names the watched resource besides its project and id, as its trigger's kwargs."""
        return {}

    def error(self, exc: Exception, now: float) -> WaitResult:
        status = self.history[-1] if self.history else None
        return self._result(
            Verdict.ERROR,
            now,
            status,
            message=f"{type(exc).__name__}: {exc}",
            error_type=type(exc).__name__,
            status_code=getattr(exc, "status_code", None),
            cause=exc,
        )

    def next_poll(self, interval: float, now: float) -> float:
        """Seconds to sleep before the next read, never past the deadline."""
        return max(0.0, min(interval, self.deadline - now))

    def _result(self, verdict: Verdict, now: float, status: Status | str | None, **details: Any) -> WaitResult:
        return WaitResult(
            verdict=verdict,
            project_id=self.project_id,
            resource_id=self.resource_id,
            goal=self.goal,
            status=None if status is None else str(status),
            history=list(self.history),
            waited=round(now - self.started_at, 3),
            **details,
        )


def conclude(
    result: WaitResult, *, name: str | None = None, detail: str | None = None, execution_message: str | None = None
) -> Status:
    """Return the status reached, or raise an error naming what was watched and its recent statuses.

    ``name`` replaces the default label (``streaming pipeline <id>``); ``detail`` (what was done on a
    timeout) and an execution's own message end the message.
    """
    kind = result.goal.kind
    if result.verdict is Verdict.REACHED:
        return kind.status_type(result.status or "")
    seen = " -> ".join(result.history) or "none"
    execution_id = result.execution_id
    label = f"{name or kind} {result.resource_id} (project {result.project_id})"
    if name and kind is StatusKind.PIPELINE_EXECUTION:
        label = f"{name}, execution {result.resource_id} (project {result.project_id}),"
    elif kind is StatusKind.PIPELINE_RUNS:
        pipeline = name or f"DPC pipeline {result.resource_id!r}"
        label = f"{pipeline} (project {result.project_id})"
        if execution_id is not None:
            label = f"{pipeline}, execution {execution_id} (project {result.project_id}),"
    if result.verdict is Verdict.FAILED:
        text = (
            f"{label} is {result.status} after {result.waited:.0f} s while waiting for "
            f"{result.goal.describe()}; recent statuses: {seen}"
        )
    elif result.verdict is Verdict.TIMED_OUT:
        left = "it was left as it is, " if detail is None else ""
        text = (
            f"{label} did not reach {result.goal.describe()} within {result.waited:.0f} s; {left}last status "
            f"{result.status}; recent statuses: {seen}"
        )
    else:
        text = (
            f"could not read the status of {label} while waiting for {result.goal.describe()}: "
            f"{result.message}; recent statuses: {seen}"
        )
        raise _api_error_class(result.error_type)(text, status_code=result.status_code) from result.cause
    if result.verdict is Verdict.FAILED and not kind.status_type(result.status or "").is_known:
        thing = "execution" if kind is StatusKind.PIPELINE_RUNS else kind
        text += f"; DPC says the {thing} has finished, with a status this provider does not know"
    if detail:
        text += f"; {detail}"
    if execution_message:
        text += f"; the execution's message: {execution_message}"
    if kind.status_type is ExecutionStatus:
        raise DpcPipelineExecutionError(
            text,
            execution_id=execution_id,
            status=result.status,
            statuses=result.history,
            execution_message=execution_message,
        )
    raise DpcPipelineStateError(text, pipeline_id=result.resource_id, statuses=result.history)


def conclude_error(result: WaitResult) -> None:
    """Raise as :func:`conclude` does when the wait ended on an API error; else do nothing."""
    if result.verdict is Verdict.ERROR:
        conclude(result)


def _api_error_class(name: str | None) -> type[DpcApiError]:
    """The :class:`DpcApiError` subclass called ``name``, or DpcApiError itself."""
    found = getattr(exceptions, name or "", None)
    return found if isinstance(found, type) and issubclass(found, DpcApiError) else DpcApiError


# ---- pipeline executions ------------------------------------------------------------------------

#: An execution that ended any other way than SUCCESS failed its task (SKIPPED too: the pipeline
#: did not run, so what follows would read stale data; FORBIDDEN, which the service answers though
#: the reference does not list it). RUNNING and CANCELLING are waited through, and so are UNKNOWN and
#: statuses nobody documented until DPC says the execution has finished (see :func:`ask_if_finished`).
EXECUTION_FAILURES = (
    ExecutionStatus.FAILED,
    ExecutionStatus.CANCELLED,
    ExecutionStatus.SKIPPED,
    ExecutionStatus.FORBIDDEN,
)
#: The statuses of an execution that still runs, whatever DPC says of its finishing: it never ends
#: with one of these.
EXECUTION_UNDER_WAY = frozenset({ExecutionStatus.RUNNING, ExecutionStatus.CANCELLING})
#: The statuses the API reference documents as saying whether an execution has ended.
_EXECUTION_TELLING = frozenset(
    {
        ExecutionStatus.RUNNING,
        ExecutionStatus.CANCELLING,
        ExecutionStatus.SUCCESS,
        ExecutionStatus.FAILED,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.SKIPPED,
    }
)


def ask_if_finished(status: ExecutionStatus) -> bool:
    """Whether a wait that read ``status`` must also read whether the execution has finished: for
    any status the reference does not document as telling (UNKNOWN, FORBIDDEN, one nobody
    documented). So a wait deferred before this version knew FORBIDDEN, whose stored goal does not
    name it, still ends when the execution has."""
    return status not in _EXECUTION_TELLING


def execution_under_way(reading: Reading) -> bool:
    """Whether an execution still runs: RUNNING, or a status that does not tell while DPC has not
    said it finished. A retried task waits for such an execution of its earlier try."""
    status = ExecutionStatus(reading.status)
    return status is ExecutionStatus.RUNNING or (ask_if_finished(status) and not reading.finished)


def execution_goal() -> StatusGoal:
    """The goal of a wait on a pipeline execution: SUCCESS, failing on any other end."""
    return StatusGoal.of(ExecutionStatus.SUCCESS, EXECUTION_FAILURES, kind=StatusKind.PIPELINE_EXECUTION)


def execution_ended(reading: Reading) -> bool:
    """Whether an execution has ended: SUCCESS or a failure status, or any status that does not tell
    (UNKNOWN, one nobody documented) once DPC says it finished. RUNNING and CANCELLING have not."""
    status = ExecutionStatus(reading.status)
    return status in _ENDING or (ask_if_finished(status) and reading.finished)


_ENDING = frozenset({ExecutionStatus.SUCCESS, *EXECUTION_FAILURES})


# ---- a pipeline's own runs: the next execution DPC (or anyone) starts ---------------------------

#: The status a read of a pipeline's executions records while none counts yet.
NO_EXECUTION = ExecutionStatus("NONE")


def runs_goal(fail_on_failure: bool = True) -> StatusGoal:
    """The goal of a wait for a pipeline's next successful execution: SUCCESS; any other end fails
    the wait unless ``fail_on_failure`` is off, when the wait goes on for the next success."""
    failure = EXECUTION_FAILURES if fail_on_failure else ()
    return StatusGoal.of(ExecutionStatus.SUCCESS, failure, kind=StatusKind.PIPELINE_RUNS)


def execution_event(project_id: str, pipeline_name: str, environment_name: str, execution: Any) -> dict[str, Any]:
    """What is told of an execution that ended a wait or fired an event trigger: the pipeline as it
    was asked for, the execution's id, status, times (as DPC wrote them) and its own message."""
    return {
        "project_id": project_id,
        "pipeline_name": pipeline_name,
        "environment_name": environment_name,
        "pipeline_execution_id": execution.pipeline_execution_id,
        "status": str(execution.status),
        "started_at": execution.started_at,
        "finished_at": execution.finished_at,
        "message": execution.message,
    }


def _of_pipeline(asked: str, environment_name: str, executions: Iterable[PipelineExecution]) -> list[PipelineExecution]:
    """The executions of the pipeline ``asked`` names in ``environment_name``, by the one name rule;
    a name standing for two pipelines (``load`` in two folders) is a conflict, never a guess."""
    from airflow_provider_dpc.models import require_one_pipeline

    found = _named(asked, environment_name, executions)
    require_one_pipeline(asked, (e.pipeline_name for e in found), environment_name, field="pipeline_name", doing="run")
    return found


def _named(asked: str, environment_name: str, executions: Iterable[PipelineExecution]) -> list[PipelineExecution]:
    """The executions in ``environment_name`` of every pipeline the name ``asked`` stands for."""
    from airflow_provider_dpc.models import same_pipeline

    return [
        e
        for e in executions
        if same_pipeline(asked, e.pipeline_name) and e.environment_name in (None, environment_name)
    ]


class PipelineRunsWatch(StatusWatch):
    """Judges a pipeline's executions, listed read after read, while a task waits for one that
    started after ``started_after`` to succeed. ``resource_id`` is the pipeline's name.

    Which count: executions of the pipeline named (the one name rule, so "Pipeline 1" is never
    "Pipeline 10") in the environment, whose ``startedAt`` is after the moment; one without a
    readable ``startedAt`` never counts, so a stale run cannot open the gate. How they are judged:

    * a success wins: once any counted execution has ended in SUCCESS the wait is over (the first
      such), whatever else ended before or after it;
    * otherwise, with ``fail_on_failure`` (the goal names failure statuses), the first counted
      execution that ended any other way (FAILED, FORBIDDEN, CANCELLED, SKIPPED, or a status nobody
      documented once DPC says it finished) fails the wait; without it, it is logged once by this watch
      and the wait goes on for a later execution;
    * runs under way are waited for. Each read records the newest counted execution's status, or
      ``NONE`` while there is none.

    So a read that sees an earlier failure and a later success succeeds; one that came between
    them failed already (its retry, reading both, succeeds).
    """

    def __init__(
        self,
        goal: StatusGoal,
        project_id: str,
        pipeline_name: str,
        *,
        environment_name: str,
        started_after: datetime,
        log: logging.Logger | Any = None,
        **state: Unpack[WatchState],
    ) -> None:
        super().__init__(goal, project_id, pipeline_name, **state)
        self.environment_name = environment_name
        self.started_after = started_after if started_after.tzinfo else started_after.replace(tzinfo=UTC)
        self.log = log or logging.getLogger(__name__)
        self._told: set[str] = set()

    @property
    def pipeline_name(self) -> str:
        return self.resource_id

    def scope(self) -> dict[str, Any]:
        return {"environment_name": self.environment_name, "started_after": self.started_after.isoformat()}

    def judge(self, executions: Iterable[PipelineExecution]) -> Reading:
        """What a list of the pipeline's executions (any order, any pipelines) says for the wait."""
        counted = [
            e
            for e in _of_pipeline(self.pipeline_name, self.environment_name, executions)
            if (started := e.started) is not None and started > self.started_after
        ]
        counted.sort(key=lambda e: (e.started, e.pipeline_execution_id))
        ended = [e for e in counted if execution_ended(Reading.of(e))]
        succeeded = [e for e in ended if e.status is ExecutionStatus.SUCCESS]
        short = [e for e in ended if e.status is not ExecutionStatus.SUCCESS]
        decisive = succeeded[0] if succeeded else short[0] if short and self.goal.failure else None
        for execution in short:
            if execution is not decisive and execution.pipeline_execution_id not in self._told:
                self._told.add(execution.pipeline_execution_id)
                self.log.warning(
                    "execution %s of DPC pipeline %r in %r ended %s%s; waiting for one that succeeds",
                    execution.pipeline_execution_id,
                    self.pipeline_name,
                    self.environment_name,
                    execution.status,
                    f": {execution.message}" if execution.message else "",
                )
        if decisive is not None:
            told = execution_event(self.project_id, self.pipeline_name, self.environment_name, decisive)
            return Reading(decisive.status, True, told)
        return Reading(counted[-1].status if counted else NO_EXECUTION, False)


class ReadWindow:
    """How far back the next read of the executions list reaches, read after read: the earliest
    start of an execution still under way, or the newest start seen, less :data:`MARGIN`, as DPC's
    own clock says, never moving back; an execution under way holds it back by :data:`HOLD` at
    most, so one stuck for days does not make every read list days of runs. Before any execution is
    seen, :data:`HOLD` back. A start dated after ``now`` (a clock error, local times read as UTC)
    counts as ``now``, so no read's bound passes the present less :data:`MARGIN`."""

    #: How far before the newest start seen the next read reaches, for an execution the list
    #: shows a little late.
    MARGIN = timedelta(minutes=10)
    #: How long an execution under way keeps its start in the reads; one still running after that
    #: is not seen to end.
    HOLD = timedelta(days=1)

    def __init__(self) -> None:
        self.started_after: datetime | None = None

    def since(self, now: datetime) -> datetime:
        """The next read's ``startedAfter``: :attr:`started_after`, or :data:`HOLD` before ``now``'s
        hour while no execution has been seen (whole hours, so that the watchers of one pipeline
        ask the same list and share its reads); never later than ``now`` less :data:`MARGIN`."""
        floor = self.started_after or (now - self.HOLD).replace(minute=0, second=0, microsecond=0)
        return min(floor, now - self.MARGIN)

    def advance(self, executions: Iterable[PipelineExecution], now: datetime) -> None:
        """Move the bound on past what a read found."""
        starts = [(min(e.started, now), e) for e in executions if e.started is not None]
        if not starts:
            return
        newest = max(start for start, _ in starts)
        under_way = [start for start, e in starts if not execution_ended(Reading.of(e))]
        moved = max(min([*under_way, newest]), newest - self.HOLD) - self.MARGIN
        if self.started_after is None or moved > self.started_after:
            self.started_after = moved


class NewEndings(ReadWindow):
    """Which executions of a pipeline have newly ended with one of ``statuses``, list after list:
    what an event trigger fires for, once per execution.

    Its first list read is the starting point: executions ended by then never count. Executions
    still under way then count when they end. The next read reaches back as :class:`ReadWindow`
    says, over this pipeline's executions.

    What it has fired for, :meth:`memory` (the bound and the ids of the ended executions above it),
    is what a watcher keeps across a restart: :meth:`restore` makes the next read fire every
    execution that ended meanwhile, oldest first, and none it fired before.

    Runs of another pipeline the name also stands for (``scratch/load.orch.yaml`` beside
    ``load.orch.yaml`` for ``load``) are reported once and skipped (see
    :func:`~airflow_provider_dpc.models.closest_pipelines`), so later runs still fire.
    """

    def __init__(
        self,
        pipeline_name: str,
        environment_name: str,
        statuses: Iterable[str],
        *,
        log: logging.Logger | Any = None,
    ) -> None:
        self.pipeline_name = pipeline_name
        self.environment_name = environment_name
        self.statuses = frozenset(str(s) for s in statuses)
        self.log = log or logging.getLogger(__name__)
        super().__init__()
        self._ended: dict[str, datetime | None] = {}  # execution id -> its start
        self._first = True
        self._reported: set[frozenset[str]] = set()

    def memory(self) -> dict[str, Any]:
        """What the watch has fired for, as JSON: the next read's bound and the ended executions above it."""
        return {
            "started_after": None if self.started_after is None else self.started_after.isoformat(),
            "ended": {key: None if start is None else start.isoformat() for key, start in self._ended.items()},
        }

    def restore(self, memory: Mapping[str, Any]) -> None:
        """Go on from :meth:`memory` as a watch before a restart left it: its next read is no starting point."""
        from airflow_provider_dpc.models import parse_time

        self.started_after = parse_time(memory.get("started_after"))
        self._ended = {str(key): parse_time(start) for key, start in dict(memory.get("ended") or {}).items()}
        self._first = False

    def observe(self, executions: Iterable[PipelineExecution], now: datetime | None = None) -> list[PipelineExecution]:
        """The executions of this list that ended since the last one, with a watched status."""
        now = now or datetime.now(UTC)
        floor = self.started_after
        found = [
            e
            for e in self._watched(executions)
            if floor is None or e.started is None or e.started > floor  # as the list's startedAfter keeps them
        ]
        found.sort(key=lambda e: (e.started or datetime.max.replace(tzinfo=UTC), e.pipeline_execution_id))
        new: list[PipelineExecution] = []
        for execution in found:
            if not execution_ended(Reading.of(execution)) or execution.pipeline_execution_id in self._ended:
                continue
            self._ended[execution.pipeline_execution_id] = execution.started
            if not self._first and str(execution.status) in self.statuses:
                new.append(execution)
        self._first = False
        self.advance(found, now)
        # Ended executions started before the bound are never listed again.
        kept = self.started_after
        self._ended = {k: v for k, v in self._ended.items() if v is None or kept is None or v > kept}
        return new

    def _watched(self, executions: Iterable[PipelineExecution]) -> list[PipelineExecution]:
        """The executions of the watched pipeline in the environment; those of another pipeline the
        name stands for too are reported once and left out."""
        from airflow_provider_dpc.models import closest_pipelines

        found = _named(self.pipeline_name, self.environment_name, executions)
        watched, others = closest_pipelines(self.pipeline_name, (e.pipeline_name for e in found))
        skipped = set(others) | (set(watched) if len(watched) > 1 else set())
        if not skipped:
            return found
        names = frozenset([*watched, *others])
        if names not in self._reported:
            self._reported.add(names)
            kept = "none of them" if len(watched) > 1 else repr(watched[0])
            self.log.error(
                "DPC pipeline name %r stands for %d pipelines run in environment %r: %s; watching %s and "
                "skipping the runs of the others (name the pipeline with its folder)",
                self.pipeline_name,
                len(names),
                self.environment_name,
                ", ".join(map(repr, sorted(names))),
                kept,
            )
        return [e for e in found if e.pipeline_name not in skipped]


# ---- agents -------------------------------------------------------------------------------------

#: Agent statuses that mean the agent cannot run a pipeline now. The reference shows ``running`` for
#: a healthy agent and documents no other value, so any other status is let through: only what is
#: plainly down stops a START.
AGENT_DOWN_STATUSES = frozenset({"stopped", "stopping", "failed", "error", "offline", "disconnected", "terminated"})


def agent_down(agent: Any) -> str | None:
    """Why ``agent`` (an :class:`~airflow_provider_dpc.models.Agent`) cannot run a pipeline now, or None.

    A streaming pipeline cannot start while its agent is not connected: the START is acknowledged
    and then nothing happens, so a task would wait out its whole timeout.
    """
    status = (agent.agent_status or "").strip()
    if agent.connected is False:
        return f"is not connected (agentStatus {status or 'not given'})"
    if status.lower() in AGENT_DOWN_STATUSES:
        return f"is {status}"
    return None


# ---- holding a pipeline in STREAMING ------------------------------------------------------------

#: What ends a hold on a streaming pipeline: it stopped, or something is stopping it. STARTING and
#: SNAPSHOTTING (it is coming back) and UNKNOWN (transient in practice) are waited through.
DROP_STATUSES = (PipelineStatus.NOT_RUNNING, PipelineStatus.STOPPING)


def hold_goal() -> StatusGoal:
    """The goal of a hold's wait: a drop. Its deadline is the hold's ``until``, so a wait that times
    out has held the pipeline through the window."""
    return StatusGoal.of(DROP_STATUSES)


@dataclass
class HoldRecord:
    """What a hold has done so far, carried from wait to wait (and through deferrals) as a dict."""

    restarts: int = 0
    seconds_not_streaming: float = 0.0
    history: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"restarts": self.restarts, "seconds_not_streaming": self.seconds_not_streaming, "history": self.history}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HoldRecord:
        return cls(int(data["restarts"]), float(data["seconds_not_streaming"]), list(data.get("history") or []))

    def add(self, result: WaitResult) -> None:
        """Keep the recent statuses of every wait, for the message of a failure."""
        for status in result.history:
            if not self.history or self.history[-1] != status:
                self.history.append(status)
        self.history = self.history[-HISTORY_LENGTH:]

    def outcome(self) -> dict[str, Any]:
        """What the hold returns: restarts made and how long the pipeline was not streaming."""
        return {"restarts": self.restarts, "seconds_not_streaming": round(self.seconds_not_streaming, 1)}

    def dropped(self, project_id: str, pipeline_id: str, status: str, at: float, max_restarts: int) -> DpcError:
        """The error that ends a hold whose pipeline dropped with no restart left."""
        when = datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="seconds")
        seen = " -> ".join(self.history) or "none"
        return DpcPipelineStateError(
            f"streaming pipeline {pipeline_id} (project {project_id}) dropped to {status} at {when} while it "
            f"was held streaming, and {self.restarts} of max_restarts={max_restarts} restart(s) are used up; "
            f"recent statuses: {seen}",
            pipeline_id=pipeline_id,
            statuses=self.history,
        )
