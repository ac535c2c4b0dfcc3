"""The ``/dpc/v1`` routes: agents, projects, environments and streaming pipelines.

Handlers validate ids, paging and bodies themselves and raise :class:`ProblemError` for anything
wrong, so every client mistake gets the API's problem answer. Bearer tokens are checked before any
handler runs (see :func:`authorize`).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_dpc.emulator.problems import ApiJSONResponse, ProblemError, read_json_object
from airflow_provider_dpc.emulator.runtime import Emulator
from airflow_provider_dpc.emulator.state import Pipeline, definition_marks
from airflow_provider_dpc.models import (
    FieldError,
    PipelineCommand,
    PipelineStatus,
    StreamingPipelineDefinition,
    field_errors,
)

__all__ = ["API_PREFIX", "api_routes", "authorize", "method_routes"]

API_PREFIX = "/dpc/v1"
AGENTS = API_PREFIX + "/agents"
PROJECTS = API_PREFIX + "/projects"
PROJECT = PROJECTS + "/{projectId}"
PIPELINES = PROJECT + "/streaming-pipelines"
PIPELINE = PIPELINES + "/{pipelineId}"

Handler = Callable[[Request], Awaitable[Response]]

DEFAULT_SIZE = 25
MAX_SIZE = 100
MAX_PAGE = 1_000_000
DEFINITION_INVALID = "There are validation errors with the streaming pipeline definition"
COMMAND_INVALID = "There are validation errors with the command"


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


def authorize(request: Request) -> None:
    """Require a bearer token this emulator issued and that has not expired."""
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ProblemError(
            401, "A bearer token is required (Authorization: Bearer <token>)", headers={"WWW-Authenticate": "Bearer"}
        )
    if not _emulator(request).state.tokens.is_valid(token):
        raise ProblemError(
            401,
            "The bearer token is invalid or has expired",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


def _shown(value: str) -> str:
    return value if len(value) <= 80 else value[:77] + "..."


def _canonical_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _project_id(request: Request) -> str:
    raw = request.path_params["projectId"]
    project_id = _canonical_uuid(raw)
    if project_id is None or project_id not in _emulator(request).state.projects:
        raise ProblemError(404, f"Project '{_shown(raw)}' was not found")
    return project_id


def _pipeline(request: Request) -> Pipeline:
    project_id = _project_id(request)
    raw = request.path_params["pipelineId"]
    pipeline_id = _canonical_uuid(raw)
    pipeline = None if pipeline_id is None else _emulator(request).state.find(project_id, pipeline_id)
    if pipeline is None:
        raise ProblemError(404, f"Streaming pipeline '{_shown(raw)}' was not found in project {project_id}")
    return pipeline


def _int_param(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.isascii() and raw.isdigit() and len(raw) <= 9 and minimum <= int(raw) <= maximum:
        return int(raw)
    message = f"must be an integer from {minimum} to {maximum}"
    raise ProblemError(
        400, f"Query parameter '{name}' {message}, got '{_shown(raw)}'", errors=[FieldError(name, message)]
    )


def _page(request: Request, items: list[Any], *, unpaged_like_guide: bool = False) -> ApiJSONResponse:
    """A page object; ``page`` is 0-based.

    Projects and environments asked for without ``page`` or ``size`` answer as in the DPC guide's
    examples: every result, with ``size`` and ``total`` 0. Clients must not rely on ``total`` there.
    """
    query = request.query_params
    if unpaged_like_guide and "page" not in query and "size" not in query:
        return ApiJSONResponse({"page": 0, "results": items, "size": 0, "total": 0})
    page = _int_param(request, "page", 0, 0, MAX_PAGE)
    size = _int_param(request, "size", DEFAULT_SIZE, 1, MAX_SIZE)
    results = items[page * size : (page + 1) * size]
    return ApiJSONResponse({"page": page, "size": size, "total": len(items), "results": results})


async def list_projects(request: Request) -> Response:
    return _page(request, list(_emulator(request).state.projects.values()), unpaged_like_guide=True)


async def list_environments(request: Request) -> Response:
    project_id = _project_id(request)
    return _page(request, _emulator(request).state.environments(project_id), unpaged_like_guide=True)


async def list_agents(request: Request) -> Response:
    return _page(request, list(_emulator(request).state.agents.values()))


async def get_agent(request: Request) -> Response:
    raw = request.path_params["agentId"]
    agent_id = _canonical_uuid(raw)
    agent = None if agent_id is None else _emulator(request).state.agent(agent_id)
    if agent is None:
        raise ProblemError(404, f"Agent '{_shown(raw)}' was not found")
    return ApiJSONResponse(agent)


async def list_pipelines(request: Request) -> Response:
    project_id = _project_id(request)
    return _page(request, [p.body() for p in _emulator(request).state.project_pipelines(project_id)])


def _ordered_like(value: Any, received: Any) -> Any:
    """``value`` with its keys in the order they were received, so the echo reads like the request."""
    if isinstance(value, dict) and isinstance(received, dict):
        keys = [k for k in received if k in value] + [k for k in value if k not in received]
        return {k: _ordered_like(value[k], received.get(k)) for k in keys}
    if isinstance(value, list) and isinstance(received, list) and len(value) == len(received):
        return [_ordered_like(v, r) for v, r in zip(value, received, strict=True)]
    return value


async def _definition(request: Request) -> dict[str, Any]:
    body = await read_json_object(request)
    try:
        wire = StreamingPipelineDefinition.model_validate(body).to_wire()
    except ValidationError as exc:
        raise ProblemError(400, DEFINITION_INVALID, errors=field_errors(exc)) from None
    _, _, errors = definition_marks(wire)
    if errors:
        raise ProblemError(400, DEFINITION_INVALID, errors=errors)
    ordered: dict[str, Any] = _ordered_like(wire, body)
    return ordered


async def create_pipeline(request: Request) -> Response:
    project_id = _project_id(request)
    definition = await _definition(request)
    pipeline = _emulator(request).state.create(project_id, definition)
    return ApiJSONResponse(pipeline.body(), status_code=201)


async def get_pipeline(request: Request) -> Response:
    return ApiJSONResponse(_pipeline(request).body())


async def replace_pipeline(request: Request) -> Response:
    pipeline = _pipeline(request)
    definition = await _definition(request)
    _emulator(request).state.replace(pipeline, definition)
    return ApiJSONResponse(pipeline.body())


async def delete_pipeline(request: Request) -> Response:
    pipeline = _pipeline(request)
    state = _emulator(request).state
    status = state.status(pipeline)
    if status is not PipelineStatus.NOT_RUNNING:
        raise ProblemError(
            409, f"Streaming pipeline {pipeline.pipeline_id} is {status.value}; stop it first, then delete it"
        )
    state.delete(pipeline)
    return Response(status_code=204)


def _command(body: dict[str, Any]) -> PipelineCommand:
    raw = body.get("command")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ProblemError(400, COMMAND_INVALID, errors=[FieldError("command", "must not be empty")])
    if isinstance(raw, str):
        try:
            return PipelineCommand(raw)
        except ValueError:
            pass
    allowed = [c.value for c in PipelineCommand]
    raise ProblemError(400, COMMAND_INVALID, errors=[FieldError("command", f"must be one of {allowed}")])


async def send_command(request: Request) -> Response:
    pipeline = _pipeline(request)
    command = _command(await read_json_object(request))
    _emulator(request).state.command(pipeline, command)
    return Response(status_code=200)


async def pipeline_status(request: Request) -> Response:
    pipeline = _pipeline(request)
    emulator = _emulator(request)
    status = emulator.state.status(pipeline).value
    if emulator.faults.unknown_status():
        status = PipelineStatus.UNKNOWN.value
    if emulator.config.status_case == "lower":
        status = status.lower()
    return ApiJSONResponse({"status": status})


def _authorized(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def checked(request: Request) -> Response:
        authorize(request)
        return await handler(request)

    return checked


def api_routes() -> list[Route]:
    """Every ``/dpc/v1`` route; the path templates are also the keys of the request counters."""
    table: list[tuple[str, str, Handler]] = [
        (AGENTS, "GET", list_agents),
        (AGENTS + "/{agentId}", "GET", get_agent),
        (PROJECTS, "GET", list_projects),
        (PROJECT + "/environments", "GET", list_environments),
        (PIPELINES, "GET", list_pipelines),
        (PIPELINES, "POST", create_pipeline),
        (PIPELINE, "GET", get_pipeline),
        (PIPELINE, "PUT", replace_pipeline),
        (PIPELINE, "DELETE", delete_pipeline),
        (PIPELINE + "/commands", "POST", send_command),
        (PIPELINE + "/status", "GET", pipeline_status),
    ]
    return method_routes([(path, method, _authorized(handler)) for path, method, handler in table])


def method_routes(table: Sequence[tuple[str, str, Handler]]) -> list[Route]:
    """One route per path, dispatching on the method, so a 405 answer lists every allowed method."""
    by_path: dict[str, dict[str, Handler]] = {}
    for path, method, handler in table:
        by_path.setdefault(path, {})[method] = handler
    return [Route(path, _dispatch(handlers), methods=list(handlers)) for path, handlers in by_path.items()]


def _dispatch(handlers: dict[str, Handler]) -> Handler:
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch
