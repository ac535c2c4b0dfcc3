"""Sensor that holds downstream work until a streaming pipeline reaches a status."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_dpc._compat import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    Context,
    conf,
)
from airflow_provider_dpc.connection_ui import DEFAULT_CONN_NAME
from airflow_provider_dpc.enums import PipelineStatus
from airflow_provider_dpc.exceptions import DpcError
from airflow_provider_dpc.hooks._retry import RetryPolicy
from airflow_provider_dpc.operators._base import PIPELINE_FIELDS, PipelineTaskMixin
from airflow_provider_dpc.status import StatusGoal, StatusWatch, Verdict, WaitResult, conclude


class DpcStreamingPipelineSensor(PipelineTaskMixin, BaseSensorOperator):
    """Wait until a streaming pipeline is in ``target_status`` (STREAMING by default).

    Statuses are compared case-insensitively. A pipeline found in one of ``failure_statuses``
    (NOT_RUNNING by default: it never started or it died) fails the sensor at once, or skips it
    with ``soft_fail``. In deferrable mode the triggerer does the polling and enforces ``timeout``.

    :param target_status: one status or several, any of which ends the wait.
    :param failure_statuses: statuses that fail the wait; ``()`` to wait through anything.
    :param grace_period: seconds from the sensor's start during which failure statuses are only
        waited through, for a pipeline that was just sent START.
    """

    template_fields: Sequence[str] = (*PIPELINE_FIELDS, "target_status", "failure_statuses")
    ui_color = "#e0f2ef"

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
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        dpc_retry_policy: RetryPolicy | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._bind_pipeline(dpc_conn_id, project_id, project_name, pipeline_id, pipeline_name, dpc_retry_policy)
        if not (pipeline_id or pipeline_name):
            raise ValueError(f"{self.task_id}: give pipeline_id or pipeline_name")
        self.target_status = target_status
        self.failure_statuses = failure_statuses
        self.grace_period = grace_period
        self.deferrable = deferrable
        StatusGoal.of(target_status, failure_statuses)  # reject overlapping statuses at parse time
        self._watch: StatusWatch | None = None

    def _start_watch(self, timeout: float | None = None) -> StatusWatch:
        project_id = self.resolve_project()
        pipeline_id = self.resolve_pipeline(project_id)
        goal = StatusGoal.of(self.target_status, self.failure_statuses, self.grace_period)
        now = time.time()
        return StatusWatch(
            goal, project_id, pipeline_id, started_at=now, deadline=None if timeout is None else now + timeout
        )

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # Poke mode leaves the timeout to BaseSensorOperator; deferred, the trigger enforces it.
        watch = self._start_watch(timeout=_seconds(self.timeout))
        # One read first: a pipeline that already streams costs no trip through the triggerer.
        if self._settle(self.read_status(watch)):
            return None
        self.defer(trigger=self.status_trigger(watch, _seconds(self.poke_interval)), method_name="execute_complete")

    def poke(self, context: Context) -> bool:
        if self._watch is None:
            self._watch = self._start_watch()
        return self._settle(self.read_status(self._watch))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        self._settle(WaitResult.from_event(event))

    def _settle(self, result: WaitResult | None) -> bool:
        """True once the target is reached; raises (or skips, with ``soft_fail``) on failure."""
        if result is None:
            return False
        try:
            status = conclude(result)
        except DpcError as exc:
            if self.soft_fail:
                raise AirflowSkipException(str(exc)) from exc
            if result.verdict is Verdict.TIMED_OUT:
                raise AirflowSensorTimeout(str(exc)) from exc
            raise
        self.log.info("pipeline %s is %s", result.pipeline_id, status)
        return True


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
