"""Waiting on DPC's own runs: the execution sensor given a pipeline's name, its trigger, DPC schedules
in the hook, and the runs the emulator starts on its own as DPC's scheduler does.

The emulator runs a published pipeline "now" (``run_pipeline``) or every N seconds for a seeded
schedule (``run_every``), with the outcome each test asks for; the sensor never starts anything.
The pure judging of a list of executions (which count, which decides) is tested without a server.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_dpc.exceptions import DpcConflictError, DpcPipelineExecutionError, DpcValidationError
from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.models import ExecutionStatus, PipelineExecution, Schedule, parse_time
from airflow_provider_dpc.sensors.pipeline_execution import DpcPipelineExecutionSensor
from airflow_provider_dpc.status import NewEndings, PipelineRunsWatch, Verdict, runs_goal
from airflow_provider_dpc.triggers.pipeline_execution import DpcNextPipelineExecutionTrigger
from tests.guide import FAST_RETRIES, PROJECT_ID
from tests.task_runner import RecordingTI, first_event, run_task

try:
    from airflow.sdk.exceptions import AirflowSensorTimeout
except ImportError:  # Airflow 2.11
    from airflow.exceptions import AirflowSensorTimeout  # type: ignore[no-redef]

pytestmark = pytest.mark.every_line

ENV = "Environment-1"
NIGHTLY = "5c0e8f3a-7b1d-4e2a-9c6f-1a2b3c4d5e01"  # the seed's schedule of "Pipeline 1"
HOURLY_10 = "5c0e8f3a-7b1d-4e2a-9c6f-1a2b3c4d5e02"  # ... and of "Pipeline 10"
LIST = "GET /dpc/v1/pipeline-executions"


def now_moment() -> datetime:
    """A moment strictly between what ran before and what runs after (the emulator's clock is this one)."""
    time.sleep(0.02)
    moment = datetime.now(UTC)
    time.sleep(0.02)
    return moment


def sensor(**kwargs: Any) -> DpcPipelineExecutionSensor:
    options = {
        "task_id": "wait_for_dpc",
        "project_id": PROJECT_ID,
        "pipeline_name": "Pipeline 1",
        "environment_name": ENV,
        "poke_interval": 0.2,
        "timeout": 30,  # guards the test only: each wait ends well before
        "dpc_retry_policy": FAST_RETRIES,
        **kwargs,
    }
    return DpcPipelineExecutionSensor(**options)


def ended(emulator: Any, execution_id: str, within: float = 10.0) -> dict[str, Any]:
    """The execution once it has ended, as the list shows it."""
    deadline = time.monotonic() + within
    hook = DpcHook()
    while True:
        found = {e.pipeline_execution_id: e for e in hook.iter_pipeline_executions(PROJECT_ID)}[execution_id]
        if found.finished:
            return found.model_dump(by_alias=True)
        assert time.monotonic() < deadline, f"execution {execution_id} did not end within {within} s"
        time.sleep(0.05)


# ---- the hook: schedules and the list's filters ------------------------------------------------------


def test_schedules_are_listed_typed_and_their_runs_found_by_schedule_and_time(
    hook: DpcHook, fresh_emulator: Any
) -> None:
    schedules = hook.list_schedules(PROJECT_ID)
    assert all(isinstance(s, Schedule) for s in schedules)
    nightly = next(s for s in schedules if s.schedule_id == NIGHTLY)
    assert (nightly.name, nightly.pipeline_name, nightly.environment_name, nightly.schedule_enabled) == (
        "Nightly Pipeline 1", "Pipeline 1", ENV, True
    )  # fmt: skip
    assert (nightly.cron_expression, nightly.cron_timezone) == ("0 2 * * *", "Europe/London")
    api_run = hook.execute_pipeline(PROJECT_ID, pipeline_name="Pipeline 1", environment_name=ENV)
    between = now_moment()
    dpc_run = fresh_emulator.run_pipeline(schedule_id=NIGHTLY, seconds=0)
    fresh_emulator.run_pipeline(schedule_id=HOURLY_10, seconds=0)
    assert (dpc_run["trigger"], dpc_run["scheduleId"], dpc_run["pipelineName"]) == ("SCHEDULE", NIGHTLY, "Pipeline 1")

    def ids(**filters: Any) -> list[str]:
        return [e.pipeline_execution_id for e in hook.iter_pipeline_executions(PROJECT_ID, **filters)]

    assert ids(schedule_id=NIGHTLY) == [dpc_run["pipelineExecutionId"]]
    assert ids(pipeline_name="Pipeline 1", started_before=between) == [api_run]
    assert ids(pipeline_name="Pipeline 1", started_after=between) == [dpc_run["pipelineExecutionId"]]
    # An interval run is there whenever the list is read after it was due, started at its due time.
    fresh_emulator.run_every(NIGHTLY, 0.3, seconds=0)
    nightly = next(s for s in hook.list_schedules(PROJECT_ID) if s.schedule_id == NIGHTLY)
    assert parse_time(nightly.next_run_at) is not None  # the next interval run, as the emulator runs it
    time.sleep(0.7)
    fresh_emulator.stop_running(NIGHTLY)
    runs = list(hook.iter_pipeline_executions(PROJECT_ID, schedule_id=NIGHTLY))
    assert len(runs) >= 3, runs
    assert {str(e.status) for e in runs} == {"SUCCESS"}
    starts = [e.started for e in runs]
    assert starts == sorted(starts, reverse=True)  # newest first


def test_the_emulators_own_runs_refuse_what_dpc_could_not_run(fresh_emulator: Any) -> None:
    with pytest.raises(RuntimeError, match=r"404.*not published"):
        fresh_emulator.run_pipeline("No such pipeline", ENV)
    with pytest.raises(RuntimeError, match=r"400.*pipelineName"):
        fresh_emulator.run_pipeline(environment_name=ENV)
    with pytest.raises(RuntimeError, match=r"404.*Schedule"):
        fresh_emulator.run_every("00000000-0000-4000-8000-000000000000", 5)
    with pytest.raises(RuntimeError, match="400"):
        fresh_emulator.run_pipeline("Pipeline 1", ENV, outcome="succeeded")  # statuses are in capitals


# ---- the sensor, against DPC-started runs ---------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True])
def test_the_sensor_succeeds_on_the_named_pipelines_next_run_only(
    hook: DpcHook, fresh_emulator: Any, shape: str, deferrable: bool
) -> None:
    before = fresh_emulator.run_pipeline("Pipeline 1", ENV, seconds=0)["pipelineExecutionId"]
    ended(fresh_emulator, before)
    moment = now_moment()  # the run's data interval end: the default started_after
    similar = fresh_emulator.run_pipeline("Pipeline 10", ENV, seconds=0)["pipelineExecutionId"]
    ended(fresh_emulator, similar)
    # DPC's schedule runs Pipeline 1 in a second: only that run opens the gate.
    fresh_emulator.run_every(NIGHTLY, 5, first_in_seconds=1.0, seconds=0.2)
    ti = RecordingTI()
    assert run_task(sensor(deferrable=deferrable), ti, data_interval_end=moment) is None
    (scheduled,) = hook.iter_pipeline_executions(PROJECT_ID, schedule_id=NIGHTLY)
    assert ti.xcom["pipeline_execution_id"] == scheduled.pipeline_execution_id
    assert scheduled.started is not None
    assert scheduled.started > moment
    if shape == "observed":  # the service's timestamps: five fractional digits and an offset
        assert len(str(scheduled.started_at).split(".")[1]) == len("41235+00:00")


@pytest.mark.parametrize(
    ("outcome", "deferrable", "expected"),
    [
        ("FAILED", False, r"is FAILED after .*the execution's message: Warehouse suspended"),
        ("FORBIDDEN", True, r"is FORBIDDEN after .*the execution's message: Warehouse suspended"),
        ("TERMINATED", True, r"DPC says the execution has finished, with a status this provider does not know"),
    ],
)
def test_the_sensor_fails_on_a_run_that_ends_short_of_success(
    hook: DpcHook, fresh_emulator: Any, outcome: str, deferrable: bool, expected: str
) -> None:
    moment = now_moment()
    run = fresh_emulator.run_pipeline("Pipeline 1", ENV, outcome=outcome, seconds=0.5, message="Warehouse suspended")
    # Read RUNNING first, then the end: a sensor that waited through it would time out instead.
    wait = sensor(started_after=moment.isoformat(), deferrable=deferrable, timeout=30)
    with pytest.raises(DpcPipelineExecutionError, match=expected) as info:
        run_task(wait)
    error = info.value
    assert (error.execution_id, error.status) == (run["pipelineExecutionId"], outcome)
    assert f"DPC pipeline 'Pipeline 1' in '{ENV}', execution {run['pipelineExecutionId']}" in str(error)


def test_without_fail_on_failure_the_sensor_waits_through_a_failure(
    hook: DpcHook, fresh_emulator: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    moment = now_moment()
    failed = fresh_emulator.run_pipeline("Pipeline 1", ENV, outcome="FAILED", seconds=0, message="Warehouse suspended")
    fresh_emulator.run_every(NIGHTLY, 5, first_in_seconds=1.0, seconds=0.1)  # DPC's rerun, a second later
    ti = RecordingTI()
    run_task(sensor(started_after=moment, fail_on_failure=False, deferrable=True), ti)
    (rerun,) = hook.iter_pipeline_executions(PROJECT_ID, schedule_id=NIGHTLY)
    assert ti.xcom["pipeline_execution_id"] == rerun.pipeline_execution_id
    logged = caplog.text + capsys.readouterr().out
    assert f"execution {failed['pipelineExecutionId']} of DPC pipeline 'Pipeline 1'" in logged
    assert "ended FAILED: Warehouse suspended; waiting for one that succeeds" in logged


def test_the_deferred_sensor_times_out_in_the_trigger_naming_the_moment(fresh_emulator: Any) -> None:
    moment = now_moment()
    fresh_emulator.run_pipeline("Long pipeline", ENV)  # another pipeline entirely
    wait = sensor(started_after=moment.isoformat(), deferrable=True, timeout=1.0)
    with pytest.raises(AirflowSensorTimeout, match=rf"did not reach SUCCESS .*after {re.escape(moment.isoformat())}"):
        run_task(wait)


def test_waits_on_one_pipeline_share_one_list_read_per_interval(default_conn: str, fresh_emulator: Any) -> None:
    moment = now_moment()
    fresh_emulator.run_every(NIGHTLY, 60, first_in_seconds=1.5, seconds=0)
    interval, waits = 0.2, 20

    def trigger() -> DpcNextPipelineExecutionTrigger:
        return DpcNextPipelineExecutionTrigger(
            dpc_conn_id=default_conn,
            project_id=PROJECT_ID,
            pipeline_name="Pipeline 1",
            environment_name=ENV,
            started_after=moment.isoformat(),
            goal=runs_goal().to_dict(),
            poll_interval=interval,
            started_at=time.time(),
            deadline=time.time() + 60,
        )

    async def all_events() -> list[Any]:
        return await asyncio.gather(*(first_event(trigger()) for _ in range(waits)))

    before = fresh_emulator.stats()["requests"].get(LIST, 0)
    started = time.monotonic()
    events = asyncio.run(all_events())
    elapsed = time.monotonic() - started
    assert {(e.payload["verdict"], e.payload["execution"]["status"]) for e in events} == {("reached", "SUCCESS")}
    reads = fresh_emulator.stats()["requests"][LIST] - before
    rounds = elapsed / interval + 1
    assert reads <= rounds + 1, f"{reads} list reads for {waits} waits over {rounds:.1f} poll rounds"


def test_bad_arguments_name_the_fields() -> None:
    common = {"task_id": "s", "project_id": PROJECT_ID}
    with pytest.raises(ValueError, match=r"give execution_id, or pipeline_name with environment_name.*neither"):
        DpcPipelineExecutionSensor(**common)
    with pytest.raises(ValueError, match="got both"):
        DpcPipelineExecutionSensor(execution_id="x", pipeline_name="Pipeline 1", environment_name=ENV, **common)
    with pytest.raises(ValueError, match="give environment_name with pipeline_name"):
        DpcPipelineExecutionSensor(pipeline_name="Pipeline 1", **common)
    with pytest.raises(ValueError, match="go with pipeline_name, not with execution_id"):
        DpcPipelineExecutionSensor(execution_id="x", fail_on_failure=False, **common)
    with pytest.raises(DpcValidationError, match="started_after must be an ISO 8601 date and time, got 'yesterday'"):
        run_task(sensor(started_after="yesterday"))


# ---- which executions count, and which decides (no server) ---------------------------------------


def execution(
    execution_id: str, status: str, started: str, name: str = "Pipeline 1", finished: str | None = "x"
) -> PipelineExecution:
    return PipelineExecution.model_validate(
        {
            "pipelineExecutionId": execution_id,
            "pipelineName": name,
            "environmentName": ENV,
            "status": status,
            "startedAt": started,
            "finishedAt": finished if status not in ("RUNNING", "CANCELLING") else None,
            "message": f"{execution_id} says so",
        }
    )


MOMENT = datetime(2026, 2, 2, 22, 0, tzinfo=UTC)


def watch(fail_on_failure: bool = True, name: str = "Pipeline 1") -> PipelineRunsWatch:
    return PipelineRunsWatch(
        runs_goal(fail_on_failure), PROJECT_ID, name, environment_name=ENV, started_after=MOMENT, started_at=0
    )


def test_timestamps_with_five_fractional_digits_are_read() -> None:
    assert parse_time("2026-02-02T22:53:51.41235+00:00") == datetime(2026, 2, 2, 22, 53, 51, 412350, tzinfo=UTC)
    assert parse_time("2026-02-02T22:53:51.4Z") == datetime(2026, 2, 2, 22, 53, 51, 400000, tzinfo=UTC)
    assert parse_time("2026-02-02T22:53:51") == datetime(2026, 2, 2, 22, 53, 51, tzinfo=UTC)
    assert parse_time("soon") is None
    assert parse_time(None) is None


def test_only_the_named_pipelines_runs_after_the_moment_count() -> None:
    w = watch()
    reading = w.judge(
        [
            execution("old", "SUCCESS", "2026-02-02T21:59:59.99999+00:00"),
            execution("ten", "SUCCESS", "2026-02-02T22:01:00.00001+00:00", name="Pipeline 10"),
            execution("unstarted", "SUCCESS", "not a time"),
            execution("now", "RUNNING", "2026-02-02T22:00:00.00001+00:00"),
        ]
    )
    assert (reading.status, reading.finished, reading.execution) == (ExecutionStatus.RUNNING, False, None)
    assert watch().judge([]).status == "NONE"
    # A name standing for two pipelines (one in each folder) is a conflict, never a guess.
    with pytest.raises(DpcConflictError, match="'load' matches 2 pipelines"):
        watch(name="load").judge(
            [
                execution("a", "SUCCESS", "2026-02-02T22:01:00Z", name="a/load.orch.yaml"),
                execution("b", "RUNNING", "2026-02-02T22:02:00Z", name="b/load.orch.yaml"),
            ]
        )


@pytest.mark.parametrize("fail_on_failure", [True, False])
def test_a_success_wins_over_a_failure_seen_in_the_same_read(fail_on_failure: bool) -> None:
    w = watch(fail_on_failure)
    reading = w.judge(
        [
            execution("rerun", "SUCCESS", "2026-02-02T22:30:00Z"),
            execution("first", "FAILED", "2026-02-02T22:05:00Z"),
        ]
    )
    assert reading.execution is not None
    assert (reading.status, reading.execution["pipeline_execution_id"]) == (ExecutionStatus.SUCCESS, "rerun")
    assert w.observe(reading, 1.0).verdict is Verdict.REACHED  # type: ignore[union-attr]


def test_a_failure_alone_fails_or_is_waited_through() -> None:
    runs = [execution("first", "FORBIDDEN", "2026-02-02T22:05:00Z"), execution("next", "RUNNING", "2026-02-02T22:30Z")]
    failing = watch(True)
    result = failing.observe(failing.judge(runs), 1.0)
    assert result is not None
    assert (result.verdict, result.execution_id) == (Verdict.FAILED, "first")
    patient = watch(False)
    assert patient.observe(patient.judge(runs), 1.0) is None  # the next run decides
    assert patient.history == ["RUNNING"]


def test_an_event_fires_once_per_run_ended_after_the_first_read() -> None:
    endings = NewEndings("Pipeline 1", ENV, ["SUCCESS"])
    first = [execution("done", "SUCCESS", "2026-02-02T21:00Z"), execution("going", "RUNNING", "2026-02-02T21:30Z")]
    assert endings.observe(first) == []  # the starting point: what ended before never fires
    assert endings.started_after == datetime(2026, 2, 2, 21, 20, tzinfo=UTC)  # the run under way, less the margin
    second = [
        execution("going", "SUCCESS", "2026-02-02T21:30Z"),
        execution("failed", "FAILED", "2026-02-02T21:40Z"),
        execution("ten", "SUCCESS", "2026-02-02T21:41Z", name="Pipeline 10"),
        execution("done", "SUCCESS", "2026-02-02T21:00Z"),
    ]
    assert [e.pipeline_execution_id for e in endings.observe(second)] == ["going"]
    assert endings.observe(second) == []  # never twice
    assert endings.started_after == datetime(2026, 2, 2, 21, 30, tzinfo=UTC)  # the newest start, less the margin
    assert endings.observe([execution("going", "SUCCESS", "2026-02-02T21:30Z")]) == []
    assert endings.started_after == datetime(2026, 2, 2, 21, 30, tzinfo=UTC)  # never moves back


def test_a_run_under_way_holds_the_reads_back_a_day_at_most() -> None:
    endings = NewEndings("Pipeline 1", ENV, ["SUCCESS"])
    now = datetime(2026, 2, 5, 9, 41, 7, tzinfo=UTC)
    assert endings.since(now) == datetime(2026, 2, 4, 9, tzinfo=UTC)  # nothing seen: a day back, whole hours
    stuck = execution("stuck", "RUNNING", "2026-02-02T08:00Z")
    assert endings.observe([execution("new", "RUNNING", "2026-02-05T09:00Z"), stuck]) == []
    assert endings.since(now) == datetime(2026, 2, 4, 8, 50, tzinfo=UTC)  # the newest start less a day and the margin
    assert endings.started_after == endings.since(now)


def test_the_default_moment_is_the_runs_data_interval_end() -> None:
    end = datetime(2026, 1, 2, tzinfo=UTC)
    wait = sensor()
    assert wait.moment({"data_interval_end": end}) == end
    assert sensor(started_after="2026-01-01T06:00:00").moment({}) == datetime(2026, 1, 1, 6, tzinfo=UTC)
    assert sensor(started_after=end - timedelta(hours=1)).moment({}) == end - timedelta(hours=1)


# ---- reschedule mode, under real Airflow ------------------------------------------------------------

RESCHEDULED_DAG = """
from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

from airflow_provider_dpc.sensors.pipeline_execution import DpcPipelineExecutionSensor

with DAG(dag_id="dpc_wait_rescheduled", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    DpcPipelineExecutionSensor(
        task_id="wait_for_dpc",
        project_id={project_id!r},
        pipeline_name="Pipeline 1",
        environment_name={environment!r},
        started_after={moment!r},
        mode="reschedule",
        poke_interval=1,
        timeout=60,
    )
"""


@pytest.mark.slow
def test_in_reschedule_mode_each_try_waits_for_the_same_run(
    fresh_emulator: Any, airflow_db: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between pokes the sensor holds no worker slot, and every poke judges from the same moment:
    a run DPC starts after the first poke opens the gate at a later one."""
    import threading

    from airflow import settings

    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2.11
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    moment = now_moment()
    path = tmp_path / "dpc_wait_rescheduled.py"
    path.write_text(RESCHEDULED_DAG.format(project_id=PROJECT_ID, environment=ENV, moment=moment.isoformat()))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(tmp_path))  # Airflow 3 runs the DAG from its bundle
    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    reads = threading.Event()

    def dpc_runs_the_pipeline_after_the_first_poke() -> None:
        deadline = time.monotonic() + 30
        while fresh_emulator.stats()["requests"].get(LIST, 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        reads.set()
        fresh_emulator.run_pipeline("Pipeline 1", ENV, seconds=0)

    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    def reschedules() -> int:  # TaskReschedule rows (their columns differ between lines)
        with create_session() as session:
            return int(session.query(TaskReschedule).count())

    before = reschedules()
    runner = threading.Thread(target=dpc_runs_the_pipeline_after_the_first_poke, daemon=True)
    runner.start()
    run = bag.dags["dpc_wait_rescheduled"].test()
    runner.join(timeout=5)
    assert reads.is_set(), "the sensor never read the executions list"
    assert str(run.state) == "success"
    assert fresh_emulator.stats()["requests"].get(LIST, 0) >= 2  # a poke saw nothing yet, a later one the run
    assert reschedules() > before, "the sensor never gave its slot back between pokes"
