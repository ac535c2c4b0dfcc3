"""The example DAGs run green under real Airflow (``dag.test()``) against the emulator.

``dag.test()`` runs each task in this process and runs a deferred task's trigger in an event
loop, as the triggerer would; the scheduler-driven run is in ``test_scheduler.py``.
"""

from __future__ import annotations

import importlib
import inspect
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.links.dpc import DpcPipelineExecutionLink
from airflow_provider_dpc.models import PipelineCommand, PipelineStatus
from tests.guide import GUIDE_AGENT_ID, PROJECT_ID, guide_body, requests_to, wait_for_status

pytestmark = [pytest.mark.every_line, pytest.mark.slow]

EXAMPLES = Path(__file__).parent.parent / "example_dags"
# The polled runs on the oldest and newest lines; the deferred ones, whose triggers run as each
# line's triggerer runs them, on every line (polling is the same code on every line).
POLLED = pytest.param(False, marks=pytest.mark.edge_lines)


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
    activate_assets(bag)
    return bag.dags[dag_id]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.name)
def test_every_example_dag_has_a_description(path: Path) -> None:
    """Each DAG of each example file says what it does for the user (the UI shows it beside the DAG)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2.11
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(path))  # the suite sets AIRFLOW__CORE__LOAD_EXAMPLES=False
    assert not bag.import_errors, bag.import_errors
    missing = [dag_id for dag_id, dag in bag.dags.items() if not (dag.description or "").strip()]
    assert not missing, f"{path.name}: DAGs without a description: {missing}"


# Parses the example DAGs as the DAG processor would, in a fresh interpreter (so the provider's own
# modules are imported anew), recording every warning, and prints those raised from this repository.
_PARSE_RECORDING_WARNINGS = """
import json, sys, warnings
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
# Airflow's logging set-up (done by now) sends warnings to its log: record them here instead.
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    bag = DagBag(dag_folder=sys.argv[1])
seen = [f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}" for w in caught]
seen += [text for texts in bag.captured_warnings.values() for text in texts]  # those of a DAG file's own parse
ours = [text for text in seen if text.startswith(tuple(sys.argv[2:]))]
errors = {str(k): str(v) for k, v in bag.import_errors.items()}
print(json.dumps({"dags": sorted(bag.dags), "errors": errors, "warnings": ours}))
"""


def test_parsing_the_examples_warns_nothing_of_the_providers() -> None:
    """No deprecated Airflow name or behaviour of this line is used by the provider or its examples:
    nothing warns from this repository's files while the DAG processor parses them."""
    import json
    import os
    import subprocess
    import sys

    import airflow_provider_dpc

    ours = [str(Path(airflow_provider_dpc.__file__).parent), str(EXAMPLES)]
    env = {**os.environ, "PYTHONWARNINGS": "always"}
    done = subprocess.run(
        [sys.executable, "-c", _PARSE_RECORDING_WARNINGS, str(EXAMPLES), *ours],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=True,
    )
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert not parsed["errors"], parsed["errors"]
    assert "example_dpc_scheduled_window" in parsed["dags"]
    assert parsed["warnings"] == []


def activate_assets(bag: Any) -> None:
    """Register the DAGs and activate their assets, as the DAG processor does before any task runs.

    ``dag.test()`` does it itself from Airflow 3.1 on, and Airflow 2.11 has no inactive assets; on
    Airflow 3.0 (whose ``DagBag.sync_to_db`` takes the bundle) a task with an asset outlet would
    fail with ``AirflowInactiveAssetInInletOrOutletException``.
    """
    sync_to_db = getattr(bag, "sync_to_db", None)
    if sync_to_db is None or "bundle_name" not in inspect.signature(sync_to_db).parameters:
        return
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()
    sync_to_db(bundle_name="dags-folder", bundle_version=None)


