"""Run a published DPC pipeline (orchestration or transformation) and wait for it to end."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_dpc._compat import BaseOperator, Context, conf
from airflow_provider_dpc._tasks import PROJECT_FIELDS, check_flag, check_wait_arguments
from airflow_provider_dpc.connection_ui import DEFAULT_CONN_NAME
from airflow_provider_dpc.enums import ExecutionStatus
from airflow_provider_dpc.exceptions import DpcApiError, DpcConflictError
from airflow_provider_dpc.hooks._retry import RetryPolicy
from airflow_provider_dpc.links.dpc import XCOM_EXECUTION_URL, DpcPipelineExecutionLink, execution_url
from airflow_provider_dpc.memory import TaskMemory
from airflow_provider_dpc.operators._lineage import ExecutionLineageMixin
from airflow_provider_dpc.status import (
    Reading,
    StatusWatch,
    Verdict,
    WaitResult,
    conclude,
    execution_goal,
    execution_under_way,
)
from airflow_provider_dpc.waiting import WaitingMixin

__all__ = ["DpcRunPipelineOperator"]

XCOM_EXECUTION_ID = "pipeline_execution_id"
#: The task state key (Airflow 3.3's ``task_state_store``) holding the execution a try started.
STATE_KEY = "dpc_pipeline_execution"
# A 409 whose execution ended before it could be looked up is sent again, at most this often.
_CONFLICT_ROUNDS = 3


class DpcRunPipelineOperator(ExecutionLineageMixin, WaitingMixin, BaseOperator):
    """Execute a published DPC pipeline and wait (polling, or deferred to the triggerer) until it ends.

    Returns the execution id, pushed to XCom (key ``pipeline_execution_id``, with the link to the
    execution) as soon as the execution exists, so it is there even when the task fails. SUCCESS
    succeeds; FAILED, FORBIDDEN, CANCELLED and SKIPPED fail the task with a message naming the
    pipeline, the execution, its status and the execution's own message, and each step's status and
    message are logged. So does any other status once DPC says the execution has finished.

    No second execution: every execution runs under an execution tag, the user's or one derived
    from the DAG, task, run and map index, and DPC runs one execution per tag at a time. A retried
    task whose earlier execution still runs gets a 409 for that tag and waits for that execution
    instead; a lost answer to the execute call is sent again under the tag and ends the same way.
    Where Airflow keeps task state across tries (``task_state_store``, Airflow 3.3+), a retry first
    reads the execution its earlier try started: it waits for it while it runs, returns it if it
    succeeded, and runs the pipeline again only if it failed or was cancelled.

    :param pipeline_name: the published pipeline to run (templated).
    :param environment_name: the environment to run it in (templated).
    :param scalar_variables: ``{name: value}``, values strings or numbers (templated).
    :param grid_variables: ``{name: [[cell, ...], ...]}``, cells strings (templated).
    :param execution_tag: DPC's execution tag (templated); by default one is derived from the task.
        With a tag of your own, a 409 (the tag is running) fails the task instead of reattaching.
    :param version_name: the published version to run; the latest by default.
    :param agent_id: the agent to run on; the environment's default agent by default.
    :param wait_for_completion: wait for the execution to end, or return once it has started.
    :param timeout: seconds to wait; when they pass, the execution is cancelled and the task fails.
        The trigger enforces it in deferrable mode, so the task always gets its event and cancels.
    :param cancel_on_kill: cancel the execution when the task is killed or marked failed while it
        waits (in the worker, and from Airflow 3.3 also while deferred).

    With Airflow's OpenLineage provider, the task's COMPLETE or FAIL event carries the tables DPC's
    own lineage events say the execution read and wrote, and DPC's run appears as a job of its own
    whose parent is the task (see docs/lineage.md).
    """

    template_fields: Sequence[str] = (
        *PROJECT_FIELDS,
        "environment_name",
        "pipeline_name",
        "scalar_variables",
        "grid_variables",
        "execution_tag",
        "version_name",
        "agent_id",
        "deferrable",
    )
    template_fields_renderers = {"scalar_variables": "json", "grid_variables": "json"}
    operator_extra_links = (DpcPipelineExecutionLink(),)
    ui_color = "#e0f2ef"

    def __init__(
        self,
        *,
        pipeline_name: str,
        environment_name: str,
        dpc_conn_id: str = DEFAULT_CONN_NAME,
        project_id: str | None = None,
        project_name: str | None = None,
        scalar_variables: Mapping[str, str | int | float] | None = None,
        grid_variables: Mapping[str, Sequence[Sequence[str]]] | None = None,
        execution_tag: str | None = None,
        version_name: str | None = None,
        agent_id: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool | str = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float | None = None,
        cancel_on_kill: bool = True,
        dpc_retry_policy: RetryPolicy | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._bind_project(dpc_conn_id, project_id, project_name, dpc_retry_policy)
        check_wait_arguments(poll_interval, timeout)
        self.pipeline_name = pipeline_name
        self.environment_name = environment_name
        self.scalar_variables = scalar_variables
        self.grid_variables = grid_variables
        self.execution_tag = execution_tag
        self.version_name = version_name
        self.agent_id = agent_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = check_flag(deferrable, "deferrable")
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.cancel_on_kill = cancel_on_kill
        #: (project id, execution id) while this worker waits on it, for on_kill.
        self._waiting_on: tuple[str, str] | None = None

    def execute(self, context: Context) -> str:
        project_id = self.resolve_project()
        memory = TaskMemory(context, STATE_KEY, "execution_id")  # Airflow 3.3+: kept across tries
        execution_id = self._earlier_execution(memory, project_id) or self._execute(context, memory, project_id)
        self.lineage_execution = (project_id, execution_id)
        self._announce(context, execution_id)
        if not self.wait_for_completion:
            return execution_id
        now = time.time()
        watch = StatusWatch(
            execution_goal(),
            project_id,
            execution_id,
            started_at=now,
            deadline=None if self.timeout is None else now + self.timeout,
        )
        # One read first when deferring: an execution that already ended costs no trip through the triggerer.
        return self.wait(context, watch, self.poll_interval, read_first=True)

    def poll_status(self, watch: StatusWatch, interval: float) -> WaitResult:
        self._waiting_on = (watch.project_id, watch.resource_id)
        try:
            return super().poll_status(watch, interval)
        except BaseException:
            # Airflow's execution_timeout, or the worker stopping: the execution must not run on unwatched.
            self._cancel_on_stop("the task stopped while waiting")
            raise

    def execute_complete(self, context: Context, event: WaitResult | dict[str, Any]) -> str:
        result = WaitResult.of(event)
        self.lineage_execution = (result.project_id, result.resource_id)
        return self._finish(result)

    def on_kill(self) -> None:
        self._cancel_on_stop("the task was killed")

    def trigger_kwargs(self) -> dict[str, Any]:
        return {"cancel_on_kill": self.cancel_on_kill}

    # ---- starting, or finding the earlier try's execution ---------------------------------------

    def derived_tag(self, context: Context) -> str:
        """The execution tag of this task in this run: the same for every try, different per run and map index."""
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        key = "\n".join((ti.dag_id, ti.task_id, ti.run_id, str(-1 if map_index is None else map_index)))
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return f"airflow:{ti.dag_id}.{ti.task_id}"[:100] + f":{digest}"

    def _earlier_execution(self, memory: TaskMemory, project_id: str) -> str | None:
        """The execution an earlier try started, kept in Airflow's task state, when it is worth resuming."""
        execution = memory.recall(project_id, self.hook.read_pipeline_execution)
        if execution is None:
            return None
        execution_id, status = execution.pipeline_execution_id, execution.status
        if status is ExecutionStatus.SUCCESS or execution_under_way(Reading.of(execution)):
            self.log.info("resuming execution %s of an earlier try, which is %s", execution_id, status)
            return execution_id
        self.log.warning("execution %s of an earlier try ended %s; running the pipeline again", execution_id, status)
        return None

    def _execute(self, context: Context, memory: TaskMemory, project_id: str) -> str:
        tag = self.execution_tag or self.derived_tag(context)
        for _ in range(_CONFLICT_ROUNDS):
            try:
                execution_id = self.hook.execute_pipeline(
                    project_id,
                    pipeline_name=self.pipeline_name,
                    environment_name=self.environment_name,
                    scalar_variables=self.scalar_variables,
                    grid_variables=self.grid_variables,
                    execution_tag=tag,
                    version_name=self.version_name,
                    agent_id=self.agent_id,
                )
            except DpcConflictError as exc:
                if self.execution_tag:
                    raise DpcConflictError(
                        f"an execution of pipeline {self.pipeline_name!r} with execution_tag {tag!r} is already "
                        f"running in environment {self.environment_name!r}, and DPC runs one per tag at a time; "
                        "leave execution_tag unset for a retry to wait for its own execution",
                        status_code=exc.status_code,
                        errors=exc.errors,
                    ) from exc
                found = self.hook.find_running_execution(project_id, self.pipeline_name, self.environment_name, tag)
                if found is None:
                    continue  # it ended between the 409 and the look-up: execute again
                execution_id = found.pipeline_execution_id
                self.log.info("execution %s of an earlier try holds tag %r; waiting for it", execution_id, tag)
            else:
                self.log.info("executing pipeline %r (tag %r): %s", self.pipeline_name, tag, execution_id)
            memory.keep(project_id, execution_id)
            return execution_id
        raise DpcConflictError(
            f"execution tag {tag!r} of pipeline {self.pipeline_name!r} stayed in use, but no running execution "
            f"of it was found in environment {self.environment_name!r}"
        )

    def _announce(self, context: Context, execution_id: str) -> None:
        """Push the execution id and its link first, so a failure later still leaves them in XCom."""
        ti = context["ti"]
        ti.xcom_push(key=XCOM_EXECUTION_ID, value=execution_id)
        ti.xcom_push(key=XCOM_EXECUTION_URL, value=execution_url(self.hook.settings.app_url, execution_id))

    # ---- how the wait ended ------------------------------------------------------------------------

    def _finish(self, result: WaitResult) -> str:
        self._waiting_on = None
        name = f"DPC pipeline {self.pipeline_name!r} in {self.environment_name!r}"
        if result.verdict is Verdict.REACHED:
            self.log.info("%s: execution %s succeeded after %.0f s", name, result.resource_id, result.waited)
            return result.resource_id
        if result.verdict is Verdict.TIMED_OUT:
            done = self._cancel(result.project_id, result.resource_id, "the timeout passed")
            conclude(result, name=name, detail=done)
        message = None
        if result.verdict is Verdict.FAILED:
            message = self.explain_execution(result.project_id, result.resource_id)
        conclude(result, name=name, execution_message=message)
        raise AssertionError("conclude returns only for a reached goal")  # pragma: no cover

    def _cancel(self, project_id: str, execution_id: str, why: str) -> str:
        """Cancel the execution; says what was done, for the task's error."""
        try:
            self.hook.cancel_pipeline_execution(project_id, execution_id)
        except DpcApiError as exc:
            self.log.error("%s, but cancelling execution %s failed: %s", why, execution_id, exc)
            return f"cancelling it failed ({exc}); it may still run"
        self.log.warning("%s: cancelled execution %s", why, execution_id)
        return "it was cancelled"

    def _cancel_on_stop(self, why: str) -> None:
        waiting_on, self._waiting_on = self._waiting_on, None
        if waiting_on is not None and self.cancel_on_kill:
            self._cancel(*waiting_on, why)
