"""The emulator's API beyond the guide: status machine, paging, CRUD, auth, errors and OpenAPI."""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from airflow_provider_dpc.emulator import EmulatorConfig, EmulatorProcess, create_app
from airflow_provider_dpc.emulator.__main__ import build_parser, config_from_args
from airflow_provider_dpc.emulator.config import ConfigError, load_seed
from airflow_provider_dpc.emulator.state import EmulatorState
from airflow_provider_dpc.models import PipelineCommand, PipelineStatus
from tests.guide import GUIDE_AGENT_ID, PROJECT_ID, ROOT

PIPELINES = f"/v1/projects/{PROJECT_ID}/streaming-pipelines"
Guide = Callable[[str], Any]
S = PipelineStatus


# --- Status machine, driven by a fake clock -----------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> EmulatorState:
    config = EmulatorConfig(starting_seconds=2, snapshotting_seconds=3, stopping_seconds=4)
    return EmulatorState(config, clock)


def _definition(guide: Guide, **advanced: str) -> dict[str, Any]:
    body = guide("create_request")
    body["advancedProperties"] = {**body["advancedProperties"], **advanced}
    return body


def _timeline(state: EmulatorState, clock: FakeClock, pipeline_id: str, times: list[float]) -> list[S]:
    pipeline = state.pipelines[pipeline_id]
    seen = []
    for at in times:
        clock.now = 1000.0 + at
        seen.append(state.status(pipeline))
    return seen


def test_start_runs_through_starting_and_snapshotting_to_streaming(
    state: EmulatorState, clock: FakeClock, guide: Guide
) -> None:
    pipeline = state.create(PROJECT_ID, guide("create_request"))
    assert state.status(pipeline) is S.NOT_RUNNING
    pipeline.command(PipelineCommand.START, clock(), state.config)
    assert _timeline(state, clock, pipeline.pipeline_id, [0, 1.99, 2, 4.99, 5, 500]) == [
        S.STARTING, S.STARTING, S.SNAPSHOTTING, S.SNAPSHOTTING, S.STREAMING, S.STREAMING,
    ]  # fmt: skip


def test_a_late_read_applies_every_due_transition_at_once(state: EmulatorState, clock: FakeClock, guide: Guide) -> None:
    pipeline = state.create(PROJECT_ID, guide("create_request"))
    pipeline.command(PipelineCommand.START, clock(), state.config)
    clock.now += 3
    pipeline.command(PipelineCommand.STOP, clock(), state.config)  # during SNAPSHOTTING
    assert _timeline(state, clock, pipeline.pipeline_id, [3, 6.99, 7]) == [S.STOPPING, S.STOPPING, S.NOT_RUNNING]


def test_commands_that_do_not_apply_change_nothing(state: EmulatorState, clock: FakeClock, guide: Guide) -> None:
    pipeline = state.create(PROJECT_ID, guide("create_request"))
    pipeline.command(PipelineCommand.STOP, clock(), state.config)
    assert state.status(pipeline) is S.NOT_RUNNING
    pipeline.command(PipelineCommand.START, clock(), state.config)
    clock.now += 1
    pipeline.command(PipelineCommand.START, clock(), state.config)  # must not restart the STARTING phase
    clock.now += 1
    assert state.status(pipeline) is S.SNAPSHOTTING
    pipeline.command(PipelineCommand.STOP, clock(), state.config)
    clock.now += 1
    pipeline.command(PipelineCommand.STOP, clock(), state.config)  # must not restart the STOPPING phase
    pipeline.command(PipelineCommand.START, clock(), state.config)  # nor may START interrupt it
    clock.now += 3
    assert state.status(pipeline) is S.NOT_RUNNING


def test_fail_start_from_advanced_properties(state: EmulatorState, clock: FakeClock, guide: Guide) -> None:
    pipeline = state.create(PROJECT_ID, _definition(guide, **{"emulator.fail-start": "true"}))
    pipeline.command(PipelineCommand.START, clock(), state.config)
    assert _timeline(state, clock, pipeline.pipeline_id, [1, 2, 100]) == [S.STARTING, S.NOT_RUNNING, S.NOT_RUNNING]


def test_die_after_from_advanced_properties(state: EmulatorState, clock: FakeClock, guide: Guide) -> None:
    pipeline = state.create(PROJECT_ID, _definition(guide, **{"emulator.die-after-seconds": "10"}))
    pipeline.command(PipelineCommand.START, clock(), state.config)
    # STREAMING from t=5, so it dies at t=15.
    assert _timeline(state, clock, pipeline.pipeline_id, [5, 14.9, 15]) == [S.STREAMING, S.STREAMING, S.NOT_RUNNING]
    pipeline.command(PipelineCommand.START, clock(), state.config)  # every run dies the same way
    assert _timeline(state, clock, pipeline.pipeline_id, [20, 29.9, 30]) == [S.STREAMING, S.STREAMING, S.NOT_RUNNING]


def test_die_after_set_while_streaming_counts_from_then(state: EmulatorState, clock: FakeClock, guide: Guide) -> None:
    pipeline = state.create(PROJECT_ID, guide("create_request"))
    pipeline.command(PipelineCommand.START, clock(), state.config)
    clock.now += 100
    pipeline.mark_die_after(2, clock())
    assert _timeline(state, clock, pipeline.pipeline_id, [101.9, 102]) == [S.STREAMING, S.NOT_RUNNING]


