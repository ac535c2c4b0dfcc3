"""Self-healing stream (Airflow 3): restart a streaming pipeline whenever it drops, and record why.

An asset watcher polls the pipeline's status in the triggerer; each time the pipeline moves into
NOT_RUNNING or UNKNOWN it fires once (not again while the pipeline stays down), an asset event is
recorded, and this DAG runs: it logs what the watcher saw (status, previous status, when) and
starts the pipeline again. Set ``DPC_PROJECT_ID`` and ``DPC_WATCHED_PIPELINE_ID`` to your own.

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
        schedule=[stream_dropped],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
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
            why = payloads[-1] if payloads else {}
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
            deferrable=True,
            poll_interval=POLL_INTERVAL,
            timeout=1800,
        )
        record_why() >> restart
