"""How the create and start operators report OpenLineage inputs and outputs.

The dataset naming lives in :mod:`airflow_provider_dpc.lineage`; it and the models are imported
only when the OpenLineage provider asks for facets after a task ends, never while a DAG is parsed.
A lineage error is logged, never raised, so it can never fail a task.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_dpc.models import StreamingPipelineDefinition

# Under the lineage module's name: one logger for everything lineage.
log = logging.getLogger("airflow_provider_dpc.lineage")

# A lineage fetch happens after the task's work is done: it gets a short budget, never the task's.
LINEAGE_RETRY_POLICY = {"max_attempts": 2, "backoff_base": 0.5, "backoff_max": 1.0, "max_elapsed": 15.0}


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

    def _lineage_hook(self) -> Any:
        from airflow_provider_dpc.hooks.dpc import DpcHook

        return DpcHook(self.dpc_conn_id, retry_policy=LINEAGE_RETRY_POLICY)


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