def test_die_drops_a_running_pipeline_now(state: EmulatorState, clock: FakeClock, guide: Guide) -> None:
    pipeline = state.create(PROJECT_ID, guide("create_request"))
    pipeline.command(PipelineCommand.START, clock(), state.config)
    clock.now += 1
    pipeline.die(clock())
    assert _timeline(state, clock, pipeline.pipeline_id, [1, 50]) == [S.NOT_RUNNING, S.NOT_RUNNING]


# --- Status machine over HTTP --------------------------------------------------------------------


def _create(api: httpx.Client, guide: Guide, name: str = "p", **advanced: str) -> str:
    response = api.post(PIPELINES, json={**_definition(guide, **advanced), "name": name})
    assert response.status_code == 201, response.text
    pipeline_id: str = response.json()["streamingPipelineId"]
    return pipeline_id


def _status(api: httpx.Client, pipeline_id: str) -> str:
    response = api.get(f"{PIPELINES}/{pipeline_id}/status")
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


def _command(api: httpx.Client, pipeline_id: str, command: str) -> None:
    response = api.post(f"{PIPELINES}/{pipeline_id}/commands", json={"command": command})
    assert response.status_code == 200, response.text


def _wait_for(api: httpx.Client, pipeline_id: str, status: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while (current := _status(api, pipeline_id)) != status:
        assert time.monotonic() < deadline, f"still {current}, never {status}"
        time.sleep(0.05)


def test_upper_case_commands_drive_the_pipeline(api: httpx.Client, guide: Guide) -> None:
    pipeline_id = _create(api, guide)
    _command(api, pipeline_id, "START")
    assert _status(api, pipeline_id) == "STARTING"
    _wait_for(api, pipeline_id, "STREAMING")
    _command(api, pipeline_id, "STOP")
    assert _status(api, pipeline_id) == "STOPPING"
    _wait_for(api, pipeline_id, "NOT_RUNNING")


def test_admin_fail_start(api: httpx.Client, fresh_emulator: EmulatorProcess, guide: Guide) -> None:
    pipeline_id = _create(api, guide)
    assert fresh_emulator.fail_start(pipeline_id)["failStart"] is True
    _command(api, pipeline_id, "start")
    assert _status(api, pipeline_id) == "STARTING"
    time.sleep(0.45)
    assert _status(api, pipeline_id) == "NOT_RUNNING"


def test_admin_die_and_die_after(api: httpx.Client, fresh_emulator: EmulatorProcess, guide: Guide) -> None:
    fresh_emulator.configure(starting_seconds=0, snapshotting_seconds=0)
    first, second = _create(api, guide, "first"), _create(api, guide, "second")
    _command(api, first, "start")
    _command(api, second, "start")
    assert _status(api, first) == _status(api, second) == "STREAMING"
    assert fresh_emulator.die(first)["status"] == "NOT_RUNNING"
    assert _status(api, first) == "NOT_RUNNING"
    assert fresh_emulator.die_after(second, 0.3)["dieAfterSeconds"] == 0.3
    assert _status(api, second) == "STREAMING"
    _wait_for(api, second, "NOT_RUNNING", within=2)


def test_agents_list_and_get(api: httpx.Client) -> None:
    listed = api.get("/v1/agents").json()
    assert (listed["page"], listed["total"]) == (0, 1)
    (agent,) = listed["results"]
    assert agent == api.get(f"/v1/agents/{GUIDE_AGENT_ID}").json()
    assert agent["agentId"] == GUIDE_AGENT_ID
    assert (agent["name"], agent["agentType"], agent["agentStatus"], agent["connected"]) == (
        "Test-agent",
        "streaming",
        "running",
        True,
    )
    missing = api.get(f"/v1/agents/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert api.get("/v1/agents/not-a-uuid").status_code == 404


@pytest.mark.parametrize("down", [{"connected": False}, {"agentStatus": "stopped"}])
def test_start_changes_nothing_while_the_agent_is_down(
    api: httpx.Client, fresh_emulator: EmulatorProcess, guide: Guide, down: dict[str, Any]
) -> None:
    pipeline_id = _create(api, guide)
    assert fresh_emulator.set_agent(GUIDE_AGENT_ID, **down) == {**api.get(f"/v1/agents/{GUIDE_AGENT_ID}").json()}
    _command(api, pipeline_id, "START")
    time.sleep(0.4)
    assert _status(api, pipeline_id) == "NOT_RUNNING"
    fresh_emulator.set_agent(GUIDE_AGENT_ID, connected=True, agentStatus="running")
    _command(api, pipeline_id, "START")
    assert _status(api, pipeline_id) == "STARTING"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"connected": "no"}, "connected"), ({"agentStatus": ""}, "agentStatus"), ({"name": "x"}, "name")],
)
def test_admin_agent_switch_rejects_bad_settings(
    fresh_emulator: EmulatorProcess, body: dict[str, Any], field: str
) -> None:
    response = httpx.put(f"{fresh_emulator.origin}/_emulator/agents/{GUIDE_AGENT_ID}", json=body)
    assert response.status_code == 400
    assert field in response.text
    assert httpx.put(f"{fresh_emulator.origin}/_emulator/agents/{uuid.uuid4()}", json={}).status_code == 404


