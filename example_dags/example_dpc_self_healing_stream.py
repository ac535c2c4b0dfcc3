"""Self-healing stream (Airflow 3): restart a streaming pipeline whenever it drops, and record why.

An asset watcher polls the pipeline's status in the triggerer; each time the pipeline moves into
NOT_RUNNING or UNKNOWN it fires once (not again while the pipeline stays down), an asset event is
recorded, and this DAG runs: it logs what the watcher saw (status, previous status, when) and
starts the pipeline again.

It needs to know which pipeline to watch: set ``DPC_WATCHED_PIPELINE_ID`` (and ``DPC_PROJECT_ID``)
in the environment of the DAG processor, triggerer and workers before unpausing it. Left at its
placeholder, or set to a pipeline that does not exist, the watcher fires once with status
``NOT_FOUND`` and the run fails, saying what to set. A run triggered by hand has no event to
act on: it restarts nothing and its tasks are skipped.

Airflow 2.11 has no asset watchers, so this file defines no DAG there.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

from airflow_provider_dpc.assets import pipeline_uri

try:
    from airflow.sdk import DAG, Asset, AssetWatcher, task
except ImportError:  # Airflow 2.11
    AssetWatcher = None

PROJECT_ID = os.environ.get("DPC_PROJECT_ID", "3dda0acf-e646-4f4b-b4f6-e00449b69427")
PIPELINE_ID = os.environ.get("DPC_WATCHED_PIPELINE_ID", "00000000-0000-4000-8000-000000000000")
POLL_INTERVAL = float(os.environ.get("DPC_POLL_INTERVAL", "60"))

if AssetWatcher is not None:
    from airflow_provider_dpc._compat import AirflowSkipException, Param
    from airflow_provider_dpc.exceptions import DpcNotFoundError
    from airflow_provider_dpc.operators.streaming_pipeline import DpcStartStreamingPipelineOperator
    from airflow_provider_dpc.triggers.streaming_pipeline import DpcStreamingPipelineEventTrigger

    stream_dropped = Asset(
        pipeline_uri(PROJECT_ID, PIPELINE_ID),
        watchers=[
            AssetWatcher(
                name="dpc_stream_dropped",
                trigger=DpcStreamingPipelineEventTrigger(
                    dpc_conn_id="matillion_dpc_default",
                    project_id=PROJECT_ID,
                    pipeline_id=PIPELINE_ID,
                    poll_interval=POLL_INTERVAL,
                ),
            )
        ],
    )

    with DAG(
        dag_id="example_dpc_self_healing_stream",
        description=(
            "Restarts a DPC streaming pipeline each time an asset watcher sees it drop. Needs "
            "DPC_WATCHED_PIPELINE_ID (and DPC_PROJECT_ID) set to the pipeline to watch before it is "
            f"unpaused; it now watches {PIPELINE_ID}. Runs by itself on a drop; a run triggered by hand "
            "restarts nothing."
        ),
        schedule=[stream_dropped],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        params={
            "deferrable": Param(
                True, type="boolean", description="Wait for the restarted pipeline in the triggerer, not a worker."
            )
        },
        tags=["example", "matillion-dpc"],
    ):

        @task
        def record_why(triggering_asset_events: Any = None) -> dict[str, Any]:
            """What the watcher saw, in the log and in XCom: the run's reason to restart."""
            payloads = [
                (event.extra or {}).get("payload", {})
                for events in (triggering_asset_events or {}).values()
                for event in events
            ]
            if not payloads:
                raise AirflowSkipException("this run has no asset event (it was triggered by hand): nothing to restart")
            why = payloads[-1]
            if why.get("status") == "NOT_FOUND":
                raise DpcNotFoundError(
                    f"the watched streaming pipeline {why.get('pipeline_id')} does not exist in project "
                    f"{why.get('project_id')}: set DPC_WATCHED_PIPELINE_ID (and DPC_PROJECT_ID) to the pipeline "
                    "to watch, where the DAG processor, triggerer and workers read them, and unpause the DAG again"
                )
            logging.getLogger("dpc.self_healing").warning(
                "pipeline %s went %s -> %s at %s; restarting it",
                why.get("pipeline_id"),
                why.get("previous_status"),
                why.get("status"),
                why.get("observed_at"),
            )
            return why

        restart = DpcStartStreamingPipelineOperator(
            task_id="restart",
            project_id=PROJECT_ID,
            pipeline_id=PIPELINE_ID,
            deferrable="{{ params.deferrable }}",
            poll_interval=POLL_INTERVAL,
            timeout=1800,
        )
        record_why() >> restart
