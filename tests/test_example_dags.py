"""The example DAGs run green under real Airflow (``dag.test()``) against the emulator.

``dag.test()`` runs each task in this process and runs a deferred task's trigger in an event
loop, as the triggerer would; the scheduler-driven run is in ``test_scheduler.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.models import PipelineStatus
from tests.guide import PROJECT_ID, guide_body, requests_to

pytestmark = pytest.mark.airflow2

EXAMPLES = Path(__file__).parent.parent / "example_dags"


@pytest.fixture
def example_env(conn_env: Any, fresh_emulator: Any, monkeypatch: pytest.MonkeyPatch, airflow_db: None) -> Any:
    conn_env("matillion_dpc_default")
    monkeypatch.setenv("DPC_PROJECT_ID", PROJECT_ID)
    monkeypatch.setenv("DPC_POLL_INTERVAL", "0.2")
    return fresh_emulator


def load_dag(file_name: str, dag_id: str) -> Any:
    """Parse an example file the way the DAG processor does (its module-level settings read now)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2.11
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(EXAMPLES / file_name))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def task_states(run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        from airflow.models import TaskInstance

        rows = session.query(TaskInstance).filter(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
        return {ti.task_id: str(ti.state) for ti in rows}


@pytest.mark.parametrize("deferrable", [False, True])
def test_quickstart(example_env: Any, monkeypatch: pytest.MonkeyPatch, deferrable: bool) -> None:
    monkeypatch.setenv("DPC_DEFERRABLE", str(deferrable).lower())
    dag = load_dag("example_dpc_quickstart.py", "example_dpc_quickstart")
    run = dag.test(run_conf={"pipeline_name": f"quickstart-{deferrable}"})
    assert task_states(run) == {
        "create_pipeline": "success",
        "start_pipeline": "success",
        "consume": "success",
        "stop_pipeline": "success",
        "delete_pipeline": "success",
    }
    assert str(run.state) == "success"
    assert example_env.stats()["pipelines_created"] == 1
    assert requests_to(example_env, "POST", "/commands") == 2  # one START, one STOP
    assert DpcHook().list_streaming_pipelines(PROJECT_ID) == []
    link = extra_link(dag, run, "start_pipeline")
    assert link.startswith(f"https://app.matillion.com/projects/{PROJECT_ID}/streaming/pipelines/"), link


def extra_link(dag: Any, run: Any, task_id: str) -> str:
    """The task's 'Matillion DPC pipeline' link as the UI would show it."""
    from airflow_provider_dpc._compat import AIRFLOW_V3
    from airflow_provider_dpc.links.dpc import DpcStreamingPipelineLink

    if AIRFLOW_V3:
        # Airflow 3 resolves links on the worker when the task ends and stores them in XCom.
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = (
                session.query(XComModel)
                .filter_by(
                    dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key=DpcStreamingPipelineLink().xcom_key
                )
                .one()
            )
            return str(row.value)
    ti = run.get_task_instance(task_id)
    return DpcStreamingPipelineLink().get_link(dag.get_task(task_id), ti_key=ti.key)


def make_pipeline(name: str) -> str:
    return DpcHook().create_streaming_pipeline(PROJECT_ID, guide_body(name)).streaming_pipeline_id


def test_scheduled_window(example_env: Any) -> None:
    pipeline_id = make_pipeline("windowed")
    dag = load_dag("example_dpc_scheduled_window.py", "example_dpc_scheduled_window")
    run = dag.test(run_conf={"pipeline_name": "windowed", "window_hours": 1 / 3600})
    assert task_states(run) == {
        "open_window": "success",
        "hold_until_window_closes": "success",
        "close_window": "success",
    }
    assert DpcHook().get_status(PROJECT_ID, pipeline_id) is PipelineStatus.NOT_RUNNING
    assert requests_to(example_env, "POST", "/commands") == 2


@pytest.mark.parametrize("deferrable", [False, True])
def test_gated_activation(example_env: Any, monkeypatch: pytest.MonkeyPatch, deferrable: bool) -> None:
    monkeypatch.setenv("DPC_DEFERRABLE", str(deferrable).lower())
    pipeline_id = make_pipeline("gated")
    dag = load_dag("example_dpc_gated_activation.py", "example_dpc_gated_activation")
    run = dag.test(run_conf={"pipeline_name": "gated"})
    states = task_states(run)
    assert (states["wait_until_streaming"], states["consume"]) == ("success", "success"), states
    assert DpcHook().get_status(PROJECT_ID, pipeline_id) is PipelineStatus.STREAMING


def test_gated_activation_fails_the_gate_when_the_pipeline_cannot_start(example_env: Any) -> None:
    pipeline_id = make_pipeline("doomed")
    example_env.fail_start(pipeline_id)
    dag = load_dag("example_dpc_gated_activation.py", "example_dpc_gated_activation")
    dag.get_task("wait_until_streaming").grace_period = 0
    run = dag.test(run_conf={"pipeline_name": "doomed"})
    states = task_states(run)
    assert states["start_pipeline"] == "success"
    assert states["wait_until_streaming"] == "failed"
    assert states["consume"] == "upstream_failed"
