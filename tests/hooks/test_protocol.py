"""Edge cases of the wire protocol that the emulator does not produce: judged on built responses."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
import pytest

from airflow_provider_dpc.exceptions import DpcAuthenticationError, DpcServerError, DpcTransportError
from airflow_provider_dpc.hooks._protocol import (
    Attempts,
    Call,
    ConnectionSettings,
    Done,
    Fail,
    Retry,
    RetryPolicy,
    judge,
    judge_error,
    retry_after,
    token_call,
)
from airflow_provider_dpc.models import PipelineStatus, check_uuid, validate_definition

pytestmark = pytest.mark.every_line

GET = Call("GET", "/v1/projects", lambda body: body)
POST = Call("POST", "/v1/projects/x/streaming-pipelines", lambda body: body, idempotent=False)
TOKEN = Call("POST", "/oauth/dpc/token", lambda body: body, authenticated=False, url="http://id/oauth/dpc/token")


def response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers, request=httpx.Request("GET", "http://dpc/v1"))


def attempts(**policy: Any) -> Attempts:
    return Attempts(RetryPolicy(**{"backoff_base": 0.01, **policy}))


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    assert retry_after(response(429, headers={"Retry-After": "7"})) == 7.0
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (retry_after(response(429, headers={"Retry-After": when})) or 0) <= 30
    assert retry_after(response(429, headers={"Retry-After": "soon"})) is None


def test_429_waits_as_asked_even_for_a_create() -> None:
    outcome = judge(POST, response(429, headers={"Retry-After": "3"}), attempts(), can_refresh=True)
    assert outcome == Retry(3.0, throttled=True)  # the whole process waits, see hooks/_budget.py


def test_a_429_without_retry_after_backs_off_on_its_own() -> None:
    first = attempts(backoff_base=4.0)
    first.next_try()
    outcome = judge(GET, response(429), first, can_refresh=True)
    assert isinstance(outcome, Retry)
    assert not outcome.throttled  # the budget holds the process briefly; this call sleeps its backoff
    assert 2.0 <= outcome.delay <= 4.0


def test_a_503_waits_its_retry_after() -> None:
    assert judge(GET, response(503, headers={"Retry-After": "5"}), attempts(), can_refresh=True) == Retry(5.0)
    assert judge(TOKEN, response(503, headers={"Retry-After": "5"}), attempts(), can_refresh=True) == Retry(5.0)


def test_a_wait_beyond_the_time_budget_fails_at_once() -> None:
    outcome = judge(GET, response(429, headers={"Retry-After": "120"}), attempts(max_elapsed=60), can_refresh=True)
    assert isinstance(outcome, Fail)
    assert str(outcome.error).startswith("429 Too Many Requests on GET /v1/projects")


def test_5xx_retries_reads_but_not_a_create() -> None:
    assert isinstance(judge(GET, response(503), attempts(), can_refresh=True), Retry)
    outcome = judge(POST, response(503), attempts(), can_refresh=True)
    assert isinstance(outcome, Fail)
    assert isinstance(outcome.error, DpcServerError)


def test_connect_errors_retry_even_a_create_but_read_errors_do_not() -> None:
    request = httpx.Request("POST", "http://dpc")
    never_sent = judge_error(POST, httpx.ConnectError("refused", request=request), attempts())
    assert isinstance(never_sent, Retry)
    maybe_sent = judge_error(POST, httpx.ReadTimeout("slow", request=request), attempts())
    assert isinstance(maybe_sent, Fail)
    assert isinstance(maybe_sent.error, DpcTransportError)
    assert "POST /v1/projects/x/streaming-pipelines failed: ReadTimeout" in str(maybe_sent.error)


def test_401_refreshes_once_and_never_with_a_static_token() -> None:
    tries = attempts()
    assert judge(GET, response(401), tries, can_refresh=True) == Retry(0.0, refresh_token=True)
    second = judge(GET, response(401), tries, can_refresh=True)
    assert isinstance(second, Fail)
    assert isinstance(second.error, DpcAuthenticationError)
    assert isinstance(judge(GET, response(401), attempts(), can_refresh=False), Fail)


def test_attempts_are_bounded() -> None:
    tries = attempts(max_attempts=2)
    tries.next_try()
    assert isinstance(judge(GET, response(502), tries, can_refresh=True), Retry)
    tries.next_try()
    assert isinstance(judge(GET, response(502), tries, can_refresh=True), Fail)


def test_violations_without_a_field_are_kept_whole() -> None:
    body = {"title": "Bad Request", "status": 400, "violations": ["name: must not be empty", "something odd"]}
    outcome = judge(GET, response(400, body), attempts(), can_refresh=True)
    assert isinstance(outcome, Fail)
    assert outcome.error.errors == [("name", "must not be empty"), ("", "something odd")]


def test_a_200_with_a_broken_body_is_retried_for_reads() -> None:
    broken = httpx.Response(200, content=b'{"status": "STREA', request=httpx.Request("GET", "http://dpc"))
    assert isinstance(judge(GET, broken, attempts(), can_refresh=True), Retry)
    assert isinstance(judge(POST, broken, attempts(), can_refresh=True), Fail)


def test_unknown_status_values_are_kept() -> None:
    status = PipelineStatus("PAUSED")
    assert status == "PAUSED"
    assert not status.is_known
    assert PipelineStatus("snapshotting") is PipelineStatus.SNAPSHOTTING
    assert judge(
        Call("GET", "/s", lambda b: PipelineStatus(b["status"])),
        response(200, {"status": "new"}),
        attempts(),
        can_refresh=True,
    ) == Done(PipelineStatus("new"))


class Conn:
    conn_id = "c"
    host = ""
    login = "id"
    password = "secret"

    def __init__(self, **extra: Any) -> None:
        self.extra_dejson = extra


def test_connection_settings_from_region_and_prefixed_extras() -> None:
    settings = ConnectionSettings.from_connection(Conn(region="us1", extra__matillion_dpc__timeout="12"))
    assert settings.base_url == "https://us1.api.matillion.com/dpc"
    assert settings.token_url == "https://id.core.matillion.com/oauth/dpc/token"
    assert settings.audience == "https://api.matillion.com"
    assert settings.timeout == 12.0
    assert "secret" not in repr(settings)
    assert "secret" not in repr(token_call(settings))  # the grant's form holds it


def test_connection_settings_reject_a_bad_timeout_naming_it() -> None:
    with pytest.raises(ValueError, match="extra 'timeout' must be a positive number"):
        ConnectionSettings.from_connection(Conn(timeout="soon"))


@pytest.mark.parametrize("verify", ["false", False, "0"])
def test_verify_can_be_turned_off(verify: Any) -> None:
    assert ConnectionSettings.from_connection(Conn(verify=verify)).verify is False


def test_definition_errors_name_every_field() -> None:
    with pytest.raises(ValueError, match=r"streamingSource\.type") as info:
        validate_definition(
            {"name": "", "agentId": "a", "streamingSource": {"type": "sqlite"}, "streamingTarget": None}
        )
    fields = [e.field for e in info.value.errors]  # type: ignore[attr-defined]
    assert fields == ["streamingTarget", "streamingSource.type", "name"]


def test_uuid_check_normalises_and_names_the_field() -> None:
    assert check_uuid("50EAD6B2-5D1A-40C7-BB50-0D17C8FB23C3", "pipeline_id") == "50ead6b2-5d1a-40c7-bb50-0d17c8fb23c3"
    with pytest.raises(ValueError, match=r"project_id must be a UUID, got '\.\./x'"):
        check_uuid("../x", "project_id")
