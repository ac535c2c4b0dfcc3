"""The DPC API's operations as :class:`~._protocol.Call` objects, for the sync and async hook alike."""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache, partial
from typing import Any, Generic, TypedDict, TypeVar, Unpack

from pydantic import TypeAdapter, ValidationError

from airflow_provider_dpc.exceptions import DpcApiError
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
    LineageEvent,
    Page,
    PipelineCommand,
    PipelineExecution,
    PipelineStatus,
    Project,
    PublishedPipeline,
    Schedule,
    StreamingPipeline,
    StreamingPipelineDefinition,
    TokenPage,
    check_uuid,
    execution_details,
    field_errors,
    same_pipeline,
    unwrap_result,
)
from airflow_provider_dpc.status import ask_if_finished

T = TypeVar("T")
log = logging.getLogger(__name__)

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
    # ``result`` object holding it is read too, as the service wraps its execution details.
    body = unwrap_result(body)
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise ValueError("expected an object with a string 'status'")
    return str(body["status"])


# ---- orchestration pipeline executions ----------------------------------------------------------


def _executions_path(project_id: str) -> str:
    return f"/v1/projects/{check_uuid(project_id, 'project_id')}/pipeline-executions"


def _execution_path(project_id: str, execution_id: str) -> str:
    return f"{_executions_path(project_id)}/{check_uuid(execution_id, 'execution_id')}"


def list_published_pipelines(
    project_id: str, environment_name: str | None, page: int, size: int
) -> Call[Page[PublishedPipeline]]:
    # Clients that ran against the service ask per environment, where publishing happens.
    path = f"/v1/projects/{check_uuid(project_id, 'project_id')}/published-pipelines"
    params: dict[str, Any] = _page_params(page, size)
    if environment_name:
        params["environmentName"] = environment_name
    return Call("GET", path, _parse_page(PublishedPipeline), params=params)


def execute_pipeline(project_id: str, request: ExecutionRequest) -> Call[str]:
    # Not idempotent: after an unclear failure the hook sends it again only under an execution tag,
    # which the API lets run once at a time (see DpcHook.execute_pipeline).
    return Call("POST", _executions_path(project_id), _execution_id, json=request.to_wire(), idempotent=False)


def get_execution(project_id: str, execution_id: str) -> Call[PipelineExecution]:
    # The service wraps the details in ``result`` and leaves ``projectId`` out: the ids come from here.
    path = _execution_path(project_id, execution_id)
    return Call("GET", path, partial(execution_details, project_id=project_id, execution_id=execution_id))


def get_execution_status(project_id: str, execution_id: str) -> Call[ExecutionStatus]:
    return Call("GET", f"{_execution_path(project_id, execution_id)}/status", parse_execution_status)


def parse_execution_status(body: Any) -> ExecutionStatus:
    return ExecutionStatus(_status_text(body))


# A Call is immutable: a poller builds (and checks the ids of) its status read once, not per poll.
cached_execution_status = lru_cache(maxsize=4096)(get_execution_status)


def cancel_execution(project_id: str, execution_id: str, force: bool) -> Call[str]:
    # Safe to repeat: cancelling a cancelled execution changes nothing.
    body = ExecutionCancel(force_update=force).model_dump(mode="json", by_alias=True)
    return Call("PATCH", _execution_path(project_id, execution_id), _execution_id, json=body)


def list_schedules(project_id: str, page: int, size: int) -> Call[Page[Schedule]]:
    path = f"/v1/projects/{check_uuid(project_id, 'project_id')}/schedules"
    return Call("GET", path, _parse_page(Schedule), params=_page_params(page, size))


