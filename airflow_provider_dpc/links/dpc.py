"""Extra link from a task to its streaming pipeline in the DPC web app."""

from __future__ import annotations

from typing import Any

from airflow_provider_dpc._compat import AIRFLOW_V3, BaseOperatorLink

# The task stores the finished URL under this key, so the link needs no API call to render.
XCOM_PIPELINE_URL = "dpc_pipeline_url"


def pipeline_url(app_url: str, project_id: str, pipeline_id: str) -> str:
    return f"{app_url.rstrip('/')}/projects/{project_id}/streaming/pipelines/{pipeline_id}"


class DpcStreamingPipelineLink(BaseOperatorLink):
    """'Matillion DPC pipeline' button on the task, opening the pipeline in the DPC web app."""

    name = "Matillion DPC pipeline"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        if AIRFLOW_V3:
            from airflow.sdk.execution_time.xcom import XCom
        else:
            from airflow.models import XCom  # type: ignore[no-redef,unused-ignore]
        return XCom.get_value(ti_key=ti_key, key=XCOM_PIPELINE_URL) or ""
