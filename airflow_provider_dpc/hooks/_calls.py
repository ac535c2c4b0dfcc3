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
    Page,
    PipelineCommand,
    PipelineStatus,
    Project,
    StreamingPipeline,
    StreamingPipelineDefinition,
    check_uuid,
)

MAX_PAGE_SIZE = 100


@cache
def _page_of(item: Any) -> Callable[[Any], Any]:
    # Built on first use rather than at import: most tasks and triggers never list a page.
    return TypeAdapter(Page[item]).validate_python


def _parse_page(item: Any) -> Callable[[Any], Any]:
    return lambda body: _page_of(item)(body)


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
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise ValueError("expected an object with a string 'status'")
    return PipelineStatus(body["status"])


def _ignore(body: Any) -> None:
    return None
