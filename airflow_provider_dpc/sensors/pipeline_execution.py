"""Sensor that holds downstream work until a DPC pipeline execution has succeeded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_dpc._compat import conf
from airflow_provider_dpc._tasks import PROJECT_FIELDS
from airflow_provider_dpc.connection_ui import DEFAULT_CONN_NAME
from airflow_provider_dpc.hooks._retry import RetryPolicy
from airflow_provider_dpc.sensors._base import DpcStatusSensor
from airflow_provider_dpc.status import StatusGoal, WaitResult, execution_goal

__all__ = ["DpcPipelineExecutionSensor"]


class DpcPipelineExecutionSensor(DpcStatusSensor):
    """Wait until a pipeline execution (one a :class:`DpcRunPipelineOperator` started without waiting,
    or any other) succeeds.

    FAILED, FORBIDDEN, CANCELLED and SKIPPED fail the sensor at once, naming the execution and its
    own message (or skip it, with ``soft_fail``), and so does any other status once DPC says the
    execution has finished; RUNNING, CANCELLING and UNKNOWN are waited through.
    Poke, reschedule or deferrable, with Airflow's standard sensor arguments.

    :param execution_id: the execution to watch (templated), e.g.
        ``"{{ ti.xcom_pull(task_ids='run', key='pipeline_execution_id') }}"``.
    """

    template_fields: Sequence[str] = (*PROJECT_FIELDS, "execution_id", "deferrable")

    def __init__(
        self,
        *,
        execution_id: str,
        dpc_conn_id: str = DEFAULT_CONN_NAME,
        project_id: str | None = None,
        project_name: str | None = None,
        deferrable: bool | str = conf.getboolean("operators", "default_deferrable", fallback=False),
        dpc_retry_policy: RetryPolicy | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(deferrable=deferrable, **kwargs)
        self._bind_project(dpc_conn_id, project_id, project_name, dpc_retry_policy)
        if not execution_id:
            raise ValueError(f"{self.task_id}: give execution_id")
        self.execution_id = execution_id

    def goal(self) -> StatusGoal:
        return execution_goal()

    def watched(self) -> tuple[str, str]:
        from airflow_provider_dpc.models import check_uuid

        return self.resolve_project(), check_uuid(self.execution_id, "execution_id")

    def failure_message(self, result: WaitResult) -> str | None:
        return self.explain_execution(result.project_id, result.resource_id)