def test_die_after_from_the_definition_over_http(
    api: httpx.Client, fresh_emulator: EmulatorProcess, guide: Guide
) -> None:
    fresh_emulator.configure(starting_seconds=0, snapshotting_seconds=0)
    pipeline_id = _create(api, guide, **{"emulator.die-after-seconds": "0.3"})
    _command(api, pipeline_id, "start")
    assert _status(api, pipeline_id) == "STREAMING"
    _wait_for(api, pipeline_id, "NOT_RUNNING", within=2)


def test_bad_failure_switch_values_are_rejected(api: httpx.Client, guide: Guide) -> None:
    body = _definition(guide, **{"emulator.die-after-seconds": "soon", "emulator.fail-start": "maybe"})
    response = api.post(PIPELINES, json=body)
    assert response.status_code == 400
    assert response.json()["validation-errors"] == [
        {"field": "advancedProperties.emulator.fail-start", "message": "must be 'true' or 'false'"},
        {
            "field": "advancedProperties.emulator.die-after-seconds",
            "message": "must be a non-negative number of seconds",
        },
    ]


def test_admin_routes_name_unknown_pipelines(fresh_emulator: EmulatorProcess) -> None:
    response = httpx.post(f"{fresh_emulator.admin_url}/pipelines/{uuid.uuid4()}/die")
    assert response.status_code == 404
    assert "was not found" in response.json()["detail"]
    bad = httpx.post(f"{fresh_emulator.admin_url}/pipelines/x/die-after", json={"seconds": -1})
    assert bad.status_code == 404


# --- Paging ---------------------------------------------------------------------------------------


def test_pipeline_list_pages(api: httpx.Client, guide: Guide) -> None:
    ids = [_create(api, guide, f"p{i}") for i in range(5)]
    first = api.get(PIPELINES, params={"page": 0, "size": 2}).json()
    last = api.get(PIPELINES, params={"page": 2, "size": 2}).json()
    beyond = api.get(PIPELINES, params={"page": 3, "size": 2}).json()
    assert (first["page"], first["size"], first["total"]) == (0, 2, 5)
    assert [p["streamingPipelineId"] for p in first["results"]] == ids[:2]
    assert [p["streamingPipelineId"] for p in last["results"]] == ids[4:]
    assert beyond["results"] == []
    default = api.get(PIPELINES).json()
    assert (default["page"], default["size"], default["total"], len(default["results"])) == (0, 25, 5, 5)


def test_projects_page_when_asked_to(api: httpx.Client) -> None:
    body = api.get("/v1/projects", params={"size": 10}).json()
    assert (body["page"], body["size"], body["total"]) == (0, 10, 1)
    assert body["results"][0]["id"] == PROJECT_ID


@pytest.mark.parametrize(
    ("params", "name"),
    [({"page": "-1"}, "page"), ({"page": "x"}, "page"), ({"size": "0"}, "size"), ({"size": "101"}, "size"),
     ({"size": ""}, "size"), ({"page": "\uff11"}, "page")],
)  # fmt: skip
def test_bad_paging_is_400_naming_the_parameter(api: httpx.Client, params: dict[str, str], name: str) -> None:
    for path in (PIPELINES, "/v1/projects", f"/v1/projects/{PROJECT_ID}/environments"):
        response = api.get(path, params=params)
        assert response.status_code == 400, path
        assert f"'{name}'" in response.json()["detail"]
        assert response.json()["validation-errors"][0]["field"] == name


# --- Create, replace, delete, duplicates ----------------------------------------------------------


def test_put_replaces_the_whole_definition(api: httpx.Client, guide: Guide) -> None:
    pipeline_id = _create(api, guide)
    new = guide("create_request")
    new["name"] = "renamed"
    del new["advancedProperties"]
    new["streamingTarget"]["transformationType"] = "copy_table"  # any case is accepted, answered upper case
    response = api.put(f"{PIPELINES}/{pipeline_id}", json=new)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "renamed"
    assert "advancedProperties" not in body
    assert body["streamingTarget"]["transformationType"] == "COPY_TABLE"
    assert (body["streamingPipelineId"], body["projectId"]) == (pipeline_id, PROJECT_ID)
    assert api.get(f"{PIPELINES}/{pipeline_id}").json() == body


def test_server_fields_in_a_body_are_ignored(api: httpx.Client, guide: Guide) -> None:
    pipeline_id = _create(api, guide)
    echoed = api.get(f"{PIPELINES}/{pipeline_id}").json()
    other = str(uuid.uuid4())
    echoed.update(streamingPipelineId=other, projectId=other, futureField={"kept": True})
    body = api.put(f"{PIPELINES}/{pipeline_id}", json=echoed).json()
    assert (body["streamingPipelineId"], body["projectId"]) == (pipeline_id, PROJECT_ID)
    assert body["futureField"] == {"kept": True}


def test_put_with_an_invalid_definition_changes_nothing(api: httpx.Client, guide: Guide) -> None:
    pipeline_id = _create(api, guide)
    before = api.get(f"{PIPELINES}/{pipeline_id}").json()
    response = api.put(f"{PIPELINES}/{pipeline_id}", json={"name": ""})
    assert response.status_code == 400
    assert {"field": "name", "message": "must not be empty"} in response.json()["validation-errors"]
    assert api.get(f"{PIPELINES}/{pipeline_id}").json() == before


def test_delete_a_stopped_pipeline(api: httpx.Client, guide: Guide) -> None:
    pipeline_id = _create(api, guide)
    response = api.delete(f"{PIPELINES}/{pipeline_id}")
    assert (response.status_code, response.content) == (204, b"")
    assert api.get(f"{PIPELINES}/{pipeline_id}").status_code == 404
    assert api.delete(f"{PIPELINES}/{pipeline_id}").status_code == 404


