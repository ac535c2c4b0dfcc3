"""Scheduled window: stream on weekdays from 06:00 for ``window_hours``, then stop.

Every task that waits is deferrable, so between opening and closing the window the run holds no
worker slot. The window is held by ``DpcKeepStreamingOperator``: if the pipeline drops it is started
again (up to two restarts), and if it cannot be kept streaming the hold fails at once, saying when
it dropped, and the failure callback tells the team. Closing the window is a teardown: it always
runs, and the run's outcome is the hold's, so a window the stream did not last through is not green.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_dpc.operators.streaming_pipeline import (
    DpcKeepStreamingOperator,
    DpcStartStreamingPipelineOperator,
    DpcStopStreamingPipelineOperator,
)

PROJECT_ID = os.environ.get("DPC_PROJECT_ID", "3dda0acf-e646-4f4b-b4f6-e00449b69427")
POLL_INTERVAL = float(os.environ.get("DPC_POLL_INTERVAL", "30"))


def stream_lost(context: Any) -> None:
    """Failure callback: where a team pages someone or posts to a channel."""
    logging.getLogger("dpc.window").error(
        "the streaming window of %s could not be kept open: %s",
        context["params"]["pipeline_name"],
        context.get("exception"),
    )


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
    hold = DpcKeepStreamingOperator(
        task_id="hold_until_window_closes",
        project_id=PROJECT_ID,
        pipeline_name="{{ params.pipeline_name }}",
        until="{{ (dag_run.start_date + macros.timedelta(hours=params.window_hours | float)).isoformat() }}",
        max_restarts=2,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        on_failure_callback=stream_lost,
    )
    close_window = DpcStopStreamingPipelineOperator(
        task_id="close_window",
        project_id=PROJECT_ID,
        pipeline_name="{{ params.pipeline_name }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )

    open_window >> hold >> close_window.as_teardown(setups=open_window)
