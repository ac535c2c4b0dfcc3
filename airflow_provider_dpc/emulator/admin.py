"""Admin routes under ``/_emulator``: health, stats, reset, faults, settings, pipeline failures, agents,
tokens, and the runs DPC's own scheduler starts.

They need no token and are never hit by injected faults, so a test can always observe and steer the
emulator whatever state it has put the API in.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.responses import Response

from airflow_provider_dpc.emulator.config import ConfigError, PublishedPipelineSeed
from airflow_provider_dpc.emulator.executions import Outcome
from airflow_provider_dpc.emulator.faults import FaultError
from airflow_provider_dpc.emulator.problems import ApiJSONResponse, ProblemError, read_json_object
from airflow_provider_dpc.emulator.runtime import Emulator
from airflow_provider_dpc.emulator.state import Pipeline
from airflow_provider_dpc.models import FieldError

__all__ = ["ADMIN_PREFIX", "router"]

ADMIN_PREFIX = "/_emulator"


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


async def health(request: Request) -> Response:
    return ApiJSONResponse({"status": "ok"})


async def stats(request: Request) -> Response:
    return ApiJSONResponse(_emulator(request).stats())


async def reset(request: Request) -> Response:
    _emulator(request).reset()
    return ApiJSONResponse({"status": "reset"})


async def tokens(request: Request) -> Response:
    """The access tokens issued since the last reset, so a test suite can check none of them leaked.

    Read-only; the emulator forgets expired tokens when it issues the next one.
    """
    issued = sorted(_emulator(request).state.tokens._expiry)
    return ApiJSONResponse({"tokens": issued})


async def get_faults(request: Request) -> Response:
    return ApiJSONResponse(_emulator(request).faults.describe())


async def put_faults(request: Request) -> Response:
    emulator = _emulator(request)
    try:
        emulator.apply_faults(await read_json_object(request))
    except FaultError as exc:
        raise ProblemError(400, f"Invalid faults: {exc}") from None
    return ApiJSONResponse(emulator.faults.describe())


async def delete_faults(request: Request) -> Response:
    emulator = _emulator(request)
    emulator.faults.clear()
    return ApiJSONResponse(emulator.faults.describe())


async def get_config(request: Request) -> Response:
    return ApiJSONResponse(_emulator(request).config.runtime_settings())


async def put_config(request: Request) -> Response:
    emulator = _emulator(request)
    try:
        config = emulator.configure(await read_json_object(request))
    except ConfigError as exc:
        raise ProblemError(400, f"Invalid settings: {exc}") from None
    return ApiJSONResponse(config.runtime_settings())


def _pipeline(request: Request) -> Pipeline:
    raw = request.path_params["pipelineId"]
    try:
        pipeline_id = str(uuid.UUID(raw))
    except ValueError:
        pipeline_id = ""
    pipeline = _emulator(request).state.pipelines.get(pipeline_id)
    if pipeline is None:
        raise ProblemError(404, f"Streaming pipeline '{raw[:80]}' was not found")
    return pipeline


def _describe(emulator: Emulator, pipeline: Pipeline) -> dict[str, Any]:
    return {
        "streamingPipelineId": pipeline.pipeline_id,
        "status": emulator.state.status(pipeline).value,
        "failStart": pipeline.fail_start,
        "dieAfterSeconds": pipeline.die_after,
    }


async def fail_start(request: Request) -> Response:
    pipeline = _pipeline(request)
    pipeline.marked_fail_start = True
    return ApiJSONResponse(_describe(_emulator(request), pipeline))


async def die(request: Request) -> Response:
    pipeline = _pipeline(request)
    emulator = _emulator(request)
    pipeline.die(emulator.state.clock())
    return ApiJSONResponse(_describe(emulator, pipeline))


async def die_after(request: Request) -> Response:
    pipeline = _pipeline(request)
    seconds = (await read_json_object(request)).get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 86400:
        message = "must be a number of seconds from 0 to 86400"
        raise ProblemError(400, f"seconds {message}", errors=[FieldError("seconds", message)])
    emulator = _emulator(request)
    pipeline.mark_die_after(float(seconds), emulator.state.clock())
    return ApiJSONResponse(_describe(emulator, pipeline))


async def put_agent(request: Request) -> Response:
    """Change a seeded agent's ``connected`` and ``agentStatus``, e.g. ``{"connected": false}``."""
    raw = request.path_params["agentId"]
    try:
        agent_id = str(uuid.UUID(raw))
    except ValueError:
        agent_id = ""
    agent = _emulator(request).state.agent(agent_id)
    if agent is None:
        raise ProblemError(404, f"Agent '{raw[:80]}' was not found")
    body = await read_json_object(request)
    errors = [FieldError(name, "is not a setting of an agent") for name in body if name not in _AGENT_SETTINGS]
    if "connected" in body and not isinstance(body["connected"], bool):
        errors.append(FieldError("connected", "must be true or false"))
    if "agentStatus" in body and not (isinstance(body["agentStatus"], str) and body["agentStatus"].strip()):
        errors.append(FieldError("agentStatus", "must be a non-empty string"))
    if errors:
        raise ProblemError(400, "Invalid agent settings", errors=errors)
    agent.update(body)
    return ApiJSONResponse(agent)


