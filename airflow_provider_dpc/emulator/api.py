"""The ``/dpc/v1`` routes: agents, projects, environments, streaming pipelines and pipeline executions.

Each route is a typed function over the provider's own models, from which FastAPI builds the
OpenAPI document and validates path, query and body. :class:`ApiRoute` checks the bearer token and
reads the body as strict JSON before FastAPI does, and the app's handlers turn every refusal into
the API's problem answer (see :mod:`.app`), so no client mistake reaches a handler or gets FastAPI's
own 422.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.responses import Response

from airflow_provider_dpc.emulator.executions import (
    SECONDS_VARIABLE,
    Execution,
    decode_token,
    encode_token,
    epoch_seconds,
    run_seconds,
)
from airflow_provider_dpc.emulator.lineage import lineage_events
from airflow_provider_dpc.emulator.problems import ApiJSONResponse, ProblemError, read_json_object
from airflow_provider_dpc.emulator.runtime import Emulator
from airflow_provider_dpc.emulator.state import Pipeline, definition_marks
from airflow_provider_dpc.models import (
    Agent,
    CommandRequest,
    Environment,
    ExecutionAnswer,
    ExecutionCancel,
    ExecutionEnvelope,
    ExecutionRequest,
    ExecutionStatusAnswer,
    ExecutionStep,
    FieldError,
    LineageEvent,
    Page,
    PipelineExecution,
    PipelineStatus,
    Problem,
    Project,
    PublishedPipeline,
    Schedule,
    StatusAnswer,
    StreamingPipeline,
    StreamingPipelineDefinition,
    TokenPage,
)

__all__ = ["API_PREFIX", "INVALID_BODY", "PAGING", "ApiRoute", "authorize", "router"]

API_PREFIX = "/dpc/v1"
DEFAULT_SIZE = 25
MAX_SIZE = 100
MAX_PAGE = 1_000_000
#: Paging parameters and their ranges, for the query errors' messages.
PAGING = {"page": (0, MAX_PAGE), "size": (1, MAX_SIZE), "limit": (1, MAX_SIZE)}
#: The ``detail`` of a 400 for an invalid body, by route name.
INVALID_BODY = {
    "create_pipeline": "There are validation errors with the streaming pipeline definition",
    "replace_pipeline": "There are validation errors with the streaming pipeline definition",
    "send_command": "There are validation errors with the command",
    "execute_pipeline": "There are validation errors with the pipeline execution request",
    "cancel_execution": "There are validation errors with the status update",
}


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


class ApiRoute(APIRoute):
    """An API route: the token is checked first, then a body is read as strict JSON (415 unless
    application/json; 400 for NaN, infinities, bad UTF-8 or deep nesting), and only then does FastAPI
    parse and validate the request, as the real API refuses in that order."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        has_body = self.body_field is not None

        async def checked(request: Request) -> Response:
            authorize(request)
            if has_body:
                await read_json_object(request)
            return await handle(request)

        return checked


# Declares the scheme in the OpenAPI document; ApiRoute does the checking, with the API's answers.
_bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth")
Responses = dict[int | str, dict[str, Any]]
_problem: dict[str, Any] = {"model": Problem}
router = APIRouter(
    prefix=API_PREFIX,
    route_class=ApiRoute,
    dependencies=[Depends(_bearer)],
    responses={
        401: {**_problem, "description": "Missing, invalid or expired bearer token"},
        "default": {**_problem, "description": "Other errors, e.g. 429 rate limited (with Retry-After) or 5xx"},
    },
)

_uuid = {"format": "uuid"}
ProjectId = Annotated[str, Path(alias="projectId", description="Project id", json_schema_extra=_uuid)]
PipelineId = Annotated[str, Path(alias="pipelineId", description="Streaming pipeline id", json_schema_extra=_uuid)]
AgentId = Annotated[str, Path(alias="agentId", description="Agent id", json_schema_extra=_uuid)]
ExecutionId = Annotated[
    str, Path(alias="pipelineExecutionId", description="Pipeline execution id", json_schema_extra=_uuid)
]
PageNumber = Annotated[int, Query(ge=0, le=MAX_PAGE, description="0-based page number")]
PageSize = Annotated[int, Query(ge=1, le=MAX_SIZE, description="Page size")]
_not_found: Responses = {404: {**_problem, "description": "Unknown project, pipeline or agent"}}
_bad: Responses = {400: {**_problem, "description": "Invalid query or body"}}
_body: Responses = {**_bad, 415: {**_problem, "description": "The body is not application/json"}}


