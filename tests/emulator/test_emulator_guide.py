"""Every request and answer of the DPC streaming-pipeline guide, replayed against the emulator."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_dpc.emulator import EmulatorProcess
from tests.guide import PROJECT_ID

PIPELINES = f"/v1/projects/{PROJECT_ID}/streaming-pipelines"
Guide = Callable[[str], Any]


def statuses_until(api: httpx.Client, pipeline_id: str, final: str, within: float = 10.0) -> list[str]:
    """Poll the status until ``final``; return the distinct statuses seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + within
    while not seen or seen[-1] != final:
        assert time.monotonic() < deadline, f"status never reached {final}; saw {seen}"
        response = api.get(f"{PIPELINES}/{pipeline_id}/status")
        assert response.status_code == 200, response.text
        status = response.json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        time.sleep(0.05)
    return seen


def test_projects_answer_is_the_guides(api: httpx.Client, guide: Guide) -> None:
    response = api.get("/v1/projects")
    assert response.status_code == 200
    assert response.json() == guide("projects_response")


def test_environments_answer_is_the_guides(api: httpx.Client, guide: Guide) -> None:
    response = api.get(f"/v1/projects/{PROJECT_ID}/environments")
    assert response.status_code == 200
    assert response.json() == guide("environments_response")


def test_create_answers_201_with_the_definition_and_new_id(api: httpx.Client, guide: Guide) -> None:
    request = guide("create_request")
    response = api.post(PIPELINES, json=request)
    assert response.status_code == 201, response.text
    body = response.json()
    pipeline_id = body.pop("streamingPipelineId")
    assert uuid.UUID(pipeline_id).version == 4
    assert body.pop("projectId") == PROJECT_ID
    assert body == request
    # The guide's example answer is the same apart from its id.
    expected = guide("create_response")
    expected.pop("streamingPipelineId")
    assert body == expected
    assert next(iter(response.json())) == "streamingPipelineId"


def test_view_returns_the_created_pipeline(api: httpx.Client, guide: Guide) -> None:
    created = api.post(PIPELINES, json=guide("create_request")).json()
    response = api.get(f"{PIPELINES}/{created['streamingPipelineId']}")
    assert response.status_code == 200
    assert response.json() == created


def test_start_and_stop_with_the_guides_lower_case_commands(
    api: httpx.Client, fresh_emulator: EmulatorProcess, guide: Guide
) -> None:
    # Phases long enough that polling cannot miss one on a busy machine.
    fresh_emulator.configure(status_case="lower", starting_seconds=0.5, snapshotting_seconds=0.5)
    pipeline_id = api.post(PIPELINES, json=guide("create_request")).json()["streamingPipelineId"]
    assert api.get(f"{PIPELINES}/{pipeline_id}/status").json() == {"status": "not_running"}

    start = api.post(f"{PIPELINES}/{pipeline_id}/commands", json={"command": "start"})
    assert start.status_code == 200
    assert start.content == b""
    # The guide: "If the pipeline has just been started, this may return a value of starting or streaming."
    assert statuses_until(api, pipeline_id, "streaming") == ["starting", "snapshotting", "streaming"]

    stop = api.post(f"{PIPELINES}/{pipeline_id}/commands", json={"command": "stop"})
    assert stop.status_code == 200
    assert statuses_until(api, pipeline_id, "not_running") == ["stopping", "not_running"]


def test_status_is_upper_case_by_default(api: httpx.Client, guide: Guide) -> None:
    pipeline_id = api.post(PIPELINES, json=guide("create_request")).json()["streamingPipelineId"]
    assert api.get(f"{PIPELINES}/{pipeline_id}/status").json() == {"status": "NOT_RUNNING"}


def test_the_guides_invalid_example_answers_its_400_exactly(api: httpx.Client, guide: Guide) -> None:
    body = copy.deepcopy(guide("create_request"))
    del body["streamingSource"]["connection"]["username"]
    del body["streamingTarget"]["connection"]["authentication"]
    response = api.post(PIPELINES, json=body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    # The guide's example predates the reference's problem ``type``; every other field is the guide's.
    assert response.json() == {"type": "https://api.matillion.com/problems/bad-request", **guide("create_400_response")}
    assert api.get(PIPELINES).json()["total"] == 0


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not on PATH; the guide's curl flow needs it")
def test_the_guides_curl_flow(fresh_emulator: EmulatorProcess, guide: Guide, tmp_path: Path) -> None:
    # The guide quotes its header as 'authorization: Bearer $DPC_TOKEN', which a shell would not
    # expand; the token is substituted here as the guide intends.
    token = fresh_emulator.token()
    base = f"{fresh_emulator.base_url}/v1/projects/{PROJECT_ID}/streaming-pipelines"
    auth = ["--header", f"authorization: Bearer {token}"]
    (tmp_path / "streaming-pipeline.json").write_text(json.dumps(guide("create_request")))

    def curl(*args: str) -> tuple[int, str]:
        result = subprocess.run(
            ["curl", "--silent", "--show-error", "--write-out", "\n%{http_code}", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        body, _, code = result.stdout.rpartition("\n")
        return int(code), body

    json_type = ["--header", "content-type: application/json"]
    code, body = curl("--request", "POST", "--url", base, *auth, *json_type, "--data", "@streaming-pipeline.json")
    assert code == 201, body
    created = json.loads(body)
    pipeline_id = created["streamingPipelineId"]

    code, body = curl("--request", "GET", "--url", f"{base}/{pipeline_id}", *auth)
    assert (code, json.loads(body)) == (200, created)

    code, body = curl(
        "--request", "POST", "--url", f"{base}/{pipeline_id}/commands", *auth, *json_type,
        "--data", '{"command":"start"}',
    )  # fmt: skip
    assert (code, body) == (200, "")

    code, body = curl("--request", "GET", "--url", f"{base}/{pipeline_id}/status", *auth)
    assert code == 200
    assert json.loads(body)["status"] in ("STARTING", "SNAPSHOTTING", "STREAMING")
