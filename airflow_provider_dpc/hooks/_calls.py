"""The DPC API's operations as :class:`~._protocol.Call` objects, for the sync and async hook alike."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from pydantic import TypeAdapter

from airflow_provider_dpc.hooks._protocol import Call
from airflow_provider_dpc.models import (
    Agent,
    CommandRequest,
    Environment,
    ExecutionAnswer,
    ExecutionCancel,
    ExecutionRequest,
    ExecutionStatus,
    ExecutionStep,
    Page,
    PipelineCommand,
    PipelineExecution,
    PipelineStatus,
    Project,
    PublishedPipeline,
    StreamingPipeline,
    StreamingPipelineDefinition,
    TokenPage,
    check_uuid,
)

MAX_PAGE_SIZE = 100


@cache
def _page_of(page: Any, item: Any) -> Callable[[Any], Any]:
    # Built on first use rather than at import: most tasks and triggers never list a page.
    return TypeAdapter(page[item]).validate_python


def _parse_page(item: Any, page: Any = Page) -> Callable[[Any], Any]:
    return lambda body: _page_of(page, item)(body)


def _pipelines_path(project_id: str) -> str:
    return f"/v1/projects/{check_uuid(project_id, 'project_id')}/streaming-pipelines"


def _pipeline_path(project_id: str, pipeline_id: str) -> str:
    return f"{_pipelines_path(project_id)}/{check_uuid(pipeline_id, 'pipeline_id')}"


def _page_params(page: int, size: int) -> dict[str, int]:
    if page < 0 or not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"page must be >= 0 and size between 1 and {MAX_PAGE_SIZE}, got {page}, {size}")
    return {"page": page, "size": size}


def list_projects(page: int, size: int) -> Call[Page[Project]]:
    return Call("GET", "/v1/projects", _parse_page(Project), params=_page_params(page, size))


def list_environments(project_id: str, page: int, size: int) -> Call[Page[Environment]]:
    path = f"/v1/projects/{check_uuid(project_id, 'project_id')}/environments"
    return Call("GET", path, _parse_page(Environment), params=_page_params(page, size))


def list_agents(page: int, size: int) -> Call[Page[Agent]]:
    return Call("GET", "/v1/agents", _parse_page(Agent), params=_page_params(page, size))


def get_agent(agent_id: str) -> Call[Agent]:
    return Call("GET", f"/v1/agents/{check_uuid(agent_id, 'agent_id')}", Agent.model_validate)


def list_pipelines(project_id: str, page: int, size: int) -> Call[Page[StreamingPipeline]]:
    return Call("GET", _pipelines_path(project_id), _parse_page(StreamingPipeline), params=_page_params(page, size))


def get_pipeline(project_id: str, pipeline_id: str) -> Call[StreamingPipeline]:
    return Call("GET", _pipeline_path(project_id, pipeline_id), StreamingPipeline.model_validate)


def create_pipeline(project_id: str, definition: StreamingPipelineDefinition) -> Call[StreamingPipeline]:
    return Call(
        "POST",
        _pipelines_path(project_id),
        StreamingPipeline.model_validate,
        json=definition.to_wire(),
        idempotent=False,
    )


def update_pipeline(
    project_id: str, pipeline_id: str, definition: StreamingPipelineDefinition
) -> Call[StreamingPipeline]:
    return Call(
        "PUT", _pipeline_path(project_id, pipeline_id), StreamingPipeline.model_validate, json=definition.to_wire()
    )


def delete_pipeline(project_id: str, pipeline_id: str) -> Call[None]:
    return Call("DELETE", _pipeline_path(project_id, pipeline_id), _ignore)


def send_command(project_id: str, pipeline_id: str, command: PipelineCommand) -> Call[None]:
    # START and STOP are safe to repeat: the API ignores a START for a running pipeline.
    path = f"{_pipeline_path(project_id, pipeline_id)}/commands"
    return Call("POST", path, _ignore, json=CommandRequest(command=command).to_wire())


def get_status(project_id: str, pipeline_id: str) -> Call[PipelineStatus]:
    return Call("GET", f"{_pipeline_path(project_id, pipeline_id)}/status", parse_status)


def parse_status(body: Any) -> PipelineStatus:
    return PipelineStatus(_status_text(body))


def _status_text(body: Any) -> str:
    # The execution status answer's body is not published: ``{"status": ...}`` is expected, and a
    # ``result`` object holding it is read too.
    if isinstance(body, dict) and isinstance(body.get("result"), dict) and "status" not in body:
        body = body["result"]
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise ValueError("expected an object with a string 'status'")
    return str(body["status"])


# ---- orchestration pipeline executions ----------------------------------------------------------


def _executions_path(project_id: str) -> str:
    return f"/v1/projects/{check_uuid(project_id, 'project_id')}/pipeline-executions"


def _execution_path(project_id: str, execution_id: str) -> str:
    return f"{_executions_path(project_id)}/{check_uuid(execution_id, 'execution_id')}"


def list_published_pipelines(project_id: str, page: int, size: int) -> Call[Page[PublishedPipeline]]:
    path = f"/v1/projects/{check_uuid(project_id, 'project_id')}/published-pipelines"
    return Call("GET", path, _parse_page(PublishedPipeline), params=_page_params(page, size))


def execute_pipeline(project_id: str, request: ExecutionRequest) -> Call[str]:
    # Not idempotent: after an unclear failure the hook sends it again only under an execution tag,
    # which the API lets run once at a time (see DpcHook.execute_pipeline).
    return Call("POST", _executions_path(project_id), _execution_id, json=request.to_wire(), idempotent=False)


def get_execution(project_id: str, execution_id: str) -> Call[PipelineExecution]:
    return Call("GET", _execution_path(project_id, execution_id), PipelineExecution.model_validate)


def get_execution_status(project_id: str, execution_id: str) -> Call[ExecutionStatus]:
    return Call("GET", f"{_execution_path(project_id, execution_id)}/status", parse_execution_status)


def parse_execution_status(body: Any) -> ExecutionStatus:
    return ExecutionStatus(_status_text(body))


def cancel_execution(project_id: str, execution_id: str, force: bool) -> Call[str]:
    # Safe to repeat: cancelling a cancelled execution changes nothing.
    body = ExecutionCancel(force_update=force).model_dump(mode="json", by_alias=True)
    return Call("PATCH", _execution_path(project_id, execution_id), _execution_id, json=body)


def list_executions(filters: dict[str, str], limit: int, token: str | None) -> Call[TokenPage[PipelineExecution]]:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
    params: dict[str, Any] = {**filters, "limit": limit}
    if token:
        params["paginationToken"] = token
    return Call("GET", "/v1/pipeline-executions", _parse_page(PipelineExecution, TokenPage), params=params)


def execution_steps(project_id: str, execution_id: str) -> Call[list[ExecutionStep]]:
    return Call("GET", f"{_execution_path(project_id, execution_id)}/steps", _parse_steps)


def _parse_steps(body: Any) -> list[ExecutionStep]:
    # The steps answer's shape is not published: a page object (``results``) or a plain list.
    items = body.get("results") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise ValueError("expected a list of steps or an object with 'results'")
    return [ExecutionStep.model_validate(item) for item in items]


def _execution_id(body: Any) -> str:
    return ExecutionAnswer.model_validate(body).pipeline_execution_id


def _ignore(body: Any) -> None:
    return None
