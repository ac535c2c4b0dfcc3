"""Check, against a real DPC account, the facts about the API that this provider infers.

Matillion's guide and API reference leave some behaviour unshown (see the provider's API facts).
Given an Airflow connection to your account, this prints each fact as ``confirmed``,
``contradicted`` or ``skipped`` with what the API answered, and exits 1 if any is contradicted::

    python -m airflow_provider_dpc.probe --conn-id matillion_dpc_default
    python -m airflow_provider_dpc.probe --conn-id matillion_dpc_default --write --definition pipeline.json

It only reads by default. ``--write`` also sends an invalid create (the API refuses it, creating
nothing) and, with ``--definition``, creates a throwaway pipeline from that file, sends it STOP
(which changes nothing on a stopped pipeline) and deletes it; with ``--execute PIPELINE
--environment ENV`` it runs that published pipeline once (choose one that is harmless to run).
The facts about pipeline executions are read from executions the project already has. Nothing it
prints holds a secret.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_dpc.connection_ui import DEFAULT_CONN_NAME
from airflow_provider_dpc.enums import PipelineStatus
from airflow_provider_dpc.models import PIPELINE_FILE_SUFFIXES, unwrap_result

if TYPE_CHECKING:
    import httpx

    from airflow_provider_dpc.hooks.dpc import DpcHook

__all__ = ["Fact", "main", "probe"]

CONFIRMED, CONTRADICTED, SKIPPED = "confirmed", "contradicted", "skipped"
PAGE_KEYS = {"page", "size", "total", "results"}
PROBLEM_TYPE_PREFIX = "https://api.matillion.com/problems/"


@dataclass(frozen=True)
class Fact:
    """One inferred fact and what the API said about it."""

    name: str
    verdict: str
    evidence: str

    def __str__(self) -> str:
        return f"{self.verdict:<13} {self.name}: {self.evidence}"


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _answer(response: httpx.Response) -> str:
    return f"{response.request.method} {response.url.path} answered {response.status_code}"


def _page(hook: DpcHook, path: str, name: str, size: int = 2) -> tuple[Fact, list[Any]]:
    response = hook.send_as_is("GET", path, params={"page": 0, "size": size})
    body = _body(response)
    if response.status_code != 200 or not isinstance(body, dict):
        return Fact(name, CONTRADICTED, f"{_answer(response)}, not a page object"), []
    missing = PAGE_KEYS - set(body)
    found = body.get("results")
    results: list[Any] = found if isinstance(found, list) else []
    if missing:
        return Fact(name, CONTRADICTED, f"the page object lacks {sorted(missing)}"), results
    return Fact(name, CONFIRMED, f"page {body['page']}, size {body['size']}, total {body['total']}"), results


def _reads(hook: DpcHook, project_id: str | None) -> Iterator[Fact]:
    fact, projects = _page(hook, "/v1/projects", "projects come as a page object {page, size, total, results}")
    yield fact
    if projects:
        yield Fact("paging is 0-based", CONFIRMED, "page=0 holds the first results")
    else:
        yield Fact("paging is 0-based", SKIPPED, "no project is visible to this credential")

    fact, agents = _page(hook, "/v1/agents", "agents come as a page object", size=100)
    yield fact
    fields = {"agentId", "agentStatus", "connected"}
    if agents:
        lacking = sorted(fields - set(agents[0]))
        verdict = CONTRADICTED if lacking else CONFIRMED
        shown = {key: agents[0].get(key) for key in ("agentType", "agentStatus", "connected")}
        yield Fact(
            "an agent has agentId, agentStatus and connected", verdict, f"lacks {lacking}" if lacking else str(shown)
        )
    else:
        yield Fact("an agent has agentId, agentStatus and connected", SKIPPED, "no agent is visible")

    project_id = project_id or (projects[0].get("id") if projects else None)
    if not project_id:
        yield Fact("status values are upper case and known", SKIPPED, "no project to look in (--project-id)")
        return
    path = f"/v1/projects/{project_id}/streaming-pipelines"
    fact, pipelines = _page(hook, path, "streaming pipelines come as a page object")
    yield fact
    if pipelines:
        pipeline_id = pipelines[0].get("streamingPipelineId")
        response = hook.send_as_is("GET", f"{path}/{pipeline_id}/status")
        status = (_body(response) or {}).get("status") if response.status_code == 200 else None
        known = isinstance(status, str) and status in {s.value for s in PipelineStatus if s.value}
        verdict = CONFIRMED if known else CONTRADICTED
        yield Fact("status values are upper case and known", verdict, f"{_answer(response)}: {status!r}")
    else:
        yield Fact("status values are upper case and known", SKIPPED, f"no streaming pipeline in project {project_id}")

    response = hook.send_as_is("GET", f"{path}/{uuid.uuid4()}")
    yield _problem_fact("an unknown pipeline answers 404 as a problem with a type", response, 404)
    yield from _execution_reads(hook, project_id)


#: What the execution facts say when there is nothing to look at.
_NO_EXECUTION = "no execution of this project in the executions list"


def _execution_reads(hook: DpcHook, project_id: str) -> Iterator[Fact]:
    """The facts of the "Observed" shapes of pipeline executions, read from executions that exist."""
    envs = _body(hook.send_as_is("GET", f"/v1/projects/{project_id}/environments"))
    env = next((e.get("name") for e in (envs or {}).get("results") or [] if isinstance(e, dict)), None)
    name = "published pipelines are listed per environment (environmentName)"
    if env:
        response = hook.send_as_is(
            "GET", f"/v1/projects/{project_id}/published-pipelines", params={"environmentName": env, "size": 1}
        )
        ok = response.status_code == 200 and isinstance((_body(response) or {}).get("results"), list)
        yield Fact(name, CONFIRMED if ok else CONTRADICTED, f"{_answer(response)} for environment {env!r}")
    else:
        yield Fact(name, SKIPPED, f"no environment in project {project_id}")

    listed = hook.send_as_is("GET", "/v1/pipeline-executions", params={"projectId": project_id, "limit": 25})
    body = _body(listed)
    found = body.get("results") if isinstance(body, dict) else None
    name = "the executions list is a page of flat executions {results, more}"
    if listed.status_code != 200 or not isinstance(found, list):
        yield Fact(name, CONTRADICTED, f"{_answer(listed)}: {str(body)[:200]}")
        return
    items = [item for item in found if isinstance(item, dict)]
    if not items:
        yield Fact(name, SKIPPED, _NO_EXECUTION)
        yield Fact("execution details, steps, status route and name matching", SKIPPED, _NO_EXECUTION)
        return
    flat = all("pipelineExecutionId" in item and "status" in item for item in items)
    yield Fact(name, CONFIRMED if flat else CONTRADICTED, f"{len(items)} listed; first keys {sorted(items[0])}")
    first = items[0]
    execution_path = f"/v1/projects/{project_id}/pipeline-executions/{first.get('pipelineExecutionId')}"

    details = hook.send_as_is("GET", execution_path)
    body = _body(details)
    wrapped = isinstance(body, dict) and isinstance(body.get("result"), dict)
    inner = body["result"] if wrapped else body
    shape = "wrapped in result" if wrapped else "flat"
    has_project = isinstance(inner, dict) and "projectId" in inner
    verdict = CONFIRMED if details.status_code == 200 and wrapped and not has_project else CONTRADICTED
    yield Fact(
        "execution details come wrapped in result, without projectId",
        verdict,
        f"{_answer(details)}, {shape}, {'with' if has_project else 'without'} projectId",
    )

    status = hook.send_as_is("GET", f"{execution_path}/status")
    value = unwrap_result(_body(status) or {}).get("status") if status.status_code == 200 else None
    verdict = CONFIRMED if isinstance(value, str) else CONTRADICTED
    shown = f"{_answer(status)}: {value!r}" if value else f"{_answer(status)} (the provider reads the details instead)"
    yield Fact("the execution status route answers {status}", verdict, shown)

    steps = hook.send_as_is("GET", f"{execution_path}/steps", params={"page": 0, "size": 100})
    body = _body(steps)
    results = body.get("results") if isinstance(body, dict) else None
    nested = isinstance(results, list) and all(
        isinstance(s, dict) and isinstance(s.get("result"), dict) for s in results
    )
    paged = isinstance(body, dict) and set(body) >= PAGE_KEYS
    verdict = CONFIRMED if steps.status_code == 200 and nested and paged else CONTRADICTED
    yield Fact(
        "steps come as a page, each step's status and message under its result",
        verdict,
        f"{_answer(steps)}, {'a page object' if paged else 'not a page object'}, "
        f"{'nested' if nested else 'not nested'}",
    )

    names = [str(item["pipelineName"]) for item in items if isinstance(item.get("pipelineName"), str)]
    paths = [n for n in names if n.endswith(PIPELINE_FILE_SUFFIXES)]
    verdict = CONFIRMED if paths else CONTRADICTED
    yield Fact("execution answers name pipelines by file path", verdict, f"e.g. {next(iter(paths or names), None)!r}")

    named = first.get("pipelineName")
    if isinstance(named, str) and len(named) > 1:
        part = named.removesuffix(".orch.yaml").removesuffix(".tran.yaml").rsplit("/", 1)[-1][:-1].swapcase()
        response = hook.send_as_is(
            "GET", "/v1/pipeline-executions", params={"projectId": project_id, "pipelineName": part, "limit": 100}
        )
        hits = {e.get("pipelineExecutionId") for e in (_body(response) or {}).get("results") or []}
        verdict = CONFIRMED if first.get("pipelineExecutionId") in hits else CONTRADICTED
        yield Fact(
            "the executions list matches pipelineName partially and in any case",
            verdict,
            f"{part!r} {'finds' if verdict == CONFIRMED else 'does not find'} {named!r}",
        )

    forbidden = hook.send_as_is(
        "GET", "/v1/pipeline-executions", params={"projectId": project_id, "status": "FORBIDDEN", "limit": 1}
    )
    ended = (_body(forbidden) or {}).get("results") if forbidden.status_code == 200 else None
    name = "an execution can end FORBIDDEN (not in the reference's enum)"
    if ended:
        yield Fact(name, CONFIRMED, f"execution {ended[0].get('pipelineExecutionId')} is FORBIDDEN")
    else:
        yield Fact(name, SKIPPED, f"{_answer(forbidden)}: no FORBIDDEN execution listed")


_LINEAGE_DAYS = 7
_LINEAGE_PAGE = "lineage events come as a page of {id, event}"
_LINEAGE_JOB = "lineage events name their job by the pipeline's file path"
_LINEAGE_RUN = "a lineage event's run is an execution, by its id or by pipeline and start"


def _lineage_reads(hook: DpcHook) -> Iterator[Fact]:
    """The shape of DPC's lineage events, read from the last week's: the wrapper, the job name's
    form, and whether ``runId`` is the execution's id (the provider matches either way; it says which)."""
    now = datetime.now(UTC)
    params = {
        "generatedFrom": (now - timedelta(days=_LINEAGE_DAYS)).isoformat(),
        "generatedBefore": now.isoformat(),
        "page": 0,
        "size": 5,
    }
    response = hook.send_as_is("GET", "/v1/lineage/events", params=params)
    body = _body(response)
    found = body.get("results") if isinstance(body, dict) else None
    items = [item for item in found or [] if isinstance(item, dict) and isinstance(item.get("event"), dict)]
    if response.status_code == 404 or (response.status_code == 200 and found == []):
        why = f"{_answer(response)}: no lineage events in the last {_LINEAGE_DAYS} days"
        yield from (Fact(name, SKIPPED, why) for name in (_LINEAGE_PAGE, _LINEAGE_JOB, _LINEAGE_RUN))
        return
    wrapped = response.status_code == 200 and isinstance(body, dict) and set(body) >= PAGE_KEYS
    wrapped = wrapped and bool(items) and all("id" in item for item in items)
    yield Fact(_LINEAGE_PAGE, CONFIRMED if wrapped else CONTRADICTED, f"{_answer(response)}: {str(body)[:200]}")
    if not items:
        return
    event = items[0]["event"]
    job = event.get("job") if isinstance(event.get("job"), dict) else {}
    name = str(job.get("name"))
    verdict = CONFIRMED if name.endswith(PIPELINE_FILE_SUFFIXES) else CONTRADICTED
    yield Fact(_LINEAGE_JOB, verdict, f"job {job.get('namespace')!r} / {name!r}")
    run = event.get("run") if isinstance(event.get("run"), dict) else {}
    run_id = str(run.get("runId"))
    namespace = str(job.get("namespace", ""))
    project_id = namespace.rpartition(".")[2] if namespace.startswith("matillion://") else ""
    try:
        uuid.UUID(project_id)
        uuid.UUID(run_id)
    except ValueError:
        yield Fact(_LINEAGE_RUN, SKIPPED, f"no project id in job namespace {namespace!r}, or runId {run_id!r}")
        return
    details = hook.send_as_is("GET", f"/v1/projects/{project_id}/pipeline-executions/{run_id}")
    same = details.status_code == 200
    evidence = "is the execution's id" if same else "is DPC's own (matched by pipeline name and start)"
    yield Fact(_LINEAGE_RUN, CONFIRMED, f"runId {run_id} {evidence}: {_answer(details)}")


