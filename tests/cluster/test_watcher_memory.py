"""Asset watchers that remember, under a real scheduler and triggerer (Airflow 3.3's asset state store).

A DAG scheduled on a DPC-run watcher ("Pipeline 1") and one on a stream-drop watcher. What happens
while no triggerer watches (a crash, a move to another triggerer) fires once when a triggerer runs
the watchers again; what fired before never fires again. Airflow may fold events that come together
into one DAG run, so what is counted is the asset events each watcher made (one per DPC run, one
per drop), and every DAG run they started must succeed.
"""

from __future__ import annotations

import importlib.util
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest

from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.models import PipelineCommand, PipelineStatus
from tests.cluster.airflow_cluster import AirflowCluster, ClusterError
from tests.guide import PROJECT_ID, guide_body, requests_to, wait_for_status

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("airflow.models.asset_state_store") is None,
    reason="this Airflow keeps no state for asset watchers (asset_state_store, Airflow 3.3+): "
    "a restarted watcher starts afresh, as the other lines' tests show",
)

RUN_TIMEOUT = 90.0
TEST_TIMEOUT = 420
ENV = "Environment-1"
RUNS_DAG, DROP_DAG = "dpc_memory_after_runs", "dpc_memory_after_drops"
DAG_FILE = "dpc_watcher_memory.py"
TEMPLATE = """
import os
from datetime import datetime
from datetime import UTC, datetime
from typing import Any, NamedTuple

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_dpc.assets import pipeline_uri, published_pipeline_uri
from airflow_provider_dpc.triggers.pipeline_execution import DpcPipelineExecutionEventTrigger
from airflow_provider_dpc.triggers.streaming_pipeline import DpcStreamingPipelineEventTrigger

PROJECT_ID = os.environ["DPC_PROJECT_ID"]
POLL = float(os.environ["DPC_POLL_INTERVAL"])
runs = Asset(
    name="{runs_dag}",
    uri=published_pipeline_uri(PROJECT_ID, "Pipeline 1"),
    watchers=[AssetWatcher(name="runs", trigger=DpcPipelineExecutionEventTrigger(
        "matillion_dpc_default", PROJECT_ID, "Pipeline 1", "{env}", poll_interval=POLL
    ))],
)
drops = Asset(
    name="{drop_dag}",
    uri=pipeline_uri(PROJECT_ID, "{pipeline_id}"),
    watchers=[AssetWatcher(name="drops", trigger=DpcStreamingPipelineEventTrigger(
        "matillion_dpc_default", PROJECT_ID, "{pipeline_id}", poll_interval=POLL
    ))],
)

for dag_id, asset in (("{runs_dag}", runs), ("{drop_dag}", drops)):
    with DAG(dag_id=dag_id, schedule=[asset], start_date=datetime(2026, 1, 1), catchup=False):

        @task
        def record(triggering_asset_events: Any = None) -> int:
            return sum(len(events) for events in (triggering_asset_events or {{}}).values())

        record()
"""


class Watched(NamedTuple):
    pipeline_id: str
    since: str  # when the test began, ISO 8601: the events of earlier tests are older


def asset_events(cluster: AirflowCluster, name: str, since: str) -> list[dict[str, Any]]:
    """The payloads of the events an asset's watcher made since the test began, oldest first."""
    params = {"name_pattern": name, "limit": 100, "order_by": "timestamp", "timestamp_gte": since}
    for _ in range(20):
        try:
            found = cluster.api("GET", "/assets/events", params=params)
            break
        except ClusterError as exc:
            # Airflow 3.3.2 answers 500 while a DAG run an event created has no start date yet.
            if "created_dagruns" not in str(exc):
                raise
            time.sleep(0.5)
    else:
        raise AssertionError(f"the events of asset {name} could not be read for 10 s")
    return [(event.get("extra") or {}).get("payload", {}) for event in found["asset_events"]]


def execution_ids(cluster: AirflowCluster, watched: Watched) -> list[str]:
    return [p.get("pipeline_execution_id", "") for p in asset_events(cluster, RUNS_DAG, watched.since)]


def drops(cluster: AirflowCluster, watched: Watched) -> list[tuple[str, str]]:
    """The drops of this test's pipeline (an earlier test's watcher may still say its pipeline is gone)."""
    return [
        (p.get("previous_status", ""), p.get("status", ""))
        for p in asset_events(cluster, DROP_DAG, watched.since)
        if p.get("pipeline_id") == watched.pipeline_id
    ]


def reads(emulator: Any) -> tuple[int, int]:
    """The executions list reads and the pipeline status reads the emulator has answered."""
    return requests_to(emulator, "GET", "/v1/pipeline-executions"), requests_to(emulator, "GET", "/status")


def polled(cluster: AirflowCluster, emulator: Any, more: int = 4) -> None:
    """Wait until both watchers have read ``more`` more times."""
    lists, statuses = reads(emulator)

    def both() -> bool | None:
        now_lists, now_statuses = reads(emulator)
        return True if now_lists >= lists + more and now_statuses >= statuses + more else None

    cluster.wait_for(
        both,
        timeout=RUN_TIMEOUT,
        what=f"{more} more reads by each watcher in the triggerer",
    )


def all_runs_succeed(cluster: AirflowCluster) -> None:
    for dag_id in (RUNS_DAG, DROP_DAG):
        for run in cluster.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]:
            state, seen = cluster.wait_for_run(dag_id, run["dag_run_id"], timeout=RUN_TIMEOUT)
            assert state == "success", seen


def restart(cluster: AirflowCluster, name: str = "triggerer") -> None:
    cluster.kill_component(name, signal.SIGKILL)
    cluster.start_component(name)
    cluster.wait_healthy(components=["triggerer"])