def _shown(value: str) -> str:
    return value if len(value) <= 80 else value[:77] + "..."


def _canonical_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _project(request: Request, raw: str) -> str:
    project_id = _canonical_uuid(raw)
    if project_id is None or project_id not in _emulator(request).state.projects:
        raise ProblemError(404, f"Project '{_shown(raw)}' was not found")
    return project_id


def _pipeline(request: Request, raw_project: str, raw: str) -> Pipeline:
    project_id = _project(request, raw_project)
    pipeline_id = _canonical_uuid(raw)
    pipeline = None if pipeline_id is None else _emulator(request).state.find(project_id, pipeline_id)
    if pipeline is None:
        raise ProblemError(404, f"Streaming pipeline '{_shown(raw)}' was not found in project {project_id}")
    return pipeline


def _page(request: Request, items: list[Any], page: int, size: int, *, unpaged_like_guide: bool = False) -> Response:
    """A page object; ``page`` is 0-based.

    Projects and environments asked for without ``page`` or ``size`` answer as in the DPC guide's
    examples: every result, with ``size`` and ``total`` 0. Clients must not rely on ``total`` there.
    """
    if unpaged_like_guide and not {"page", "size"} & set(request.query_params):
        return ApiJSONResponse({"page": 0, "results": items, "size": 0, "total": 0})
    results = items[page * size : (page + 1) * size]
    return ApiJSONResponse({"page": page, "size": size, "total": len(items), "results": results})


@router.get("/agents", response_model=Page[Agent], responses=_bad, summary="List agents")
async def list_agents(request: Request, page: PageNumber = 0, size: PageSize = DEFAULT_SIZE) -> Response:
    return _page(request, list(_emulator(request).state.agents.values()), page, size)


@router.get(
    "/agents/{agentId}",
    response_model=Agent,
    responses=_not_found,
    summary="Get an agent: its status and whether it is connected",
)
async def get_agent(request: Request, agent_id: AgentId) -> Response:
    canonical = _canonical_uuid(agent_id)
    agent = None if canonical is None else _emulator(request).state.agent(canonical)
    if agent is None:
        raise ProblemError(404, f"Agent '{_shown(agent_id)}' was not found")
    return ApiJSONResponse(agent)


@router.get("/projects", response_model=Page[Project], responses=_bad, summary="List projects")
async def list_projects(request: Request, page: PageNumber = 0, size: PageSize = DEFAULT_SIZE) -> Response:
    return _page(request, list(_emulator(request).state.projects.values()), page, size, unpaged_like_guide=True)


@router.get(
    "/projects/{projectId}/environments",
    response_model=Page[Environment],
    responses={**_bad, **_not_found},
    summary="List a project's environments",
)
async def list_environments(
    request: Request, project_id: ProjectId, page: PageNumber = 0, size: PageSize = DEFAULT_SIZE
) -> Response:
    environments = _emulator(request).state.environments(_project(request, project_id))
    return _page(request, environments, page, size, unpaged_like_guide=True)


@router.get(
    "/projects/{projectId}/streaming-pipelines",
    response_model=Page[StreamingPipeline],
    responses={**_bad, **_not_found},
    summary="List streaming pipelines",
)
async def list_pipelines(
    request: Request, project_id: ProjectId, page: PageNumber = 0, size: PageSize = DEFAULT_SIZE
) -> Response:
    pipelines = _emulator(request).state.project_pipelines(_project(request, project_id))
    return _page(request, [p.body() for p in pipelines], page, size)


def _ordered_like(value: Any, received: Any) -> Any:
    """``value`` with its keys in the order they were received, so the echo reads like the request."""
    if isinstance(value, dict) and isinstance(received, dict):
        keys = [k for k in received if k in value] + [k for k in value if k not in received]
        return {k: _ordered_like(value[k], received.get(k)) for k in keys}
    if isinstance(value, list) and isinstance(received, list) and len(value) == len(received):
        return [_ordered_like(v, r) for v, r in zip(value, received, strict=True)]
    return value


async def _stored(request: Request, definition: StreamingPipelineDefinition, route: str) -> dict[str, Any]:
    """The definition as the emulator keeps it: the API's form, in the order it was sent."""
    wire = definition.to_wire()
    _, _, errors = definition_marks(wire)
    if errors:
        raise ProblemError(400, INVALID_BODY[route], errors=errors)
    ordered: dict[str, Any] = _ordered_like(wire, await request.json())
    return ordered


