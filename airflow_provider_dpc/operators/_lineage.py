"""How the operators report OpenLineage inputs and outputs: create and start, the tables of their
pipeline's definition; the run task, the tables DPC's own lineage events say its execution read
and wrote.

The dataset naming lives in :mod:`airflow_provider_dpc.lineage`; it and the models are imported
only when the OpenLineage provider asks for facets after a task ends, never while a DAG is parsed.
A lineage error is logged, never raised, so it can never fail a task.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_dpc.hooks.dpc import DpcHook
    from airflow_provider_dpc.lineage import RunLineage
    from airflow_provider_dpc.models import StreamingPipelineDefinition

# Under the lineage module's name: one logger for everything lineage.
log = logging.getLogger("airflow_provider_dpc.lineage")

# A lineage fetch happens after the task's work is done: it gets a short budget, never the task's.
LINEAGE_RETRY_POLICY = {"max_attempts": 2, "backoff_base": 0.5, "backoff_max": 1.0, "max_elapsed": 15.0}


def lineage_hook(conn_id: str) -> DpcHook:
    """A hook for reads after the task's work is done, with the short retry budget of lineage."""
    from airflow_provider_dpc.hooks.dpc import DpcHook

    return DpcHook(conn_id, retry_policy=LINEAGE_RETRY_POLICY)


class _LineageMixin:
    """``get_openlineage_facets_on_complete`` for an operator that knows its pipeline's definition."""

    task_id: str
    dpc_conn_id: str
    project_id: str | None
    project_name: str | None

    def _lineage_definition(self) -> StreamingPipelineDefinition:
        raise NotImplementedError

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """Source tables as inputs, target tables or prefixes as outputs; None if they cannot be known.

        Called by the OpenLineage provider after the task ends; any error is logged and swallowed.
        """
        try:
            from airflow_provider_dpc.lineage import operator_lineage

            return operator_lineage(self._lineage_definition())
        except Exception as exc:
            log.warning(
                "%s: no OpenLineage inputs and outputs for this task (%s: %s)", self.task_id, type(exc).__name__, exc
            )
            return None

    def _lineage_hook(self) -> DpcHook:
        return lineage_hook(self.dpc_conn_id)


class DefinitionLineageMixin(_LineageMixin):
    """Lineage from the operator's own ``definition`` argument: no API call.

    With ``if_exists="reuse"`` an existing pipeline of the same name is taken to match it.
    """

    definition: Any
    #: The definition as ``execute`` validated and sent it.
    validated_definition: StreamingPipelineDefinition | None = None

    def _lineage_definition(self) -> StreamingPipelineDefinition:
        if self.validated_definition is not None:
            return self.validated_definition
        from airflow_provider_dpc.models import load_definition, validate_definition

        return validate_definition(load_definition(self.definition))


class FetchedPipelineLineageMixin(_LineageMixin):
    """Lineage from the pipeline as the API holds it, fetched once the task has finished."""

    pipeline_id: str | None
    pipeline_name: str | None
    resolved_pipeline: tuple[str, str] | None

    def _lineage_definition(self) -> StreamingPipelineDefinition:
        hook = self._lineage_hook()
        try:
            if self.resolved_pipeline is not None:  # the task looked them up already
                project_id, pipeline_id = self.resolved_pipeline
            else:
                project_id = hook.resolve_project_id(self.project_id, self.project_name)
                pipeline_id = hook.resolve_pipeline_id(project_id, self.pipeline_id, self.pipeline_name)
            definition: StreamingPipelineDefinition = hook.get_streaming_pipeline(project_id, pipeline_id).definition()
            return definition
        finally:
            hook.close()


# DPC writes a run's events as it goes, some after the run has ended: the read waits this long past
# the end (bounded; the OpenLineage listener gives a task's facets 10 s by default).
LINEAGE_SETTLE_SECONDS = 3.0
# The range read starts this long before the execution's start, for events DPC stamps a little early.
_LEAD_SECONDS = 5.0
# A long execution is read in two short ranges, around its start and its end, this long each, so
# the cost stays a few requests however many events the account's other runs write meanwhile.
_EDGE_SECONDS = 60.0
_MAX_PAGES = 3


