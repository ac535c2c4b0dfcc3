"""Scheduled windows under a real scheduler: a backfill never touches the stream today's window holds.

Airflow 3 runs a backfill's runs several at a time (its own ``max_active_runs``, whatever the DAG's).
Each backfilled run's window has passed, so its start and hold are skipped, and with them its
teardown stop: no START, no STOP reaches DPC, and the stream of today's window runs on.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.models import PipelineCommand, PipelineStatus
from tests.cluster.airflow_cluster import AirflowCluster
from tests.guide import PROJECT_ID, ROOT, guide_body, requests_to, wait_for_status

WINDOW = "dpc_window_backfilled"
PIPELINE = "backfilled-window"
RUN_TIMEOUT = 120.0
TEST_TIMEOUT = 420
# The example, as a user deploys it for their pipeline: its own id, its pipeline the default.
SOURCE = (
    (ROOT / "example_dags" / "example_dpc_scheduled_window.py")
    .read_text(encoding="utf-8")
    .replace('dag_id="example_dpc_scheduled_window"', f'dag_id="{WINDOW}"')
    .replace('"my-streaming-pipeline"', f'"{PIPELINE}"')
)


@pytest.fixture(scope="module", autouse=True)
def window_dag(airflow_cluster: AirflowCluster) -> Iterator[None]:
    assert WINDOW in SOURCE
    assert PIPELINE in SOURCE
    path = airflow_cluster.write_dag_file(f"{WINDOW}.py", SOURCE)
    yield
    path.unlink(missing_ok=True)


def runs(cluster: AirflowCluster, run_type: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cluster.api("GET", f"/dags/{WINDOW}/dagRuns", params={"limit": 100})["dag_runs"]
    return [run for run in found if run.get("run_type") == run_type]


@pytest.mark.timeout(TEST_TIMEOUT)
def test_a_backfill_of_last_week_touches_nothing_while_todays_window_streams(
    airflow: AirflowCluster, fresh_emulator: Any
) -> None:
    hook = DpcHook()
    pipeline_id = hook.create_streaming_pipeline(PROJECT_ID, guide_body(PIPELINE)).streaming_pipeline_id
    hook.send_command(PROJECT_ID, pipeline_id, PipelineCommand.START)
    wait_for_status(hook, pipeline_id, PipelineStatus.STREAMING, within=10)
    airflow.wait_for_dag(WINDOW)
    airflow.unpause(WINDOW)
    # Today's window: a run triggered now, its start finding the pipeline streaming, its hold holding.
    today = airflow.trigger(WINDOW, conf={"pipeline_name": PIPELINE, "window_hours": 1.0})
    airflow.wait_for(
        lambda: True if airflow.task_states(WINDOW, today).get("hold_until_window_closes") == "deferred" else None,
        timeout=RUN_TIMEOUT,
        what="today's hold deferred to the triggerer",
    )
    commands = requests_to(fresh_emulator, "POST", "/commands")

    now = datetime.now(UTC)
    body = {
        "dag_id": WINDOW,
        "from_date": (now - timedelta(days=8)).isoformat(),
        "to_date": (now - timedelta(days=1)).isoformat(),
        "max_active_runs": 5,
    }
    airflow.api("POST", "/backfills", json=body)
    backfilled = airflow.wait_for(lambda: runs(airflow, "backfill") or None, timeout=RUN_TIMEOUT, what="the backfill")
    for run in backfilled:
        state, seen = airflow.wait_for_run(WINDOW, run["dag_run_id"], timeout=RUN_TIMEOUT)
        assert state == "success", seen
        assert airflow.task_states(WINDOW, run["dag_run_id"]) == {
            "create_or_reuse_pipeline": "success",
            "open_window": "skipped",
            "hold_until_window_closes": "skipped",
            "close_window": "skipped",
        }
    assert len(backfilled) >= 4  # the weekdays of the last eight days

    assert requests_to(fresh_emulator, "POST", "/commands") == commands  # no START, no STOP, no restart
    assert hook.get_status(PROJECT_ID, pipeline_id) is PipelineStatus.STREAMING
    assert airflow.task_states(WINDOW, today)["hold_until_window_closes"] == "deferred"  # still holding