@router.post(
    "/projects/{projectId}/streaming-pipelines",
    status_code=201,
    response_model=StreamingPipeline,
    responses={**_body, **_not_found},
    summary="Create a streaming pipeline",
)
async def create_pipeline(request: Request, project_id: ProjectId, definition: StreamingPipelineDefinition) -> Response:
    known = _project(request, project_id)
    pipeline = _emulator(request).state.create(known, await _stored(request, definition, "create_pipeline"))
    return ApiJSONResponse(pipeline.body(), status_code=201)


@router.get(
    "/projects/{projectId}/streaming-pipelines/{pipelineId}",
    response_model=StreamingPipeline,
    responses=_not_found,
    summary="Get a streaming pipeline",
)
async def get_pipeline(request: Request, project_id: ProjectId, pipeline_id: PipelineId) -> Response:
    return ApiJSONResponse(_pipeline(request, project_id, pipeline_id).body())


@router.put(
    "/projects/{projectId}/streaming-pipelines/{pipelineId}",
    response_model=StreamingPipeline,
    responses={**_body, **_not_found},
    summary="Replace a streaming pipeline's definition",
)
async def replace_pipeline(
    request: Request, project_id: ProjectId, pipeline_id: PipelineId, definition: StreamingPipelineDefinition
) -> Response:
    pipeline = _pipeline(request, project_id, pipeline_id)
    _emulator(request).state.replace(pipeline, await _stored(request, definition, "replace_pipeline"))
    return ApiJSONResponse(pipeline.body())


@router.delete(
    "/projects/{projectId}/streaming-pipelines/{pipelineId}",
    status_code=204,
    response_class=Response,
    responses={**_not_found, 409: {**_problem, "description": "The pipeline is running; stop it first"}},
    summary="Delete a stopped streaming pipeline",
)
async def delete_pipeline(request: Request, project_id: ProjectId, pipeline_id: PipelineId) -> Response:
    pipeline = _pipeline(request, project_id, pipeline_id)
    state = _emulator(request).state
    status = state.status(pipeline)
    if status is not PipelineStatus.NOT_RUNNING:
        raise ProblemError(
            409, f"Streaming pipeline {pipeline.pipeline_id} is {status.value}; stop it first, then delete it"
        )
    state.delete(pipeline)
    return Response(status_code=204)


@router.post(
    "/projects/{projectId}/streaming-pipelines/{pipelineId}/commands",
    response_class=Response,
    responses={**_body, **_not_found, 200: {"description": "Accepted; the agent acts on it asynchronously"}},
    summary="Send START or STOP (acknowledged at once; the status changes asynchronously)",
)
async def send_command(
    request: Request, project_id: ProjectId, pipeline_id: PipelineId, body: CommandRequest
) -> Response:
    pipeline = _pipeline(request, project_id, pipeline_id)
    _emulator(request).state.command(pipeline, body.command)
    return Response(status_code=200)


@router.get(
    "/projects/{projectId}/streaming-pipelines/{pipelineId}/status",
    response_model=StatusAnswer,
    responses=_not_found,
    summary="Get a streaming pipeline's status",
)
async def pipeline_status(request: Request, project_id: ProjectId, pipeline_id: PipelineId) -> Response:
    pipeline = _pipeline(request, project_id, pipeline_id)
    emulator = _emulator(request)
    status = emulator.state.status(pipeline).value
    if emulator.faults.unknown_status():
        status = PipelineStatus.UNKNOWN.value
    return _status_answer(emulator, status)


def _status_answer(emulator: Emulator, status: str) -> Response:
    """A status read's answer, in the case the emulator is set to answer in."""
    return ApiJSONResponse({"status": status.lower() if emulator.config.status_case == "lower" else status})


# ---- orchestration pipeline executions ----------------------------------------------------------

_execution_not_found: Responses = {404: {**_problem, "description": "Unknown project or execution"}}


def _execution(request: Request, raw_project: str, raw: str) -> Execution:
    project_id = _project(request, raw_project)
    execution_id = _canonical_uuid(raw)
    execution = None if execution_id is None else _emulator(request).state.executions.find(project_id, execution_id)
    if execution is None:
        raise ProblemError(404, f"Pipeline execution '{_shown(raw)}' was not found in project {project_id}")
    return execution


