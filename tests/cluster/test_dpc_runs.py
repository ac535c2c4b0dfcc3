"""A DAG scheduled on DPC's own runs, under a real scheduler and triggerer (every Airflow 3 line).

The example ``example_dpc_after_dpc_runs`` is scheduled on an asset whose watcher is a
``DpcPipelineExecutionEventTrigger`` on "Pipeline 1"; the emulator runs that pipeline as DPC's
scheduler would (``run_pipeline``), so nothing in Airflow starts it. One test, as the cluster's
minutes are dear: a failed run starts no DAG run, each successful one exactly one, and a triggerer
killed and started again fires nothing twice.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.airflow_cluster import AirflowCluster
from tests.guide import ROOT, requests_to

EXAMPLE = "example_dpc_after_dpc_runs"
RUN_TIMEOUT = 90.0
TEST_TIMEOUT = 300
ENV = "Environment-1"


SOURCE = (ROOT / "example_dags" / f"{EXAMPLE}.py").read_text(encoding="utf-8")


@pytest.fixture(scope="module", autouse=True)
def watched_dag(airflow_cluster: AirflowCluster) -> Iterator[None]:
    """The example in the cluster's DAGs folder for this module only: its watcher polls every 0.5 s."""
    path = airflow_cluster.write_dag_file(f"{EXAMPLE}.py", SOURCE)
    yield
    path.unlink(missing_ok=True)


def runs(cluster: AirflowCluster) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cluster.api("GET", f"/dags/{EXAMPLE}/dagRuns")["dag_runs"]
    return sorted(found, key=lambda run: str(run.get("queued_at") or run.get("start_date") or ""))


def list_reads(emulator: Any) -> int:
    return requests_to(emulator, "GET", "/v1/pipeline-executions")


def polls(cluster: AirflowCluster, emulator: Any, more: int = 4) -> None:
    """Wait until the watcher has read the executions list ``more`` more times."""
    before = list_reads(emulator)
    cluster.wait_for(
        lambda: True if list_reads(emulator) >= before + more else None,
        timeout=RUN_TIMEOUT,
        what=f"{more} reads of the executions list by the watcher in the triggerer",
    )


def nth_run(cluster: AirflowCluster, n: int) -> dict[str, Any]:
    found = cluster.wait_for(lambda: runs(cluster)[n - 1 :] or None, timeout=RUN_TIMEOUT, what=f"DAG run {n}")
    run = found[0]
    state, seen = cluster.wait_for_run(EXAMPLE, run["dag_run_id"], timeout=RUN_TIMEOUT)
    assert state == "success", seen
    return run


@pytest.mark.every_line
@pytest.mark.timeout(TEST_TIMEOUT)
def test_a_dag_runs_once_per_successful_dpc_run_through_a_triggerer_restart(
    airflow: AirflowCluster, fresh_emulator: Any
) -> None:
    airflow.wait_for_dag(EXAMPLE)
    airflow.unpause(EXAMPLE)
    # Airflow starts a watcher when it parses the file of an unpaused DAG: a new copy is parsed at once.
    airflow.write_dag_file(f"{EXAMPLE}.py", SOURCE)
    polls(airflow, fresh_emulator)  # the watcher runs in the triggerer: its first read is its starting point

    failed = fresh_emulator.run_pipeline("Pipeline 1", ENV, outcome="FAILED", seconds=0, message="Warehouse suspended")
    fresh_emulator.run_pipeline("Pipeline 10", ENV, seconds=0)  # a name that merely contains the one watched
    polls(airflow, fresh_emulator)
    assert runs(airflow) == []  # neither a failed run nor another pipeline's starts one

    first = fresh_emulator.run_pipeline("Pipeline 1", ENV, seconds=0.3)
    run = nth_run(airflow, 1)
    followed = airflow.xcom(EXAMPLE, run["dag_run_id"], "record_run")
    assert (followed["pipeline_execution_id"], followed["status"]) == (first["pipelineExecutionId"], "SUCCESS")
    assert followed["pipeline_execution_id"] != failed["pipelineExecutionId"]

    try:
        airflow.kill_component("triggerer", signal.SIGKILL)
        airflow.start_component("triggerer")
        airflow.wait_healthy(components=["triggerer"])
        polls(airflow, fresh_emulator, more=6)  # the watcher, started again, has read the list since
    finally:
        if not airflow.running("triggerer"):
            airflow.start_component("triggerer")
    time.sleep(1)  # a scheduler loop for any event fired twice to become a run
    assert len(runs(airflow)) == 1, runs(airflow)  # the run it fired for already is not fired again

    second = fresh_emulator.run_pipeline("Pipeline 1", ENV, seconds=0.3)
    run = nth_run(airflow, 2)
    followed = airflow.xcom(EXAMPLE, run["dag_run_id"], "record_run")
    assert followed["pipeline_execution_id"] == second["pipelineExecutionId"]
    polls(airflow, fresh_emulator)
    assert len(runs(airflow)) == 2, runs(airflow)
