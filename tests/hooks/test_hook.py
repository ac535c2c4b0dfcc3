"""DpcHook against the emulator over HTTP: every method, auth, retries and errors."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from typing import Any

import pytest

from airflow_provider_dpc.exceptions import (
    DpcAuthenticationError,
    DpcConflictError,
    DpcNotFoundError,
    DpcServerError,
    DpcValidationError,
)
from airflow_provider_dpc.hooks._calls import _pipelines_path
from airflow_provider_dpc.hooks._protocol import Call
from airflow_provider_dpc.hooks.dpc import DpcHook, RetryPolicy
from airflow_provider_dpc.models import PipelineStatus, StreamingPipeline
from airflow_provider_dpc.status import agent_down
from tests.guide import GUIDE, PROJECT_ID, guide_body, requests_to, wait_for_status

pytestmark = pytest.mark.every_line

FAST = RetryPolicy(max_attempts=6, backoff_base=0.05, backoff_max=0.2, max_elapsed=30)


def grants(emulator: Any) -> int:
    return int(emulator.stats()["token_grants"])


@pytest.fixture
def hook(dpc_conn: str) -> DpcHook:
    return DpcHook(dpc_conn, retry_policy=FAST)


def test_test_connection_succeeds(hook: DpcHook) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    assert "1 project(s)" in message


def test_test_connection_fails_clearly_on_wrong_secret(emulator: Any, conn_env: Any) -> None:
    conn_id = conn_env("wrong_secret", password="not-the-secret")
    ok, message = DpcHook(conn_id, retry_policy=FAST).test_connection()
    assert not ok
    assert "refused the client credentials" in message
    assert "wrong_secret" in message
    assert "not-the-secret" not in message


def test_connection_without_credentials_names_the_fields(conn_env: Any) -> None:
    conn_id = conn_env("no_creds", login="", password="")
    with pytest.raises(DpcValidationError, match="client id") as info:
        DpcHook(conn_id).get_status(PROJECT_ID, str(uuid.uuid4()))
    assert [e.field for e in info.value.errors] == ["login", "password"]


def test_projects_and_environments_match_the_guide(hook: DpcHook) -> None:
    guide_projects = json.loads((GUIDE / "projects_response.json").read_text())["results"]
    assert [p.to_wire() for p in hook.list_projects()] == guide_projects
    assert hook.find_project_by_name("Test-project").id == PROJECT_ID
    assert hook.resolve_project_id(project_name="Test-project") == PROJECT_ID
    with pytest.raises(DpcNotFoundError, match="no project named 'nope'"):
        hook.find_project_by_name("nope")
    environments = hook.list_environments(PROJECT_ID)
    assert environments[0].default_agent_id == "2734aa6f-0c64-4d2b-9406-f44dc8f1f3b6"


def test_agents(hook: DpcHook, fresh_emulator: Any) -> None:
    agent_id = hook.list_environments(PROJECT_ID)[0].default_agent_id
    assert agent_id is not None
    (listed,) = hook.list_agents()
    agent = hook.get_agent(agent_id)
    assert listed == agent
    assert (agent.agent_id, agent.name, agent.agent_status, agent.connected) == (
        agent_id,
        "Test-agent",
        "running",
        True,
    )
    assert agent_down(agent) is None
    fresh_emulator.set_agent(agent_id, connected=False)
    assert agent_down(hook.get_agent(agent_id)) == "is not connected (agentStatus running)"
    with pytest.raises(DpcNotFoundError, match=r"404 Not Found on GET /v1/agents/"):
        hook.get_agent(str(uuid.uuid4()))
    with pytest.raises(DpcValidationError, match="agent_id"):
        hook.get_agent("not-a-uuid")


def test_terraform_spellings_are_accepted_and_sent_as_the_reference_shows(hook: DpcHook, fresh_emulator: Any) -> None:
    """Matillion's Terraform provider writes enums lower case and a secret's key as ``key``."""
    body = guide_body("terraform-style")
    target = body["streamingTarget"]
    target["transformationType"] = "change_log"
    target["tablePrefixType"] = target["tablePrefixType"].lower()
    key = target["connection"]["authentication"]["privateKey"]
    key["secretType"] = key["secretType"].lower()
    key["key"] = "private-key"
    created = hook.create_streaming_pipeline(PROJECT_ID, body)
    stored = hook.get_streaming_pipeline(PROJECT_ID, created.streaming_pipeline_id).to_wire()["streamingTarget"]
    assert stored["transformationType"] == "CHANGE_LOG"
    assert stored["tablePrefixType"] == guide_body()["streamingTarget"]["tablePrefixType"]
    sent_key = stored["connection"]["authentication"]["privateKey"]
    assert (
        sent_key["secretType"]
        == guide_body()["streamingTarget"]["connection"]["authentication"]["privateKey"]["secretType"]
    )
    assert sent_key["secretKey"] == "private-key"
    assert "key" not in sent_key


def test_pipeline_lifecycle(hook: DpcHook, fresh_emulator: Any) -> None:
    created = hook.create_streaming_pipeline(PROJECT_ID, guide_body("lifecycle"))
    assert isinstance(created, StreamingPipeline)
    pipeline_id = created.streaming_pipeline_id
    assert uuid.UUID(pipeline_id)
    got = hook.get_streaming_pipeline(PROJECT_ID, pipeline_id)
    assert got.definition().to_wire() == guide_body("lifecycle")
    assert hook.find_streaming_pipeline_by_name(PROJECT_ID, "lifecycle").streaming_pipeline_id == pipeline_id
    assert hook.find_streaming_pipeline_by_name(PROJECT_ID, "absent") is None

    changed = guide_body("lifecycle")
    changed["advancedProperties"]["max.batch.size"] = 1000
    updated = hook.update_streaming_pipeline(PROJECT_ID, pipeline_id, changed)
    assert updated.to_wire()["advancedProperties"] == {"max.batch.size": "1000"}

    assert hook.get_status(PROJECT_ID, pipeline_id) is PipelineStatus.NOT_RUNNING
    hook.send_command(PROJECT_ID, pipeline_id, "start")
    assert hook.get_status(PROJECT_ID, pipeline_id) in (PipelineStatus.STARTING, PipelineStatus.SNAPSHOTTING)
    wait_for_status(hook, pipeline_id, PipelineStatus.STREAMING, within=10)
    hook.send_command(PROJECT_ID, pipeline_id, "STOP")
    wait_for_status(hook, pipeline_id, PipelineStatus.NOT_RUNNING, within=10)

    assert hook.delete_streaming_pipeline(PROJECT_ID, pipeline_id) is True
    with pytest.raises(DpcNotFoundError, match=r"404 .* on GET /v1/projects/.*/streaming-pipelines/"):
        hook.get_streaming_pipeline(PROJECT_ID, pipeline_id)
    assert hook.delete_streaming_pipeline(PROJECT_ID, pipeline_id, missing_ok=True) is False


def test_listing_walks_every_page(hook: DpcHook, fresh_emulator: Any) -> None:
    ids = {hook.create_streaming_pipeline(PROJECT_ID, guide_body(f"p{i}")).streaming_pipeline_id for i in range(7)}
    listed = list(hook.iter_streaming_pipelines(PROJECT_ID, page_size=3))
    assert {p.streaming_pipeline_id for p in listed} == ids
    assert requests_to(fresh_emulator, "GET", "/streaming-pipelines") == 3


def test_duplicate_names_are_reported_with_their_ids(hook: DpcHook, fresh_emulator: Any) -> None:
    api = hook.run  # bypass the create's own look-up to make a duplicate on purpose
    for _ in range(2):
        api(Call("POST", _pipelines_path(PROJECT_ID), StreamingPipeline.model_validate, json=guide_body("twin")))
    with pytest.raises(DpcConflictError, match="2 of streaming pipeline named 'twin' exist"):
        hook.find_streaming_pipeline_by_name(PROJECT_ID, "twin")


def test_lower_case_statuses_parse(hook: DpcHook, fresh_emulator: Any) -> None:
    pipeline_id = hook.create_streaming_pipeline(PROJECT_ID, guide_body("lower")).streaming_pipeline_id
    fresh_emulator.configure(status_case="lower")
    hook.send_command(PROJECT_ID, pipeline_id, "start")
    assert hook.get_status(PROJECT_ID, pipeline_id) in (PipelineStatus.STARTING, PipelineStatus.SNAPSHOTTING)
    wait_for_status(hook, pipeline_id, PipelineStatus.STREAMING, within=10)


def test_invalid_definition_is_rejected_before_any_request(hook: DpcHook, fresh_emulator: Any) -> None:
    body = guide_body()
    del body["streamingSource"]["connection"]["username"]
    del body["streamingTarget"]["connection"]["authentication"]
    with pytest.raises(DpcValidationError) as info:
        hook.create_streaming_pipeline(PROJECT_ID, body)
    assert info.value.errors == [
        ("streamingTarget.connection.authentication", "must not be null"),
        ("streamingSource.connection.username", "must not be empty"),
    ]
    assert requests_to(fresh_emulator, "POST", "/streaming-pipelines") == 0


@pytest.mark.parametrize("style", ["validation-errors", "violations"])
def test_api_validation_errors_in_both_shapes(hook: DpcHook, fresh_emulator: Any, style: str) -> None:
    fresh_emulator.configure(error_style=style)
    body = guide_body()
    del body["streamingSource"]["connection"]["username"]
    del body["streamingTarget"]["connection"]["authentication"]
    call = Call("POST", _pipelines_path(PROJECT_ID), StreamingPipeline.model_validate, json=body, idempotent=False)
    with pytest.raises(DpcValidationError) as info:
        hook.run(call)
    assert info.value.status_code == 400
    assert info.value.type == "https://api.matillion.com/problems/bad-request"
    assert info.value.errors == [
        ("streamingTarget.connection.authentication", "must not be null"),
        ("streamingSource.connection.username", "must not be empty"),
    ]
    assert str(info.value) == (
        f"400 Bad Request on POST /v1/projects/{PROJECT_ID}/streaming-pipelines: "
        "streamingTarget.connection.authentication: must not be null; "
        "streamingSource.connection.username: must not be empty"
    )


def test_path_like_ids_never_reach_the_api(hook: DpcHook, fresh_emulator: Any) -> None:
    before = sum(fresh_emulator.stats()["requests"].values())
    for bad in ("../../projects", "x/../y", "", "3dda0acf"):
        with pytest.raises(DpcValidationError, match="pipeline_id must be a UUID"):
            hook.get_status(PROJECT_ID, bad)
    with pytest.raises(DpcValidationError, match="command must be START or STOP"):
        hook.send_command(PROJECT_ID, str(uuid.uuid4()), "restart")
    assert sum(fresh_emulator.stats()["requests"].values()) == before


def test_rate_limit_waits_for_retry_after(hook: DpcHook, fresh_emulator: Any) -> None:
    fresh_emulator.set_faults(rate_limit={"count": 2, "retry_after": 1})
    started = time.monotonic()
    assert hook.list_projects()
    assert time.monotonic() - started >= 2.0  # two 429s, each asking for one second
    assert fresh_emulator.stats()["faults_injected"]["rate_limit"] == 2


def test_rate_limit_beyond_the_budget_fails_clearly(dpc_conn: str, fresh_emulator: Any) -> None:
    fresh_emulator.set_faults(rate_limit={"count": 10, "retry_after": 0})
    hook = DpcHook(dpc_conn, retry_policy=RetryPolicy(max_attempts=3, backoff_base=0.01))
    with pytest.raises(Exception, match=r"^429 .* on GET /v1/projects"):
        hook.list_projects()


def test_a_429_without_retry_after_holds_the_process_briefly_even_when_the_call_gives_up(
    dpc_conn: str, fresh_emulator: Any
) -> None:
    """The budget hears the last attempt's 429 too (here the only one), holds every caller of the
    process a short while since the answer named no Retry-After, and cuts the rate once."""
    DpcHook(dpc_conn).list_projects()  # the token first: the 429 meets the API call
    fresh_emulator.set_faults(rate_limit={"count": 1, "retry_after": None})
    once = DpcHook(dpc_conn, retry_policy=RetryPolicy(max_attempts=1, backoff_base=30.0))
    with pytest.raises(Exception, match=r"^429 .* on GET /v1/projects"):
        once.list_projects()
    budget = once.budget(once.settings)
    assert (budget.throttles, budget.cuts) == (1, 1)
    assert budget.rate < budget.max_rate
    started = time.monotonic()
    assert DpcHook(dpc_conn).list_projects()  # another caller of the process, held then let through
    # Held for the short hold, not for the call's own backoff (15 to 30 s here), on a loaded machine too.
    assert 1.0 <= time.monotonic() - started < 10.0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_busy_token_endpoint_is_waited_out_as_it_asks(dpc_conn: str, fresh_emulator: Any, mode: str) -> None:
    fresh_emulator.set_faults(rate_limit={"count": 3, "retry_after": 2}, include_token_endpoint=True)
    hook = DpcHook(dpc_conn, retry_policy=FAST)  # its own backoff is short: only Retry-After spaces the grants
    started = time.monotonic()
    if mode == "sync":
        assert hook.list_projects()
    else:

        async def read() -> Any:
            async with hook:
                return await hook.aget_status(PROJECT_ID, str(uuid.uuid4()))

        with pytest.raises(DpcNotFoundError):  # the call went through: the token came
            asyncio.run(read())
    assert time.monotonic() - started >= 3 * 2.0  # four token requests, each after the last's Retry-After
    assert requests_to(fresh_emulator, "POST", "/oauth/dpc/token") == 4
    assert grants(fresh_emulator) == 1
    assert fresh_emulator.stats()["faults_injected"]["rate_limit"] == 3


def _fetch_a_token(conn_id: str) -> None:
    hook = DpcHook(conn_id)
    hook._token(hook.settings)


@pytest.mark.slow
def test_twenty_processes_fetch_tokens_at_once_from_a_busy_token_endpoint(dpc_conn: str, fresh_emulator: Any) -> None:
    """The token endpoint admits five grants every two seconds: twenty processes asking at once are
    refused in turn, each waits the Retry-After it is given, and every one gets its token."""
    import multiprocessing

    fresh_emulator.configure(rate_limit=5, rate_window=2.0)
    fresh_emulator.set_faults(include_token_endpoint=True)
    context = multiprocessing.get_context("fork")  # each process its own token cache and budget
    processes = [context.Process(target=_fetch_a_token, args=(dpc_conn,)) for _ in range(20)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * 20
    assert grants(fresh_emulator) == 20
    assert fresh_emulator.stats()["rate_limit"]["refused"] >= 15  # they did meet a busy endpoint


def test_server_error_burst_is_ridden_out(hook: DpcHook, fresh_emulator: Any) -> None:
    fresh_emulator.set_faults(server_errors={"count": 3, "status": 503})
    assert hook.list_projects()
    assert fresh_emulator.stats()["faults_injected"]["server_errors"] == 3


def test_server_errors_beyond_the_budget_raise_server_error(dpc_conn: str, fresh_emulator: Any) -> None:
    fresh_emulator.set_faults(server_errors={"count": 10, "status": 502})
    hook = DpcHook(dpc_conn, retry_policy=RetryPolicy(max_attempts=2, backoff_base=0.01))
    with pytest.raises(DpcServerError, match=r"^502 Bad Gateway on GET /v1/projects"):
        hook.list_projects()


def test_dropped_connection_is_retried(hook: DpcHook, fresh_emulator: Any) -> None:
    fresh_emulator.set_faults(drop_connections={"count": 2})
    assert hook.list_projects()


def test_create_after_a_dropped_response_makes_no_duplicate(hook: DpcHook, fresh_emulator: Any) -> None:
    hook.list_projects()  # token first, so the drop hits the POST
    fresh_emulator.set_faults(drop_connections={"count": 1})
    created = hook.create_streaming_pipeline(PROJECT_ID, guide_body("once"))
    assert [p.streaming_pipeline_id for p in hook.list_streaming_pipelines(PROJECT_ID)] == [
        created.streaming_pipeline_id
    ]


def test_expired_token_forces_one_refresh(hook: DpcHook, fresh_emulator: Any) -> None:
    hook.list_projects()
    assert grants(fresh_emulator) == 1
    fresh_emulator.set_faults(expire_tokens=True)
    assert hook.list_projects()
    assert grants(fresh_emulator) == 2


def test_one_token_serves_fifty_calls_through_five_hooks(dpc_conn: str, fresh_emulator: Any) -> None:
    hooks = [DpcHook(dpc_conn, retry_policy=FAST) for _ in range(5)]
    for _ in range(10):
        for h in hooks:
            h.list_projects()
    assert grants(fresh_emulator) == 1
    assert requests_to(fresh_emulator, "GET", "/v1/projects") == 50


def test_async_status_shares_the_token(hook: DpcHook, fresh_emulator: Any) -> None:
    pipeline_id = hook.create_streaming_pipeline(PROJECT_ID, guide_body("async")).streaming_pipeline_id

    async def read() -> list[PipelineStatus]:
        async with DpcHook(hook.dpc_conn_id, retry_policy=FAST) as async_hook:
            return await asyncio.gather(*(async_hook.aget_status(PROJECT_ID, pipeline_id) for _ in range(20)))

    assert asyncio.run(read()) == [PipelineStatus.NOT_RUNNING] * 20
    assert grants(fresh_emulator) == 1


@pytest.mark.parametrize(
    ("transport", "proxy", "client"),
    [("auto", False, "AiohttpClient"), ("httpx", False, "_HttpxAsyncClient"), ("auto", True, "_HttpxAsyncClient")],
)
def test_async_transport(
    hook: DpcHook, fresh_emulator: Any, monkeypatch: pytest.MonkeyPatch, transport: str, proxy: bool, client: str
) -> None:
    """aiohttp carries async calls, unless told otherwise or a proxy is configured: httpx honours it."""
    monkeypatch.setattr(DpcHook, "async_transport", transport)
    if proxy:  # a proxy that is not there, bypassed for the emulator as NO_PROXY says
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    pipeline_id = hook.create_streaming_pipeline(PROJECT_ID, guide_body("transport")).streaming_pipeline_id

    async def read() -> tuple[str, PipelineStatus]:
        async with DpcHook(hook.dpc_conn_id, retry_policy=FAST) as async_hook:
            return type(async_hook._aclient).__name__, await async_hook.aget_status(PROJECT_ID, pipeline_id)

    assert asyncio.run(read()) == (client, PipelineStatus.NOT_RUNNING)


def test_async_methods_need_the_context_manager(hook: DpcHook) -> None:
    with pytest.raises(RuntimeError, match="async with hook"):
        asyncio.run(hook.aget_status(PROJECT_ID, str(uuid.uuid4())))


def test_static_token_mode(emulator: Any, conn_env: Any, fresh_emulator: Any) -> None:
    token = emulator.token()
    conn_id = conn_env("static", login="", password="", extra={"token": token})
    assert DpcHook(conn_id, retry_policy=FAST).list_projects()
    bad = conn_env("static_bad", login="", password="", extra={"token": "expired-token"})
    with pytest.raises(DpcAuthenticationError, match="401") as info:
        DpcHook(bad, retry_policy=FAST).list_projects()
    assert "expired-token" not in str(info.value)


def test_account_id_and_user_agent_are_sent(conn_env: Any, fresh_emulator: Any) -> None:
    conn_id = conn_env("with_account", extra={"account_id": "acc-1"})
    client = DpcHook(conn_id).get_conn()
    assert client.headers["account-id"] == "acc-1"
    assert client.headers["User-Agent"].startswith("airflow-provider-dpc/")


def test_guide_definition_round_trips_unknown_fields() -> None:
    body = guide_body()
    body["futureField"] = {"kept": True}
    body["streamingTarget"]["futureTargetSetting"] = 3
    from airflow_provider_dpc.models import validate_definition

    assert validate_definition(copy.deepcopy(body)).to_wire() == body
