"""The contract probe: proven against the emulator in CI, run against a real account on request.

The ``system`` test runs it against the connection named by ``DPC_SYSTEM_CONN_ID`` (an Airflow
connection to a real DPC account, e.g. from ``AIRFLOW_CONN_<ID>``), read-only unless
``DPC_SYSTEM_WRITE`` names a definition file of a throwaway pipeline to create and delete.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.probe import CONFIRMED, probe
from tests.guide import GUIDE, PROJECT_ID

pytestmark = pytest.mark.every_line


def run_executions(hook: DpcHook, *names: str) -> None:
    for name in names:
        hook.execute_pipeline(
            PROJECT_ID, pipeline_name=name, environment_name="Environment-1", scalar_variables={"emulator.seconds": 0}
        )


def test_every_fact_is_confirmed_by_the_emulator_read_only(conn_env: Any, fresh_emulator: Any) -> None:
    hook = DpcHook(conn_env("probe"))
    hook.create_streaming_pipeline(PROJECT_ID, GUIDE_BODY())
    run_executions(hook, "Forbidden pipeline", "Load orders")
    before = fresh_emulator.stats()["requests"]
    facts = probe(hook)
    assert [f.verdict for f in facts] == [CONFIRMED] * len(facts), "\n".join(map(str, facts))
    assert len(facts) == 18
    after = fresh_emulator.stats()["requests"]
    writes = [r for r in after if r.split()[0] in ("POST", "PUT", "DELETE", "PATCH") and "/oauth/" not in r]
    assert {r: after[r] for r in writes} == {r: before[r] for r in writes}  # only the test's own create


@pytest.mark.slow
def test_the_command_writes_only_when_asked_and_cleans_up(conn_env: Any, fresh_emulator: Any) -> None:
    env = {**os.environ, "AIRFLOW_CONN_PROBE": os.environ[f"AIRFLOW_CONN_{conn_env('probe').upper()}"]}
    command = [sys.executable, "-m", "airflow_provider_dpc.probe", "--conn-id", "probe", "--project-id", PROJECT_ID]
    definition = str(GUIDE / "create_request.json")
    execute = ["--execute", "Pipeline 1", "--environment", "Environment-1"]
    result = subprocess.run(
        [*command, "--write", "--definition", definition, *execute], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # Skipped: no pipeline to read a status of, no execution yet to read the execution facts from,
    # no lineage events (Pipeline 1 has none).
    assert lines[-1] == "13 confirmed, 0 contradicted, 6 skipped", result.stdout
    assert any(line.startswith("confirmed     an execute answers 201 with pipelineExecutionId") for line in lines)
    assert any(line.startswith("confirmed     a command answers 200 with no body") for line in lines)
    assert fresh_emulator.stats()["pipelines_created"] == 1
    assert DpcHook("probe").list_streaming_pipelines(PROJECT_ID) == []  # the throwaway pipeline is gone


@pytest.mark.parametrize(("run_ids", "said"), [("own", "is DPC's own"), ("execution", "is the execution's id")])
def test_the_probe_says_what_a_lineage_runid_is(conn_env: Any, fresh_emulator: Any, run_ids: str, said: str) -> None:
    fresh_emulator.configure(lineage_run_ids=run_ids)
    hook = DpcHook(conn_env("probe"))
    run_executions(hook, "Load orders")
    facts = {f.name: f for f in probe(hook)}
    assert facts["lineage events come as a page of {id, event}"].verdict == CONFIRMED
    job = facts["lineage events name their job by the pipeline's file path"]
    assert (job.verdict, job.evidence.endswith("'orders/Load orders.orch.yaml'")) == (CONFIRMED, True)
    run = facts["a lineage event's run is an execution, by its id or by pipeline and start"]
    assert run.verdict == CONFIRMED
    assert said in run.evidence


def test_the_references_execution_shapes_are_contradictions(conn_env: Any, fresh_emulator: Any) -> None:
    fresh_emulator.configure(api_shape="documented", execution_status_route="404")
    hook = DpcHook(conn_env("probe"))
    run_executions(hook, "Pipeline 1")
    facts = {f.name: f for f in probe(hook)}
    wrapped = facts["execution details come wrapped in result, without projectId"]
    assert (wrapped.verdict, wrapped.evidence.split(", ", 1)[1]) == ("contradicted", "flat, with projectId")
    assert facts["the execution status route answers {status}"].verdict == "contradicted"
    assert facts["steps come as a page, each step's status and message under its result"].verdict == "contradicted"
    assert facts["the executions list matches pipelineName partially and in any case"].verdict == "confirmed"


def test_a_contradiction_fails_the_command(conn_env: Any, fresh_emulator: Any) -> None:
    fresh_emulator.configure(status_case="lower")  # as the guide shows it, not the reference
    hook = DpcHook(conn_env("probe"))
    hook.create_streaming_pipeline(PROJECT_ID, GUIDE_BODY())
    facts = {f.name: f for f in probe(hook)}
    assert facts["status values are upper case and known"].verdict == "contradicted"
    assert "'not_running'" in facts["status values are upper case and known"].evidence


def GUIDE_BODY() -> dict[str, Any]:
    from tests.guide import guide_body

    return guide_body("probed")


@pytest.mark.system
@pytest.mark.skipif(
    not os.environ.get("DPC_SYSTEM_CONN_ID"),
    reason="needs a real DPC account: set DPC_SYSTEM_CONN_ID to an Airflow connection id (e.g. with "
    "AIRFLOW_CONN_<ID>), and DPC_SYSTEM_WRITE to a definition file to also create and delete a pipeline",
)
def test_the_real_api_confirms_every_fact() -> None:
    write = os.environ.get("DPC_SYSTEM_WRITE")
    hook = DpcHook(os.environ["DPC_SYSTEM_CONN_ID"])
    facts = probe(
        hook, project_id=os.environ.get("DPC_SYSTEM_PROJECT_ID"), write=bool(write), definition=Path(write or ".")
    )
    print("\n".join(map(str, facts)))
    assert not [f for f in facts if f.verdict == "contradicted"], "\n".join(map(str, facts))