_AGENT_SETTINGS = frozenset({"connected", "agentStatus"})


# ---- runs DPC's own scheduler starts -------------------------------------------------------------


class _Admin(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class RunOutcome(_Admin):
    """How a run the emulator starts ends, where it differs from its published pipeline's seed."""

    #: SUCCESS, FAILED, FORBIDDEN, RUNNING (until cancelled) or any status in capitals.
    outcome: Annotated[str | None, Field(pattern=r"^[A-Z][A-Z_]*$")] = None
    #: Seconds from RUNNING to the outcome.
    seconds: Annotated[float | None, Field(ge=0, le=86400)] = None
    message: str | None = None
    #: Seconds added to the ``startedAt`` the run answers: a DPC clock that disagrees.
    clock_skew_seconds: Annotated[float, Field(ge=-86400 * 7, le=86400 * 7)] = 0.0

    def plan(self) -> Outcome:
        return Outcome(self.outcome, self.seconds, self.message, self.clock_skew_seconds)


class RunNow(RunOutcome):
    """``POST /_emulator/runs``: DPC runs a published pipeline now (trigger ``SCHEDULE``), named by
    a seeded schedule or by its pipeline and environment."""

    schedule_id: str | None = None
    project_id: str | None = None
    pipeline_name: str | None = None
    environment_name: str | None = None


class RunEvery(RunOutcome):
    """``PUT /_emulator/schedules/{scheduleId}/interval``: DPC runs the schedule's pipeline every
    ``every_seconds``, the first one ``first_in_seconds`` from now (one interval by default)."""

    every_seconds: Annotated[float, Field(gt=0, le=86400)]
    first_in_seconds: Annotated[float | None, Field(ge=0, le=86400)] = None


ScheduleId = Annotated[str, Path(alias="scheduleId")]


def _published(emulator: Emulator, project_id: str, environment_name: str, name: str) -> PublishedPipelineSeed:
    found = emulator.state.published(project_id, environment_name, name)
    if not found:
        raise ProblemError(404, f"Pipeline '{name[:80]}' is not published in environment '{environment_name[:80]}'")
    if len(found) > 1:
        paths = ", ".join(p.answered_name for p in found)
        raise ProblemError(400, f"Pipeline name '{name[:80]}' is ambiguous: {paths}")
    return found[0]


def _seeded_schedule(emulator: Emulator, raw: str) -> tuple[str, Any]:
    try:
        schedule_id = str(uuid.UUID(raw))
    except ValueError:
        schedule_id = ""
    found = emulator.state.schedule(schedule_id)
    if found is None:
        raise ProblemError(404, f"Schedule '{raw[:80]}' was not found")
    return found


def _scheduled_pipeline(emulator: Emulator, project_id: str, schedule: Any) -> PublishedPipelineSeed:
    return _published(emulator, project_id, schedule.environment_name or "", schedule.pipeline_name or "")


async def run_now(request: Request, body: RunNow) -> Response:
    """Start an execution as DPC's scheduler would, now; answers it as the executions list does."""
    emulator = _emulator(request)
    if body.schedule_id is not None:
        project_id, schedule = _seeded_schedule(emulator, body.schedule_id)
        pipeline = _scheduled_pipeline(emulator, project_id, schedule)
        schedule_id: str | None = schedule.schedule_id
    else:
        named = (("pipelineName", body.pipeline_name), ("environmentName", body.environment_name))
        missing = [name for name, value in named if not value]
        if missing:
            message = "must not be empty without scheduleId"
            raise ProblemError(400, "Invalid run", errors=[FieldError(name, message) for name in missing])
        projects = list(emulator.state.projects)
        project_id = body.project_id or (projects[0] if len(projects) == 1 else "")
        if project_id not in emulator.state.projects:
            raise ProblemError(404, f"Project '{(body.project_id or '')[:80]}' was not found")
        pipeline = _published(emulator, project_id, str(body.environment_name), str(body.pipeline_name))
        schedule_id = None
    execution = emulator.state.executions.run_on_schedule(project_id, pipeline, schedule_id, body.plan())
    now = emulator.state.executions.clock()
    return ApiJSONResponse(execution.body(now, emulator.config.api_shape, item=True), status_code=201)


async def run_every(request: Request, schedule_id: ScheduleId, body: RunEvery) -> Response:
    emulator = _emulator(request)
    project_id, schedule = _seeded_schedule(emulator, schedule_id)
    pipeline = _scheduled_pipeline(emulator, project_id, schedule)
    interval = emulator.state.executions.repeat(
        project_id, schedule.schedule_id, pipeline, body.every_seconds, body.plan(), body.first_in_seconds
    )
    return ApiJSONResponse(_interval(emulator, schedule.schedule_id, interval.every))


async def stop_running(request: Request, schedule_id: ScheduleId) -> Response:
    emulator = _emulator(request)
    _, schedule = _seeded_schedule(emulator, schedule_id)
    emulator.state.executions.stop_repeating(schedule.schedule_id)
    return ApiJSONResponse(_interval(emulator, schedule.schedule_id, None))


def _interval(emulator: Emulator, schedule_id: str, every: float | None) -> dict[str, Any]:
    next_run = emulator.state.executions.next_run(schedule_id)
    return {"scheduleId": schedule_id, "everySeconds": every, "nextRunAt": next_run}


router = APIRouter(prefix=ADMIN_PREFIX, include_in_schema=False)
_ROUTES: list[tuple[str, str, Callable[..., Awaitable[Response]]]] = [
    ("/health", "GET", health),
    ("/stats", "GET", stats),
    ("/reset", "POST", reset),
    ("/tokens", "GET", tokens),
    ("/faults", "GET", get_faults),
    ("/faults", "PUT", put_faults),
    ("/faults", "DELETE", delete_faults),
    ("/config", "GET", get_config),
    ("/config", "PUT", put_config),
    ("/pipelines/{pipelineId}/fail-start", "POST", fail_start),
    ("/pipelines/{pipelineId}/die", "POST", die),
    ("/pipelines/{pipelineId}/die-after", "POST", die_after),
    ("/agents/{agentId}", "PUT", put_agent),
    ("/runs", "POST", run_now),
    ("/schedules/{scheduleId}/interval", "PUT", run_every),
    ("/schedules/{scheduleId}/interval", "DELETE", stop_running),
]
for _path, _method, _handler in _ROUTES:
    router.add_api_route(_path, _handler, methods=[_method])