def _problem_fact(name: str, response: httpx.Response, status: int) -> Fact:
    body = _body(response)
    kind = body.get("type") if isinstance(body, dict) else None
    if response.status_code != status or not isinstance(body, dict):
        return Fact(name, CONTRADICTED, f"{_answer(response)}: {str(body)[:200]}")
    if not (isinstance(kind, str) and kind.startswith(PROBLEM_TYPE_PREFIX)):
        return Fact(name, CONTRADICTED, f"{_answer(response)} without a {PROBLEM_TYPE_PREFIX}... type: {kind!r}")
    return Fact(name, CONFIRMED, f"{_answer(response)}, type {kind}")


_EXECUTE_FACT = "an execute answers 201 with pipelineExecutionId"


def _execute(hook: DpcHook, project_id: str, pipeline: str, environment: str) -> Fact:
    response = hook.send_as_is(
        "POST",
        f"/v1/projects/{project_id}/pipeline-executions",
        json={"pipelineName": pipeline, "environmentName": environment},
    )
    execution_id = (_body(response) or {}).get("pipelineExecutionId")
    verdict = CONFIRMED if response.status_code == 201 and execution_id else CONTRADICTED
    return Fact(_EXECUTE_FACT, verdict, f"{_answer(response)}: {execution_id}")


