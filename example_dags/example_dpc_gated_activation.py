"""Dependency-gated activation: start the pipeline only after upstream loads succeed, then gate consumers.

The start task checks the pipeline's streaming agent before sending START. Two ways to hold
downstream work until the pipeline streams: a task downstream of a
``DpcStreamingPipelineSensor`` in this DAG, and other DAGs scheduled on the asset that the sensor
updates once the pipeline streams. Once it streams, a published DPC transformation pipeline builds
the tables the consumers read from the raw changes the stream lands.

The pipeline is created from ``streaming-pipeline.json`` when it does not exist yet, or reused. It
is left streaming: stop it with the quickstart or the scheduled window, or in DPC.
"""

from __future__ import annotations

import os
from datetime import datetime

try:
    from airflow.sdk import DAG, Asset, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.datasets import Dataset as Asset
    from airflow.decorators import task

from airflow_provider_dpc._compat import Param
from airflow_provider_dpc.operators.pipeline_execution import DpcRunPipelineOperator
from airflow_provider_dpc.operators.streaming_pipeline import (
    DpcCreateStreamingPipelineOperator,
    DpcStartStreamingPipelineOperator,
)
from airflow_provider_dpc.sensors.streaming_pipeline import DpcStreamingPipelineSensor

PROJECT_ID = os.environ.get("DPC_PROJECT_ID", "3dda0acf-e646-4f4b-b4f6-e00449b69427")
DEFERRABLE = os.environ.get("DPC_DEFERRABLE", "false").lower() == "true"
POLL_INTERVAL = float(os.environ.get("DPC_POLL_INTERVAL", "10"))

# The provider's asset URI scheme: matillion-dpc://<project>/streaming-pipelines/<pipeline>.
STREAM = Asset(f"matillion-dpc://{PROJECT_ID}/streaming-pipelines/my-streaming-pipeline")

with DAG(
    dag_id="example_dpc_gated_activation",
    description=(
        "Starts a DPC streaming pipeline once upstream loads succeed, gates consumers until it streams, "
        "then runs a published DPC pipeline. Needs the matillion_dpc_default connection, DPC_PROJECT_ID "
        "and the published pipeline and environment named in its params (the emulator has both); "
        "creates the streaming pipeline from streaming-pipeline.json if missing. Trigger it."
    ),
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "pipeline_name": Param(
            "my-streaming-pipeline",
            type="string",
            minLength=1,
            description="The streaming pipeline to start; created from streaming-pipeline.json if missing.",
        ),
        "transformation_pipeline": Param(
            "Pipeline 1",
            type="string",
            minLength=1,
            description="The published DPC pipeline that builds the reporting tables once the stream flows.",
        ),
        "environment_name": Param(
            "Environment-1", type="string", minLength=1, description="The DPC environment it runs in."
        ),
        "deferrable": Param(
            DEFERRABLE,
            type="boolean",
            description="Wait in the triggerer (no worker slot held) rather than in a worker.",
        ),
    },
    tags=["example", "matillion-dpc"],
):

    @task
    def load_reference_data() -> None:
        """An upstream load the stream depends on (stands for your own tasks)."""

    @task
    def check_source_ready() -> None:
        """Another upstream check, e.g. that CDC is enabled on the source tables."""

    create = DpcCreateStreamingPipelineOperator(
        task_id="create_or_reuse_pipeline",
        project_id=PROJECT_ID,
        definition="streaming-pipeline.json",
        if_exists="reuse",
    )

    # Reads the pipeline's streaming agent first: while the agent is not connected, START would be
    # acknowledged and ignored, so the task fails at once naming the agent instead of gating forever.
    start = DpcStartStreamingPipelineOperator(
        task_id="start_pipeline",
        project_id=PROJECT_ID,
        pipeline_name="{{ params.pipeline_name }}",
        wait_for_streaming=False,
        check_agent=True,
    )
    gate = DpcStreamingPipelineSensor(
        task_id="wait_until_streaming",
        project_id=PROJECT_ID,
        pipeline_name="{{ params.pipeline_name }}",
        target_status="STREAMING",
        failure_statuses=["NOT_RUNNING"],
        grace_period=60,
        deferrable="{{ params.deferrable }}",
        poke_interval=POLL_INTERVAL,
        timeout=1800,
        outlets=[STREAM],
    )

    # A retry never runs the pipeline twice: it waits for the execution its earlier try started.
    transform = DpcRunPipelineOperator(
        task_id="build_reporting_tables",
        project_id=PROJECT_ID,
        pipeline_name="{{ params.transformation_pipeline }}",
        environment_name="{{ params.environment_name }}",
        scalar_variables={"load_date": "{{ ds }}"},
        deferrable="{{ params.deferrable }}",
        poll_interval=POLL_INTERVAL,
        timeout=3600,  # then the execution is cancelled and the task fails
    )

    @task
    def consume() -> None:
        """Work that needs the stream flowing and the reporting tables built."""

    [load_reference_data(), check_source_ready(), create] >> start >> gate >> transform >> consume()


with DAG(
    dag_id="example_dpc_stream_consumer",
    description=(
        "Refreshes the reports each time the DPC streaming pipeline has been seen streaming: scheduled on "
        "the asset that example_dpc_gated_activation's gate updates. Runs by itself after that gate; "
        "needs nothing else."
    ),
    schedule=[STREAM],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "matillion-dpc"],
):

    @task
    def refresh_reports() -> None:
        """Runs each time the pipeline has been seen streaming."""

    refresh_reports()