def test_delete_a_running_pipeline_is_409(api: httpx.Client, guide: Guide) -> None:
    pipeline_id = _create(api, guide)
    _command(api, pipeline_id, "start")
    response = api.delete(f"{PIPELINES}/{pipeline_id}")
    assert response.status_code == 409
    assert "stop it first" in response.json()["detail"]
    assert "STARTING" in response.json()["detail"]


def test_duplicate_names_are_allowed(api: httpx.Client, guide: Guide) -> None:
    first, second = _create(api, guide, "same"), _create(api, guide, "same")
    assert first != second
    assert [p["name"] for p in api.get(PIPELINES).json()["results"]] == ["same", "same"]


# --- Authentication -----------------------------------------------------------------------------


def _token_form(emulator: EmulatorProcess, **changes: str) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
        "audience": "https://api.matillion.com",
    }
    return {k: v for k, v in {**form, **changes}.items() if v is not None}


def test_token_endpoint_grants_and_counts(fresh_emulator: EmulatorProcess) -> None:
    response = httpx.post(fresh_emulator.token_url, data=_token_form(fresh_emulator))
    assert response.status_code == 200
    body = response.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 1800)
    assert len(body["access_token"]) >= 32
    assert response.headers["cache-control"] == "no-store"
    basic = base64.b64encode(f"{fresh_emulator.client_id}:{fresh_emulator.client_secret}".encode()).decode()
    form = {"grant_type": "client_credentials", "audience": "https://api.matillion.com"}
    assert httpx.post(fresh_emulator.token_url, data=form, headers={"Authorization": f"Basic {basic}"}).is_success
    assert fresh_emulator.stats()["token_grants"] == 2


@pytest.mark.parametrize(
    ("changes", "status", "error", "mentions"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", "client"),
        ({"client_id": "someone-else"}, 401, "invalid_client", "client"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", "client_credentials"),
        ({"audience": "https://example.com"}, 400, "invalid_request", "audience"),
        ({"audience": None}, 400, "invalid_request", "audience"),
    ],
)
def test_token_endpoint_errors(
    fresh_emulator: EmulatorProcess, changes: dict[str, Any], status: int, error: str, mentions: str
) -> None:
    response = httpx.post(fresh_emulator.token_url, data=_token_form(fresh_emulator, **changes))
    assert response.status_code == status
    assert response.json()["error"] == error
    assert mentions in response.json()["error_description"]
    assert fresh_emulator.stats()["token_grants"] == 0


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "bearer token is required"),
        ({"Authorization": "Basic abc"}, "bearer token is required"),
        ({"Authorization": "Bearer not-a-token"}, "invalid or has expired"),
    ],
)
def test_api_needs_a_valid_bearer_token(fresh_emulator: EmulatorProcess, headers: dict[str, str], detail: str) -> None:
    response = httpx.get(f"{fresh_emulator.base_url}/v1/projects", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert (body["title"], body["status"], body["instance"]) == ("Unauthorized", 401, "/v1/projects")
    assert detail in body["detail"]


def test_tokens_expire_after_their_ttl(fresh_emulator: EmulatorProcess) -> None:
    # A TTL far longer than one request takes on a busy machine, and a sleep past it.
    fresh_emulator.configure(token_ttl=2.0)
    issued = time.monotonic()
    token = fresh_emulator.token()
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{fresh_emulator.base_url}/v1/projects", headers=headers).status_code == 200
    time.sleep(max(0.0, issued + 2.3 - time.monotonic()))
    expired = httpx.get(f"{fresh_emulator.base_url}/v1/projects", headers=headers)
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]


# --- Errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "named"),
    [
        (f"/v1/projects/{uuid.uuid4()}/streaming-pipelines", "Project"),
        ("/v1/projects/not-a-uuid/environments", "Project 'not-a-uuid'"),
        (f"{PIPELINES}/{uuid.uuid4()}", "Streaming pipeline"),
        (f"{PIPELINES}/nope/status", "Streaming pipeline 'nope'"),
    ],
)
def test_unknown_ids_are_404_naming_what_was_not_found(api: httpx.Client, path: str, named: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["detail"].startswith(named)
    assert response.json()["instance"] == path


def test_unknown_routes_and_methods_answer_problems(api: httpx.Client) -> None:
    missing = api.get("/v1/no-such-resource")
    assert (missing.status_code, missing.headers["content-type"]) == (404, "application/problem+json")
    wrong_method = api.patch(f"{PIPELINES}/{uuid.uuid4()}")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["status"] == 405
    assert set(wrong_method.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}


@pytest.mark.parametrize(
    ("content", "content_type", "status", "detail"),
    [
        (b'{"command": "start"}', "text/plain", 415, "application/json"),
        (b'{"command": "start"}', None, 415, "application/json"),
        (b'{"command": ', "application/json", 400, "not valid JSON"),
        (b"", "application/json", 400, "not valid JSON"),
        (b'["start"]', "application/json", 400, "must be a JSON object, not an array"),
        (b'"start"', "application/json; charset=utf-8", 400, "not a string"),
        (b'{"command": NaN}', "application/json", 400, "not valid JSON"),
        (b'{"command": 1e999}', "application/json", 400, "not valid JSON"),
        (b"\xff\xfe\x00", "application/json", 400, "not valid JSON"),
        (b"[" * 100_000, "application/json", 400, "not valid JSON"),
        (b"[" * 100 + b"]" * 100, "application/json", 400, "nested deeper"),
    ],
)
def test_bad_bodies_are_4xx_problems(
    api: httpx.Client, guide: Guide, content: bytes, content_type: str | None, status: int, detail: str
) -> None:
    pipeline_id = _create(api, guide)
    headers = {"content-type": content_type} if content_type else {}
    for path in (f"{PIPELINES}/{pipeline_id}/commands", PIPELINES):
        response = api.post(path, content=content, headers=headers)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert detail in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [({}, "must not be empty"), ({"command": " "}, "must not be empty"),
     ({"command": "restart"}, "must be one of"), ({"command": ["start"]}, "must be one of")],
)  # fmt: skip
def test_bad_commands_name_the_command_field(
    api: httpx.Client, guide: Guide, body: dict[str, Any], message: str
) -> None:
    pipeline_id = _create(api, guide)
    response = api.post(f"{PIPELINES}/{pipeline_id}/commands", json=body)
    assert response.status_code == 400
    [error] = response.json()["validation-errors"]
    assert error["field"] == "command"
    assert message in error["message"]


