"""The DAGs under a real Airflow 3 deployment: scheduler, triggerer, DAG processor and API server.

``test_example_dags.py`` runs DAGs with ``dag.test()`` in this process; here the scheduler queues
the tasks on a LocalExecutor, deferred tasks wait in a real triggerer, and the test watches it all
through the REST API, as an operator of a deployment would. One cluster serves every test of the
session (see ``conftest.py``); the emulator is reset before each test.

Airflow 3 only: ``airflow_cluster`` runs Airflow 3's components (the API server, the standalone DAG
processor, the Task Execution API). The quickstart runs on every 3.x line CI tests, since reading a
connection inside the triggerer differs between them; the fault tests run on the newest.
"""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.airflow_cluster import AirflowCluster
from tests.guide import PROJECT_ID, ROOT, requests_to

EXAMPLES = ROOT / "example_dags"
QUICKSTART = "example_dpc_quickstart"
QUICKSTART_TASKS = ("create_pipeline", "start_pipeline", "consume", "stop_pipeline", "delete_pipeline")
RETRY_DAG = "dpc_create_retried_after_crash"
# A run takes 5-30 s; the waits fail (with Airflow's logs) well before pytest-timeout, whose limit
# includes starting the cluster for the first test of the session that needs it.
RUN_TIMEOUT = 90.0
TEST_TIMEOUT = 300

# A create task that crashes on its first try right after the create POST has returned, before the
# operator pushes anything to XCom (the process dies: no exception handling, no clean-up). It notes
# the id it was given in MARKERS/<run id>, so the test can compare it with what the retry returns.
RETRY_DAG_SOURCE = '''\
"""Written by tests/test_scheduler.py: a create task that crashes after the POST on its first try."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG

from airflow_provider_dpc.operators.streaming_pipeline import DpcCreateStreamingPipelineOperator

MARKERS = Path({markers!r})


class CrashAfterCreateOnFirstTry(DpcCreateStreamingPipelineOperator):
    def execute(self, context):
        ti = context["ti"]
        if ti.try_number == 1:
            create = self.hook.create_streaming_pipeline

            def create_then_crash(*args, **kwargs):
                pipeline = create(*args, **kwargs)
                (MARKERS / ti.run_id).write_text(pipeline.streaming_pipeline_id)
                os._exit(1)

            self.hook.create_streaming_pipeline = create_then_crash
        return super().execute(context)


with DAG(
    dag_id={dag_id!r},
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={{"pipeline_name": "retried-pipeline"}},
):
    CrashAfterCreateOnFirstTry(
        task_id="create_pipeline",
        project_id=os.environ["DPC_PROJECT_ID"],
        definition="streaming-pipeline.json",
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
'''


# A run task whose worker dies while it waits, on its first try: the execution it started runs on.
RUN_RETRY_DAG = "dpc_run_retried_after_crash"
RUN_RETRY_DAG_SOURCE = '''\
"""Written by tests/test_scheduler.py: a run task whose worker dies while it waits, on its first try."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_dpc.operators.pipeline_execution import DpcRunPipelineOperator


class CrashWhileWaitingOnFirstTry(DpcRunPipelineOperator):
    def poll_status(self, watch, interval):
        if self._ti_try == 1:
            os._exit(1)
        return super().poll_status(watch, interval)

    def execute(self, context):
        self._ti_try = context["ti"].try_number
        return super().execute(context)


with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    CrashWhileWaitingOnFirstTry(
        task_id="run_pipeline",
        project_id=os.environ["DPC_PROJECT_ID"],
        environment_name="Environment-1",
        pipeline_name="Pipeline 1",
        scalar_variables={{"emulator.seconds": 4}},  # the emulator's: it runs 4 s
        poll_interval=0.5,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
'''

# Two runs of the "Long pipeline" (it runs until cancelled): one task polls in its worker, one defers.
KILL_DAG = "dpc_run_pipeline_killed"
KILL_DAG_SOURCE = '''\
"""Written by tests/test_scheduler.py: two waits on an execution that never ends, to be marked failed."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_dpc.operators.pipeline_execution import DpcRunPipelineOperator

with DAG(dag_id={dag_id!r}, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    for deferrable in (False, True):
        DpcRunPipelineOperator(
            task_id="deferred" if deferrable else "polling",
            project_id=os.environ["DPC_PROJECT_ID"],
            environment_name="Environment-1",
            pipeline_name="Long pipeline",
            deferrable=deferrable,
            poll_interval=0.5,
        )
'''


@pytest.fixture(scope="module")
def crash_markers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the retry DAG's first try notes the pipeline id it was given, one file per run."""
    return tmp_path_factory.mktemp("crash-markers")