def read_run_lineage(
    hook: DpcHook, project_id: str, execution_id: str, pipeline_name: str, *, settle: float = LINEAGE_SETTLE_SECONDS
) -> RunLineage | None:
    """DPC's lineage of one execution: its details, then its lineage events (one range, two for a
    long execution, each at most ``_MAX_PAGES`` pages), after waiting out ``settle`` past its end."""
    from airflow_provider_dpc.lineage import run_lineage
    from airflow_provider_dpc.models import parse_time

    execution = hook.get_pipeline_execution(project_id, execution_id)
    started = execution.started
    if started is None:
        return None
    now = datetime.now(started.tzinfo)
    ended = parse_time(execution.finished_at)
    finished = ended or now  # still running (wait_for_completion=False): what it has recorded so far
    wait = min(settle, (finished + timedelta(seconds=settle) - now).total_seconds())
    if ended is not None and wait > 0:
        time.sleep(wait)
    lead, edge, end = timedelta(seconds=_LEAD_SECONDS), timedelta(seconds=_EDGE_SECONDS), timedelta(seconds=settle)
    if finished - started <= 2 * edge:
        ranges = [(started - lead, finished + end)]
    else:
        ranges = [(started - lead, started + edge), (finished - edge, finished + end)]
    events = [e for start, stop in ranges for e in hook.list_lineage_events(start, stop, max_pages=_MAX_PAGES)]
    return run_lineage(
        events, execution_id=execution_id, pipeline_name=pipeline_name, project_id=project_id, started=started
    )


class ExecutionLineageMixin:
    """``get_openlineage_facets_on_complete`` and ``_on_failure`` for the run task: the tables DPC's
    lineage events say its execution read and wrote, and DPC's run as a job of its own whose parent
    is the task's run. Nothing is read unless the OpenLineage provider asks."""

    task_id: str
    dpc_conn_id: str
    pipeline_name: str
    #: (project id, execution id) of the execution this task ran or resumed, once it is known.
    lineage_execution: tuple[str, str] | None = None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """The execution's datasets and DPC's child job; None where DPC recorded none.

        Called by the OpenLineage provider after the task ends; any error is logged and swallowed."""
        return self._execution_lineage(task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage | None:
        """As :meth:`get_openlineage_facets_on_complete`, for a failed execution's FAIL event."""
        return self._execution_lineage(task_instance)

    def _execution_lineage(self, task_instance: Any) -> OperatorLineage | None:
        if self.lineage_execution is None:
            return None  # it failed before an execution existed
        project_id, execution_id = self.lineage_execution
        try:
            from airflow_provider_dpc.lineage import run_operator_lineage

            hook = lineage_hook(self.dpc_conn_id)
            try:
                run = read_run_lineage(hook, project_id, execution_id, self.pipeline_name)
            finally:
                hook.close()
            if run is None:
                log.info("%s: DPC recorded no lineage events for execution %s", self.task_id, execution_id)
                return None
            emit_child_run(run, task_instance)
            return run_operator_lineage(run)
        except Exception as exc:
            log.warning(
                "%s: no OpenLineage inputs and outputs from DPC for execution %s (%s: %s)",
                self.task_id,
                execution_id,
                type(exc).__name__,
                exc,
            )
            return None


def emit_child_run(run: RunLineage, task_instance: Any) -> None:
    """Send DPC's run as events of its own job, parented to the task's run, through the OpenLineage
    provider's own client (its transport, namespace and secrets handling)."""
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener
    from airflow.providers.openlineage.plugins.macros import lineage_job_name, lineage_job_namespace, lineage_run_id

    from airflow_provider_dpc.lineage import child_run_events

    adapter = get_openlineage_listener().adapter
    events = child_run_events(
        run, lineage_run_id(task_instance), lineage_job_namespace(), lineage_job_name(task_instance)
    )
    for event in events:
        adapter.emit(event)
