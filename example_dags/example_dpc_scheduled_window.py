"""Scheduled window: stream on weekdays from 06:00 for ``window_hours``, then stop.

The window follows the schedule, not the moment a run happens to start: it opens when the run was
due (06:00) and closes ``window_hours`` later. A run that starts late (queued, or the scheduler was
down) holds only what remains of its window; a run whose window has passed, such as the latest
scheduled run Airflow creates when the DAG is first unpaused, a backfill or a cleared old run, changes
nothing in DPC: its start and hold are skipped, saying why in their logs, and so is its stop, so it
never stops the stream of today's window. A triggered run's window opens when it is triggered.

The pipeline is created from ``streaming-pipeline.json`` when it does not exist yet, or reused.
The hold is ``DpcKeepStreamingOperator``: if the pipeline drops it is started again (up to two
restarts), and if it cannot be kept streaming the hold fails at once, saying when it dropped, and
the failure callback tells the team. Closing the window is a teardown: it runs whenever the window
was opened, stops the pipeline if it runs (a stream running outside its window is what this DAG exists to prevent) and
sends nothing if it does not; the run's outcome is the hold's, so a window the stream did not last
through is not green.
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

from airflow_provider_dpc._compat import Param
from airflow_provider_dpc.operators.streaming_pipeline import (
    DpcCreateStreamingPipelineOperator,
    DpcKeepStreamingOperator,
    DpcStartStreamingPipelineOperator,
    DpcStopStreamingPipelineOperator,
)

PROJECT_ID = os.environ.get("DPC_PROJECT_ID", "3dda0acf-e646-4f4b-b4f6-e00449b69427")
DEFERRABLE = os.environ.get("DPC_DEFERRABLE", "true").lower() == "true"
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
    description=(
        "Streams a DPC pipeline on weekdays from 06:00 for window_hours, restarting it if it drops. "
        "Needs the matillion_dpc_default connection and DPC_PROJECT_ID (the emulator's project by "
        "default); creates the pipeline from streaming-pipeline.json if missing. Unpause it, or "
        "trigger it: a triggered run's window opens now."
    ),
    schedule="0 6 * * 1-5",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "pipeline_name": Param(
            "my-streaming-pipeline",
            type="string",
            minLength=1,
            description="The streaming pipeline to hold open; created from streaming-pipeline.json if missing.",
        ),
        "window_hours": Param(
            10.0,
            type="number",
            exclusiveMinimum=0,
            description="How long the window stays open, in hours, from when the run was due.",
        ),
        "deferrable": Param(
            DEFERRABLE,
            type="boolean",
            description="Wait in the triggerer (no worker slot held while streaming) rather than in a worker.",
        ),
    },
    tags=["example", "matillion-dpc"],
):
    create = DpcCreateStreamingPipelineOperator(
        task_id="create_or_reuse_pipeline",
        project_id=PROJECT_ID,
        definition="streaming-pipeline.json",
        if_exists="reuse",
    )
    open_window = DpcStartStreamingPipelineOperator(
        task_id="open_window",
        project_id=PROJECT_ID,
        pipeline_name="{{ params.pipeline_name }}",
        window_length="{{ params.window_hours | float * 3600 }}",
        deferrable="{{ params.deferrable }}",
        poll_interval=POLL_INTERVAL,
        timeout=1800,
    )
    hold = DpcKeepStreamingOperator(
        task_id="hold_until_window_closes",
        project_id=PROJECT_ID,
        pipeline_name="{{ params.pipeline_name }}",
        window_length="{{ params.window_hours | float * 3600 }}",
        max_restarts=2,
        deferrable="{{ params.deferrable }}",
        poll_interval=POLL_INTERVAL,
        on_failure_callback=stream_lost,
    )
    close_window = DpcStopStreamingPipelineOperator(
        task_id="close_window",
        project_id=PROJECT_ID,
        pipeline_name="{{ params.pipeline_name }}",
        deferrable="{{ params.deferrable }}",
        poll_interval=POLL_INTERVAL,
    )

    create >> open_window >> hold >> close_window.as_teardown(setups=open_window)
