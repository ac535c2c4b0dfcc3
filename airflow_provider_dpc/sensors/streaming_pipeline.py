"""Sensor that holds downstream work until a streaming pipeline reaches a status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_dpc._compat import conf
from airflow_provider_dpc._tasks import PIPELINE_FIELDS, PipelineTaskMixin
from airflow_provider_dpc.connection_ui import DEFAULT_CONN_NAME
from airflow_provider_dpc.enums import PipelineStatus
from airflow_provider_dpc.hooks._retry import RetryPolicy
from airflow_provider_dpc.sensors._base import DpcStatusSensor
from airflow_provider_dpc.status import StatusGoal


class DpcStreamingPipelineSensor(PipelineTaskMixin, DpcStatusSensor):
    """Wait until a streaming pipeline is in ``target_status`` (STREAMING by default).

    Statuses are compared case-insensitively. A pipeline found in one of ``failure_statuses``
    (NOT_RUNNING by default: it never started or it died) fails the sensor at once, or skips it
    with ``soft_fail``. In deferrable mode the triggerer does the polling and enforces ``timeout``.

    :param target_status: one status or several, any of which ends the wait.
    :param failure_statuses: statuses that fail the wait; ``()`` to wait through anything.
    :param grace_period: seconds from the sensor's start during which failure statuses are only
        waited through, for a pipeline that was just sent START.
    """

    template_fields: Sequence[str] = (*PIPELINE_FIELDS, "target_status", "failure_statuses", "deferrable")

    def __init__(
        self,
        *,
        dpc_conn_id: str = DEFAULT_CONN_NAME,
        project_id: str | None = None,
        project_name: str | None = None,
        pipeline_id: str | None = None,
        pipeline_name: str | None = None,
        target_status: str | Iterable[str] = PipelineStatus.STREAMING,
        failure_statuses: str | Iterable[str] = (PipelineStatus.NOT_RUNNING,),
        grace_period: float = 0.0,
        deferrable: bool | str = conf.getboolean("operators", "default_deferrable", fallback=False),
        dpc_retry_policy: RetryPolicy | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(deferrable=deferrable, **kwargs)
        self._bind_pipeline(dpc_conn_id, project_id, project_name, pipeline_id, pipeline_name, dpc_retry_policy)
        if not (pipeline_id or pipeline_name):
            raise ValueError(f"{self.task_id}: give pipeline_id or pipeline_name")
        self.target_status = target_status
        self.failure_statuses = failure_statuses
        self.grace_period = grace_period
        StatusGoal.of(target_status, failure_statuses)  # reject overlapping statuses at parse time

    def goal(self) -> StatusGoal:
        return StatusGoal.of(self.target_status, self.failure_statuses, self.grace_period)

    def watched(self) -> tuple[str, str]:
        project_id = self.resolve_project()
        return project_id, self.resolve_pipeline(project_id)