def task_states(run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        from airflow.models import TaskInstance

        rows = session.query(TaskInstance).filter(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
        return {ti.task_id: str(ti.state) for ti in rows}


@pytest.mark.parametrize("deferrable", [POLLED, True])
def test_quickstart(example_env: Any, deferrable: bool) -> None:
    dag = load_dag("example_dpc_quickstart.py", "example_dpc_quickstart")
    run = dag.test(run_conf={"pipeline_name": f"quickstart-{deferrable}", "deferrable": deferrable})
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
    assert link == f"https://app.matillion.com/projects/{PROJECT_ID}/branches", link


def extra_link(dag: Any, run: Any, task_id: str, link: Any = None) -> str:
    """The task's 'Matillion DPC' link (or ``link``) as the UI would show it."""
    from airflow_provider_dpc.links.dpc import DpcStreamingPipelineLink

    link = link or DpcStreamingPipelineLink()
    try:
        from airflow.models.xcom import XComModel
    except ImportError:  # this Airflow asks the link when the page is shown
        ti = run.get_task_instance(task_id)
        return str(link.get_link(dag.get_task(task_id), ti_key=ti.key))
    else:
        # The worker resolves the link when the task ends and stores it in XCom (Airflow 3).
        from airflow.utils.session import create_session

        with create_session() as session:
            row = (
                session.query(XComModel)
                .filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key=link.xcom_key)
                .one()
            )
            return str(row.value)


def make_pipeline(name: str) -> str:
    return DpcHook().create_streaming_pipeline(PROJECT_ID, guide_body(name)).streaming_pipeline_id


def run_due(dag: Any, due: datetime, **conf: Any) -> Any:
    """``dag.test()`` of a run that was due at ``due``: on Airflow 3 a run triggered then with no
    logical date (``run_after``; its start stays now, so a window computed from it would show), on
    Airflow 2.11 a run of that logical date."""
    if "run_after" in inspect.signature(dag.test).parameters:
        return dag.test(run_after=due, logical_date=None, run_conf=conf)
    return dag.test(execution_date=due, run_conf=conf)


def task_times(run: Any, task_id: str) -> tuple[datetime, datetime]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id).one()
        return ti.start_date, ti.end_date


WINDOW_TASKS = ("create_or_reuse_pipeline", "open_window", "hold_until_window_closes", "close_window")


@pytest.fixture(scope="module")
def warm_dag_test(emulator: Any, airflow_db: None) -> None:
    """One quick run first: a process's first ``dag.test()`` starts Airflow's in-process API, which
    takes from seconds to a minute on a busy machine, and a window test's clock must not include it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_MATILLION_DPC_DEFAULT", emulator.connection_json())
        patch.setenv("DPC_PROJECT_ID", PROJECT_ID)
        dag = load_dag("example_dpc_scheduled_window.py", "example_dpc_scheduled_window")
        run = run_due(dag, datetime.now(UTC) - timedelta(days=7), pipeline_name="warm-up")
        assert str(run.state) == "success", task_states(run)


def test_scheduled_window_on_time(example_env: Any, warm_dag_test: None) -> None:
    dag = load_dag("example_dpc_scheduled_window.py", "example_dpc_scheduled_window")
    # 15 s: longer than a busy machine takes to create the pipeline and start it under dag.test().
    run = dag.test(run_conf={"pipeline_name": "windowed", "window_hours": 15 / 3600, "deferrable": True})
    assert task_states(run) == dict.fromkeys(WINDOW_TASKS, "success")
    (pipeline,) = DpcHook().list_streaming_pipelines(PROJECT_ID)  # created by the run: the emulator had none
    assert DpcHook().get_status(PROJECT_ID, pipeline.streaming_pipeline_id) is PipelineStatus.NOT_RUNNING
    assert requests_to(example_env, "POST", "/commands") == 2  # START, STOP
    # A triggered run's window opens at its logical date (dag.test() gives it the trigger time, a
    # moment before its run_after on some lines), and the hold lasts until it closes.
    due = getattr(run, "logical_date", None) or run.execution_date
    closes = due + timedelta(seconds=15)
    assert closes <= task_times(run, "hold_until_window_closes")[1] < closes + timedelta(seconds=10)


def test_a_late_scheduled_window_holds_only_what_remains(example_env: Any, warm_dag_test: None) -> None:
    make_pipeline("late-window")
    dag = load_dag("example_dpc_scheduled_window.py", "example_dpc_scheduled_window")
    due = datetime.now(UTC) - timedelta(seconds=10)  # the run is 10 s late for a 25 s window
    run = run_due(dag, due, pipeline_name="late-window", window_hours=25 / 3600, deferrable=False)
    assert task_states(run) == dict.fromkeys(WINDOW_TASKS, "success")
    closes = due + timedelta(seconds=25)
    held_from, held_to = task_times(run, "hold_until_window_closes")
    # It held until the window's close, not 25 s from when it began (which would end 10 s or more later).
    assert closes <= held_to < closes + timedelta(seconds=8), (held_from, held_to, closes)
    assert requests_to(example_env, "POST", "/commands") == 2


def test_an_expired_scheduled_window_is_skipped_and_touches_nothing(example_env: Any, warm_dag_test: None) -> None:
    pipeline_id = make_pipeline("expired-window")
    DpcHook().send_command(PROJECT_ID, pipeline_id, PipelineCommand.START)  # today's window streams it
    wait_for_status(DpcHook(), pipeline_id, PipelineStatus.STREAMING, within=10)
    commands, reads = requests_to(example_env, "POST", "/commands"), requests_to(example_env, "GET", "/status")
    dag = load_dag("example_dpc_scheduled_window.py", "example_dpc_scheduled_window")
    began = time.monotonic()
    # Two days ago's run (a backfill, a catch-up, an old run cleared) while today's window streams.
    run = run_due(dag, datetime.now(UTC) - timedelta(days=2), pipeline_name="expired-window", deferrable=True)
    took = time.monotonic() - began
    assert task_states(run) == {
        "create_or_reuse_pipeline": "success",
        "open_window": "skipped",
        "hold_until_window_closes": "skipped",
        "close_window": "skipped",  # a skipped setup skips its teardown: no STOP
    }
    assert str(run.state) == "success"
    assert requests_to(example_env, "POST", "/commands") == commands  # no START, no STOP
    assert requests_to(example_env, "GET", "/status") == reads  # nothing was even read
    assert DpcHook().get_status(PROJECT_ID, pipeline_id) is PipelineStatus.STREAMING  # today's stream runs on
    assert took < 180, f"an expired window's run took {took:.0f} s"  # nothing read: no wait, on a busy CI too


def test_a_dataset_triggered_run_opens_its_window_when_the_event_came(example_env: Any, warm_dag_test: None) -> None:
    """Airflow 2.11 dates a dataset-triggered run by its newest event (its logical date) and gives
    it the upstream run's data interval: a window DAG triggered now by a run due seven hours ago
    opens its window now, not at that interval's end, when it would have closed already."""
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    if not hasattr(DagRunType, "DATASET_TRIGGERED"):
        pytest.skip(
            "this Airflow has no dataset-triggered run (Airflow 3's asset-triggered runs are dated "
            "by run_after, tested in test_windows.py and under a real scheduler in tests/cluster)"
        )
    make_pipeline("dataset-window")
    dag = load_dag("example_dpc_scheduled_window.py", "example_dpc_scheduled_window")
    event = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
    run = dag.create_dagrun(
        run_id=f"dataset_triggered__{event.isoformat()}",
        run_type=DagRunType.DATASET_TRIGGERED,
        execution_date=event,
        data_interval=(event - timedelta(days=1, hours=7), event - timedelta(hours=7)),
        state=DagRunState.RUNNING,
        external_trigger=False,
        conf={"pipeline_name": "dataset-window", "window_hours": 20 / 3600, "deferrable": False},
    )
    for task_id in WINDOW_TASKS:  # as a worker runs each in turn
        ti = run.get_task_instance(task_id)
        ti.task = dag.get_task(task_id)
        ti.run(ignore_all_deps=True)
    assert task_states(run) == dict.fromkeys(WINDOW_TASKS, "success")
    assert requests_to(example_env, "POST", "/commands") == 2  # START, STOP
    closes = event + timedelta(seconds=20)
    assert closes <= task_times(run, "hold_until_window_closes")[1] < closes + timedelta(seconds=8)


def test_scheduled_window_fails_when_the_stream_dies_and_cannot_be_restarted(example_env: Any) -> None:
    pipeline_id = make_pipeline("doomed-window")
    dag = load_dag("example_dpc_scheduled_window.py", "example_dpc_scheduled_window")
    dag.get_task("hold_until_window_closes").grace_period = 0.5
    hook = DpcHook()

    def kill_once_streaming() -> None:
        deadline = time.monotonic() + 30
        while hook.get_status(PROJECT_ID, pipeline_id) is not PipelineStatus.STREAMING:
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)
        time.sleep(1.5)  # open_window sees STREAMING too, and the hold begins
        example_env.fail_start(pipeline_id)  # every restart now falls back to NOT_RUNNING
        example_env.die(pipeline_id)

    killer = threading.Thread(target=kill_once_streaming, daemon=True)
    killer.start()
    run = dag.test(run_conf={"pipeline_name": "doomed-window", "window_hours": 60 / 3600})
    killer.join(timeout=5)
    assert task_states(run) == {
        "create_or_reuse_pipeline": "success",
        "open_window": "success",
        "hold_until_window_closes": "failed",
        "close_window": "success",  # a teardown: it always runs, and the run is the hold's
    }
    assert str(run.state) == "failed"
    assert requests_to(example_env, "POST", "/commands") == 3  # START and two restarts; it was stopped already


@pytest.mark.parametrize("deferrable", [POLLED, True])
def test_gated_activation(example_env: Any, deferrable: bool) -> None:
    dag = load_dag("example_dpc_gated_activation.py", "example_dpc_gated_activation")
    run = dag.test(run_conf={"pipeline_name": "gated", "deferrable": deferrable})  # the emulator has no pipeline
    states = task_states(run)
    assert set(states.values()) == {"success"}, states
    hook = DpcHook()
    (pipeline,) = hook.list_streaming_pipelines(PROJECT_ID)
    assert hook.get_status(PROJECT_ID, pipeline.streaming_pipeline_id) is PipelineStatus.STREAMING
    (execution,) = hook.iter_pipeline_executions(PROJECT_ID)
    assert (execution.pipeline_name, str(execution.status)) == ("Pipeline 1", "SUCCESS")
    link = extra_link(dag, run, "build_reporting_tables", DpcPipelineExecutionLink())
    assert link == f"https://app.matillion.com/observability-dashboard/pipeline/{execution.pipeline_execution_id}"


def test_gated_activation_fails_at_the_start_when_the_agent_is_down(example_env: Any) -> None:
    make_pipeline("agentless")
    example_env.set_agent(GUIDE_AGENT_ID, connected=False)
    dag = load_dag("example_dpc_gated_activation.py", "example_dpc_gated_activation")
    run = dag.test(run_conf={"pipeline_name": "agentless"})
    states = task_states(run)
    assert (states["start_pipeline"], states["wait_until_streaming"]) == ("failed", "upstream_failed"), states
    assert requests_to(example_env, "POST", "/commands") == 0


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


HAS_WATCHERS = hasattr(importlib.import_module("airflow.triggers.base"), "BaseEventTrigger")
needs_watchers = pytest.mark.skipif(not HAS_WATCHERS, reason="this Airflow has no asset watchers (BaseEventTrigger)")


@needs_watchers
def test_self_healing_triggered_by_hand_restarts_nothing(example_env: Any) -> None:
    dag = load_dag("example_dpc_self_healing_stream.py", "example_dpc_self_healing_stream")
    run = dag.test()
    assert str(run.state) == "success"
    assert task_states(run) == {"record_why": "skipped", "restart": "skipped"}
    assert requests_to(example_env, "POST", "/commands") == 0


@needs_watchers
def test_self_healing_says_what_to_set_when_its_pipeline_does_not_exist() -> None:
    from airflow_provider_dpc.exceptions import DpcNotFoundError

    dag = load_dag("example_dpc_self_healing_stream.py", "example_dpc_self_healing_stream")
    record_why = dag.get_task("record_why")
    placeholder = "00000000-0000-4000-8000-000000000000"
    # What the watcher's event (tests/triggers/test_event_trigger.py) becomes in the run's context.
    payload = {"project_id": PROJECT_ID, "pipeline_id": placeholder, "status": "NOT_FOUND", "previous_status": None}
    events = {"matillion-dpc://...": [SimpleNamespace(extra={"payload": payload})]}
    with pytest.raises(DpcNotFoundError) as caught:
        record_why.python_callable(triggering_asset_events=events)
    assert str(caught.value).startswith(
        f"the watched streaming pipeline {placeholder} does not exist in project {PROJECT_ID}: set "
        "DPC_WATCHED_PIPELINE_ID (and DPC_PROJECT_ID) to the pipeline to watch"
    )
