"""DPC's own lineage events on the run task: the hook's paged read, the emulator's events, and the
facets ``DpcRunPipelineOperator`` hands the OpenLineage provider, on every line.

The emulator seeds "Load orders" (answered as ``orders/Load orders.orch.yaml``) and "Failing
pipeline" with lineage: Postgres's ``public.orders`` read, Snowflake's ``ANALYTICS.PUBLIC.ORDERS``
written, a schema on both and column lineage on the output. Every other seeded pipeline has none.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpc.exceptions import DpcApiError, DpcPipelineExecutionError
from airflow_provider_dpc.hooks._calls import parse_lineage_page
from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.lineage import START_TOLERANCE_SECONDS, child_run_events, dpc_namespace, run_lineage
from airflow_provider_dpc.models import ExecutionStatus, LineageEvent
from airflow_provider_dpc.operators import _lineage
from airflow_provider_dpc.operators.pipeline_execution import DpcRunPipelineOperator
from tests.guide import FAST_RETRIES, PROJECT_ID, ROOT, requests_to
from tests.task_runner import run_task

pytestmark = pytest.mark.every_line

ENV = "Environment-1"
ORDERS = "Load orders"
POSTGRES = ("postgres://pg.example.com:5432", "public.orders")
SNOWFLAKE = ("snowflake://myorg-myaccount", "ANALYTICS.PUBLIC.ORDERS")
COLUMNS = ["ID", "CUSTOMER", "AMOUNT"]

try:
    import airflow.providers.openlineage.extractors  # noqa: F401

    HAS_PROVIDER = True
except ImportError:
    HAS_PROVIDER = False
needs_provider = pytest.mark.skipif(
    not HAS_PROVIDER,
    reason="apache-airflow-providers-openlineage is not installed (pip install 'airflow-provider-dpc[openlineage]')",
)


def run_op(pipeline: str, **kwargs: Any) -> DpcRunPipelineOperator:
    options = {"project_id": PROJECT_ID, "poll_interval": 0.1, "dpc_retry_policy": FAST_RETRIES, **kwargs}
    return DpcRunPipelineOperator(task_id="run", pipeline_name=pipeline, environment_name=ENV, **options)


def span() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(hours=1), now + timedelta(minutes=1)


def pairs(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


@pytest.fixture
def captured_children(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The child runs the task would send through the OpenLineage provider's client (its listener is
    not running in this process; ``test_a_dag_run_sends_dpcs_run_as_a_child_job`` sends them for real)."""
    sent: list[Any] = []
    monkeypatch.setattr(_lineage, "emit_child_run", lambda run, task_instance: sent.append(run))
    return sent


# ---- the hook ------------------------------------------------------------------------------------


def test_the_hook_reads_every_page_of_lineage_events_oldest_first(fresh_emulator: Any, hook: DpcHook) -> None:
    ids = [
        hook.execute_pipeline(PROJECT_ID, pipeline_name=ORDERS, environment_name=ENV, execution_tag=f"t{n}")
        for n in range(3)
    ]
    for execution_id in ids:
        while hook.get_pipeline_execution_status(PROJECT_ID, execution_id) is ExecutionStatus.RUNNING:
            pass
    events = hook.list_lineage_events(*span(), page_size=2)
    assert requests_to(fresh_emulator, "GET", "/lineage/events") == 3  # 6 events, 2 a page
    assert [e.event.event_type for e in events].count("START") == 3
    assert [e.event.event_type for e in events].count("COMPLETE") == 3
    moments = [e.event.moment for e in events]
    assert moments == sorted(moments)  # type: ignore[type-var]
    assert {e.event.job.name for e in events} == {"orders/Load orders.orch.yaml"}
    assert {e.event.run.run_id for e in events}.isdisjoint(ids)  # the emulator's own run ids by default

    first = hook.list_lineage_events(*span(), page_size=2, max_pages=1)
    assert [e.id for e in first] == [e.id for e in events[:2]]


def test_a_range_without_events_is_no_events(fresh_emulator: Any, hook: DpcHook) -> None:
    # The service answers 404 for it, as the emulator does.
    assert hook.list_lineage_events(*span()) == []


def test_a_range_backwards_is_refused_naming_it(hook: DpcHook) -> None:
    start, end = span()
    with pytest.raises(ValueError, match="generated_from must be before generated_before"):
        hook.list_lineage_events(end, start)
    with pytest.raises(ValueError, match="timezone-aware"):
        hook.list_lineage_events(start.replace(tzinfo=None), end)


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"generatedBefore": "2026-01-05T09:00:00Z"}, "generatedFrom"),
        ({"generatedFrom": "2026-01-05T10:00:00Z", "generatedBefore": "2026-01-05T09:00:00Z"}, "must be before"),
        ({"generatedFrom": "2026-01-05T09:00:00Z", "generatedBefore": "2026-01-05T10:00:00Z", "size": 101}, "size"),
    ],
)
def test_the_emulator_refuses_a_bad_range_or_size_naming_it(api: Any, params: dict[str, Any], detail: str) -> None:
    response = api.get("/v1/lineage/events", params=params)
    assert response.status_code == 400
    assert detail in response.text


