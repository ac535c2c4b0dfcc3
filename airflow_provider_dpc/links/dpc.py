"""Extra links from a task to its streaming pipeline, or its pipeline execution, in the DPC web app.

No URL of a streaming pipeline in the web app is published, so by default the link opens the
pipeline's project (``{app_url}/projects/{project_id}/branches``, the one route an independent client
of the API links to). A user who knows their console's route for a pipeline sets it as the
connection extra ``pipeline_url_template``, e.g.
``{app_url}/projects/{project_id}/streaming/pipelines/{pipeline_id}``.
"""

from __future__ import annotations

import string
from typing import Any

from airflow_provider_dpc._compat import BaseOperatorLink, get_xcom_value

# The task stores the finished URL under this key, so the link needs no API call to render.
XCOM_PIPELINE_URL = "dpc_pipeline_url"
XCOM_EXECUTION_URL = "dpc_pipeline_execution_url"
PROJECT_URL_TEMPLATE = "{app_url}/projects/{project_id}/branches"
#: The one route to an execution seen in an independent client of the API (no scheme is published).
EXECUTION_URL_TEMPLATE = "{app_url}/observability-dashboard/pipeline/{execution_id}"
URL_FIELDS = frozenset({"app_url", "project_id", "pipeline_id"})


def template_problem(template: str) -> str | None:
    """What is wrong with a URL template, or None: only ``{app_url}``, ``{project_id}`` and
    ``{pipeline_id}`` may appear, and braces must pair."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        return str(exc)
    unknown = sorted(names - URL_FIELDS)
    if unknown:
        return f"unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)}; use {{app_url}}, " + (
            "{project_id} and {pipeline_id}"
        )
    return None


def pipeline_url(app_url: str, project_id: str, pipeline_id: str, template: str | None = None) -> str:
    """The web app URL a task links to: ``template`` filled in, or the project's page."""
    return (template or PROJECT_URL_TEMPLATE).format(
        app_url=app_url.rstrip("/"), project_id=project_id, pipeline_id=pipeline_id
    )


class DpcStreamingPipelineLink(BaseOperatorLink):
    """'Matillion DPC' button on the task: the pipeline's project, or the pipeline itself where the
    connection's ``pipeline_url_template`` says how to reach it."""

    name = "Matillion DPC"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return get_xcom_value(ti_key, XCOM_PIPELINE_URL) or ""


def execution_url(app_url: str, execution_id: str) -> str:
    """The web app URL of a pipeline execution."""
    return EXECUTION_URL_TEMPLATE.format(app_url=app_url.rstrip("/"), execution_id=execution_id)


class DpcPipelineExecutionLink(BaseOperatorLink):
    """'Matillion DPC execution' button on a run task: the execution in DPC's observability dashboard."""

    name = "Matillion DPC execution"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return get_xcom_value(ti_key, XCOM_EXECUTION_URL) or ""
