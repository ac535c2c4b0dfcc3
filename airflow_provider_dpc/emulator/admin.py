"""Admin routes under ``/_emulator``: health, stats, reset, faults, settings, pipeline failures, agents
and tokens.

They need no token and are never hit by injected faults, so a test can always observe and steer the
emulator whatever state it has put the API in.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from airflow_provider_dpc.emulator.config import ConfigError
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


router = APIRouter(prefix=ADMIN_PREFIX, include_in_schema=False)
for _path, _method, _handler in [
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
]:
    router.add_api_route(_path, _handler, methods=[_method])