def test_an_event_that_cannot_be_read_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    good = {"id": "e1", "event": {"eventTime": "2026-01-05T09:00:00Z", "job": {"name": "a"}, "run": {"runId": "r"}}}
    body = {"page": 0, "size": 3, "total": 3, "results": [good, {"id": "e2", "event": {"job": None}}, "junk"]}
    with caplog.at_level(logging.WARNING):
        page = parse_lineage_page(body)
    assert [e.id for e in page.events] == ["e1"]
    assert page.received == 3
    assert "skipping lineage event e2" in caplog.text
    assert "skipping lineage event #2" in caplog.text


# ---- matching an execution to its run -----------------------------------------------------------


def event(
    run_id: str,
    kind: str,
    at: str,
    name: str = "orders/Load orders.orch.yaml",
    job_facets: dict[str, Any] | None = None,
) -> LineageEvent:
    job = {"namespace": f"matillion://acct.{PROJECT_ID}", "name": name, "facets": job_facets}
    body = {"eventType": kind, "eventTime": at, "job": job}
    return LineageEvent.model_validate({"id": f"{run_id}-{kind}", "event": {**body, "run": {"runId": run_id}}})


STARTED = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)


def test_a_run_is_the_execution_by_its_id_where_dpc_writes_it_so() -> None:
    events = [event("other", "START", "2026-01-05T09:00:00Z"), event("e-1", "START", "2026-01-05T08:00:00Z")]
    found = run_lineage(events, execution_id="e-1", pipeline_name=ORDERS, project_id=PROJECT_ID, started=STARTED)
    assert found is not None
    assert found.run_id == "e-1"


def test_else_by_the_pipeline_name_rule_and_its_start() -> None:
    events = [
        event("early", "START", "2026-01-05T08:59:00Z"),
        event("ours", "START", "2026-01-05T09:00:01Z"),
        event("ours", "COMPLETE", "2026-01-05T09:00:09Z"),
        event("stray", "START", "2026-01-05T09:00:00Z", name="scratch/Load orders 2.orch.yaml"),
    ]
    found = run_lineage(events, execution_id="e-1", pipeline_name=ORDERS, project_id=PROJECT_ID, started=STARTED)
    assert found is not None
    assert (found.run_id, found.ending, found.ended) == ("ours", "COMPLETE", "2026-01-05T09:00:09Z")
    other_project = run_lineage(events, execution_id="e-1", pipeline_name=ORDERS, project_id="p2", started=STARTED)
    assert other_project is None


def test_the_end_of_an_earlier_run_in_the_range_is_not_taken_for_it() -> None:
    events = [
        event("earlier", "COMPLETE", "2026-01-05T08:59:58Z"),  # its START fell before the range
        event("ours", "START", "2026-01-05T09:00:01Z"),
    ]
    found = run_lineage(events, execution_id="e-1", pipeline_name=ORDERS, project_id=PROJECT_ID, started=STARTED)
    assert found is not None
    assert found.run_id == "ours"
    only_ends = [event("a", "COMPLETE", "2026-01-05T09:00:02Z")]  # where DPC writes no START
    found = run_lineage(only_ends, execution_id="e-1", pipeline_name=ORDERS, project_id=PROJECT_ID, started=STARTED)
    assert found is not None
    assert found.run_id == "a"


def test_two_runs_that_could_be_the_execution_are_reported_never_guessed() -> None:
    events = [event("a", "START", "2026-01-05T09:00:01Z"), event("b", "START", "2026-01-05T09:00:02Z")]
    with pytest.raises(ValueError, match=r"2 DPC runs of pipeline 'Load orders' started within 2 s.*cannot tell which"):
        run_lineage(events, execution_id="e-1", pipeline_name=ORDERS, project_id=PROJECT_ID, started=STARTED)


@pytest.mark.parametrize(
    ("dpc", "ours"),
    [
        ("postgresql://PG.Example.com:5432", "postgres://pg.example.com:5432"),
        ("sqlserver://sql01:1433", "mssql://sql01:1433"),
        ("mysql://db:3306", "mysql://db:3306"),
        ("snowflake://xy12345.eu-central-1", "snowflake://xy12345.eu-central-1.aws"),
        ("s3://bucket", "s3://bucket"),
    ],
)
def test_dpcs_namespaces_are_named_as_airflows_hooks_name_them(dpc: str, ours: str) -> None:
    assert dpc_namespace(dpc) == ours


