"""The OpenAPI 3.1 document of the emulated API, served at ``GET /dpc/openapi.json``.

Built from the same pydantic models that validate requests, so the document cannot drift from what
the emulator accepts, and API fuzzers (schemathesis) can generate requests from it. Paths are given
from the server's root (``/dpc/v1/...`` and ``/oauth/dpc/token``) so one server URL reaches them all.
"""

from __future__ import annotations

import copy
from typing import Any

from airflow_provider_dpc.emulator.api import (
    AGENTS,
    DEFAULT_SIZE,
    MAX_PAGE,
    MAX_SIZE,
    PIPELINE,
    PIPELINES,
    PROJECT,
    PROJECTS,
)
from airflow_provider_dpc.emulator.oauth import AUDIENCE, TOKEN_PATH
from airflow_provider_dpc.emulator.problems import PROBLEM_MEDIA_TYPE
from airflow_provider_dpc.emulator.state import DIE_AFTER_KEY, FAIL_START_KEY
from airflow_provider_dpc.models import PipelineCommand, PipelineStatus, StreamingPipelineDefinition

__all__ = ["build_openapi"]

_REF = "#/components/schemas/{model}"
_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _definition_schemas() -> dict[str, Any]:
    schema = StreamingPipelineDefinition.model_json_schema(by_alias=True, ref_template=_REF)
    schemas: dict[str, Any] = schema.pop("$defs", {})
    schemas["StreamingPipelineDefinition"] = schema
    for model in schemas.values():
        _require_text(model)
    schema["properties"]["advancedProperties"] = {
        "anyOf": [
            {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "properties": {
                    FAIL_START_KEY: {"type": "string", "enum": ["true", "false"]},
                    DIE_AFTER_KEY: {"type": "string", "pattern": r"^[0-9]{1,5}(\.[0-9]{1,3})?$"},
                },
                "description": (
                    f"Free string map. Emulator only: '{FAIL_START_KEY}': 'true' makes every start fail; "
                    f"'{DIE_AFTER_KEY}': 'N' makes the pipeline fall to NOT_RUNNING N seconds after "
                    "reaching STREAMING."
                ),
            },
            {"type": "null"},
        ]
    }
    return schemas


def _require_text(model: dict[str, Any]) -> None:
    """Tighten a model's schema to what validation accepts.

    Required strings must not be blank (the models answer 'must not be empty'), and a union
    member's ``type`` tag is required even though the model has it as a default.
    """
    required = set(model.get("required", ()))
    for name, prop in model.get("properties", {}).items():
        if name in required and prop.get("type") == "string" and "const" not in prop and "enum" not in prop:
            prop.update(minLength=1, pattern=r"\S")
    if "const" in model.get("properties", {}).get("type", {}) and "type" not in required:
        model["required"] = [*model.get("required", ()), "type"]


def _problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "RFC 7807 problem; 400 answers list field errors in one of two styles.",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "validation-errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    "required": ["field", "message"],
                },
            },
            "violations": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["type", "title", "status"],
    }


def _page_schema(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "page": {"type": "integer", "minimum": 0},
            "size": {"type": "integer", "minimum": 0},
            "total": {"type": "integer", "minimum": 0},
            "results": {"type": "array", "items": _ref(item)},
        },
        "required": ["page", "size", "total", "results"],
    }