@router.get(
    "/projects/{projectId}/published-pipelines",
    response_model=Page[PublishedPipeline],
    responses={**_bad, **_not_found},
    summary="List published pipelines (only these can be executed)",
)
async def list_published_pipelines(
    request: Request,
    project_id: ProjectId,
    page: PageNumber = 0,
    size: PageSize = DEFAULT_SIZE,
    environment_name: Annotated[str | None, Query(alias="environmentName")] = None,
) -> Response:
    published = _emulator(request).state.published_pipelines(_project(request, project_id))
    items = [
        {"name": p.name, "publishedTime": p.published_time}
        for p in published
        if environment_name is None or p.environment_name == environment_name
    ]
    return _page(request, list({item["name"]: item for item in items}.values()), page, size)


@router.post(
    "/projects/{projectId}/pipeline-executions",
    status_code=201,
    response_model=ExecutionAnswer,
    responses={
        **_body,
        **_not_found,
        409: {**_problem, "description": "An execution with this executionTag is running in the environment"},
        410: {**_problem, "description": "The pipeline is disabled"},
    },
    summary="Execute a published pipeline",
)
async def execute_pipeline(request: Request, project_id: ProjectId, body: ExecutionRequest) -> Response:
    known = _project(request, project_id)
    state = _emulator(request).state
    if not any(env.get("name") == body.environment_name for env in state.environments(known)):
        raise ProblemError(404, f"Environment '{_shown(body.environment_name)}' was not found in project {known}")
    found = state.published(known, body.environment_name, body.pipeline_name)
    if not found:
        raise ProblemError(
            404,
            f"Pipeline '{_shown(body.pipeline_name)}' is not published in environment '{body.environment_name}'",
        )
    if len(found) > 1:
        paths = ", ".join(f"'{p.answered_name}'" for p in found)
        raise ProblemError(400, f"Pipeline name '{_shown(body.pipeline_name)}' is ambiguous: {paths}")
    (pipeline,) = found
    try:
        run_seconds(body, pipeline)
    except ValueError as exc:
        raise ProblemError(
            400,
            INVALID_BODY["execute_pipeline"],
            errors=[FieldError(f"scalarVariables.{SECONDS_VARIABLE}", str(exc))],
        ) from None
    if pipeline.disabled:
        raise ProblemError(410, f"Pipeline '{pipeline.name}' is disabled")
    if body.execution_tag:
        running = state.executions.running_with_tag(known, body.environment_name, body.execution_tag)
        if running is not None:
            raise ProblemError(
                409,
                f"An execution with executionTag '{_shown(body.execution_tag)}' is already running in "
                f"environment '{body.environment_name}'",
            )
    execution = state.executions.start(known, pipeline, body)
    observed = _emulator(request).config.api_shape == "observed"
    return ApiJSONResponse({"pipelineExecutionId": execution.execution_id}, status_code=201 if observed else 200)


@router.get(
    "/projects/{projectId}/pipeline-executions/{pipelineExecutionId}",
    response_model=ExecutionEnvelope | PipelineExecution,
    responses=_execution_not_found,
    summary="Get a pipeline execution (wrapped in 'result', without the ids, as the service answers)",
)
async def get_execution(request: Request, project_id: ProjectId, execution_id: ExecutionId) -> Response:
    emulator = _emulator(request)
    executions = emulator.state.executions
    execution = _execution(request, project_id, execution_id)
    return ApiJSONResponse(execution.body(executions.clock(), emulator.config.api_shape))


@router.get(
    "/projects/{projectId}/pipeline-executions/{pipelineExecutionId}/status",
    response_model=ExecutionStatusAnswer,
    responses=_execution_not_found,
    summary="Get a pipeline execution's status (the lightweight way to poll)",
)
async def execution_status(request: Request, project_id: ProjectId, execution_id: ExecutionId) -> Response:
    emulator = _emulator(request)
    route = emulator.config.execution_status_route
    if route != "present":  # as a service without this route answers, before looking at the ids
        raise ProblemError(int(route), "Not Found" if route == "404" else "Method Not Allowed")
    status = _execution(request, project_id, execution_id).settle(emulator.state.executions.clock())
    return _status_answer(emulator, status.value)


@router.patch(
    "/projects/{projectId}/pipeline-executions/{pipelineExecutionId}",
    response_model=ExecutionAnswer,
    responses={**_body, **_execution_not_found},
    summary="Cancel a pipeline execution (forceUpdate: true cancels at once)",
)
async def cancel_execution(
    request: Request, project_id: ProjectId, execution_id: ExecutionId, body: ExecutionCancel
) -> Response:
    emulator = _emulator(request)
    execution = _execution(request, project_id, execution_id)
    execution.cancel(emulator.state.executions.clock(), body.force_update, emulator.config.cancelling_seconds)
    return ApiJSONResponse({"pipelineExecutionId": execution.execution_id})


