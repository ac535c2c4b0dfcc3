"""Scheduled windows under a real scheduler: runs of past windows never touch the stream today's
window holds, whether a backfill, a catch-up or an old run cleared and run again makes them.

Airflow 3 runs a backfill's runs several at a time (its own ``max_active_runs``, whatever the DAG's),
and a DAG's catch-up runs up to its ``max_active_runs`` (16 by default). Each such run's window has
passed, so its start and hold are skipped, and with them its teardown stop: no START, no STOP
reaches DPC, and the stream of today's window runs on.
"""

from __future__ import annotations

import signal
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
CAUGHT_UP = "dpc_window_caught_up"
CAUGHT_UP_PIPELINE = "caught-up-window"
SKIPPED_RUN = {
    "create_or_reuse_pipeline": "success",
    "open_window": "skipped",
    "hold_until_window_closes": "skipped",
    "close_window": "skipped",
}


def expired_window_source(now: datetime, dag_id: str, pipeline: str, *, catch_up: bool = False) -> str:
    """The example as a user deploys it for their pipeline, due daily at an hour two to three hours
    past with a one-hour window: the window of its latest scheduled run has expired at whatever hour
    the test runs, so the run that unpausing makes (and every earlier one) skips, and only the run
    the test triggers holds the stream. With ``catch_up``, catch-up is on with Airflow's default
    ``max_active_runs``; the start date is then five days back."""
    first = (now - timedelta(days=5)).date()
    changes = {
        'dag_id="example_dpc_scheduled_window"': f'dag_id="{dag_id}"',
        '"my-streaming-pipeline"': f'"{pipeline}"',
        'schedule="0 6 * * 1-5"': f'schedule="0 {(now - timedelta(hours=2)).hour} * * *"',
        "Param(\n            10.0,": "Param(\n            1.0,",
    }
    if catch_up:
        changes["start_date=datetime(2026, 1, 1)"] = f"start_date=datetime({first.year}, {first.month}, {first.day})"
        changes["catchup=False"] = "catchup=True"
        changes["    max_active_runs=1,\n"] = ""
    source = (ROOT / "example_dags" / "example_dpc_scheduled_window.py").read_text(encoding="utf-8")
    for old, new in changes.items():
        assert old in source, old
        source = source.replace(old, new)
    return source


def caught_up_source(now: datetime) -> tuple[str, int]:
    """The catch-up DAG's source, and how many runs its catch-up makes (the last five days')."""
    due = now - timedelta(hours=2)
    first = (now - timedelta(days=5)).date()
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    moments = (start + timedelta(days=d, hours=due.hour) for d in range(7))
    expected = sum(1 for moment in moments if moment <= now)
    return expired_window_source(now, CAUGHT_UP, CAUGHT_UP_PIPELINE, catch_up=True), expected


@pytest.fixture(scope="module", autouse=True)
def window_dag(airflow_cluster: AirflowCluster) -> Iterator[None]:
    # Not the example's weekday 06:00 schedule as it is: unpaused between 06:00 and 16:00 on a
    # weekday, the scheduler's run of that morning would hold the stream, and the run the test
    # triggers would wait behind it (``max_active_runs=1``).
    source = expired_window_source(datetime.now(UTC), WINDOW, PIPELINE)
    path = airflow_cluster.write_dag_file(f"{WINDOW}.py", source)
    yield
    path.unlink(missing_ok=True)


def runs(cluster: AirflowCluster, run_type: str, dag_id: str = WINDOW) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cluster.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
    return [run for run in found if run.get("run_type") == run_type]


def streaming(hook: DpcHook, name: str) -> str:
    """A pipeline streaming as today's window left it."""
    pipeline_id = hook.create_streaming_pipeline(PROJECT_ID, guide_body(name)).streaming_pipeline_id
    hook.send_command(PROJECT_ID, pipeline_id, PipelineCommand.START)
    wait_for_status(hook, pipeline_id, PipelineStatus.STREAMING, within=10)
    return pipeline_id


def holding_today(airflow: AirflowCluster, dag_id: str, pipeline: str) -> str:
    """Today's window: a run triggered now, its start finding the pipeline streaming, its hold holding."""
    today = airflow.trigger(dag_id, conf={"pipeline_name": pipeline, "window_hours": 1.0})
    airflow.wait_for(
        lambda: True if airflow.task_states(dag_id, today).get("hold_until_window_closes") == "deferred" else None,
        timeout=RUN_TIMEOUT,
        what="today's hold deferred to the triggerer",
    )
    return today


def ended_skipped(airflow: AirflowCluster, dag_id: str, run_id: str) -> None:
    state, seen = airflow.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT)
    assert state == "success", seen
    assert airflow.task_states(dag_id, run_id) == SKIPPED_RUN