# ---- the run task's facets ---------------------------------------------------------------------------


@needs_provider
@pytest.mark.parametrize("run_ids", ["own", "execution"])
def test_a_run_reports_the_tables_dpc_says_it_read_and_wrote(
    fresh_emulator: Any, default_conn: str, captured_children: list[Any], run_ids: str
) -> None:
    fresh_emulator.configure(lineage_run_ids=run_ids, lineage_delay=1.0)  # DPC writes them late
    op = run_op(ORDERS)
    execution_id = run_task(op)

    lineage = op.get_openlineage_facets_on_complete(None)
    assert lineage is not None
    assert pairs(lineage.inputs) == [POSTGRES]
    assert pairs(lineage.outputs) == [SNOWFLAKE]
    assert [f.name for f in lineage.inputs[0].facets["schema"].fields] == ["id", "customer", "amount"]
    assert [f.name for f in lineage.outputs[0].facets["schema"].fields] == COLUMNS
    column = lineage.outputs[0].facets["columnLineage"].fields["AMOUNT"]
    assert [(f.namespace, f.name, f.field) for f in column.inputFields] == [(*POSTGRES, "amount")]

    [run] = captured_children
    assert run.job_name == "orders/Load orders.orch.yaml"
    assert run.ending == "COMPLETE"
    assert (run.run_id == execution_id) is (run_ids == "execution")
    assert requests_to(fresh_emulator, "GET", "/lineage/events") == 1  # and one read of the execution


@needs_provider
def test_a_failed_run_reports_them_on_its_fail_event(
    fresh_emulator: Any, default_conn: str, captured_children: list[Any]
) -> None:
    op = run_op("Failing pipeline")
    with pytest.raises(DpcPipelineExecutionError):
        run_task(op)
    lineage = op.get_openlineage_facets_on_failure(None)
    assert lineage is not None
    assert (pairs(lineage.inputs), pairs(lineage.outputs)) == ([POSTGRES], [SNOWFLAKE])
    assert [run.ending for run in captured_children] == ["FAIL"]


@needs_provider
def test_a_task_that_does_not_wait_reports_what_the_run_has_recorded_so_far(
    fresh_emulator: Any, default_conn: str, captured_children: list[Any]
) -> None:
    op = run_op(ORDERS, wait_for_completion=False, scalar_variables={"emulator.seconds": 60})
    run_task(op)
    lineage = op.get_openlineage_facets_on_complete(None)
    assert lineage is not None
    assert (pairs(lineage.inputs), pairs(lineage.outputs)) == ([POSTGRES], [SNOWFLAKE])
    [run] = captured_children
    assert (run.ending, run.ended) == (None, None)  # its START only: the child run is still going


