"""Operators that create, start, stop and delete DPC streaming pipelines."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_dpc._compat import BaseOperator, Context, conf
from airflow_provider_dpc._tasks import (
    PIPELINE_FIELDS,
    PROJECT_FIELDS,
    PipelineTaskMixin,
    ProjectTaskMixin,
    check_flag,
    check_wait_arguments,
    is_template,
)
from airflow_provider_dpc.connection_ui import DEFAULT_CONN_NAME
from airflow_provider_dpc.enums import PipelineCommand, PipelineStatus
from airflow_provider_dpc.exceptions import (
    DpcApiError,
    DpcConflictError,
    DpcNotFoundError,
    DpcPipelineStateError,
    DpcValidationError,
    FieldError,
)
from airflow_provider_dpc.hooks._retry import RetryPolicy
from airflow_provider_dpc.links.dpc import XCOM_PIPELINE_URL, DpcStreamingPipelineLink, pipeline_url
from airflow_provider_dpc.memory import TaskMemory
from airflow_provider_dpc.operators._lineage import DefinitionLineageMixin, FetchedPipelineLineageMixin
from airflow_provider_dpc.status import (
    HoldRecord,
    StatusGoal,
    StatusWatch,
    Verdict,
    WaitResult,
    agent_down,
    conclude,
    conclude_error,
    hold_goal,
)
from airflow_provider_dpc.waiting import WaitingMixin

if TYPE_CHECKING:
    from airflow_provider_dpc.models import StreamingPipeline, StreamingPipelineDefinition
    from airflow_provider_dpc.windows import Window, WindowLength

__all__ = [
    "DpcCreateStreamingPipelineOperator",
    "DpcDeleteStreamingPipelineOperator",
    "DpcKeepStreamingOperator",
    "DpcStartStreamingPipelineOperator",
    "DpcStopStreamingPipelineOperator",
]

XCOM_PIPELINE_ID = "pipeline_id"
#: The task state key (Airflow 3.3's ``task_state_store``) holding the pipeline a create's try made or chose.
PIPELINE_STATE_KEY = "dpc_streaming_pipeline"
RUNNING = (PipelineStatus.STARTING, PipelineStatus.SNAPSHOTTING, PipelineStatus.STREAMING)


class _PipelineOperator(ProjectTaskMixin, BaseOperator):
    """A task acting on a streaming pipeline: its connection and project, and the pipeline's link."""

    template_fields: Sequence[str] = PROJECT_FIELDS
    operator_extra_links = (DpcStreamingPipelineLink(),)
    ui_color = "#e0f2ef"
    #: (project id, pipeline id) once this run has resolved them; lineage reads them from here.
    resolved_pipeline: tuple[str, str] | None = None

    def __init__(
        self,
        *,
        dpc_conn_id: str = DEFAULT_CONN_NAME,
        project_id: str | None = None,
        project_name: str | None = None,
        dpc_retry_policy: RetryPolicy | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._bind_project(dpc_conn_id, project_id, project_name, dpc_retry_policy)

    def _announce(self, context: Context, project_id: str, pipeline_id: str) -> None:
        """Push the pipeline id and its link first, so a failure later still leaves them in XCom."""
        self.resolved_pipeline = (project_id, pipeline_id)
        ti = context["ti"]
        ti.xcom_push(key=XCOM_PIPELINE_ID, value=pipeline_id)
        settings = self.hook.settings
        url = pipeline_url(settings.app_url, project_id, pipeline_id, settings.pipeline_url_template)
        ti.xcom_push(key=XCOM_PIPELINE_URL, value=url)


class _WaitingPipelineOperator(PipelineTaskMixin, WaitingMixin, _PipelineOperator):
    """A task on an existing pipeline (by id or name) that waits for its status, polled or deferred."""

    template_fields: Sequence[str] = (*PIPELINE_FIELDS, "deferrable")
    #: Seconds a wait may take; None waits as long as it takes (see :class:`_TimedPipelineOperator`).
    timeout: float | None = None

    def __init__(
        self,
        *,
        pipeline_id: str | None = None,
        pipeline_name: str | None = None,
        deferrable: bool | str = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_wait_arguments(poll_interval, None)
        self.pipeline_id = pipeline_id
        self.pipeline_name = pipeline_name
        self.deferrable = check_flag(deferrable, "deferrable")
        self.poll_interval = poll_interval

    def _find(self, context: Context, project_id: str | None = None) -> tuple[str, str]:
        """The project and pipeline ids, resolved through the API where names were given, and announced."""
        project_id = project_id or self.resolve_project()
        pipeline_id = self.resolve_pipeline(project_id)
        self._announce(context, project_id, pipeline_id)
        return project_id, pipeline_id

    def _wait(self, context: Context, project_id: str, pipeline_id: str, goal: StatusGoal, started_at: float) -> Any:
        """Wait for ``goal`` (the trigger enforces the deadline when deferred), then :meth:`after_wait`."""
        deadline = None if self.timeout is None else started_at + self.timeout
        watch = StatusWatch(goal, project_id, pipeline_id, started_at=started_at, deadline=deadline)
        return self.wait(context, watch, self.poll_interval)

    def execute_complete(self, context: Context, event: WaitResult | dict[str, Any]) -> Any:
        result = WaitResult.of(event)
        self.resolved_pipeline = (result.project_id, result.pipeline_id)  # also after a deferral
        status = conclude(result)
        self.log.info("pipeline %s is %s after %.0f s", result.pipeline_id, status, result.waited)
        return self.after_wait(context, result.project_id, result.pipeline_id)

    def after_wait(self, context: Context, project_id: str, pipeline_id: str) -> Any:
        return pipeline_id

    def _require_agent(self, project_id: str, pipeline_id: str) -> None:
        """Fail now when the pipeline's agent is down; a failed read of the agent only warns."""
        agent_id = self.hook.get_streaming_pipeline(project_id, pipeline_id).agent_id
        if not agent_id:
            return
        try:
            agent = self.hook.get_agent(agent_id)
        except DpcNotFoundError:
            raise DpcPipelineStateError(
                f"streaming pipeline {pipeline_id} (project {project_id}) runs on agent {agent_id}, which does "
                "not exist; START would be ignored",
                pipeline_id=pipeline_id,
            ) from None
        except DpcApiError as exc:
            self.log.warning("could not read agent %s, starting without checking it: %s", agent_id, exc)
            return
        reason = agent_down(agent)
        if reason is not None:
            raise DpcPipelineStateError(
                f"agent {agent.name or agent_id} ({agent_id}) of streaming pipeline {pipeline_id} (project "
                f"{project_id}) {reason}; a pipeline cannot start while its agent is down. Start the agent "
                "and retry, or set check_agent=False to send START anyway",
                pipeline_id=pipeline_id,
            )
        self.log.info("agent %s of pipeline %s is %s", agent_id, pipeline_id, agent.agent_status or "up")


class _TimedPipelineOperator(_WaitingPipelineOperator):
    """A waiting task whose wait ends after ``timeout`` seconds (an hour by default)."""

    def __init__(self, *, timeout: float | None = 3600.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_wait_arguments(self.poll_interval, timeout)
        self.timeout = timeout


class DpcCreateStreamingPipelineOperator(DefinitionLineageMixin, _PipelineOperator):
    """Create a streaming pipeline, or reuse or update the one of the same name.

    The definition is validated locally before any call. The project is searched for a pipeline of
    the same name first, so a retried task never creates a second one. Where Airflow keeps task
    state across tries (``task_state_store``, Airflow 3.3+), a retry reads the pipeline its earlier
    try made by its id instead, and searches only if that pipeline is gone. Returns the pipeline id.

    :param definition: a dict, a :class:`~airflow_provider_dpc.models.StreamingPipelineDefinition`,
        or the path of a ``.json`` file (rendered as a template, like any templated file).
    :param if_exists: what to do when a pipeline of that name exists: ``fail``, ``reuse`` it as it
        is, or ``update`` it to this definition.
    """

    template_fields: Sequence[str] = (*PROJECT_FIELDS, "definition")
    template_ext: Sequence[str] = (".json",)
    template_fields_renderers = {"definition": "json"}

    def __init__(
        self,
        *,
        definition: Mapping[str, Any] | StreamingPipelineDefinition | str,
        if_exists: Literal["fail", "reuse", "update"] = "fail",
        **kwargs: Any,
    ) -> None:
        _drop_unused(type(self), kwargs, ("pipeline_id", "pipeline_name", "deferrable", "poll_interval", "timeout"))
        super().__init__(**kwargs)
        if if_exists not in ("fail", "reuse", "update"):
            raise ValueError(f"if_exists must be 'fail', 'reuse' or 'update', got {if_exists!r}")
        self.definition = definition
        self.if_exists = if_exists

    def execute(self, context: Context) -> str:
        from airflow_provider_dpc.models import load_definition, validate_definition

        definition = self.validated_definition = validate_definition(load_definition(self.definition))
        project_id = self.resolve_project()
        memory = TaskMemory(context, PIPELINE_STATE_KEY, "pipeline_id")
        earlier = self._earlier_pipeline(memory, project_id, definition.name)
        existing = earlier or self.hook.find_streaming_pipeline_by_name(project_id, definition.name)
        if existing is None:
            pipeline = self.hook.create_streaming_pipeline(project_id, definition)
            self.log.info("created streaming pipeline %r: %s", definition.name, pipeline.streaming_pipeline_id)
        elif self.if_exists == "update":
            pipeline = self.hook.update_streaming_pipeline(project_id, existing.streaming_pipeline_id, definition)
            self.log.info("updated streaming pipeline %r: %s", definition.name, pipeline.streaming_pipeline_id)
        elif (
            self.if_exists == "reuse"
            or earlier is not None
            or self._is_own_earlier_try(context, existing.definition(), definition)
        ):
            pipeline = existing
            self.log.info("reusing streaming pipeline %r: %s", definition.name, pipeline.streaming_pipeline_id)
        else:
            raise DpcConflictError(
                f"a streaming pipeline named {definition.name!r} already exists in project {project_id} "
                f"({existing.streaming_pipeline_id}); set if_exists='reuse' or 'update' to use it",
                errors=[FieldError("name", "already exists")],
            )
        pipeline_id = pipeline.streaming_pipeline_id
        memory.keep(project_id, pipeline_id)
        self._announce(context, project_id, pipeline_id)
        return pipeline_id

    def _earlier_pipeline(self, memory: TaskMemory, project_id: str, name: str) -> StreamingPipeline | None:
        """The pipeline an earlier try of this task made or chose, read by its id, while it exists
        under the same name."""
        pipeline = memory.recall(project_id, self.hook.get_streaming_pipeline)
        if pipeline is None or pipeline.name != name:
            return None
        self.log.info("streaming pipeline %s of an earlier try, read by its id", pipeline.streaming_pipeline_id)
        return pipeline

    def _is_own_earlier_try(
        self, context: Context, existing: StreamingPipelineDefinition, wanted: StreamingPipelineDefinition
    ) -> bool:
        # A retry after a crash between the POST and the XCom push finds the pipeline its own
        # earlier try created: same definition, so it is not a conflict.
        return int(getattr(context["ti"], "try_number", 1) or 1) > 1 and existing.to_wire() == wanted.to_wire()


class DpcStartStreamingPipelineOperator(FetchedPipelineLineageMixin, _TimedPipelineOperator):
    """Start a streaming pipeline and wait until it is really STREAMING.

    Idempotent: a STREAMING pipeline is left alone, a STARTING or SNAPSHOTTING one is only waited
    on, so a retried task reattaches instead of sending START again. The wait fails when the
    pipeline falls to NOT_RUNNING once ``grace_period`` has passed since START, or when ``timeout``
    passes; the message names the pipeline and its recent statuses. On a timeout the pipeline is
    left as it is (it may still reach STREAMING).

    Before sending START it reads the pipeline's agent: a streaming pipeline cannot start while its
    agent is not connected, so the task fails at once, naming the agent, its status and the
    pipeline, instead of waiting out its timeout.

    With ``window_length`` it opens a scheduled window (see :mod:`airflow_provider_dpc.windows`):
    the window runs from when the task's run was due for that long, and once it has passed the task
    sends nothing (not even a read) and is skipped, saying why in its log; skipped, it skips the
    window's teardown stop too, so a backfill or a cleared old run never stops today's stream.

    :param wait_for_streaming: wait for STREAMING (default) or return once START is accepted.
    :param grace_period: seconds after START during which NOT_RUNNING is not yet a failure.
    :param check_agent: read the pipeline's agent before START (two calls: the pipeline, for its
        agent id, and the agent); False skips it.
    :param window_length: the run's window, when this task opens one: seconds, a timedelta or an
        ISO 8601 duration (templated).
    """

    template_fields: Sequence[str] = (*PIPELINE_FIELDS, "deferrable", "window_length")

    def __init__(
        self,
        *,
        wait_for_streaming: bool = True,
        grace_period: float = 30.0,
        check_agent: bool = True,
        window_length: WindowLength | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wait_for_streaming = wait_for_streaming
        self.grace_period = grace_period
        self.check_agent = check_agent
        self.window_length = _checked_length(window_length)

    def execute(self, context: Context) -> Any:
        if self.window_length is not None:
            window = _window(context, self.window_length)
            window.skip_if_closed("not starting the pipeline")
            self.log.info("%s", window.explain())
        project_id, pipeline_id = self._find(context)
        status = self.hook.get_status(project_id, pipeline_id)
        if status is PipelineStatus.STREAMING:
            self.log.info("pipeline %s is already STREAMING", pipeline_id)
            return pipeline_id
        if status is PipelineStatus.STOPPING:
            status = self._wait_out_stopping(project_id, pipeline_id)
        if status in RUNNING:
            self.log.info("pipeline %s is already %s; not sending START", pipeline_id, status)
        else:
            if self.check_agent:
                self._require_agent(project_id, pipeline_id)
            self.hook.send_command(project_id, pipeline_id, PipelineCommand.START)
            self.log.info("sent START to pipeline %s (it was %s)", pipeline_id, status)
        if not self.wait_for_streaming:
            return pipeline_id
        goal = StatusGoal.of(PipelineStatus.STREAMING, PipelineStatus.NOT_RUNNING, self.grace_period)
        return self._wait(context, project_id, pipeline_id, goal, started_at=time.time())

    def _wait_out_stopping(self, project_id: str, pipeline_id: str) -> PipelineStatus:
        # A START sent while the agent is still stopping would be ignored; stopping takes seconds.
        goal = StatusGoal.of([PipelineStatus.NOT_RUNNING, *RUNNING])
        now = time.time()
        watch = StatusWatch(goal, project_id, pipeline_id, started_at=now, deadline=now + (self.timeout or 600))
        self.log.info("pipeline %s is STOPPING; waiting for it to stop before START", pipeline_id)
        return PipelineStatus(conclude(self.poll_status(watch, min(self.poll_interval, 5.0))))


class DpcStopStreamingPipelineOperator(_TimedPipelineOperator):
    """Stop a streaming pipeline and wait until it is NOT_RUNNING (idempotent).

    :param wait_for_stopped: wait for NOT_RUNNING (default) or return once STOP is accepted.
    """

    def __init__(self, *, wait_for_stopped: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wait_for_stopped = wait_for_stopped

    def execute(self, context: Context) -> Any:
        project_id, pipeline_id = self._find(context)
        status = self.hook.get_status(project_id, pipeline_id)
        if not _stop(self, project_id, pipeline_id, status) or not self.wait_for_stopped:
            return pipeline_id
        return self._wait(context, project_id, pipeline_id, StatusGoal.of(PipelineStatus.NOT_RUNNING), time.time())


class DpcDeleteStreamingPipelineOperator(_TimedPipelineOperator):
    """Delete a streaming pipeline, stopping it first when it runs.

    :param stop_if_running: stop a running pipeline and wait for NOT_RUNNING before deleting;
        when False, a running pipeline fails the task instead.
    :param missing_ok: succeed when the pipeline does not exist.
    """

    def __init__(self, *, stop_if_running: bool = True, missing_ok: bool = False, **kwargs: Any) -> None:
        _drop_unused(type(self), kwargs, ("wait_for_stopped",))
        super().__init__(**kwargs)
        self.stop_if_running = stop_if_running
        self.missing_ok = missing_ok

    def execute(self, context: Context) -> Any:
        project_id = self.resolve_project()  # a missing project is never "nothing to delete"
        try:
            pipeline_id = self._find(context, project_id)[1]
            status = self.hook.get_status(project_id, pipeline_id)
        except DpcNotFoundError:
            if not self.missing_ok:
                raise
            self.log.info(
                "streaming pipeline %s does not exist; nothing to delete", self.pipeline_id or self.pipeline_name
            )
            return None
        if status is not PipelineStatus.NOT_RUNNING:
            if not self.stop_if_running:
                raise DpcConflictError(
                    f"streaming pipeline {pipeline_id} is {status}; stop it first or set stop_if_running=True"
                )
            if _stop(self, project_id, pipeline_id, status):
                return self._wait(
                    context, project_id, pipeline_id, StatusGoal.of(PipelineStatus.NOT_RUNNING), time.time()
                )
        return self.after_wait(context, project_id, pipeline_id)

    def after_wait(self, context: Context, project_id: str, pipeline_id: str) -> Any:
        deleted = self.hook.delete_streaming_pipeline(project_id, pipeline_id, missing_ok=self.missing_ok)
        self.log.info("streaming pipeline %s %s", pipeline_id, "deleted" if deleted else "was already gone")
        return pipeline_id


def _drop_unused(operator: type, kwargs: dict[str, Any], names: Sequence[str]) -> None:
    """Take out of ``kwargs`` the arguments ``operator`` once accepted but never used, with a warning:
    a DAG that passes them keeps parsing until a later release refuses them."""
    for name in names:
        if name in kwargs:
            del kwargs[name]
            warnings.warn(
                f"{operator.__name__} does not use {name!r}; it is ignored, and a later release will refuse it",
                DeprecationWarning,
                stacklevel=4,
            )


def _stop(task: _WaitingPipelineOperator, project_id: str, pipeline_id: str, status: PipelineStatus) -> bool:
    """Send STOP unless the pipeline is already stopped or stopping; False when it is NOT_RUNNING."""
    if status is PipelineStatus.NOT_RUNNING:
        task.log.info("pipeline %s is already NOT_RUNNING", pipeline_id)
        return False
    if status is not PipelineStatus.STOPPING:
        task.hook.send_command(project_id, pipeline_id, PipelineCommand.STOP)
        task.log.info("sent STOP to pipeline %s (it was %s)", pipeline_id, status)
    return True


class DpcKeepStreamingOperator(_WaitingPipelineOperator):
    """Hold a streaming pipeline in STREAMING until ``until``, restarting it when it drops.

    The hold is a wait for a drop (NOT_RUNNING or STOPPING) whose deadline is ``until``: polled
    here, or deferred to the triggerer, where it holds no worker slot. When the pipeline drops, START
    is sent again while ``max_restarts`` remain, under the start operator's rules (its agent is
    checked first, and NOT_RUNNING is forgiven for ``grace_period`` after START), and the hold goes
    on once it streams again; with no restart left the task fails at once, naming the pipeline, when
    it dropped and its recent statuses. Each deferral carries what the hold has done, so a triggerer
    restart resumes it with its restart count and history.

    At its end it succeeds and leaves the pipeline running (a window's stop task follows). Returns
    ``{"restarts": n, "seconds_not_streaming": s}``, ``s`` counting from each drop it saw until the
    pipeline streamed again.

    The end is ``until``, or with ``window_length`` the close of the run's scheduled window (see
    :mod:`airflow_provider_dpc.windows`): from when the run was due, for that long, so a late run
    holds only what remains of its window, and a run whose window has passed holds nothing and is
    skipped at once, without a call.

    :param until: when the hold ends: a datetime or an ISO 8601 string (templated); naive times are UTC.
    :param window_length: instead of ``until``, the length of the run's window: seconds, a timedelta
        or an ISO 8601 duration (templated).
    :param max_restarts: how many times a dropped pipeline is started again before the task fails.
    :param grace_period: seconds after a restart's START during which NOT_RUNNING is not yet a failure.
    :param check_agent: read the pipeline's agent before each restart (see the start operator).
    """

    template_fields: Sequence[str] = (*PIPELINE_FIELDS, "deferrable", "until", "window_length")

    def __init__(
        self,
        *,
        until: datetime | str | None = None,
        window_length: WindowLength | None = None,
        max_restarts: int = 0,
        grace_period: float = 30.0,
        check_agent: bool = True,
        poll_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        _drop_unused(type(self), kwargs, ("timeout",))  # ``until`` ends the hold
        super().__init__(poll_interval=poll_interval, **kwargs)
        if (until is None) == (window_length is None):
            raise ValueError(f"{type(self).__name__} {self.task_id!r}: give one of until or window_length")
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be 0 or more, got {max_restarts}")
        self.until = until
        self.window_length = _checked_length(window_length)
        self.max_restarts = max_restarts
        self.grace_period = grace_period
        self.check_agent = check_agent

    def execute(self, context: Context) -> Any:
        deadline = self._deadline(context)  # a bad ``until`` or window fails before any call
        if self.window_length is not None:
            window = _window(context, self.window_length)
            window.skip_if_closed("nothing to hold")
            self.log.info("%s", window.explain())
        project_id, pipeline_id = self._find(context)
        if time.time() >= deadline:
            self.log.info(
                "the hold of pipeline %s ended at %s, before it began",
                pipeline_id,
                datetime.fromtimestamp(deadline, UTC).isoformat(timespec="seconds"),
            )
            return HoldRecord().outcome()
        self.log.info(
            "holding pipeline %s in STREAMING until %s (max_restarts=%d)",
            pipeline_id,
            datetime.fromtimestamp(deadline, UTC).isoformat(timespec="seconds"),
            self.max_restarts,
        )
        return self._hold(context, project_id, pipeline_id, HoldRecord().to_dict())

    def _deadline(self, context: Context) -> float:
        """When the hold ends, as epoch seconds: ``until``, or the close of the run's window."""
        if self.window_length is not None:
            return _window(context, self.window_length).closes.timestamp()
        return _epoch(self.until)  # type: ignore[arg-type]  # __init__ gave one of the two

    def _hold(self, context: Context, project_id: str, pipeline_id: str, record: dict[str, Any]) -> Any:
        """Wait for a drop until the hold's end; then :meth:`hold_ended`."""
        now = time.time()
        deadline = max(now, self._deadline(context))
        watch = StatusWatch(hold_goal(), project_id, pipeline_id, started_at=now, deadline=deadline)
        return self.wait(
            context, watch, self.poll_interval, method="hold_ended", carry={"record": record, "since": now}
        )

    def hold_ended(self, context: Context, event: WaitResult | dict[str, Any]) -> Any:
        """A hold's wait is over: the window closed (success), or the pipeline dropped."""
        result = WaitResult.of(event)
        carry = result.carry or {}
        hold = HoldRecord.from_dict(carry["record"])
        hold.add(result)
        if result.verdict is Verdict.TIMED_OUT:
            self.log.info("pipeline %s held until the hold's end: %s", result.pipeline_id, hold.outcome())
            return hold.outcome()
        conclude_error(result)  # an API error that outlasted the retries ends the hold
        dropped_at = float(carry["since"]) + result.waited
        return self._restart(context, result.project_id, result.pipeline_id, hold, result.status or "", dropped_at)

    def _restart(
        self, context: Context, project_id: str, pipeline_id: str, hold: HoldRecord, status: str, dropped_at: float
    ) -> Any:
        if hold.restarts >= self.max_restarts:
            raise hold.dropped(project_id, pipeline_id, status, dropped_at, self.max_restarts)
        hold.restarts += 1
        self.log.warning(
            "pipeline %s dropped to %s; restart %d of %d", pipeline_id, status, hold.restarts, self.max_restarts
        )
        if self.check_agent:
            self._require_agent(project_id, pipeline_id)
        self.hook.send_command(project_id, pipeline_id, PipelineCommand.START)
        now = time.time()
        goal = StatusGoal.of(PipelineStatus.STREAMING, PipelineStatus.NOT_RUNNING, self.grace_period)
        watch = StatusWatch(goal, project_id, pipeline_id, started_at=now, deadline=max(now, self._deadline(context)))
        carry = {"record": hold.to_dict(), "dropped_at": dropped_at}
        return self.wait(context, watch, self.poll_interval, method="restart_ended", carry=carry)

    def restart_ended(self, context: Context, event: WaitResult | dict[str, Any]) -> Any:
        """A restart's wait is over: streaming again (hold on), failed again, or the window closed."""
        result = WaitResult.of(event)
        carry = result.carry or {}
        hold = HoldRecord.from_dict(carry["record"])
        hold.add(result)
        dropped_at = float(carry["dropped_at"])
        if result.verdict is Verdict.FAILED:  # NOT_RUNNING after the grace period: the restart failed
            return self._restart(context, result.project_id, result.pipeline_id, hold, result.status or "", dropped_at)
        conclude_error(result)
        hold.seconds_not_streaming += time.time() - dropped_at
        if result.verdict is Verdict.TIMED_OUT:
            self.log.warning("the window closed while pipeline %s restarted: %s", result.pipeline_id, hold.outcome())
            return hold.outcome()
        self.log.info("pipeline %s streams again after restart %d", result.pipeline_id, hold.restarts)
        return self._hold(context, result.project_id, result.pipeline_id, hold.to_dict())


def _checked_length(length: WindowLength | None) -> WindowLength | None:
    """A window length checked when the DAG is parsed, unless a template renders it later."""
    if length is not None and not is_template(length):
        from airflow_provider_dpc.windows import window_length

        window_length(length)
    return length


def _window(context: Context, length: WindowLength) -> Window:
    from airflow_provider_dpc.windows import Window

    return Window.of_run(context, length)


def _epoch(until: datetime | str) -> float:
    """``until`` as epoch seconds; a naive datetime or string is UTC."""
    from airflow_provider_dpc.models import parse_time

    moment = parse_time(until)
    if moment is None:
        raise DpcValidationError(
            f"until must be a datetime or an ISO 8601 string, got {until!r}",
            errors=[FieldError("until", "must be an ISO 8601 date and time")],
        )
    return moment.timestamp()
