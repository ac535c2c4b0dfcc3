"""Sensor that holds downstream work until a DPC pipeline execution has succeeded: one given by its
id, or the next run of a published pipeline (DPC's own schedule, say) after a moment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from airflow_provider_dpc import _compat
from airflow_provider_dpc._compat import Context, conf
from airflow_provider_dpc._tasks import PROJECT_FIELDS
from airflow_provider_dpc.connection_ui import DEFAULT_CONN_NAME
from airflow_provider_dpc.exceptions import DpcValidationError, FieldError
from airflow_provider_dpc.hooks._retry import RetryPolicy
from airflow_provider_dpc.sensors._base import DpcStatusSensor
from airflow_provider_dpc.status import (
    PipelineRunsWatch,
    Status,
    StatusGoal,
    StatusWatch,
    Verdict,
    WaitResult,
    conclude,
    execution_goal,
    runs_goal,
)

__all__ = ["DpcPipelineExecutionSensor"]

#: Where the sensor pushes the execution that succeeded, when it waited on a pipeline's runs.
XCOM_EXECUTION_ID = "pipeline_execution_id"


class DpcPipelineExecutionSensor(DpcStatusSensor):
    """Wait until a pipeline execution succeeds: one given by ``execution_id`` (one a
    :class:`DpcRunPipelineOperator` started without waiting, or any other), or, given
    ``pipeline_name`` and ``environment_name`` instead, the next execution of that published
    pipeline that started after ``started_after``, whoever started it (DPC's own schedule).

    FAILED, FORBIDDEN, CANCELLED and SKIPPED fail the sensor at once, naming the pipeline, the
    execution and its own message (or skip it, with ``soft_fail``), and so does any other status
    once DPC says the execution has finished; RUNNING, CANCELLING and UNKNOWN are waited through.
    Poke, reschedule or deferrable, with Airflow's standard sensor arguments.

    Given a pipeline's name, it reads the account's executions list (``startedAfter``,
    ``projectId``, ``pipelineName``, ``environmentName``: one request per poke while fewer than
    100 executions started after the moment), keeps the executions of that pipeline by the same
    name rule as the run operator (``Pipeline 1`` is never ``Pipeline 10``; a name standing for two
    pipelines fails, naming both), and judges them as
    :class:`~airflow_provider_dpc.status.PipelineRunsWatch` says: a success wins, whatever else
    ended; otherwise the first that ended another way fails the sensor, or with
    ``fail_on_failure=False`` is only logged while the sensor waits for a later success. The
    execution that succeeded is pushed to XCom as ``pipeline_execution_id``.

    :param execution_id: the execution to watch (templated), e.g.
        ``"{{ ti.xcom_pull(task_ids='run', key='pipeline_execution_id') }}"``.
    :param pipeline_name: instead of ``execution_id``, the published pipeline whose next run to
        wait for (templated), as you would execute it (``load``, ``orders/load``).
    :param environment_name: the environment it runs in (templated); with ``pipeline_name`` only.
    :param started_after: only executions that started after this moment count (templated; ISO
        8601 text or a datetime, UTC where it names no zone). By default when the run was due, by
        the rule scheduled windows follow (:func:`~airflow_provider_dpc._compat.run_moment`).
    :param fail_on_failure: False waits through executions that end short of SUCCESS, logging each.
    """

    template_fields: Sequence[str] = (
        *PROJECT_FIELDS,
        "execution_id",
        "pipeline_name",
        "environment_name",
        "started_after",
        "deferrable",
    )

    def __init__(
        self,
        *,
        execution_id: str | None = None,
        pipeline_name: str | None = None,
        environment_name: str | None = None,
        started_after: str | datetime | None = None,
        fail_on_failure: bool = True,
        dpc_conn_id: str = DEFAULT_CONN_NAME,
        project_id: str | None = None,
        project_name: str | None = None,
        deferrable: bool | str = conf.getboolean("operators", "default_deferrable", fallback=False),
        dpc_retry_policy: RetryPolicy | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(deferrable=deferrable, **kwargs)
        self._bind_project(dpc_conn_id, project_id, project_name, dpc_retry_policy)
        if bool(execution_id) == bool(pipeline_name):
            given = "both" if execution_id else "neither"
            raise ValueError(
                f"{self.task_id}: give execution_id, or pipeline_name with environment_name, to say which "
                f"execution to wait for (got {given})"
            )
        if pipeline_name and not environment_name:
            raise ValueError(f"{self.task_id}: give environment_name with pipeline_name")
        if execution_id and (environment_name or started_after is not None or not fail_on_failure):
            raise ValueError(
                f"{self.task_id}: environment_name, started_after and fail_on_failure go with pipeline_name, "
                "not with execution_id"
            )
        self.execution_id = execution_id
        self.pipeline_name = pipeline_name
        self.environment_name = environment_name
        self.started_after = started_after
        self.fail_on_failure = bool(fail_on_failure)

    @property
    def waits_on_runs(self) -> bool:
        """Whether it waits for a pipeline's next run (given its name) rather than one execution."""
        return bool(self.pipeline_name)

    def goal(self) -> StatusGoal:
        return runs_goal(self.fail_on_failure) if self.waits_on_runs else execution_goal()

    def watched(self) -> tuple[str, str]:
        from airflow_provider_dpc.models import check_uuid

        if self.waits_on_runs:
            return self.resolve_project(), str(self.pipeline_name)
        return self.resolve_project(), check_uuid(self.execution_id, "execution_id")

    def new_watch(self, context: Context, project_id: str, resource_id: str, started_at: float) -> StatusWatch:
        if not self.waits_on_runs:
            return super().new_watch(context, project_id, resource_id, started_at)
        return PipelineRunsWatch(
            self.goal(),
            project_id,
            resource_id,
            environment_name=str(self.environment_name),
            started_after=self.moment(context),
            started_at=started_at,
            log=self.log,
        )

    def moment(self, context: Context) -> datetime:
        """``started_after`` as a timezone-aware time: the rendered value, else when the run was due
        (:func:`~airflow_provider_dpc._compat.run_moment`, the rule scheduled windows follow)."""
        from airflow_provider_dpc.models import parse_time

        if self.started_after is None or self.started_after == "":
            return _compat.run_moment(context)
        moment = parse_time(self.started_after)
        if moment is None:
            shown = repr(self.started_after)[:80]
            raise DpcValidationError(
                f"{self.task_id}: started_after must be an ISO 8601 date and time, got {shown}",
                errors=[FieldError("started_after", "must be an ISO 8601 date and time")],
            )
        return moment

    def failure_message(self, result: WaitResult) -> str | None:
        execution_id = result.execution_id
        if execution_id is None:
            return None
        found = self.explain_execution(result.project_id, execution_id)
        return found or (result.execution or {}).get("message")

    def conclude(self, context: Context, result: WaitResult, execution_message: str | None) -> Status:
        if not self.waits_on_runs:
            return super().conclude(context, result, execution_message)
        name = f"DPC pipeline {self.pipeline_name!r} in {self.environment_name!r}"
        detail = None
        if result.verdict is Verdict.TIMED_OUT:
            detail = f"no execution that started after {self.moment(context).isoformat()} has succeeded"
        return conclude(result, name=name, detail=detail, execution_message=execution_message)

    def reached(self, context: Context, result: WaitResult, status: Status) -> None:
        if not self.waits_on_runs:
            return super().reached(context, result, status)
        execution = result.execution or {}
        self.log.info(
            "DPC pipeline %r in %r: execution %s (started %s) succeeded",
            self.pipeline_name,
            self.environment_name,
            execution.get("pipeline_execution_id"),
            execution.get("started_at"),
        )
        context["ti"].xcom_push(key=XCOM_EXECUTION_ID, value=execution.get("pipeline_execution_id"))
