"""What the operators and sensors share: their connection and project (and pipeline), and waiting.

Every DAG parse imports the operator and sensor modules, so they import only what declaring a task
needs (its arguments are checked there); the hook, the models and the triggers are imported when a
task runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_dpc.exceptions import DpcError, DpcValidationError, FieldError
from airflow_provider_dpc.hooks._retry import RetryPolicy
from airflow_provider_dpc.status import Reading, StatusKind

if TYPE_CHECKING:
    from airflow_provider_dpc.hooks.dpc import DpcHook
    from airflow_provider_dpc.status import Status, StatusWatch, WaitResult
    from airflow_provider_dpc.triggers._status import DpcStatusTrigger

PROJECT_FIELDS = ("project_id", "project_name")
PIPELINE_FIELDS = (*PROJECT_FIELDS, "pipeline_id", "pipeline_name")


def check_wait_arguments(poll_interval: float, timeout: float | None) -> None:
    """Refuse a wait's settings when the DAG is parsed."""
    if poll_interval <= 0:
        raise ValueError(f"poll_interval must be positive, got {poll_interval}")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive or None, got {timeout}")


class ProjectTaskMixin:
    """A task bound to one DPC project, given by id or by name (resolved through the API once per run)."""

    log: Any  # BaseOperator's logger
    task_id: str
    dpc_conn_id: str
    project_id: str | None
    project_name: str | None
    dpc_retry_policy: RetryPolicy

    def _bind_project(
        self,
        dpc_conn_id: str,
        project_id: str | None,
        project_name: str | None,
        dpc_retry_policy: RetryPolicy | Mapping[str, Any] | None,
    ) -> None:
        if not (project_id or project_name):
            raise ValueError(f"{type(self).__name__} {self.task_id!r}: give project_id or project_name")
        self.dpc_conn_id = dpc_conn_id
        self.project_id = project_id
        self.project_name = project_name
        self.dpc_retry_policy = RetryPolicy.coerce(dpc_retry_policy)

    @cached_property
    def hook(self) -> DpcHook:
        from airflow_provider_dpc.hooks.dpc import DpcHook

        return DpcHook(self.dpc_conn_id, retry_policy=self.dpc_retry_policy)

    def resolve_project(self) -> str:
        from airflow_provider_dpc.models import check_uuid

        return check_uuid(self.hook.resolve_project_id(self.project_id, self.project_name), "project_id")

    def read_status(self, watch: StatusWatch) -> WaitResult | None:
        """Read the status once and let ``watch`` judge it: the result once the wait is over, else None.

        An API error (after the hook's retries) ends the wait as it does in the triggerer, so a
        polling task fails, or skips with ``soft_fail``, with the same message as a deferred one.
        """
        reading: Reading | Status
        try:
            if watch.goal.kind is StatusKind.PIPELINE_EXECUTION:
                reading = Reading.of(self.hook.read_pipeline_execution(watch.project_id, watch.resource_id))
            else:
                reading = self.hook.get_status(watch.project_id, watch.resource_id)
        except DpcError as exc:
            return watch.error(exc, time.time())
        return watch.observe(reading, time.time())

    def poll_status(self, watch: StatusWatch, interval: float) -> WaitResult:
        """Read the status every ``interval`` seconds here, in the worker, until the wait is over."""
        while (result := self.read_status(watch)) is None:
            kind, status = watch.goal.kind, watch.history[-1]
            self.log.info("%s %s is %s; waiting for %s", kind, watch.resource_id, status, watch.goal.describe())
            time.sleep(watch.next_poll(interval, time.time()))
        return result

    def explain_execution(self, project_id: str, execution_id: str) -> str | None:
        """Log an ended execution's step results and return its own message; a failed read only warns,
        as the task is failing already."""
        try:
            message = self.hook.get_pipeline_execution(project_id, execution_id).message
            steps = self.hook.get_pipeline_execution_steps(project_id, execution_id)
        except DpcError as exc:
            self.log.warning("could not read execution %s's message and steps: %s", execution_id, exc)
            return None
        for step in steps:
            self.log.info(
                "step %s: %s%s", step.name or "?", step.status or "?", f": {step.message}" if step.message else ""
            )
        return message

    def trigger_kwargs(self) -> dict[str, Any]:
        """A task's own kwargs for its trigger."""
        return {}

    def status_trigger(
        self, watch: StatusWatch, poll_interval: float, carry: Mapping[str, Any] | None = None
    ) -> DpcStatusTrigger:
        """The trigger that carries ``watch`` on in the triggerer: ids, timings and retries, no secret;
        ``carry`` comes back in its event."""
        common: dict[str, Any] = {
            "dpc_conn_id": self.dpc_conn_id,
            "project_id": watch.project_id,
            "goal": watch.goal.to_dict(),
            "poll_interval": poll_interval,
            "started_at": watch.started_at,
            "deadline": None if watch.deadline == float("inf") else watch.deadline,
            "retry_policy": self.dpc_retry_policy.to_dict(),
            "history": watch.history,
            "carry": carry,
            **self.trigger_kwargs(),
        }
        if watch.goal.kind is StatusKind.PIPELINE_EXECUTION:
            from airflow_provider_dpc.triggers.pipeline_execution import DpcPipelineExecutionTrigger

            return DpcPipelineExecutionTrigger(execution_id=watch.resource_id, **common)
        from airflow_provider_dpc.triggers.streaming_pipeline import DpcStreamingPipelineTrigger

        return DpcStreamingPipelineTrigger(pipeline_id=watch.resource_id, **common)


class PipelineTaskMixin(ProjectTaskMixin):
    """A task bound to one DPC project and streaming pipeline, each given by id or by name.

    Names are resolved through the API once per run; ids are checked as UUIDs before any URL is
    built from them.
    """

    pipeline_id: str | None
    pipeline_name: str | None
    #: (project id, pipeline id) once this run has resolved them; lineage reads them from here.
    resolved_pipeline: tuple[str, str] | None = None

    def _bind_pipeline(
        self,
        dpc_conn_id: str,
        project_id: str | None,
        project_name: str | None,
        pipeline_id: str | None,
        pipeline_name: str | None,
        dpc_retry_policy: RetryPolicy | Mapping[str, Any] | None,
    ) -> None:
        self._bind_project(dpc_conn_id, project_id, project_name, dpc_retry_policy)
        self.pipeline_id = pipeline_id
        self.pipeline_name = pipeline_name

    def resolve_pipeline(self, project_id: str) -> str:
        from airflow_provider_dpc.models import check_uuid

        if not (self.pipeline_id or self.pipeline_name):
            raise DpcValidationError(
                f"{self.task_id}: give pipeline_id or pipeline_name",
                errors=[FieldError("pipeline_id", "must not be empty")],
            )
        pipeline_id = self.hook.resolve_pipeline_id(project_id, self.pipeline_id, self.pipeline_name)
        return check_uuid(pipeline_id, "pipeline_id")