@pytest.fixture
def watched(airflow: AirflowCluster, fresh_emulator: Any) -> Iterator[Watched]:
    """A streaming pipeline, STREAMING, and both DAGs watching, each watcher past its first reads."""
    since = datetime.now(UTC).isoformat()
    hook = DpcHook()
    pipeline_id = hook.create_streaming_pipeline(PROJECT_ID, guide_body("remembered")).streaming_pipeline_id
    hook.send_command(PROJECT_ID, pipeline_id, PipelineCommand.START)
    wait_for_status(hook, pipeline_id, PipelineStatus.STREAMING, within=10)
    text = TEMPLATE.format(runs_dag=RUNS_DAG, drop_dag=DROP_DAG, env=ENV, pipeline_id=pipeline_id)
    path = airflow.write_dag_file(DAG_FILE, text)
    for dag_id in (RUNS_DAG, DROP_DAG):
        airflow.wait_for_dag(dag_id)
        airflow.unpause(dag_id)
    airflow.write_dag_file(DAG_FILE, text)  # parsed again unpaused: Airflow starts the watchers
    # This pipeline's own drop watcher: the last test's, on a pipeline since deleted, reads statuses too.
    started = f"streaming pipeline {pipeline_id}: watching"
    airflow.wait_for(
        lambda: True if started in airflow.log_path("triggerer").read_text(encoding="utf-8") else None,
        timeout=150,  # the DAG processor parses the file anew, then a triggerer takes the new watcher
        what=f"the triggerer starting the drop watcher of pipeline {pipeline_id}",
    )
    polled(airflow, fresh_emulator)
    yield Watched(pipeline_id, since)
    path.unlink(missing_ok=True)


@pytest.mark.timeout(TEST_TIMEOUT)
def test_what_ended_or_dropped_while_no_triggerer_ran_fires_once_after_a_restart(
    airflow: AirflowCluster, fresh_emulator: Any, watched: Watched
) -> None:
    first = fresh_emulator.run_pipeline("Pipeline 1", ENV, seconds=0)["pipelineExecutionId"]
    airflow.wait_for(lambda: execution_ids(airflow, watched) or None, timeout=RUN_TIMEOUT, what="the first run's event")
    polled(airflow, fresh_emulator)  # both watchers have kept what they saw
    assert (execution_ids(airflow, watched), drops(airflow, watched)) == ([first], [])

    airflow.kill_component("triggerer", signal.SIGKILL)
    try:
        one = fresh_emulator.run_pipeline("Pipeline 1", ENV, seconds=0)["pipelineExecutionId"]
        fresh_emulator.run_pipeline("Pipeline 1", ENV, outcome="FAILED", seconds=0)  # not watched
        two = fresh_emulator.run_pipeline("Pipeline 1", ENV, seconds=0)["pipelineExecutionId"]
        fresh_emulator.die(watched.pipeline_id)
        time.sleep(1.5)  # both runs have ended, the pipeline is down
    finally:
        airflow.start_component("triggerer")
    airflow.wait_healthy(components=["triggerer"])
    airflow.wait_for(
        lambda: True if len(execution_ids(airflow, watched)) >= 3 and drops(airflow, watched) else None,
        timeout=RUN_TIMEOUT,
        what="the events of what happened while no triggerer ran",
    )
    polled(airflow, fresh_emulator)
    assert execution_ids(airflow, watched) == [first, one, two]  # oldest first, none twice
    assert drops(airflow, watched) == [("STREAMING", "NOT_RUNNING")]
    all_runs_succeed(airflow)

    # Killed and started again with nothing new: nothing fires.
    restart(airflow)
    polled(airflow, fresh_emulator, more=6)
    time.sleep(1)  # a scheduler loop for any event fired twice to show
    assert execution_ids(airflow, watched) == [first, one, two]
    assert drops(airflow, watched) == [("STREAMING", "NOT_RUNNING")]


@pytest.mark.timeout(TEST_TIMEOUT)
def test_another_triggerer_takes_the_watchers_over_and_loses_nothing(
    airflow: AirflowCluster, fresh_emulator: Any, watched: Watched
) -> None:
    airflow.start_component("triggerer-2")  # HA: a second triggerer, idle while the first holds the watchers
    try:
        first = fresh_emulator.run_pipeline("Pipeline 1", ENV, seconds=0)["pipelineExecutionId"]
        airflow.wait_for(
            lambda: execution_ids(airflow, watched) or None, timeout=RUN_TIMEOUT, what="the first run's event"
        )
        polled(airflow, fresh_emulator)

        airflow.kill_component("triggerer", signal.SIGKILL)  # the one holding the watchers
        one = fresh_emulator.run_pipeline("Pipeline 1", ENV, seconds=0)["pipelineExecutionId"]
        two = fresh_emulator.run_pipeline("Pipeline 1", ENV, seconds=0)["pipelineExecutionId"]
        fresh_emulator.die(watched.pipeline_id)
        # triggerer-2 adopts the watchers once the first's heartbeat is older than the threshold (5 s).
        airflow.wait_for(
            lambda: True if len(execution_ids(airflow, watched)) >= 3 and drops(airflow, watched) else None,
            timeout=RUN_TIMEOUT,
            what="triggerer-2 firing what happened after the first triggerer died",
        )
        polled(airflow, fresh_emulator)
        assert execution_ids(airflow, watched) == [first, one, two]
        assert drops(airflow, watched) == [("STREAMING", "NOT_RUNNING")]
        all_runs_succeed(airflow)
    finally:
        airflow.kill_component("triggerer-2", signal.SIGTERM)