@pytest.fixture(scope="module", autouse=True)
def fault_dags(airflow_cluster: AirflowCluster, crash_markers: Path) -> None:
    """This module's own DAGs beside the examples: the create retried after a crash, the killed run task."""
    airflow_cluster.write_dag_file(
        "dpc_create_retry.py", RETRY_DAG_SOURCE.format(markers=str(crash_markers), dag_id=RETRY_DAG)
    )
    airflow_cluster.write_dag_file("dpc_run_killed.py", KILL_DAG_SOURCE.format(dag_id=KILL_DAG))
    airflow_cluster.write_dag_file("dpc_run_retry.py", RUN_RETRY_DAG_SOURCE.format(dag_id=RUN_RETRY_DAG))


def creates_sent(emulator: Any) -> int:
    requests: dict[str, int] = emulator.stats()["requests"]
    return requests.get("POST /dpc/v1/projects/{projectId}/streaming-pipelines", 0)


def pipelines() -> list[Any]:
    from airflow_provider_dpc.hooks.dpc import DpcHook

    return list(DpcHook().list_streaming_pipelines(PROJECT_ID))


def start_quickstart(cluster: AirflowCluster, pipeline_name: str) -> str:
    cluster.wait_for_dag(QUICKSTART)
    cluster.unpause(QUICKSTART)
    return cluster.trigger(QUICKSTART, conf={"pipeline_name": pipeline_name})


@pytest.mark.every_line
@pytest.mark.timeout(TEST_TIMEOUT)
def test_quickstart_defers_to_the_triggerer_and_succeeds(airflow: AirflowCluster, fresh_emulator: Any) -> None:
    fresh_emulator.configure(starting_seconds=4, snapshotting_seconds=2, stopping_seconds=2)
    run_id = start_quickstart(airflow, "scheduled-quickstart")

    state, seen = airflow.wait_for_run(QUICKSTART, run_id, timeout=RUN_TIMEOUT)

    history = "\n".join(map(str, seen))
    deferred = {task for states in seen for task, s in states.items() if s == "deferred"}
    assert deferred & {"start_pipeline", "stop_pipeline"}, f"no task was seen deferred:\n{history}"
    assert state == "success", history
    assert seen[-1] == dict.fromkeys(QUICKSTART_TASKS, "success"), history
    stats = fresh_emulator.stats()
    assert stats["pipelines_created"] == 1, stats
    assert requests_to(fresh_emulator, "POST", "/commands") == 2, stats  # one START, one STOP
    assert pipelines() == []  # deleted at the end
    pipeline_id = airflow.xcom(QUICKSTART, run_id, "create_pipeline")
    assert airflow.xcom(QUICKSTART, run_id, "start_pipeline") == pipeline_id
    assert airflow.xcom(QUICKSTART, run_id, "consume") == pipeline_id


@pytest.mark.timeout(TEST_TIMEOUT)
def test_a_deferred_task_survives_a_triggerer_crash(airflow: AirflowCluster, fresh_emulator: Any) -> None:
    fresh_emulator.configure(starting_seconds=8, snapshotting_seconds=1, stopping_seconds=0.5)
    run_id = start_quickstart(airflow, "triggerer-crash")

    def start_task_in_a_triggerer() -> dict[str, Any] | None:
        for ti in airflow.task_instances(QUICKSTART, run_id):
            if ti["task_id"] == "start_pipeline" and ti["state"] == "deferred":
                trigger = ti.get("trigger") or {}
                if trigger.get("triggerer_id") is not None:
                    return ti
            elif ti["task_id"] == "start_pipeline" and ti["state"] in ("success", "failed"):
                raise AssertionError(f"start_pipeline finished before the triggerer could be killed: {ti}")
        return None

    ti = airflow.wait_for(start_task_in_a_triggerer, timeout=RUN_TIMEOUT, what="start_pipeline deferred in a triggerer")
    old_triggerer = ti["trigger"]["triggerer_id"]
    assert fresh_emulator.stats()["pipelines_created"] == 1
    try:
        airflow.kill_component("triggerer", signal.SIGKILL)
        assert airflow.task_states(QUICKSTART, run_id)["start_pipeline"] == "deferred"
        airflow.start_component("triggerer")

        state, seen = airflow.wait_for_run(QUICKSTART, run_id, timeout=RUN_TIMEOUT)
    finally:
        if not airflow.running("triggerer"):
            airflow.start_component("triggerer")

    history = "\n".join(map(str, seen))
    assert state == "success", history
    assert seen[-1] == dict.fromkeys(QUICKSTART_TASKS, "success"), history
    start = next(t for t in airflow.task_instances(QUICKSTART, run_id) if t["task_id"] == "start_pipeline")
    assert start["try_number"] == 1, start  # resumed from its deferral, not retried
    # The wait finished in the new triggerer: its trigger log (named by its job id) saw STREAMING.
    trigger_logs = {
        int(match.group(1)): text
        for name, text in airflow.task_logs(QUICKSTART, run_id, "start_pipeline").items()
        if (match := re.search(r"\.trigger\.(\d+)\.log$", name))
    }
    resumed = [job for job, text in trigger_logs.items() if job != old_triggerer and "reached (STREAMING)" in text]
    assert resumed, (
        f"no triggerer but the killed job {old_triggerer} saw STREAMING; trigger logs: {sorted(trigger_logs)}"
    )
    stats = fresh_emulator.stats()
    assert stats["pipelines_created"] == 1, stats
    # Exactly one START reached the emulator: two commands in all, one of them stop_pipeline's STOP.
    stop_logs = "".join(airflow.task_logs(QUICKSTART, run_id, "stop_pipeline").values())
    assert stop_logs.count("sent STOP to pipeline") == 1, stop_logs
    assert requests_to(fresh_emulator, "POST", "/commands") == 2, stats
    assert pipelines() == []