def _writes(
    hook: DpcHook, project_id: str | None, definition: Path | None, execute: tuple[str, str] | None = None
) -> Iterator[Fact]:
    if not project_id:
        yield Fact("writes", SKIPPED, "no project to write in (--project-id)")
        return
    if execute is None:
        yield Fact(
            "an execute answers 201 with pipelineExecutionId", SKIPPED, "no --execute PIPELINE --environment ENV"
        )
    else:
        yield _execute(hook, project_id, *execute)
    path = f"/v1/projects/{project_id}/streaming-pipelines"
    response = hook.send_as_is("POST", path, json={})
    fact = _problem_fact("an invalid create answers 400 as a problem with a type", response, 400)
    yield fact
    body = _body(response) if fact.verdict == CONFIRMED else None
    if isinstance(body, dict):
        dialects = [key for key in ("violations", "validation-errors") if isinstance(body.get(key), list)]
        verdict = CONFIRMED if dialects else CONTRADICTED
        yield Fact(
            "a 400 lists its field errors", verdict, f"in {dialects or 'neither violations nor validation-errors'}"
        )
    if definition is None:
        yield Fact("create, command and delete answers", SKIPPED, "no --definition of a throwaway pipeline")
        return
    wire = json.loads(definition.read_text(encoding="utf-8"))
    wire["name"] = f"airflow-provider-dpc-probe-{uuid.uuid4().hex[:8]}"
    created = hook.send_as_is("POST", path, json=wire)
    pipeline_id = (_body(created) or {}).get("streamingPipelineId") if created.status_code == 201 else None
    if not pipeline_id:
        yield Fact("a create answers 201 with streamingPipelineId", CONTRADICTED, f"{_answer(created)}")
        return
    yield Fact("a create answers 201 with streamingPipelineId", CONFIRMED, f"created {wire['name']} ({pipeline_id})")
    try:
        stop = hook.send_as_is("POST", f"{path}/{pipeline_id}/commands", json={"command": "STOP"})
        verdict = CONFIRMED if stop.status_code == 200 and not stop.content.strip() else CONTRADICTED
        yield Fact("a command answers 200 with no body", verdict, f"{_answer(stop)}, {len(stop.content)} byte(s)")
    finally:
        deleted = hook.send_as_is("DELETE", f"{path}/{pipeline_id}")
        verdict = CONFIRMED if deleted.status_code == 204 else CONTRADICTED
        yield Fact("a delete answers 204", verdict, _answer(deleted))


