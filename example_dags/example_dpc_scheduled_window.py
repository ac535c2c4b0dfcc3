"""Scheduled window: stream on weekdays from 06:00 for ``window_hours``, then stop.

Every task that waits is deferrable, so between opening and closing the window the run holds no
worker slot: the start waits for STREAMING in the triggerer, the window is held by a deferrable
date-time sensor, and the stop always runs, even when something in between failed.
"""

from __future__ import annotations

import os
from datetime import datetime

try:
    from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.sensors.date_time import DateTimeSensorAsync

from airflow_provider_dpc.operators.streaming_pipeline import (
    DpcStartStreamingPipelineOperator,
    DpcStopStreamingPipelineOperator,
)

PROJECT_ID = os.environ.get("DPC_PROJECT_ID", "3dda0acf-e646-4f4b-b4f6-e00449b69427")
POLL_INTERVAL = float(os.environ.get("DPC_POLL_INTERVAL", "30"))

with DAG(
    dag_id="example_dpc_scheduled_window",
    schedule="0 6 * * 1-5",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={"pipeline_name": "my-streaming-pipeline", "window_hours": 10.0},
    tags=["example", "matillion-dpc"],
):
    open_window = DpcStartStreamingPipelineOperator(
        task_id="open_window",
        project_id=PROJECT_ID,
        pipeline_name="{{ params.pipeline_name }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=1800,
    )
    hold = DateTimeSensorAsync(
        task_id="hold_until_window_closes",
        target_time="{{ (dag_run.start_date + macros.timedelta(hours=params.window_hours | float)).isoformat() }}",
    )
    close_window = DpcStopStreamingPipelineOperator(
        task_id="close_window",
        project_id=PROJECT_ID,
        pipeline_name="{{ params.pipeline_name }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        trigger_rule="all_done",
    )

    open_window >> hold >> close_window
