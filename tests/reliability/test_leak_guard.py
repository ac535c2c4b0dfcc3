"""The suite-wide secret check itself: it learns the secrets, watches every channel, and says where.

A guard that watched nothing would report no leak too; these tests leak on purpose through each
channel and expect the guard of the running test to see it, then forgive it so the test can pass.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

import httpx
import pytest

from airflow_provider_dpc.exceptions import DpcApiError
from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.operators.streaming_pipeline import DpcCreateStreamingPipelineOperator
from airflow_provider_dpc.triggers.streaming_pipeline import DpcStreamingPipelineTrigger
from tests.guide import PROJECT_ID, guide_body
from tests.reliability.leakguard import LeakGuard
from tests.task_runner import RecordingTI


@pytest.fixture
def guard(request: pytest.FixtureRequest) -> Any:
    """The guard the suite runs around this test."""
    return request.getfixturevalue("_no_secret_leaks")


def test_a_secret_is_found_raw_encoded_or_escaped_and_never_shown() -> None:
    guard = LeakGuard()
    secret = "s3cr3t/with+odd=chars"
    guard.add_secret(secret, "client secret")
    guard.add_secret("short", "client secret")  # too short to search for
    guard.record("a log", f"login failed for {secret}")
    guard.record("a URL", "https://x/?client_secret=s3cr3t%2Fwith%2Bodd%3Dchars")
    guard.record("a JSON body", json.dumps({"nested": [{"v": secret + '"'}]}))
    guard.record("fine", "nothing to see; short is a word")
    leaks = guard.scan()
    assert [leak.where for leak in leaks] == ["a log", "a URL", "a JSON body"]
    assert all(secret not in str(leak) and "<client secret>" in str(leak) for leak in leaks)


def test_the_guard_learns_the_connection_secret_and_every_token(guard: Any, dpc_conn: str, fresh_emulator: Any) -> None:
    DpcHook(dpc_conn).list_projects()
    direct = fresh_emulator.token()
    known = guard.secrets
    assert known[fresh_emulator.client_secret] == "client secret"
    assert direct in known
    assert list(known.values()).count("access token") >= 2  # the hook's and the direct one


def test_every_channel_is_watched(guard: Any, conn_env: Any, fresh_emulator: Any) -> None:
    # A stand-in secret, forgotten at the end so the captured output of this test does not fail it.
    fake = "planted-" + secrets.token_urlsafe(16)
    guard.add_secret(fake, "access token")
    # Connection extras are no place for it, but there it flows into the link pushed to XCom.
    conn_id = conn_env("leaky", extra={"app_url": f"https://app.example/{fake}"})
    body = guide_body("leak")
    body["advancedProperties"] = {"note": fake}
    task = DpcCreateStreamingPipelineOperator(task_id="c", project_id=PROJECT_ID, dpc_conn_id=conn_id, definition=body)
    context: Any = {"ti": RecordingTI()}
    task.execute(context)
    logging.getLogger("airflow_provider_dpc.hooks.dpc").debug("a debug line with %s", fake)
    DpcApiError(f"an error naming {fake}")
    DpcStreamingPipelineTrigger(
        dpc_conn_id=fake,
        project_id=PROJECT_ID,
        pipeline_id=PROJECT_ID,
        goal={"target": ["STREAMING"]},
        poll_interval=1,
        started_at=time.time(),
    ).serialize()
    where = {leak.where for leak in guard.scan()}
    for channel in (
        "XCom pushed",
        "rendered template field definition of c",
        "log record of airflow_provider_dpc.hooks.dpc",
        "message of a DpcApiError",
        "trigger kwargs",
        "serialized trigger kwargs",
    ):
        assert channel in where, (channel, where)
    guard.forgive(fake)


def test_the_emulator_lists_every_token_it_issued(fresh_emulator: Any) -> None:
    """``GET /_emulator/tokens``: how the guard learns tokens issued to clients it cannot see."""
    form = {
        "grant_type": "client_credentials",
        "client_id": fresh_emulator.client_id,
        "client_secret": fresh_emulator.client_secret,
        "audience": "https://api.matillion.com",
    }
    token = httpx.post(fresh_emulator.token_url, data=form).json()["access_token"]
    assert token in httpx.get(f"{fresh_emulator.admin_url}/tokens").json()["tokens"]
    fresh_emulator.reset()
    assert httpx.get(f"{fresh_emulator.admin_url}/tokens").json() == {"tokens": []}
