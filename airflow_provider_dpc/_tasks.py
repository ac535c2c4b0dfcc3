"""What the operators and sensors share: their connection, their project and their pipeline.

Every DAG parse imports the operator and sensor modules, so this imports only what declaring a task
needs (its arguments are checked here); the hook and the models are imported when a task runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_dpc.exceptions import DpcValidationError, FieldError
from airflow_provider_dpc.hooks._retry import RetryPolicy

if TYPE_CHECKING:
    from airflow_provider_dpc.hooks.dpc import DpcHook

__all__ = [
    "PIPELINE_FIELDS",
    "PROJECT_FIELDS",
    "PipelineTaskMixin",
    "ProjectTaskMixin",
    "as_flag",
    "check_flag",
    "check_wait_arguments",
]

PROJECT_FIELDS = ("project_id", "project_name")
PIPELINE_FIELDS = (*PROJECT_FIELDS, "pipeline_id", "pipeline_name")


def check_wait_arguments(poll_interval: float, timeout: float | None) -> None:
    """Refuse a wait's settings when the DAG is parsed."""
    if poll_interval <= 0:
        raise ValueError(f"poll_interval must be positive, got {poll_interval}")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive or None, got {timeout}")


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def as_flag(value: bool | str, field: str) -> bool:
    """A yes/no setting that a template may give: a bool, or the text a template renders one to
    (``"True"``, ``"false"``, ``"1"``...), any case."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise DpcValidationError(
        f"{field} must be true or false, got {value!r}", errors=[FieldError(field, "must be true or false")]
    )


def is_template(value: object) -> bool:
    """Whether ``value`` is a Jinja template still to be rendered when the task runs."""
    return isinstance(value, str) and "{{" in value


def check_flag(value: bool | str, field: str) -> bool | str:
    """``value`` as a bool when the DAG is parsed, or the template it is until the task renders it."""
    if is_template(value):
        return value
    return as_flag(value, field)


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