def test_odd_definitions_never_cause_a_server_error(api: httpx.Client, guide: Guide) -> None:
    valid = guide("create_request")
    odd: list[Any] = [
        {},
        {"name": None, "streamingSource": [], "streamingTarget": "x"},
        {**valid, "streamingSource": {"type": 5}},
        {**valid, "streamingSource": {**valid["streamingSource"], "type": "oracle", "tables": []}},
        {**valid, "streamingTarget": {"type": "s3"}},
        {**valid, "name": "\ud800 lone surrogate", "extra": {"deep": [[[{"x": "\udfff"}]]]}},
        {**valid, "advancedProperties": {"a": 1, "b": True, "c": None, "d": [1]}},
        {**valid, "streamingSource": {**valid["streamingSource"], "connection": {"port": 10**300}}},
        {**valid, "agentId": {"not": "a string"}},
    ]
    for body in odd:
        raw = json.dumps(body).encode()
        response = api.post(PIPELINES, content=raw, headers={"content-type": "application/json"})
        assert response.status_code in (201, 400), (body, response.text)
        json.loads(response.content)


def test_violations_error_style(api: httpx.Client, fresh_emulator: EmulatorProcess, guide: Guide) -> None:
    fresh_emulator.configure(error_style="violations")
    body = copy.deepcopy(guide("create_request"))
    del body["streamingSource"]["connection"]["username"]
    del body["streamingTarget"]["connection"]["authentication"]
    problem = api.post(PIPELINES, json=body).json()
    assert "validation-errors" not in problem
    assert list(problem) == ["type", "title", "status", "detail", "instance", "violations"]  # as the reference
    assert problem["type"] == "https://api.matillion.com/problems/bad-request"
    assert problem["violations"] == [
        "streamingTarget.connection.authentication: must not be null",
        "streamingSource.connection.username: must not be empty",
    ]
    assert problem["detail"] == "There are validation errors with the streaming pipeline definition"


@pytest.mark.parametrize(
    ("method", "path", "status", "slug"),
    [
        ("GET", f"/v1/projects/{PROJECT_ID}/streaming-pipelines/{uuid.UUID(int=1)}", 404, "not-found"),
        ("PATCH", f"/v1/projects/{PROJECT_ID}/streaming-pipelines", 405, "method-not-allowed"),
        ("POST", f"/v1/projects/{PROJECT_ID}/streaming-pipelines", 415, "unsupported-media-type"),
    ],
)
def test_every_problem_carries_its_type(api: httpx.Client, method: str, path: str, status: int, slug: str) -> None:
    response = api.request(method, path, content=b"x" if method == "POST" else None)
    assert response.status_code == status
    assert response.json()["type"] == f"https://api.matillion.com/problems/{slug}"
    unauthorized = httpx.get(str(api.base_url).rstrip("/") + "/v1/projects")
    assert unauthorized.json()["type"] == "https://api.matillion.com/problems/unauthorized"


def test_bad_admin_settings_are_rejected(fresh_emulator: EmulatorProcess) -> None:
    for settings in ({"status_case": "title"}, {"starting_seconds": -1}, {"port": 1}):
        response = httpx.put(f"{fresh_emulator.admin_url}/config", json=settings)
        assert response.status_code == 400, settings
    assert fresh_emulator.configure(status_case="lower")["status_case"] == "lower"


# --- Pipeline executions in the service's observed shapes and the reference's ------------------------

EXECUTIONS = f"/v1/projects/{PROJECT_ID}/pipeline-executions"


def _execute(api: httpx.Client, name: str, **body: Any) -> httpx.Response:
    return api.post(EXECUTIONS, json={"pipelineName": name, "environmentName": "Environment-1", **body})