def _schemas() -> dict[str, Any]:
    uuid_string = {"type": "string", "format": "uuid"}
    statuses = [s.value for s in PipelineStatus]
    commands = [c.value for c in PipelineCommand]
    return {
        **_definition_schemas(),
        "StreamingPipeline": {
            "allOf": [
                _ref("StreamingPipelineDefinition"),
                {
                    "type": "object",
                    "properties": {"streamingPipelineId": uuid_string, "projectId": uuid_string},
                    "required": ["streamingPipelineId"],
                },
            ]
        },
        "Project": {
            "type": "object",
            "properties": {"id": uuid_string, "name": {"type": "string"}, "description": {"type": "string"}},
            "required": ["id", "name"],
        },
        "Environment": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "defaultAgentId": {"type": "string"},
                "defaultAgentName": {"type": "string"},
            },
            "required": ["name"],
        },
        "Agent": {
            "type": "object",
            "properties": {
                "agentId": uuid_string,
                "name": {"type": "string"},
                "agentType": {"type": "string", "description": "e.g. data_productivity_cloud or streaming"},
                "agentStatus": {"type": "string", "description": "e.g. running"},
                "connected": {"type": "boolean"},
                "cloudProvider": {"type": "string"},
            },
            "required": ["agentId"],
        },
        "AgentPage": _page_schema("Agent"),
        "ProjectPage": _page_schema("Project"),
        "EnvironmentPage": _page_schema("Environment"),
        "StreamingPipelinePage": _page_schema("StreamingPipeline"),
        "PipelineCommandRequest": {
            "type": "object",
            "properties": {
                "command": {
                    "type": "string",
                    "enum": commands + [c.lower() for c in commands],
                    "description": "Accepted in any case.",
                }
            },
            "required": ["command"],
        },
        "PipelineStatusResponse": {
            "type": "object",
            "properties": {
                "status": {
                    "type": "string",
                    "enum": statuses + [s.lower() for s in statuses],
                    "description": "Upper case by default; lower case when the emulator runs with status-case lower.",
                }
            },
            "required": ["status"],
        },
        "Problem": _problem_schema(),
        "TokenRequest": {
            "type": "object",
            "properties": {
                "grant_type": {"type": "string", "enum": ["client_credentials"]},
                "client_id": {"type": "string"},
                "client_secret": {"type": "string"},
                "audience": {"type": "string", "enum": [AUDIENCE]},
            },
            "required": ["grant_type", "audience"],
        },
        "TokenResponse": {
            "type": "object",
            "properties": {
                "access_token": {"type": "string"},
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer"},
            },
            "required": ["access_token", "token_type", "expires_in"],
        },
        "OAuthError": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
            "required": ["error"],
        },
    }


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": _ref("Problem")}}}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(schema)}}}


def _param(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema, "description": description}


_PROJECT_ID = _param("projectId", "path", {"type": "string", "format": "uuid"}, "Project id")
_PIPELINE_ID = _param("pipelineId", "path", {"type": "string", "format": "uuid"}, "Streaming pipeline id")
_PAGING = [
    _param("page", "query", {"type": "integer", "minimum": 0, "maximum": MAX_PAGE}, "0-based page number"),
    _param(
        "size", "query", {"type": "integer", "minimum": 1, "maximum": MAX_SIZE, "default": DEFAULT_SIZE}, "Page size"
    ),
]


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: str | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "parameters": copy.deepcopy(parameters or []),
        "responses": {
            **responses,
            "401": _problem("Missing, invalid or expired bearer token"),
            "default": _problem("Other errors, e.g. 429 rate limited (with Retry-After) or 5xx"),
        },
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {_JSON: {"schema": _ref(body)}}}
        operation["responses"].setdefault("400", _problem("Invalid body"))
        operation["responses"]["415"] = _problem("The body is not application/json")
    return operation


