"""Extra link from a task to its streaming pipeline in the DPC web app."""

from __future__ import annotations

from typing import Any

from airflow_provider_dpc._compat import BaseOperatorLink, get_xcom_value

# The task stores the finished URL under this key, so the link needs no API call to render.
XCOM_PIPELINE_URL = "dpc_pipeline_url"


def pipeline_url(app_url: str, project_id: str, pipeline_id: str) -> str:
    return f"{app_url.rstrip('/')}/projects/{project_id}/streaming/pipelines/{pipeline_id}"


class DpcStreamingPipelineLink(BaseOperatorLink):
    """'Matillion DPC pipeline' button on the task, opening the pipeline in the DPC web app."""

    name = "Matillion DPC pipeline"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return get_xcom_value(ti_key, XCOM_PIPELINE_URL) or ""