@router.get(
    "/projects/{projectId}/pipeline-executions/{pipelineExecutionId}/steps",
    response_model=Page[ExecutionStep],
    responses={**_bad, **_execution_not_found},
    summary="Get a pipeline execution's step results, a page at a time",
)
async def execution_steps(
    request: Request,
    project_id: ProjectId,
    execution_id: ExecutionId,
    page: PageNumber = 0,
    size: PageSize = DEFAULT_SIZE,
) -> Response:
    emulator = _emulator(request)
    executions = emulator.state.executions
    execution = _execution(request, project_id, execution_id)
    steps = execution.steps(executions.clock(), emulator.config.api_shape)
    if emulator.config.api_shape == "observed":
        return _page(request, steps, page, size)
    return ApiJSONResponse({"results": steps})


@router.get(
    "/pipeline-executions",
    response_model=TokenPage[PipelineExecution],
    responses=_bad,
    summary="List the account's pipeline executions, newest first; 'more' is the next page's token",
)
async def list_executions(
    request: Request,
    project_id: Annotated[str | None, Query(alias="projectId")] = None,
    pipeline_name: Annotated[str | None, Query(alias="pipelineName")] = None,
    environment_name: Annotated[str | None, Query(alias="environmentName")] = None,
    status: Annotated[str | None, Query()] = None,
    started_after: Annotated[datetime | None, Query(alias="startedAfter")] = None,
    started_before: Annotated[datetime | None, Query(alias="startedBefore")] = None,
    schedule_id: Annotated[str | None, Query(alias="scheduleId", description="Runs of this DPC schedule")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SIZE, description="Page size")] = DEFAULT_SIZE,
    token: Annotated[str | None, Query(alias="paginationToken")] = None,
) -> Response:
    emulator = _emulator(request)
    state = emulator.state
    projects = [_project(request, project_id)] if project_id else list(state.projects)
    offset = 0 if token is None else decode_token(token)
    if offset is None:
        raise ProblemError(400, "Query parameter 'paginationToken' is not a token this API issued")
    schedule = None if schedule_id is None else (_canonical_uuid(schedule_id) or schedule_id)
    found = state.executions.matching(
        projects, pipeline_name, environment_name, status, started_after, started_before, schedule
    )
    now, shape = state.executions.clock(), emulator.config.api_shape
    page: dict[str, Any] = {"results": [e.body(now, shape, item=True) for e in found[offset : offset + limit]]}
    if offset + limit < len(found):
        page["more"] = encode_token(offset + limit)
    return ApiJSONResponse(page)


# ---- lineage events -----------------------------------------------------------------------------


@router.get(
    "/lineage/events",
    response_model=Page[LineageEvent],
    responses={**_bad, 404: {**_problem, "description": "No events were generated in the range"}},
    summary="List the account's OpenLineage events generated in a time range, oldest first",
)
async def list_lineage_events(
    request: Request,
    generated_from: Annotated[datetime, Query(alias="generatedFrom", description="Start of the range (ISO 8601)")],
    generated_before: Annotated[datetime, Query(alias="generatedBefore", description="End of the range, excluded")],
    page: PageNumber = 0,
    size: PageSize = DEFAULT_SIZE,
) -> Response:
    emulator = _emulator(request)
    start, end = epoch_seconds(generated_from), epoch_seconds(generated_before)
    if start >= end:
        raise ProblemError(400, "Query parameter 'generatedFrom' must be before 'generatedBefore'")
    store, config = emulator.state.executions, emulator.config
    store.catch_up()
    events = lineage_events(
        store.executions.values(),
        store.clock(),
        run_ids=config.lineage_run_ids,
        delay=config.lineage_delay,
        generated_from=start,
        generated_before=end,
        shape=config.api_shape,
    )
    if not events:  # as the service answers a range without events
        raise ProblemError(404, "No lineage events were found in the given range")
    return _page(request, [e.model_dump(mode="json", by_alias=True) for e in events], page, size)


# ---- DPC's own schedules ------------------------------------------------------------------------


@router.get(
    "/projects/{projectId}/schedules",
    response_model=Page[Schedule],
    responses={**_bad, **_not_found},
    summary="List a project's schedules: which published pipeline DPC runs, where and when",
)
async def list_schedules(
    request: Request, project_id: ProjectId, page: PageNumber = 0, size: PageSize = DEFAULT_SIZE
) -> Response:
    state = _emulator(request).state
    schedules = [schedule.to_wire() for schedule in state.schedules(_project(request, project_id))]
    return _page(request, schedules, page, size)