def test_executions_answer_as_the_service_is_observed_to_by_default(api: httpx.Client) -> None:
    created = _execute(api, "Load orders", scalarVariables={"emulator.seconds": 0})
    assert created.status_code == 201
    execution_id = created.json()["pipelineExecutionId"]
    details = api.get(f"{EXECUTIONS}/{execution_id}").json()
    assert list(details) == ["result"]  # wrapped, and without the ids
    assert not {"projectId", "pipelineExecutionId"} & set(details["result"])
    assert (details["result"]["status"], details["result"]["pipelineName"]) == (
        "SUCCESS", "orders/Load orders.orch.yaml"
    )  # fmt: skip
    first = api.get(f"{EXECUTIONS}/{execution_id}/steps", params={"page": 0, "size": 3}).json()
    assert (first["page"], first["size"], first["total"]) == (0, 3, 4)
    assert [set(step) for step in first["results"]] == [{"id", "name", "result"}] * 3
    assert [sorted(step["result"]) for step in first["results"][:2]] == [
        ["finishedAt", "message", "startedAt", "status"], ["message", "status"]  # some ended steps have no times
    ]  # fmt: skip
    second = api.get(f"{EXECUTIONS}/{execution_id}/steps", params={"page": 1, "size": 3}).json()
    assert [step["name"] for step in second["results"]] == ["End"]
    listed = api.get("/v1/pipeline-executions", params={"projectId": PROJECT_ID}).json()["results"]
    assert listed[0]["pipelineExecutionId"] == execution_id  # list items stay flat


def test_executions_answer_as_the_reference_shows_when_set_to(
    api: httpx.Client, fresh_emulator: EmulatorProcess
) -> None:
    fresh_emulator.configure(api_shape="documented")
    created = _execute(api, "Pipeline 1", scalarVariables={"emulator.seconds": 0})
    assert created.status_code == 200
    execution_id = created.json()["pipelineExecutionId"]
    details = api.get(f"{EXECUTIONS}/{execution_id}").json()
    assert (details["pipelineExecutionId"], details["projectId"], details["status"]) == (
        execution_id, PROJECT_ID, "SUCCESS"
    )  # fmt: skip
    steps = api.get(f"{EXECUTIONS}/{execution_id}/steps").json()
    assert list(steps) == ["results"]
    assert [(step["name"], step["status"]) for step in steps["results"]] == [
        ("Start", "SUCCESS"), ("Run", "SUCCESS"), ("End", "SUCCESS")
    ]  # fmt: skip


def test_the_executions_list_matches_names_partially_and_in_any_case(api: httpx.Client) -> None:
    ids = {name: _execute(api, name).json()["pipelineExecutionId"] for name in ("Pipeline 1", "Pipeline 10")}
    found = api.get("/v1/pipeline-executions", params={"pipelineName": "pipeline 1"}).json()["results"]
    assert {e["pipelineExecutionId"] for e in found} == set(ids.values())


def test_a_pipeline_is_executed_by_its_name_or_its_file_path(api: httpx.Client) -> None:
    for name in ("Load orders", "orders/Load orders", "orders/Load orders.orch.yaml"):
        assert _execute(api, name).status_code == 201, name
    ambiguous = _execute(api, "Load orders.orch.yaml")  # in orders/ and in archive/
    assert ambiguous.status_code == 400
    assert "'orders/Load orders.orch.yaml', 'archive/Load orders.orch.yaml'" in ambiguous.json()["detail"]
    bad = _execute(api, "Pipeline 1", scalarVariables={"emulator.seconds": "soon"})
    assert bad.json()["validation-errors"] == [
        {"field": "scalarVariables.emulator.seconds", "message": "must be a number of seconds from 0 to 86400"}
    ]


def test_published_pipelines_are_listed_per_environment(api: httpx.Client) -> None:
    path = f"/v1/projects/{PROJECT_ID}/published-pipelines"
    names = [
        p["name"] for p in api.get(path, params={"environmentName": "Environment-1", "size": 100}).json()["results"]
    ]
    assert "Forbidden pipeline" in names
    assert api.get(path, params={"environmentName": "Other"}).json()["results"] == []


@pytest.mark.parametrize("route", ["404", "405"])
def test_the_execution_status_route_can_be_missing(
    api: httpx.Client, fresh_emulator: EmulatorProcess, route: str
) -> None:
    execution_id = _execute(api, "Long pipeline").json()["pipelineExecutionId"]
    assert api.get(f"{EXECUTIONS}/{execution_id}/status").json() == {"status": "RUNNING"}
    fresh_emulator.configure(execution_status_route=route)
    assert api.get(f"{EXECUTIONS}/{execution_id}/status").status_code == int(route)
    assert api.get(f"{EXECUTIONS}/{execution_id}").status_code == 200


def test_seeded_executions_end_forbidden_or_with_a_status_nobody_documented(api: httpx.Client) -> None:
    body = {"scalarVariables": {"emulator.seconds": 0}}
    for name, status in (("Forbidden pipeline", "FORBIDDEN"), ("Terminated pipeline", "TERMINATED")):
        execution_id = _execute(api, name, **body).json()["pipelineExecutionId"]
        details = api.get(f"{EXECUTIONS}/{execution_id}").json()["result"]
        assert (details["status"], bool(details["finishedAt"]), bool(details["message"])) == (status, True, True)


