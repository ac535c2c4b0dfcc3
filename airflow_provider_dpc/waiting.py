"""Waiting for a status, in the worker or in the triggerer: the one home of it for operators and sensors.

:meth:`WaitingMixin.wait` is the only place that chooses between polling here and deferring to the
triggerer. Either way the task's continuation gets the same :class:`~airflow_provider_dpc.status.WaitResult`
(from the trigger's event, or as the polling produced it, with the API error that ended it as its
cause), and judges it with the same functions of :mod:`airflow_provider_dpc.status`. What each kind
of resource reads, and which trigger carries its wait, is one table here.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_dpc._tasks import ProjectTaskMixin, as_flag
from airflow_provider_dpc.exceptions import DpcError
from airflow_provider_dpc.status import PipelineRunsWatch, Reading, Status, StatusKind, StatusWatch, WaitResult

if TYPE_CHECKING:
    from airflow_provider_dpc._compat import Context
    from airflow_provider_dpc.hooks.dpc import DpcHook
    from airflow_provider_dpc.triggers._status import DpcStatusTrigger

__all__ = ["KINDS", "WaitingMixin", "WatchedKind"]


@dataclass(frozen=True)
class WatchedKind:
    """How a wait on one kind of resource reads its status, and the trigger that waits in its place."""

    #: One read of what ``watch`` watches, judged as far as the kind needs before the watch observes it.
    read: Callable[[DpcHook, StatusWatch], Reading | Status]
    #: The trigger's classpath, imported when a task defers (never while a DAG is parsed).
    trigger: str

    def trigger_class(self) -> type[DpcStatusTrigger]:
        module, _, name = self.trigger.rpartition(".")
        found: type[DpcStatusTrigger] = getattr(importlib.import_module(module), name)
        return found


def _read_runs(hook: DpcHook, watch: StatusWatch) -> Reading:
    if not isinstance(watch, PipelineRunsWatch):
        raise TypeError(f"a wait on a pipeline's runs needs a PipelineRunsWatch, not {type(watch).__name__}")
    executions = hook.list_pipeline_executions(
        watch.project_id,
        pipeline_name=watch.pipeline_name,
        environment_name=watch.environment_name,
        started_after=watch.started_after,
    )
    return watch.judge(executions)


KINDS: Mapping[StatusKind, WatchedKind] = {
    StatusKind.STREAMING_PIPELINE: WatchedKind(
        read=lambda hook, watch: hook.get_status(watch.project_id, watch.resource_id),
        trigger="airflow_provider_dpc.triggers.streaming_pipeline.DpcStreamingPipelineTrigger",
    ),
    StatusKind.PIPELINE_EXECUTION: WatchedKind(
        read=lambda hook, watch: Reading.of(hook.read_pipeline_execution(watch.project_id, watch.resource_id)),
        trigger="airflow_provider_dpc.triggers.pipeline_execution.DpcPipelineExecutionTrigger",
    ),
    StatusKind.PIPELINE_RUNS: WatchedKind(
        read=_read_runs,
        trigger="airflow_provider_dpc.triggers.pipeline_execution.DpcNextPipelineExecutionTrigger",
    ),
}


class WaitingMixin(ProjectTaskMixin):
    """A task of a project that waits for a status: polled here, or deferred to the triggerer.

    Needs ``deferrable`` and, from the operator or sensor base class, Airflow's ``defer``.
    ``deferrable`` is a template field, so a DAG can let its trigger form choose
    (``deferrable="{{ params.deferrable }}"``): it is read as a bool when the task runs.
    """

    deferrable: bool | str
    defer: Callable[..., Any]

    @property
    def defers(self) -> bool:
        """Whether this task waits in the triggerer: ``deferrable``, rendered and read as a bool."""
        return as_flag(self.deferrable, "deferrable")

    def wait(
        self,
        context: Context,
        watch: StatusWatch,
        interval: float,
        *,
        method: str = "execute_complete",
        carry: Mapping[str, Any] | None = None,
        read_first: bool = False,
    ) -> Any:
        """Wait for ``watch``'s goal, then return ``method(context, result)``.

        Deferred, the triggerer polls and Airflow calls ``method`` with the trigger's event; polled,
        ``method`` gets the :class:`WaitResult` itself, with the API error that ended the wait as
        its cause. ``carry`` comes back as the result's ``carry`` either way. ``read_first`` reads
        once before deferring, where a wait may be over already (a trip through the triggerer saved).
        """
        defers = self.defers
        result = self.read_status(watch) if defers and read_first else None
        if result is None:
            if defers:
                self.defer(trigger=self.status_trigger(watch, interval, carry), method_name=method)
            result = self.poll_status(watch, interval)
        result.carry = None if carry is None else dict(carry)
        return getattr(self, method)(context, result)

    def read_status(self, watch: StatusWatch) -> WaitResult | None:
        """Read the status once and let ``watch`` judge it: the result once the wait is over, else None.

        An API error (after the hook's retries) ends the wait as it does in the triggerer, so a
        polling task fails, or skips with ``soft_fail``, with the same message as a deferred one.
        """
        try:
            reading = KINDS[watch.goal.kind].read(self.hook, watch)
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

    def trigger_kwargs(self) -> dict[str, Any]:
        """A task's own kwargs for its trigger."""
        return {}

    def status_trigger(
        self, watch: StatusWatch, poll_interval: float, carry: Mapping[str, Any] | None = None
    ) -> DpcStatusTrigger:
        """The trigger that carries ``watch`` on in the triggerer: ids, timings and retries, no secret;
        ``carry`` comes back in its event."""
        trigger = KINDS[watch.goal.kind].trigger_class()
        return trigger(
            **{trigger.id_field: watch.resource_id},
            dpc_conn_id=self.dpc_conn_id,
            project_id=watch.project_id,
            goal=watch.goal.to_dict(),
            poll_interval=poll_interval,
            started_at=watch.started_at,
            deadline=None if watch.deadline == float("inf") else watch.deadline,
            retry_policy=self.dpc_retry_policy.to_dict(),
            history=watch.history,
            carry=carry,
            **watch.scope(),
            **self.trigger_kwargs(),
        )

    def explain_execution(self, project_id: str, execution_id: str) -> str | None:
        """Log an ended execution's steps, each with its status and message, and return its own
        message; a failed read only warns, as the task is failing already."""
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
