"""Injected faults, each observed from an httpx client, and their counters; restarts lose state."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from airflow_provider_dpc.emulator import EmulatorProcess
from tests.guide import PROJECT_ID

PIPELINES = f"/v1/projects/{PROJECT_ID}/streaming-pipelines"
PROJECTS_ROUTE = "GET /dpc/v1/projects"
Guide = Callable[[str], Any]


def injected(emulator: EmulatorProcess, name: str) -> int:
    return int(emulator.stats()["faults_injected"][name])


def test_rate_limit_answers_429_with_retry_after(api: httpx.Client, fresh_emulator: EmulatorProcess) -> None:
    fresh_emulator.set_faults(rate_limit={"count": 2, "retry_after": 3})
    for _ in range(2):
        response = api.get("/v1/projects")
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 429
    assert api.get("/v1/projects").status_code == 200
    stats = fresh_emulator.stats()
    assert stats["faults_injected"]["rate_limit"] == 2
    assert stats["requests"][PROJECTS_ROUTE] == 3


def test_rate_limited_calls_have_no_effect(api: httpx.Client, fresh_emulator: EmulatorProcess, guide: Guide) -> None:
    fresh_emulator.set_faults(rate_limit={"count": 1, "retry_after": 0})
    assert api.post(PIPELINES, json=guide("create_request")).status_code == 429
    assert fresh_emulator.stats()["pipelines_created"] == 0


def test_rate_limit_ratio_is_repeatable(api: httpx.Client, fresh_emulator: EmulatorProcess) -> None:
    def pattern() -> list[int]:
        fresh_emulator.set_faults(rate_limit_ratio=0.5, retry_after=0.25, seed=7)
        return [api.get("/v1/projects").status_code for _ in range(30)]

    first = pattern()
    assert set(first) == {200, 429}
    assert 5 <= first.count(429) <= 25
    assert pattern() == first
    assert injected(fresh_emulator, "rate_limit_ratio") == 2 * first.count(429)
    fresh_emulator.set_faults(rate_limit_ratio=1, retry_after=0.25)
    assert api.get("/v1/projects").headers["retry-after"] == "0.25"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors(api: httpx.Client, fresh_emulator: EmulatorProcess, status: int) -> None:
    fresh_emulator.set_faults(server_errors={"count": 2, "status": status})
    assert [api.get("/v1/projects").status_code for _ in range(3)] == [status, status, 200]
    assert injected(fresh_emulator, "server_errors") == 2


def test_latency_delays_every_api_call(api: httpx.Client, fresh_emulator: EmulatorProcess) -> None:
    fresh_emulator.set_faults(latency=0.3)
    started = time.monotonic()
    assert api.get("/v1/projects").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert httpx.get(f"{fresh_emulator.admin_url}/health").status_code == 200
    assert time.monotonic() - started < 0.3
    assert injected(fresh_emulator, "latency") == 1


def test_dropped_connection_breaks_the_answer_after_the_call_ran(
    api: httpx.Client, fresh_emulator: EmulatorProcess, guide: Guide
) -> None:
    fresh_emulator.set_faults(drop_connections={"count": 2})
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/v1/projects")
    with pytest.raises(httpx.RemoteProtocolError):
        api.post(PIPELINES, json=guide("create_request"))
    # The create ran; only its answer was lost, so a blind retry would make a duplicate.
    assert api.get(PIPELINES).json()["total"] == 1
    stats = fresh_emulator.stats()
    assert (stats["faults_injected"]["drop_connections"], stats["pipelines_created"]) == (2, 1)


def test_malformed_json_is_a_truncated_200(api: httpx.Client, fresh_emulator: EmulatorProcess) -> None:
    fresh_emulator.set_faults(malformed_json={"count": 1})
    response = api.get("/v1/projects")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert api.get("/v1/projects").json()["results"]  # only the next call was affected
    assert injected(fresh_emulator, "malformed_json") == 1


def test_unknown_status_ratio(api: httpx.Client, fresh_emulator: EmulatorProcess, guide: Guide) -> None:
    pipeline_id = api.post(PIPELINES, json=guide("create_request")).json()["streamingPipelineId"]
    fresh_emulator.set_faults(unknown_status_ratio=1)
    fresh_emulator.configure(status_case="lower")
    assert api.get(f"{PIPELINES}/{pipeline_id}/status").json() == {"status": "unknown"}
    assert api.get(f"{PIPELINES}/{pipeline_id}").status_code == 200  # only status reads are affected
    fresh_emulator.set_faults(unknown_status_ratio=0.5, seed=1)
    seen = {api.get(f"{PIPELINES}/{pipeline_id}/status").json()["status"] for _ in range(20)}
    assert seen == {"unknown", "not_running"}
    assert injected(fresh_emulator, "unknown_status_ratio") >= 2


def test_expire_tokens_is_one_shot(api: httpx.Client, fresh_emulator: EmulatorProcess) -> None:
    assert api.get("/v1/projects").status_code == 200
    assert fresh_emulator.set_faults(expire_tokens=True) == {}
    expired = api.get("/v1/projects")
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]
    fresh = {"Authorization": f"Bearer {fresh_emulator.token()}"}
    assert api.get("/v1/projects", headers=fresh).status_code == 200
    assert injected(fresh_emulator, "expire_tokens") == 1


def test_token_ttl_fault(fresh_emulator: EmulatorProcess) -> None:
    fresh_emulator.set_faults(token_ttl=0.2)
    form = {
        "grant_type": "client_credentials",
        "client_id": fresh_emulator.client_id,
        "client_secret": fresh_emulator.client_secret,
        "audience": "https://api.matillion.com",
    }
    body = httpx.post(fresh_emulator.token_url, data=form).json()
    assert body["expires_in"] == 0
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    time.sleep(0.3)
    assert httpx.get(f"{fresh_emulator.base_url}/v1/projects", headers=headers).status_code == 401
    fresh_emulator.clear_faults()
    assert httpx.post(fresh_emulator.token_url, data=form).json()["expires_in"] == 1800


def test_token_endpoint_is_faulted_only_when_included(fresh_emulator: EmulatorProcess) -> None:
    fresh_emulator.set_faults(server_errors={"count": 1, "status": 503})
    fresh_emulator.token()  # not included: the fault waits for an API call
    assert fresh_emulator.faults()["server_errors"]["count"] == 1
    fresh_emulator.set_faults(server_errors={"count": 1, "status": 503}, include_token_endpoint=True)
    with pytest.raises(httpx.HTTPStatusError) as info:
        fresh_emulator.token()
    assert info.value.response.status_code == 503
    fresh_emulator.token()


def test_faults_spare_admin_routes_and_the_openapi_document(fresh_emulator: EmulatorProcess) -> None:
    # Any one of the three calls delayed would take the 5 s latency: the bound is that, not a guess at
    # how fast a busy machine answers.
    fresh_emulator.set_faults(rate_limit={"count": 5, "retry_after": 1}, latency=5.0, include_token_endpoint=True)
    started = time.monotonic()
    fresh_emulator.stats()
    fresh_emulator.health()
    assert httpx.get(f"{fresh_emulator.base_url}/openapi.json").status_code == 200
    assert time.monotonic() - started < 5.0
    assert fresh_emulator.faults()["rate_limit"]["count"] == 5


def test_fault_bodies_are_checked(fresh_emulator: EmulatorProcess) -> None:
    for body in (
        {"server_errors": {"count": 1, "status": 418}},
        {"rate_limit": {"count": -1}},
        {"rate_limit_ratio": 2},
        {"latency": "slow"},
        {"surprise": True},
    ):
        response = httpx.put(f"{fresh_emulator.admin_url}/faults", json=body)
        assert response.status_code == 400, body
        assert next(iter(body)) in response.json()["detail"]
    assert fresh_emulator.faults() == {}


def test_clearing_and_resetting(api: httpx.Client, fresh_emulator: EmulatorProcess, guide: Guide) -> None:
    fresh_emulator.set_faults(rate_limit={"count": 3, "retry_after": 0})
    assert fresh_emulator.faults() == {"rate_limit": {"count": 3, "retry_after": 0.0}}
    fresh_emulator.clear_faults()
    assert fresh_emulator.faults() == {}
    api.post(PIPELINES, json=guide("create_request"))
    fresh_emulator.configure(status_case="lower")
    fresh_emulator.reset()
    stats = fresh_emulator.stats()
    assert (stats["requests"], stats["token_grants"], stats["pipelines_created"]) == ({}, 0, 0)
    assert set(stats["faults_injected"].values()) == {0}
    assert api.get(PIPELINES).status_code == 401  # tokens are gone too
    assert httpx.get(f"{fresh_emulator.admin_url}/config").json()["status_case"] == "upper"


@pytest.mark.slow
def test_startup_faults_and_restart(guide: Guide) -> None:
    with EmulatorProcess(faults={"rate_limit": {"count": 1, "retry_after": 0}}) as process:
        api = httpx.Client(base_url=process.base_url, headers={"Authorization": f"Bearer {process.token()}"})
        assert api.get("/v1/projects").status_code == 429
        assert api.get("/v1/projects").status_code == 200
        process.reset()  # back to the startup faults
        api.headers["Authorization"] = f"Bearer {process.token()}"
        assert api.get("/v1/projects").status_code == 429
        created = api.post(PIPELINES, json=guide("create_request")).json()
        port = process.port

        process.restart()
        assert process.port == port
        assert api.get("/v1/projects").status_code == 429  # startup faults again, before any auth check
        assert api.get("/v1/projects").status_code == 401  # the old token died with the process
        api.headers["Authorization"] = f"Bearer {process.token()}"
        assert api.get(f"{PIPELINES}/{created['streamingPipelineId']}").status_code == 404
        assert process.stats()["pipelines_created"] == 0
        api.close()
    assert not process.running