def probe(
    hook: DpcHook,
    *,
    project_id: str | None = None,
    write: bool = False,
    definition: Path | None = None,
    execute: tuple[str, str] | None = None,
) -> list[Fact]:
    """Every fact's verdict, reads first; ``write`` adds the checks that send a create and, with
    ``execute`` (a published pipeline and its environment), an execute."""
    facts = [*_reads(hook, project_id), *_lineage_reads(hook)]
    if write:
        chosen = project_id or _first_project(hook)
        facts.extend(_writes(hook, chosen, definition, execute))
    return facts


def _first_project(hook: DpcHook) -> str | None:
    projects = hook.list_projects()
    return projects[0].id if projects else None


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_dpc.probe", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--conn-id", default=DEFAULT_CONN_NAME, help="the matillion_dpc connection (default %(default)s)"
    )
    parser.add_argument("--project-id", help="the project to look in (default: the first visible)")
    parser.add_argument("--write", action="store_true", help="also check the answers of creates (see above)")
    parser.add_argument("--definition", type=Path, help="with --write: a throwaway pipeline to create and delete")
    parser.add_argument("--execute", metavar="PIPELINE", help="with --write: a published pipeline to run once")
    parser.add_argument("--environment", help="with --execute: the environment to run it in")
    args = parser.parse_args(argv)
    if bool(args.execute) != bool(args.environment) or (args.execute and not args.write):
        parser.error("--execute and --environment go together, with --write")
    from airflow_provider_dpc.hooks.dpc import DpcHook

    hook = DpcHook(args.conn_id)
    try:
        execute = (args.execute, args.environment) if args.execute else None
        facts = probe(hook, project_id=args.project_id, write=args.write, definition=args.definition, execute=execute)
    finally:
        hook.close()
    for fact in facts:
        out(str(fact))
    counts = {verdict: sum(f.verdict == verdict for f in facts) for verdict in (CONFIRMED, CONTRADICTED, SKIPPED)}
    out(f"{counts[CONFIRMED]} confirmed, {counts[CONTRADICTED]} contradicted, {counts[SKIPPED]} skipped")
    return 1 if counts[CONTRADICTED] else 0


if __name__ == "__main__":
    sys.exit(main())