def _moment(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


class ExecutionFilters(TypedDict, total=False):
    """The executions list's filters (``GET /v1/pipeline-executions``), each one optional."""

    pipeline_name: str | None
    environment_name: str | None
    status: ExecutionStatus | str | None
    started_after: datetime | str | None
    started_before: datetime | str | None
    schedule_id: str | None


def execution_filters(project_id: str | None = None, **given: Unpack[ExecutionFilters]) -> dict[str, str]:
    """The executions list's query: the filters given, ids checked, times in ISO 8601."""
    known = ExecutionFilters.__optional_keys__
    unknown = set(given) - known
    if unknown:
        raise TypeError(f"no executions filter is named {min(unknown)!r}; the filters are {', '.join(sorted(known))}")
    schedule_id, status = given.get("schedule_id"), given.get("status")
    filters = {
        "projectId": check_uuid(project_id, "project_id") if project_id else None,
        "pipelineName": given.get("pipeline_name"),
        "environmentName": given.get("environment_name"),
        "status": str(ExecutionStatus(status)) if status else None,
        "startedAfter": _moment(given.get("started_after")),
        "startedBefore": _moment(given.get("started_before")),
        "scheduleId": check_uuid(schedule_id, "schedule_id") if schedule_id else None,
    }
    return {name: value for name, value in filters.items() if value}


def of_pipeline(executions: list[PipelineExecution], pipeline_name: str | None) -> list[PipelineExecution]:
    """The executions of the pipeline named: the API matches ``pipelineName`` partially and in any case."""
    if not pipeline_name:
        return executions
    return [e for e in executions if same_pipeline(pipeline_name, e.pipeline_name)]


def list_executions(filters: dict[str, str], limit: int, token: str | None) -> Call[TokenPage[PipelineExecution]]:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
    params: dict[str, Any] = {**filters, "limit": limit}
    if token:
        params["paginationToken"] = token
    return Call("GET", "/v1/pipeline-executions", _parse_page(PipelineExecution, TokenPage), params=params)


def execution_steps(project_id: str, execution_id: str, page: int, size: int) -> Call[Page[ExecutionStep]]:
    path = f"{_execution_path(project_id, execution_id)}/steps"
    return Call("GET", path, _parse_steps, params=_page_params(page, size))


def _parse_steps(body: Any) -> Page[ExecutionStep]:
    # The service answers a page object; a plain list (one page holding every step) is read too.
    if isinstance(body, list):
        steps = [ExecutionStep.model_validate(item) for item in body]
        return Page[ExecutionStep](results=steps, total=len(steps))
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise ValueError("expected a page of steps ('results') or a list of steps")
    page: Page[ExecutionStep] = _page_of(Page, ExecutionStep)(body)
    if "total" not in body and "size" not in body:
        page.total = len(page.results)  # a bare {"results": [...]} holds every step
    return page


# ---- lineage events ----------------------------------------------------------------------------

LINEAGE_EVENTS_PATH = "/v1/lineage/events"


@dataclass(frozen=True)
class LineagePage:
    """A page of lineage events: those that could be read, and how many the page held in all."""

    events: list[LineageEvent]
    received: int
    total: int


def list_lineage_events(
    generated_from: datetime, generated_before: datetime, page: int, size: int
) -> Call[LineagePage]:
    if generated_from.tzinfo is None or generated_before.tzinfo is None:
        raise ValueError("generated_from and generated_before must be timezone-aware")
    if generated_from >= generated_before:
        raise ValueError(
            f"generated_from must be before generated_before, got {generated_from.isoformat()} and "
            f"{generated_before.isoformat()}"
        )
    params: dict[str, Any] = {
        "generatedFrom": generated_from.isoformat(),
        "generatedBefore": generated_before.isoformat(),
        **_page_params(page, size),
    }
    return Call("GET", LINEAGE_EVENTS_PATH, parse_lineage_page, params=params)


def parse_lineage_page(body: Any) -> LineagePage:
    """A page of ``{"id", "event"}`` results. An event that cannot be read is skipped with a warning:
    lineage is a report on a run, never a reason for a task to fail."""
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise ValueError("expected a page of lineage events ('results')")
    events: list[LineageEvent] = []
    for index, item in enumerate(body["results"]):
        try:
            events.append(LineageEvent.model_validate(item))
        except ValidationError as exc:
            event_id = item.get("id") if isinstance(item, dict) else None
            problems = "; ".join(map(str, field_errors(exc)[:3]))
            log.warning("skipping lineage event %s that cannot be read: %s", event_id or f"#{index}", problems)
    total = body.get("total")
    return LineagePage(events, len(body["results"]), total if isinstance(total, int) else 0)


def _execution_id(body: Any) -> str:
    return ExecutionAnswer.model_validate(body).pipeline_execution_id


def _ignore(body: Any) -> None:
    return None


# ---- reads of more than one call ----------------------------------------------------------------

#: A read that takes more than one call, written once for the sync and the async hook: a generator
#: that yields each :class:`Call`, is sent its parsed answer (or thrown its :class:`DpcApiError`)
#: and returns the result. ``DpcHook`` runs it with ``run`` or ``arun``.
Plan = Generator[Call[Any], Any, T]


class Steps(Generic[T]):
    """Takes a :data:`Plan` one call at a time: :meth:`next` is the call to send, or None once the
    plan has its result in :attr:`value`; :meth:`answer` or :meth:`fail` reports how the call went."""

    def __init__(self, plan: Plan[T]) -> None:
        self._plan = plan
        self._answer: Any = None
        self._error: DpcApiError | None = None
        self.value: T

    def next(self) -> Call[Any] | None:
        try:
            call = self._plan.send(self._answer) if self._error is None else self._plan.throw(self._error)
        except StopIteration as done:
            self.value = done.value
            return None
        self._answer, self._error = None, None
        return call

    def answer(self, value: Any) -> None:
        self._answer = value

    def fail(self, error: DpcApiError) -> None:
        self._error = error


#: API base URLs whose execution status route answered 404 or 405 for an execution that exists:
#: this process reads the details there instead. No client known to have run against the service
#: reads that route (all read the details), so it may be missing where a user runs.
NO_STATUS_ROUTE: set[str] = set()


def read_execution(
    base_url: str, project_id: str, execution_id: str, *, check_finished: bool
) -> Plan[PipelineExecution]:
    """An execution's status by the lightweight status read, and its details where that route is
    missing or, with ``check_finished``, where the status alone does not say whether it has ended."""
    if base_url not in NO_STATUS_ROUTE:
        try:
            status = yield cached_execution_status(project_id, execution_id)
        except DpcApiError as exc:
            if exc.status_code not in (404, 405):
                raise
            found: PipelineExecution = yield get_execution(project_id, execution_id)  # 404: no such execution
            if base_url not in NO_STATUS_ROUTE:
                NO_STATUS_ROUTE.add(base_url)
                log.warning(
                    "%s answered %s for an execution that exists: reading execution details instead of "
                    "the status route from now on",
                    exc.path or "the execution status route",
                    exc.status_code,
                )
            return found
        if not (check_finished and ask_if_finished(status)):
            return PipelineExecution(pipeline_execution_id=execution_id, project_id=project_id, status=status)
    details: PipelineExecution = yield get_execution(project_id, execution_id)
    return details


def all_executions(
    filters: dict[str, str], pipeline_name: str | None, *, limit: int = MAX_PAGE_SIZE
) -> Plan[list[PipelineExecution]]:
    """Every execution the list's filters find, following its ``more`` tokens (newest first), those
    of the pipeline named only."""
    found: list[PipelineExecution] = []
    token: str | None = None
    while True:
        page: TokenPage[PipelineExecution] = yield list_executions(filters, limit, token)
        found += of_pipeline(page.results, pipeline_name)
        if not page.more:
            return found
        token = page.more


def all_lineage_events(
    generated_from: datetime, generated_before: datetime, *, size: int = MAX_PAGE_SIZE, max_pages: int | None = None
) -> Plan[tuple[list[LineageEvent], bool]]:
    """The lineage events generated in ``[generated_from, generated_before)``, oldest first, and
    whether there were more than ``max_pages`` pages of them (the rest not read). DPC answers 404
    for a range without events: that is no events."""
    found: list[LineageEvent] = []
    page, seen = 0, 0
    while max_pages is None or page < max_pages:
        try:
            answer: LineagePage = yield list_lineage_events(generated_from, generated_before, page, size)
        except DpcApiError as exc:
            if exc.status_code == 404:
                return found, False
            raise
        found += answer.events
        seen += answer.received
        # ``total`` where it is given; without it a short page is the last.
        if (seen >= answer.total if answer.total else answer.received < size) or not answer.received:
            return found, False
        page += 1
    return found, True