@pytest.mark.timeout(TEST_TIMEOUT)
def test_a_create_retried_after_a_crash_makes_no_duplicate(
    airflow: AirflowCluster, fresh_emulator: Any, crash_markers: Path
) -> None:
    airflow.wait_for_dag(RETRY_DAG)
    airflow.unpause(RETRY_DAG)
    run_id = airflow.trigger(RETRY_DAG, conf={"pipeline_name": "retried-pipeline"})

    state, seen = airflow.wait_for_run(RETRY_DAG, run_id, timeout=RUN_TIMEOUT)

    history = "\n".join(map(str, seen))
    assert state == "success", history
    create = airflow.task_instances(RETRY_DAG, run_id)[0]
    assert (create["state"], create["try_number"]) == ("success", 2), create
    marker = crash_markers / run_id
    assert marker.exists(), "the first try did not reach the create POST"
    first_try_id = marker.read_text()
    assert airflow.xcom(RETRY_DAG, run_id, "create_pipeline") == first_try_id
    assert airflow.xcom(RETRY_DAG, run_id, "create_pipeline", key="pipeline_id") == first_try_id
    existing = pipelines()
    assert [p.streaming_pipeline_id for p in existing] == [first_try_id]
    assert [p.name for p in existing] == ["retried-pipeline"]
    assert creates_sent(fresh_emulator) == 1, json.dumps(fresh_emulator.stats(), indent=1)
    assert fresh_emulator.stats()["pipelines_created"] == 1


@pytest.mark.skipif(
    importlib.util.find_spec("airflow.models.task_state_store") is None,
    reason="this Airflow keeps no task state across tries (task_state_store, 3.3+): a retry finds its "
    "execution by its execution tag, as the every-line reattach tests show",
)
@pytest.mark.timeout(TEST_TIMEOUT)
def test_a_run_task_retried_after_its_worker_died_reads_its_execution_by_id(
    airflow: AirflowCluster, fresh_emulator: Any
) -> None:
    airflow.wait_for_dag(RUN_RETRY_DAG)
    airflow.unpause(RUN_RETRY_DAG)
    run_id = airflow.trigger(RUN_RETRY_DAG)

    state, seen = airflow.wait_for_run(RUN_RETRY_DAG, run_id, timeout=RUN_TIMEOUT)

    assert state == "success", "\n".join(map(str, seen))
    task = airflow.task_instances(RUN_RETRY_DAG, run_id)[0]
    assert (task["state"], task["try_number"]) == ("success", 2), task
    executions = fresh_emulator.stats()["requests"]
    assert requests_to(fresh_emulator, "POST", "/pipeline-executions") == 1, executions  # one execution
    assert requests_to(fresh_emulator, "GET", "/v1/pipeline-executions") == 0, executions  # no search
    assert airflow.xcom(RUN_RETRY_DAG, run_id, "run_pipeline") == airflow.xcom(
        RUN_RETRY_DAG, run_id, "run_pipeline", key="pipeline_execution_id"
    )


SELF_HEALING = "example_dpc_self_healing_stream"
PLACEHOLDER_ID = '"00000000-0000-4000-8000-000000000000"'


def runs_of(cluster: AirflowCluster, dag_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cluster.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]
    return found