# --- OpenAPI --------------------------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_openapi_document_lists_every_route(emulator: EmulatorProcess) -> None:
    response = httpx.get(f"{emulator.base_url}/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": emulator.origin}]
    project = "/dpc/v1/projects/{projectId}"
    pipeline = project + "/streaming-pipelines/{pipelineId}"
    execution = project + "/pipeline-executions/{pipelineExecutionId}"
    assert {path: sorted(ops) for path, ops in doc["paths"].items()} == {
        "/dpc/v1/agents": ["get"],
        "/dpc/v1/agents/{agentId}": ["get"],
        "/dpc/v1/projects": ["get"],
        project + "/environments": ["get"],
        project + "/streaming-pipelines": ["get", "post"],
        pipeline: ["delete", "get", "put"],
        pipeline + "/commands": ["post"],
        pipeline + "/status": ["get"],
        project + "/published-pipelines": ["get"],
        project + "/schedules": ["get"],
        project + "/pipeline-executions": ["post"],
        execution: ["get", "patch"],
        execution + "/status": ["get"],
        execution + "/steps": ["get"],
        "/dpc/v1/pipeline-executions": ["get"],
        "/dpc/v1/lineage/events": ["get"],
        "/oauth/dpc/token": ["post"],
    }
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas, ref
    create = doc["paths"][project + "/streaming-pipelines"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StreamingPipelineDefinition"
    }
    assert {"201", "400", "401", "404", "415"} <= set(create["responses"])
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    definition = schemas["StreamingPipelineDefinition"]
    assert {"name", "agentId", "streamingSource", "streamingTarget"} <= set(definition["required"])
    # The reference's enums, and no FastAPI 422: every refusal is the API's problem answer.
    assert schemas["PipelineStatus"]["enum"] == [
        "STARTING", "SNAPSHOTTING", "STREAMING", "STOPPING", "NOT_RUNNING", "UNKNOWN"
    ]  # fmt: skip
    assert schemas["PipelineCommand"]["enum"] == ["START", "STOP"]
    assert schemas["ExecutionStatus"]["enum"] == [
        "RUNNING", "SUCCESS", "FAILED", "CANCELLING", "CANCELLED", "SKIPPED", "UNKNOWN", "FORBIDDEN"
    ]  # fmt: skip
    execute = doc["paths"][project + "/pipeline-executions"]["post"]
    assert execute["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ExecutionRequest"
    }
    assert {"201", "400", "404", "409", "410"} <= set(execute["responses"])
    assert {"pipelineName", "environmentName"} <= set(schemas["ExecutionRequest"]["required"])
    status = doc["paths"][pipeline + "/status"]["get"]["responses"]["200"]
    assert status["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/StatusAnswer"}
    command = doc["paths"][pipeline + "/commands"]["post"]["requestBody"]["content"]["application/json"]
    assert command["schema"] == {"$ref": "#/components/schemas/CommandRequest"}
    assert not [op for ops in doc["paths"].values() for op in ops.values() if "422" in op["responses"]]


# --- Configuration, CLI and helpers ----------------------------------------------------------------


@pytest.mark.slow
def test_cli_flags_fall_back_to_environment_variables(tmp_path: Any) -> None:
    seed = {"projects": [{"id": str(uuid.uuid4()), "name": "P", "description": "d"}], "environments": {}}
    (tmp_path / "seed.json").write_text(json.dumps(seed))
    env = {
        "DPC_EMULATOR_STATUS_CASE": "lower",
        "DPC_EMULATOR_STARTING_SECONDS": "0.5",
        "DPC_EMULATOR_SEED": str(tmp_path / "seed.json"),
        "DPC_EMULATOR_FAULTS": '{"latency": 0.1}',
    }
    config = config_from_args(build_parser(env).parse_args(["--starting-seconds", "2"]))
    assert (config.status_case, config.starting_seconds, config.snapshotting_seconds) == ("lower", 2.0, 1.0)
    assert config.faults == {"latency": 0.1}
    assert [p.name for p in config.seed.projects] == ["P"]


def test_bad_settings_and_seeds_are_refused(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="starting_seconds"):
        EmulatorConfig(starting_seconds=-1)
    with pytest.raises(ConfigError, match="must be a UUID"):
        load_seed({"projects": [{"id": "p1", "name": "P"}]})
    with pytest.raises(ConfigError, match="cannot read seed file"):
        load_seed(tmp_path / "missing.json")