def create_backfill_with_scheduler_stopped(airflow: AirflowCluster, body: dict[str, Any]) -> None:
    """Create a backfill while the scheduler is down, then start the scheduler again.

    On SQLite, Airflow's backfill creation that meets a locked database deletes the runs it has
    already committed (``_cleanup_partial_backfill``) and answers 503; a scheduler handling one of
    those runs then stops with ``ObjectDeletedError``. That is the test deployment's database, not
    what is tested: with the scheduler down, a refused creation is simply asked again
    (:meth:`AirflowCluster.api`), and the scheduler that starts meets only the backfill that exists.
    Today's hold stays deferred on the triggerer throughout.
    """
    airflow.kill_component("scheduler", signal.SIGTERM)
    try:
        airflow.api("POST", "/backfills", json=body)
    finally:
        airflow.start_component("scheduler")
    airflow.wait_healthy(components=("scheduler",))


@pytest.mark.timeout(TEST_TIMEOUT)
def test_a_backfill_of_last_week_touches_nothing_while_todays_window_streams(
    airflow: AirflowCluster, fresh_emulator: Any
) -> None:
    hook = DpcHook()
    pipeline_id = streaming(hook, PIPELINE)
    airflow.wait_for_dag(WINDOW)
    airflow.unpause(WINDOW)
    today = holding_today(airflow, WINDOW, PIPELINE)
    commands = requests_to(fresh_emulator, "POST", "/commands")

    now = datetime.now(UTC)
    body = {
        "dag_id": WINDOW,
        "from_date": (now - timedelta(days=8)).isoformat(),
        "to_date": (now - timedelta(days=1)).isoformat(),
        "max_active_runs": 5,
    }
    create_backfill_with_scheduler_stopped(airflow, body)
    backfilled = airflow.wait_for(lambda: runs(airflow, "backfill") or None, timeout=RUN_TIMEOUT, what="the backfill")
    for run in backfilled:
        ended_skipped(airflow, WINDOW, run["dag_run_id"])
    assert len(backfilled) >= 6  # a run a day of the last week

    assert requests_to(fresh_emulator, "POST", "/commands") == commands  # no START, no STOP, no restart
    assert hook.get_status(PROJECT_ID, pipeline_id) is PipelineStatus.STREAMING
    assert airflow.task_states(WINDOW, today)["hold_until_window_closes"] == "deferred"  # still holding


@pytest.mark.timeout(TEST_TIMEOUT)
def test_a_catch_up_and_a_cleared_old_run_touch_nothing_while_todays_window_streams(
    airflow: AirflowCluster, fresh_emulator: Any
) -> None:
    hook = DpcHook()
    pipeline_id = streaming(hook, CAUGHT_UP_PIPELINE)
    commands = requests_to(fresh_emulator, "POST", "/commands")
    source, expected = caught_up_source(datetime.now(UTC))
    path = airflow.write_dag_file(f"{CAUGHT_UP}.py", source)
    try:
        airflow.wait_for_dag(CAUGHT_UP)
        airflow.unpause(CAUGHT_UP)  # the scheduler catches up on the last five days, several runs at once
        today = holding_today(airflow, CAUGHT_UP, CAUGHT_UP_PIPELINE)
        caught_up = airflow.wait_for(
            lambda: found if len(found := runs(airflow, "scheduled", CAUGHT_UP)) >= expected else None,
            timeout=RUN_TIMEOUT,
            what=f"the catch-up's {expected} runs",
        )
        for run in caught_up:
            ended_skipped(airflow, CAUGHT_UP, run["dag_run_id"])
        assert len(caught_up) == expected >= 5

        # The oldest run cleared and run again: still its own, long-closed window.
        oldest = min(caught_up, key=lambda run: run["run_after"])["dag_run_id"]
        body = {"dry_run": False, "dag_run_id": oldest, "only_failed": False, "reset_dag_runs": True}
        airflow.api("POST", f"/dags/{CAUGHT_UP}/clearTaskInstances", json=body)
        airflow.wait_for(
            lambda: True if airflow.run_state(CAUGHT_UP, oldest) != "success" else None,
            timeout=30,
            what="the cleared run queued again",
        )
        ended_skipped(airflow, CAUGHT_UP, oldest)
        tries = {ti["task_id"]: ti["try_number"] for ti in airflow.task_instances(CAUGHT_UP, oldest)}
        assert tries["open_window"] >= 2, tries  # it did run again

        assert requests_to(fresh_emulator, "POST", "/commands") == commands  # no START, no STOP, no restart
        assert hook.get_status(PROJECT_ID, pipeline_id) is PipelineStatus.STREAMING
        assert airflow.task_states(CAUGHT_UP, today)["hold_until_window_closes"] == "deferred"
    finally:
        path.unlink(missing_ok=True)