@pytest.mark.every_line
@pytest.mark.timeout(TEST_TIMEOUT)
def test_an_asset_watcher_runs_the_self_healing_dag_once_per_drop(airflow: AirflowCluster, fresh_emulator: Any) -> None:
    from airflow_provider_dpc.hooks.dpc import DpcHook
    from airflow_provider_dpc.models import PipelineCommand, PipelineStatus
    from tests.guide import guide_body, wait_for_status

    fresh_emulator.configure(starting_seconds=0.5, snapshotting_seconds=0.5, stopping_seconds=0.5)
    hook = DpcHook()
    pipeline_id = hook.create_streaming_pipeline(PROJECT_ID, guide_body("self-healing")).streaming_pipeline_id
    hook.send_command(PROJECT_ID, pipeline_id, PipelineCommand.START)
    wait_for_status(hook, pipeline_id, PipelineStatus.STREAMING, within=10)
    # The example with this pipeline's id, as a user fills in their own.
    source = (EXAMPLES / f"{SELF_HEALING}.py").read_text(encoding="utf-8")
    assert PLACEHOLDER_ID in source
    airflow.write_dag_file(f"{SELF_HEALING}.py", source.replace(PLACEHOLDER_ID, repr(pipeline_id)))
    airflow.wait_for_dag(SELF_HEALING)
    airflow.unpause(SELF_HEALING)
    polls = requests_to(fresh_emulator, "GET", "/status")
    airflow.wait_for(
        lambda: True if requests_to(fresh_emulator, "GET", "/status") > polls + 3 else None,
        timeout=RUN_TIMEOUT,
        what="the watcher's trigger polling the pipeline in the triggerer",
    )
    assert runs_of(airflow, SELF_HEALING) == []  # streaming: nothing fired

    fresh_emulator.die(pipeline_id)
    first = airflow.wait_for(lambda: runs_of(airflow, SELF_HEALING) or None, timeout=RUN_TIMEOUT, what="a run")
    state, seen = airflow.wait_for_run(SELF_HEALING, first[0]["dag_run_id"], timeout=RUN_TIMEOUT)
    assert state == "success", seen
    why = airflow.xcom(SELF_HEALING, first[0]["dag_run_id"], "record_why")
    assert (why["pipeline_id"], why["previous_status"], why["status"]) == (pipeline_id, "STREAMING", "NOT_RUNNING")
    assert hook.get_status(PROJECT_ID, pipeline_id) is PipelineStatus.STREAMING  # restarted

    # Down for good: one more run, whose restart fails, and none while it stays NOT_RUNNING.
    fresh_emulator.fail_start(pipeline_id)
    fresh_emulator.die(pipeline_id)
    airflow.wait_for(
        lambda: True if len(runs_of(airflow, SELF_HEALING)) == 2 else None, timeout=RUN_TIMEOUT, what="a second run"
    )
    time.sleep(6)  # a dozen of the watcher's polls of NOT_RUNNING
    assert len(runs_of(airflow, SELF_HEALING)) == 2


@pytest.mark.every_line
@pytest.mark.timeout(TEST_TIMEOUT)
def test_marking_a_waiting_run_task_failed_cancels_its_execution(airflow: AirflowCluster, fresh_emulator: Any) -> None:
    from airflow.triggers.base import BaseTrigger

    from airflow_provider_dpc.hooks.dpc import DpcHook

    hook = DpcHook()
    airflow.wait_for_dag(KILL_DAG)
    airflow.unpause(KILL_DAG)
    run_id = airflow.trigger(KILL_DAG)

    def both_waiting() -> dict[str, str] | None:
        tis = {ti["task_id"]: ti for ti in airflow.task_instances(KILL_DAG, run_id)}
        in_triggerer = ((tis["deferred"].get("trigger") or {}).get("triggerer_id")) is not None
        running = list(hook.iter_pipeline_executions(PROJECT_ID, status="RUNNING"))
        if tis["polling"]["state"] == "running" and in_triggerer and len(running) == 2:
            return {task: airflow.xcom(KILL_DAG, run_id, task, key="pipeline_execution_id") for task in tis}
        return None

    executions = airflow.wait_for(both_waiting, timeout=RUN_TIMEOUT, what="one task polling, one deferred")
    for task in executions:
        airflow.api("PATCH", f"/dags/{KILL_DAG}/dagRuns/{run_id}/taskInstances/{task}", json={"new_state": "failed"})

    def cancelled(task: str) -> bool | None:
        return True if hook.get_pipeline_execution_status(PROJECT_ID, executions[task]) == "CANCELLED" else None

    # The worker's on_kill cancels the polled one on every line.
    airflow.wait_for(lambda: cancelled("polling"), timeout=RUN_TIMEOUT, what="the polled execution CANCELLED")
    if "on_kill" in vars(BaseTrigger):  # Airflow 3.3 tells a trigger its deferred task was killed
        airflow.wait_for(lambda: cancelled("deferred"), timeout=RUN_TIMEOUT, what="the deferred execution CANCELLED")
    else:  # before 3.3 nothing runs for a deferred task marked failed: the execution runs on (see the docs)
        time.sleep(1)
        assert hook.get_pipeline_execution_status(PROJECT_ID, executions["deferred"]) == "RUNNING"
        hook.cancel_pipeline_execution(PROJECT_ID, executions["deferred"], force=True)
    assert fresh_emulator.stats()["executions_started"] == 2
