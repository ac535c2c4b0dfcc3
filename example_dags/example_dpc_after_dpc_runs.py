"""After DPC's own runs (Airflow 3): refresh the reports each time DPC has run a published pipeline
successfully, whoever started it (DPC's scheduler, a user in DPC).

An asset watcher reads the pipeline's executions in the triggerer once per ``DPC_POLL_INTERVAL``
seconds (60 by default: 60 requests an hour); each execution that ends in SUCCESS fires once, an
asset event is recorded, and this DAG runs: it records which execution it follows and refreshes the
reports. A failed execution fires nothing, and neither does one that ended before the watcher
started. Set ``DPC_PROJECT_ID``, ``DPC_WATCHED_PIPELINE`` and ``DPC_WATCHED_ENVIRONMENT`` to your own
(the emulator's "Pipeline 1" in "Environment-1" by default).

Airflow 2.11 has no asset watchers, so this file defines no DAG there: a scheduled DAG waits with
``DpcPipelineExecutionSensor(pipeline_name=..., environment_name=...)`` instead
(docs/pipeline-executions.md, "Waiting for DPC's own schedule").
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

from airflow_provider_dpc.assets import published_pipeline_uri

try:
    from airflow.sdk import DAG, Asset, AssetWatcher, task
except ImportError:  # Airflow 2.11
    AssetWatcher = None

PROJECT_ID = os.environ.get("DPC_PROJECT_ID", "3dda0acf-e646-4f4b-b4f6-e00449b69427")
PIPELINE = os.environ.get("DPC_WATCHED_PIPELINE", "Pipeline 1")
ENVIRONMENT = os.environ.get("DPC_WATCHED_ENVIRONMENT", "Environment-1")
POLL_INTERVAL = float(os.environ.get("DPC_POLL_INTERVAL", "60"))

if AssetWatcher is not None:
    from airflow_provider_dpc.triggers.pipeline_execution import DpcPipelineExecutionEventTrigger

    pipeline_succeeded = Asset(
        published_pipeline_uri(PROJECT_ID, PIPELINE),
        watchers=[
            AssetWatcher(
                name="dpc_pipeline_succeeded",
                trigger=DpcPipelineExecutionEventTrigger(
                    dpc_conn_id="matillion_dpc_default",
                    project_id=PROJECT_ID,
                    pipeline_name=PIPELINE,
                    environment_name=ENVIRONMENT,
                    statuses=["SUCCESS"],
                    poll_interval=POLL_INTERVAL,
                ),
            )
        ],
    )

    with DAG(
        dag_id="example_dpc_after_dpc_runs",
        description=(
            "Runs once per successful execution of a DPC published pipeline, whoever started it. Needs Airflow 3 "
            "(asset watchers, a running triggerer), the matillion_dpc_default connection, and DPC_PROJECT_ID, "
            "DPC_WATCHED_PIPELINE and DPC_WATCHED_ENVIRONMENT naming the pipeline"
        ),
        schedule=[pipeline_succeeded],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["example", "matillion-dpc"],
    ):
        # One XCom, not one per key: Airflow 3.0 refuses an XCom whose value is null (a success's message).
        @task(multiple_outputs=False)
        def record_run(triggering_asset_events: Any = None) -> dict[str, Any]:
            """The execution this run follows, in the log and in XCom."""
            payloads = [
                (event.extra or {}).get("payload", {})
                for events in (triggering_asset_events or {}).values()
                for event in events
            ]
            run = payloads[-1] if payloads else {}
            logging.getLogger("dpc.after_dpc_runs").warning(
                "DPC pipeline %r in %r: execution %s ended %s at %s",
                run.get("pipeline_name"),
                run.get("environment_name"),
                run.get("pipeline_execution_id"),
                run.get("status"),
                run.get("finished_at"),
            )
            return run

        @task
        def refresh_reports(run: dict[str, Any]) -> str:
            """Stands for the work that needs DPC's load done: a dbt build, a dashboard refresh."""
            return f"reports refreshed after execution {run.get('pipeline_execution_id')}"

        refresh_reports(record_run())
