"""Quickstart: create a streaming pipeline, start it and wait until it streams, use it, stop, delete.

The definition is the guide's SQL Server -> Snowflake example in ``streaming-pipeline.json``, a
templated file (its name comes from ``params``); a pipeline of that name is reused. Set
``DPC_PROJECT_ID`` to your project. The ``deferrable`` param (default: ``DPC_DEFERRABLE``, else
false) waits in the triggerer instead of a worker slot; the trigger form sets it per run.
"""

from __future__ import annotations

import os
from datetime import datetime

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_dpc._compat import Param
from airflow_provider_dpc.operators.streaming_pipeline import (
    DpcCreateStreamingPipelineOperator,
    DpcDeleteStreamingPipelineOperator,
    DpcStartStreamingPipelineOperator,
    DpcStopStreamingPipelineOperator,
)

PROJECT_ID = os.environ.get("DPC_PROJECT_ID", "3dda0acf-e646-4f4b-b4f6-e00449b69427")
DEFERRABLE = os.environ.get("DPC_DEFERRABLE", "false").lower() == "true"
POLL_INTERVAL = float(os.environ.get("DPC_POLL_INTERVAL", "10"))

with DAG(
    dag_id="example_dpc_quickstart",
    description=(
        "Creates a DPC streaming pipeline, starts it, waits until it streams, then stops and deletes it. "
        "Needs the matillion_dpc_default connection and DPC_PROJECT_ID (the emulator's project by "
        "default). Trigger it; nothing else needs to exist."
    ),
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "pipeline_name": Param(
            "my-streaming-pipeline",
            type="string",
            minLength=1,
            description="Name of the pipeline to create from streaming-pipeline.json (reused if it exists).",
        ),
        "deferrable": Param(
            DEFERRABLE,
            type="boolean",
            description="Wait in the triggerer (no worker slot held) rather than in a worker.",
        ),
    },
    tags=["example", "matillion-dpc"],
):
    create = DpcCreateStreamingPipelineOperator(
        task_id="create_pipeline",
        project_id=PROJECT_ID,
        definition="streaming-pipeline.json",
        if_exists="reuse",
    )
    start = DpcStartStreamingPipelineOperator(
        task_id="start_pipeline",
        project_id=PROJECT_ID,
        pipeline_id=create.output,
        deferrable="{{ params.deferrable }}",
        poll_interval=POLL_INTERVAL,
        timeout=1800,
    )

    @task
    def consume(pipeline_id: str) -> str:
        """Downstream work that needs the change stream flowing."""
        print(f"pipeline {pipeline_id} is streaming; downstream work runs now")
        return pipeline_id

    stop = DpcStopStreamingPipelineOperator(
        task_id="stop_pipeline",
        project_id=PROJECT_ID,
        pipeline_id=create.output,
        deferrable="{{ params.deferrable }}",
        poll_interval=POLL_INTERVAL,
        trigger_rule="all_done",
    )
    delete = DpcDeleteStreamingPipelineOperator(
        task_id="delete_pipeline",
        project_id=PROJECT_ID,
        pipeline_id=create.output,
        missing_ok=True,
        poll_interval=POLL_INTERVAL,
        trigger_rule="all_done",
    )

    create >> start >> consume(start.output) >> stop >> delete