async def test_the_documented_seeds_schedules_are_served_and_run_on_an_interval() -> None:
    """The ``schedules`` of the seed file docs/emulator.md shows, with a clock the test moves."""
    page = (ROOT / "docs" / "emulator.md").read_text(encoding="utf-8")
    documented = json.loads(page.split("```json\n", 1)[1].split("```", 1)[0])
    seed = load_seed({**documented, "projects": [{"id": PROJECT_ID, "name": "P"}]})
    (schedule,) = seed.schedules[PROJECT_ID]
    assert (schedule.name, schedule.pipeline_name, schedule.schedule_enabled) == (
        "Nightly load at two",
        "Nightly load",
        True,
    )
    with pytest.raises(ConfigError, match="scheduleId must be a UUID"):
        load_seed({"schedules": {PROJECT_ID: [{**schedule.to_wire(), "scheduleId": "nightly"}]}})
    now = [1000.0]
    app = create_app(EmulatorConfig(seed=seed), clock=lambda: now[0])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator") as client:
        form = {"grant_type": "client_credentials", "client_id": "dpc-emulator-client",
                "client_secret": "dpc-emulator-secret", "audience": "https://api.matillion.com"}  # fmt: skip
        token = (await client.post("/oauth/dpc/token", data=form)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        listed = (await client.get(f"/dpc/v1/projects/{PROJECT_ID}/schedules", headers=headers)).json()
        assert (listed["total"], listed["results"][0]["scheduleId"]) == (1, schedule.schedule_id)
        interval = f"/_emulator/schedules/{schedule.schedule_id}/interval"
        answer = await client.put(interval, json={"everySeconds": 60, "outcome": "SUCCESS", "seconds": 1})
        assert answer.json()["everySeconds"] == 60
        now[0] += 150  # two runs were due meanwhile, each started at its due time
        runs = (await client.get("/dpc/v1/pipeline-executions", headers=headers)).json()["results"]
        assert [(r["trigger"], r["scheduleId"], r["status"]) for r in runs] == [
            ("SCHEDULE", schedule.schedule_id, "SUCCESS")
        ] * 2
        assert runs[0]["startedAt"] > runs[1]["startedAt"]
        await client.delete(interval)
        now[0] += 600
        assert len((await client.get("/dpc/v1/pipeline-executions", headers=headers)).json()["results"]) == 2
        bad = await client.put(interval, json={"everySeconds": 0})
        assert bad.status_code == 400


async def test_create_app_serves_in_process(guide: Guide) -> None:
    app = create_app(EmulatorConfig(client_id="me", client_secret="s3"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator") as client:
        form = {"grant_type": "client_credentials", "client_id": "me", "client_secret": "s3",
                "audience": "https://api.matillion.com"}  # fmt: skip
        token = (await client.post("/oauth/dpc/token", data=form)).json()["access_token"]
        response = await client.get("/dpc/v1/projects", headers={"Authorization": f"Bearer {token}"})
        assert response.json() == guide("projects_response")


def documented_published_pipelines() -> list[dict[str, Any]]:
    """The ``publishedPipelines`` of the seed file docs/emulator.md shows."""
    page = (ROOT / "docs" / "emulator.md").read_text(encoding="utf-8")
    block = page.split("```json\n", 1)[1].split("```", 1)[0]
    pipelines: list[dict[str, Any]] = json.loads(block)["publishedPipelines"]
    return pipelines


@pytest.mark.slow
def test_emulator_process_with_a_custom_seed_prints_its_address() -> None:
    project_id = str(uuid.uuid4())
    (nightly,) = documented_published_pipelines()
    seed = {
        "projects": [{"id": project_id, "name": "Other", "description": "seeded"}],
        "environments": {project_id: [{"name": "Env", "defaultAgentId": "a1", "defaultAgentName": "Agent"}]},
        "publishedPipelines": [{**nightly, "projectId": project_id, "environmentName": "Env", "seconds": 0.2}],
    }
    with EmulatorProcess(seed=seed, client_secret="another secret", status_case="lower") as process:
        listening = f"DPC emulator listening on {process.base_url} (token URL {process.token_url})"
        assert listening in process.log_text()
        headers = {"Authorization": f"Bearer {process.token()}"}
        projects = httpx.get(f"{process.base_url}/v1/projects", headers=headers).json()["results"]
        assert projects == [{"id": project_id, "name": "Other", "description": "seeded"}]
        envs = httpx.get(f"{process.base_url}/v1/projects/{project_id}/environments", headers=headers).json()
        assert envs["results"] == [{"name": "Env", "defaultAgentId": "a1", "defaultAgentName": "Agent"}]
        executions = f"{process.base_url}/v1/projects/{project_id}/pipeline-executions"
        body = {"pipelineName": "Nightly load", "environmentName": "Env"}
        execution_id = httpx.post(executions, json=body, headers=headers).json()["pipelineExecutionId"]
        time.sleep(0.3)
        details = httpx.get(f"{executions}/{execution_id}", headers=headers).json()["result"]
        assert (details["status"], details["message"]) == ("FAILED", "Warehouse suspended")
        steps = httpx.get(f"{executions}/{execution_id}/steps", headers=headers).json()["results"]
        assert [(s["name"], s["result"]["status"]) for s in steps] == [("Extract", "SUCCESS"), ("Load", "FAILED")]
        log_path = process.log_path
    assert log_path is not None
    assert not log_path.exists()


def test_connection_forms(emulator: EmulatorProcess) -> None:
    fields = json.loads(emulator.connection_json())
    assert fields == {
        "conn_type": "matillion_dpc",
        "host": emulator.base_url,
        "login": emulator.client_id,
        "password": emulator.client_secret,
        "extra": {"oauth_url": emulator.token_url},
    }
    uri = emulator.connection_uri()
    assert uri.startswith("matillion-dpc://http://")
    assert parse_qs(urlsplit(uri).query) == {"oauth_url": [emulator.token_url]}
    assert emulator.airflow_env("my_conn") == {"AIRFLOW_CONN_MY_CONN": emulator.connection_json()}


def test_connection_uri_round_trips_through_airflow(emulator: EmulatorProcess) -> None:
    connection = pytest.importorskip("airflow.models.connection")
    parsed = connection.Connection(conn_id="dpc", uri=emulator.connection_uri())
    assert (parsed.conn_type, parsed.host, parsed.login, parsed.password) == (
        "matillion_dpc", emulator.base_url, emulator.client_id, emulator.client_secret,
    )  # fmt: skip
    assert parsed.extra_dejson == {"oauth_url": emulator.token_url}


def _child_env() -> dict[str, str]:
    root = str(ROOT)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


@pytest.mark.slow
def test_the_emulator_never_imports_airflow() -> None:
    code = (
        "import sys, airflow_provider_dpc.emulator.__main__, airflow_provider_dpc.emulator; "
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, env=_child_env()
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_cli_refuses_bad_startup_faults() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_dpc.emulator", "--port", "0", "--faults", '{"surprise": 1}'],
        capture_output=True,
        text=True,
        timeout=60,
        env=_child_env(),
    )
    assert result.returncode == 2
    assert "surprise" in result.stderr
