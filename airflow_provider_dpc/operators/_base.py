"""What the operators and the sensor share: their connection, project and pipeline, and deferral.

Every DAG parse imports the operator and sensor modules, so they import only what declaring a task
needs (its arguments are checked there); the hook, the models and the trigger are imported when a
task runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_dpc.exceptions import DpcError, DpcValidationError, FieldError
from airflow_provider_dpc.hooks._retry import RetryPolicy

if TYPE_CHECKING:
    from airflow_provider_dpc.hooks.dpc import DpcHook
    from airflow_provider_dpc.status import StatusWatch, WaitResult
    from airflow_provider_dpc.triggers.streaming_pipeline import DpcStreamingPipelineTrigger

PIPELINE_FIELDS = ("project_id", "project_name", "pipeline_id", "pipeline_name")


class PipelineTaskMixin:
    """A task bound to one DPC project and pipeline, given by id or by name.

    Names are resolved through the API once per run; ids are checked as UUIDs before any URL is
    built from them.
    """

    task_id: str
    dpc_conn_id: str
    project_id: str | None
    project_name: str | None
    pipeline_id: str | None
    pipeline_name: str | None
    dpc_retry_policy: RetryPolicy
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
        if not (project_id or project_name):
            raise ValueError(f"{type(self).__name__} {self.task_id!r}: give project_id or project_name")
        self.dpc_conn_id = dpc_conn_id
        self.project_id = project_id
        self.project_name = project_name
        self.pipeline_id = pipeline_id
        self.pipeline_name = pipeline_name
        self.dpc_retry_policy = RetryPolicy.coerce(dpc_retry_policy)

    @cached_property
    def hook(self) -> DpcHook:
        from airflow_provider_dpc.hooks.dpc import DpcHook

        return DpcHook(self.dpc_conn_id, retry_policy=self.dpc_retry_policy)

    def resolve_project(self) -> str:
        from airflow_provider_dpc.models import check_uuid

        return check_uuid(self.hook.resolve_project_id(self.project_id, self.project_name), "project_id")

    def resolve_pipeline(self, project_id: str) -> str:
        from airflow_provider_dpc.models import check_uuid

        if not (self.pipeline_id or self.pipeline_name):
            raise DpcValidationError(
                f"{self.task_id}: give pipeline_id or pipeline_name",
                errors=[FieldError("pipeline_id", "must not be empty")],
            )
        pipeline_id = self.hook.resolve_pipeline_id(project_id, self.pipeline_id, self.pipeline_name)
        return check_uuid(pipeline_id, "pipeline_id")

    def read_status(self, watch: StatusWatch) -> WaitResult | None:
        """Read the status once and let ``watch`` judge it: the result once the wait is over, else None.

        An API error (after the hook's retries) ends the wait as it does in the triggerer, so a
        polling task fails, or skips with ``soft_fail``, with the same message as a deferred one.
        """
        try:
            status = self.hook.get_status(watch.project_id, watch.pipeline_id)
        except DpcError as exc:
            return watch.error(exc, time.time())
        return watch.observe(status, time.time())

    def status_trigger(
        self, watch: StatusWatch, poll_interval: float, carry: Mapping[str, Any] | None = None
    ) -> DpcStreamingPipelineTrigger:
        """The trigger that carries ``watch`` on in the triggerer: ids, timings and retries, no secret;
        ``carry`` comes back in its event."""
        from airflow_provider_dpc.triggers.streaming_pipeline import DpcStreamingPipelineTrigger

        return DpcStreamingPipelineTrigger(
            dpc_conn_id=self.dpc_conn_id,
            project_id=watch.project_id,
            pipeline_id=watch.pipeline_id,
            goal=watch.goal.to_dict(),
            poll_interval=poll_interval,
            started_at=watch.started_at,
            deadline=None if watch.deadline == float("inf") else watch.deadline,
            retry_policy=self.dpc_retry_policy.to_dict(),
            history=watch.history,
            carry=carry,
        )