@needs_provider
def test_a_pipeline_without_lineage_reports_none_and_warns_nothing(
    fresh_emulator: Any, default_conn: str, captured_children: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    op = run_op("Pipeline 1")
    run_task(op)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert op.get_openlineage_facets_on_complete(None) is None
    ours = [r for r in caplog.records if r.name.startswith("airflow_provider_dpc") and r.levelno >= logging.WARNING]
    assert not ours, [r.getMessage() for r in ours]
    assert captured_children == []


@needs_provider
def test_a_task_that_failed_before_its_execution_existed_reads_nothing(fresh_emulator: Any, default_conn: str) -> None:
    op = run_op("No such pipeline")
    with pytest.raises(DpcApiError):
        run_task(op)
    before = sum(fresh_emulator.stats()["requests"].values())
    assert op.get_openlineage_facets_on_failure(None) is None
    assert sum(fresh_emulator.stats()["requests"].values()) == before


@needs_provider
def test_dpcs_run_is_a_child_job_of_the_task() -> None:
    events = [
        event("3f0c3b47-4a57-4cc5-9a39-5b3a4a0f0a11", "START", "2026-01-05T09:00:01Z"),
        event("3f0c3b47-4a57-4cc5-9a39-5b3a4a0f0a11", "FAIL", "2026-01-05T09:00:09Z"),
    ]
    run = run_lineage(events, execution_id="e-1", pipeline_name=ORDERS, project_id=PROJECT_ID, started=STARTED)
    assert run is not None
    sent = child_run_events(run, "0195a0e4-0000-7000-8000-000000000001", "airflow-ns", "dag.run")
    assert [(e.eventType.value, e.eventTime) for e in sent] == [
        ("START", "2026-01-05T09:00:01Z"),
        ("FAIL", "2026-01-05T09:00:09Z"),
    ]
    parent = sent[0].run.facets["parent"]
    assert (parent.run.runId, parent.job.namespace, parent.job.name) == (
        "0195a0e4-0000-7000-8000-000000000001",
        "airflow-ns",
        "dag.run",
    )
    assert sent[0].run.runId == "3f0c3b47-4a57-4cc5-9a39-5b3a4a0f0a11"
    assert (sent[0].job.namespace, sent[0].job.name) == (f"matillion://acct.{PROJECT_ID}", run.job_name)
    job_type = sent[0].job.facets["jobType"]
    assert (job_type.jobType, job_type.integration, job_type.processingType) == (None, "MATILLION", "BATCH")


@needs_provider
def test_the_child_job_keeps_dpcs_job_type() -> None:
    facets = {"jobType": {"jobType": "ORCHESTRATION", "integration": "MATILLION", "processingType": "BATCH"}}
    events = [event("ours", "START", "2026-01-05T09:00:01Z", job_facets=facets)]
    run = run_lineage(events, execution_id="e-1", pipeline_name=ORDERS, project_id=PROJECT_ID, started=STARTED)
    assert run is not None
    [sent] = child_run_events(run, "0195a0e4-0000-7000-8000-000000000001", "airflow-ns", "dag.run")
    job_type = sent.job.facets["jobType"]
    assert (job_type.jobType, job_type.integration, job_type.processingType) == ("ORCHESTRATION", "MATILLION", "BATCH")


# ---- a real DAG run ------------------------------------------------------------------------------

DAG_FILE = """
from datetime import datetime

from airflow_provider_dpc.operators.pipeline_execution import DpcRunPipelineOperator

try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

with DAG("dpc_run_lineage", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    DpcRunPipelineOperator(
        task_id="load_orders",
        project_id="{project_id}",
        pipeline_name="Load orders",
        environment_name="Environment-1",
        poll_interval=0.2,
    )
"""


@pytest.mark.slow
@pytest.mark.edge_lines  # the facets and the child run above are checked on every line in process
@needs_provider
def test_a_dag_run_sends_dpcs_lineage_to_the_backend(fresh_emulator: Any, airflow_db: None, tmp_path: Path) -> None:
    """``airflow dags test`` with OpenLineage's file transport: the events as a backend receives them."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "dpc_run_lineage.py").write_text(DAG_FILE.replace("{project_id}", PROJECT_ID), encoding="utf-8")
    events_file = tmp_path / "events.jsonl"
    env = os.environ.copy()
    env.update(
        {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW_CONN_MATILLION_DPC_DEFAULT": fresh_emulator.connection_json(),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(events_file), "append": True}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "dpc-tests",
        }
    )

    def dags_test(env: dict[str, str], day: str) -> str:  # a run of its own each time
        command = [sys.executable, "-m", "airflow", "dags", "test", "dpc_run_lineage", day]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
        output = result.stdout[-3000:] + result.stderr[-3000:]
        assert result.returncode == 0, output
        return output

    dags_test({**env, "AIRFLOW__OPENLINEAGE__DISABLED": "true"}, "2026-01-02")
    assert requests_to(fresh_emulator, "GET", "/lineage/events") == 0  # nothing read with OpenLineage off
    assert not events_file.exists()
    # Two runs of one pipeline started closer than this are two candidates, reported, never guessed.
    time.sleep(START_TOLERANCE_SECONDS + 0.5)

    output = dags_test(env, "2026-01-03")
    assert requests_to(fresh_emulator, "GET", "/lineage/events") == 1
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    [task] = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == "dpc_run_lineage.load_orders"]
    assert [(d["namespace"], d["name"]) for d in task["inputs"]] == [POSTGRES], output
    assert [(d["namespace"], d["name"]) for d in task["outputs"]] == [SNOWFLAKE]
    facets = task["outputs"][0]["facets"]
    assert [f["name"] for f in facets["schema"]["fields"]] == COLUMNS
    sources = facets["columnLineage"]["fields"]["ID"]["inputFields"]
    assert [(f["namespace"], f["name"], f["field"]) for f in sources] == [(*POSTGRES, "id")]

    children = [e for e in events if e["job"]["name"] == "orders/Load orders.orch.yaml"]
    assert [e["eventType"] for e in children] == ["START", "COMPLETE"]
    for child in children:
        parent = child["run"]["facets"]["parent"]
        assert (parent["job"]["namespace"], parent["job"]["name"]) == ("dpc-tests", "dpc_run_lineage.load_orders")
        assert parent["run"]["runId"] == task["run"]["runId"]
        assert child["job"]["namespace"].startswith("matillion://")
        assert child["job"]["facets"]["jobType"]["jobType"] == "ORCHESTRATION"
        assert [(d["namespace"], d["name"]) for d in child["outputs"]] == [SNOWFLAKE]
    secret = fresh_emulator.client_secret
    assert secret not in events_file.read_text()