def _paths() -> dict[str, Any]:
    not_found = _problem("Unknown project or pipeline")
    bad_paging = _problem("Invalid page or size")
    pipeline = [_PROJECT_ID, _PIPELINE_ID]
    return {
        AGENTS: {
            "get": _operation(
                "listAgents",
                "List agents",
                {"200": _json("Agents", "AgentPage"), "400": bad_paging},
                parameters=_PAGING,
            )
        },
        AGENTS + "/{agentId}": {
            "get": _operation(
                "getAgent",
                "Get an agent: its status and whether it is connected",
                {"200": _json("Agent", "Agent"), "404": _problem("Unknown agent")},
                parameters=[_param("agentId", "path", {"type": "string", "format": "uuid"}, "Agent id")],
            )
        },
        PROJECTS: {
            "get": _operation(
                "listProjects",
                "List projects",
                {"200": _json("Projects", "ProjectPage"), "400": bad_paging},
                parameters=_PAGING,
            )
        },
        PROJECT + "/environments": {
            "get": _operation(
                "listEnvironments",
                "List a project's environments",
                {"200": _json("Environments", "EnvironmentPage"), "400": bad_paging, "404": not_found},
                parameters=[_PROJECT_ID, *_PAGING],
            )
        },
        PIPELINES: {
            "get": _operation(
                "listStreamingPipelines",
                "List streaming pipelines",
                {"200": _json("Streaming pipelines", "StreamingPipelinePage"), "400": bad_paging, "404": not_found},
                parameters=[_PROJECT_ID, *_PAGING],
            ),
            "post": _operation(
                "createStreamingPipeline",
                "Create a streaming pipeline",
                {
                    "201": _json("Created", "StreamingPipeline"),
                    "400": _problem("Invalid definition"),
                    "404": not_found,
                },
                parameters=[_PROJECT_ID],
                body="StreamingPipelineDefinition",
            ),
        },
        PIPELINE: {
            "get": _operation(
                "getStreamingPipeline",
                "Get a streaming pipeline",
                {"200": _json("The pipeline", "StreamingPipeline"), "404": not_found},
                parameters=pipeline,
            ),
            "put": _operation(
                "replaceStreamingPipeline",
                "Replace a streaming pipeline's definition",
                {
                    "200": _json("Replaced", "StreamingPipeline"),
                    "400": _problem("Invalid definition"),
                    "404": not_found,
                },
                parameters=pipeline,
                body="StreamingPipelineDefinition",
            ),
            "delete": _operation(
                "deleteStreamingPipeline",
                "Delete a streaming pipeline",
                {"204": {"description": "Deleted"}, "404": not_found, "409": _problem("The pipeline is running")},
                parameters=pipeline,
            ),
        },
        PIPELINE + "/commands": {
            "post": _operation(
                "sendStreamingPipelineCommand",
                "Start or stop a streaming pipeline (asynchronous)",
                {"200": {"description": "The agent received the command"}, "404": not_found},
                parameters=pipeline,
                body="PipelineCommandRequest",
            )
        },
        PIPELINE + "/status": {
            "get": _operation(
                "getStreamingPipelineStatus",
                "Get a streaming pipeline's status",
                {"200": _json("The status", "PipelineStatusResponse"), "404": not_found},
                parameters=pipeline,
            )
        },
        TOKEN_PATH: {
            "post": {
                "operationId": "getAccessToken",
                "summary": "OAuth2 client-credentials token",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {"application/x-www-form-urlencoded": {"schema": _ref("TokenRequest")}},
                },
                "responses": {
                    "200": _json("Access token", "TokenResponse"),
                    "400": _json("Bad grant type or audience", "OAuthError"),
                    "401": _json("Wrong client credentials", "OAuthError"),
                    "default": _problem("Injected faults, e.g. 429 or 5xx"),
                },
            }
        },
    }


def _links(paths: dict[str, Any]) -> None:
    """Tell stateful fuzzers where ids come from: projects from the list, pipelines from a create."""
    first_project = {"projectId": "$response.body#/results/0/id"}
    paths[PROJECTS]["get"]["responses"]["200"]["links"] = {
        name: {"operationId": operation_id, "parameters": first_project}
        for name, operation_id in (
            ("ListEnvironments", "listEnvironments"),
            ("ListStreamingPipelines", "listStreamingPipelines"),
            ("CreateStreamingPipeline", "createStreamingPipeline"),
        )
    }
    created = {"projectId": "$request.path.projectId", "pipelineId": "$response.body#/streamingPipelineId"}
    paths[PIPELINES]["post"]["responses"]["201"]["links"] = {
        name: {"operationId": operation_id, "parameters": created}
        for name, operation_id in (
            ("GetStreamingPipeline", "getStreamingPipeline"),
            ("ReplaceStreamingPipeline", "replaceStreamingPipeline"),
            ("DeleteStreamingPipeline", "deleteStreamingPipeline"),
            ("SendStreamingPipelineCommand", "sendStreamingPipelineCommand"),
            ("GetStreamingPipelineStatus", "getStreamingPipelineStatus"),
        )
    }


def build_openapi(server_url: str) -> dict[str, Any]:
    """The document, with ``server_url`` (scheme, host and port) as its only server."""
    paths = _paths()
    _links(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Matillion DPC streaming pipelines API (emulator)",
            "version": "1.0.0",
            "description": "Local emulator of the Data Productivity Cloud API for streaming pipelines.",
        },
        "servers": [{"url": server_url.rstrip("/")}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": f"Token from {TOKEN_PATH}"},
            },
        },
    }
