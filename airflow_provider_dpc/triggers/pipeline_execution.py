"""Deferrable wait on an orchestration pipeline execution, run by Airflow's triggerer."""

from __future__ import annotations

from typing import Any

from airflow_provider_dpc.exceptions import DpcError
from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.status import Reading
from airflow_provider_dpc.triggers._status import DpcStatusTrigger

__all__ = ["DpcPipelineExecutionTrigger"]


class DpcPipelineExecutionTrigger(DpcStatusTrigger):
    """Polls an execution's status until it ends or the deadline passes, then yields one event.

    The deadline is the task's ``timeout``: the trigger, not Airflow, enforces it, so the task
    always gets its event and cancels the execution itself. See
    :class:`~airflow_provider_dpc.triggers._status.DpcStatusTrigger` for the other kwargs; the
    watched id is ``execution_id``.

    :param cancel_on_kill: cancel the execution when a user marks the deferred task failed or
        success, or clears it (Airflow calls a trigger's ``on_kill`` from 3.3).
    """

    id_field = "execution_id"

    def __init__(self, *, execution_id: str, cancel_on_kill: bool = True, **kwargs: Any) -> None:
        super().__init__(resource_id=execution_id, **kwargs)
        self.cancel_on_kill = bool(cancel_on_kill)

    @property
    def execution_id(self) -> str:
        return self.resource_id

    def extra_kwargs(self) -> dict[str, Any]:
        return {"cancel_on_kill": self.cancel_on_kill}

    async def read(self, hook: DpcHook) -> Reading:
        found = await hook.aread_pipeline_execution(self.project_id, self.resource_id, max_age=self.poll_interval)
        return Reading.of(found)

    async def on_kill(self) -> None:
        if not self.cancel_on_kill:
            return
        try:
            async with self.hook() as hook:
                await hook.acancel_pipeline_execution(self.project_id, self.resource_id)
        except DpcError as exc:
            self.log.warning("could not cancel execution %s of the killed task: %s", self.resource_id, exc)
            return
        self.log.info("cancelled execution %s of the killed task", self.resource_id)
