"""DpcHook: every HTTP call this provider makes to Matillion's Data Productivity Cloud API."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
import time
import urllib.request
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, Unpack

import httpx

from airflow_provider_dpc import _compat
from airflow_provider_dpc.connection_ui import CONN_TYPE, DEFAULT_CONN_NAME, HOOK_NAME, form_widgets, ui_field_behaviour
from airflow_provider_dpc.exceptions import (
    DpcApiError,
    DpcConflictError,
    DpcNotFoundError,
    DpcServerError,
    DpcTransportError,
    DpcValidationError,
    FieldError,
)
from airflow_provider_dpc.hooks import _calls
from airflow_provider_dpc.hooks._budget import BUDGETS, Budget, SharedReads
from airflow_provider_dpc.hooks._calls import ExecutionFilters
from airflow_provider_dpc.hooks._protocol import (
    TOKENS,
    Attempts,
    Call,
    ConnectionSettings,
    Done,
    Fail,
    Outcome,
    Retry,
    judge,
    judge_error,
    retry_after,
    token_call,
    token_error,
)
from airflow_provider_dpc.hooks._retry import RetryPolicy
from airflow_provider_dpc.models import (
    Agent,
    Environment,
    ExecutionStatus,
    ExecutionStep,
    LineageEvent,
    PipelineCommand,
    PipelineExecution,
    PipelineStatus,
    Project,
    PublishedPipeline,
    Schedule,
    StreamingPipeline,
    StreamingPipelineDefinition,
    require_one_pipeline,
    validate_definition,
    validate_execution_request,
)

if TYPE_CHECKING:
    from airflow_provider_dpc.hooks._aiohttp import AiohttpClient
    from airflow_provider_dpc.hooks._protocol import Answer

T = TypeVar("T")
log = logging.getLogger(__name__)

__all__ = ["DpcHook", "RetryPolicy"]


class DpcHook(_compat.BaseHook):
    """Talks to the DPC API with a ``matillion_dpc`` connection.

    One ``httpx.Client`` per hook for sync calls, and one async client per ``async with hook:``
    block for async ones (see :attr:`async_transport`). Access tokens are cached per (token URL,
    client id) for the whole process, so any number of hooks and triggers share one token. Every
    call draws from the account's request budget for the process (the connection extra
    ``requests_per_minute``, 1,000 by default): a call waits its turn rather than overrunning the
    API's limit, and a 429 slows every caller of the process (see ``hooks/_budget.py``). 429s
    (honouring ``Retry-After``), 502/503/504s and broken connections are retried under
    ``retry_policy``; a create is never sent twice blindly: after an unclear failure the pipeline is
    looked up by name first.

    :param dpc_conn_id: the ``matillion_dpc`` connection.
    :param retry_policy: a :class:`RetryPolicy` or a dict of its fields.
    """

    conn_name_attr = "dpc_conn_id"
    default_conn_name = DEFAULT_CONN_NAME
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    #: What the async client of an ``async with hook:`` block sends through. ``"auto"`` uses aiohttp
    #: unless a proxy is configured in the environment: the block's client then shares its event
    #: loop's connection pool (no pool limit, so a triggerer's thousand triggers never wait for a
    #: connection) and costs a fifth or less of the CPU per poll of ``httpx.AsyncClient`` (see
    #: docs/benchmarks.md). ``"httpx"`` always uses ``httpx.AsyncClient``, as a proxy does.
    async_transport: ClassVar[Literal["auto", "httpx"]] = "auto"

    #: Whether calls keep to the account's request budget and triggers share their reads (see
    #: ``hooks/_budget.py``). Off only to measure what they cost (``make bench``).
    keep_to_budget: ClassVar[bool] = True

    def __init__(
        self,
        dpc_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.dpc_conn_id = dpc_conn_id
        self.retry_policy = RetryPolicy.coerce(retry_policy)
        self._settings: ConnectionSettings | None = None
        self._client: httpx.Client | None = None
        self._aclient: _HttpxAsyncClient | AiohttpClient | None = None
        self._budget: Budget | None = None

    # ---- connection form (Airflow 2.11; Airflow 3 reads get_provider_info) ----------------------

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        return form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return ui_field_behaviour()

    # ---- settings and clients ---------------------------------------------------------------

    @property
    def settings(self) -> ConnectionSettings:
        if self._settings is None:
            settings = ConnectionSettings.from_connection(self.get_connection(self.dpc_conn_id))
            for secret in settings.secrets:
                _compat.mask_secret(secret)
            self._settings = settings
        return self._settings

    async def _aread_settings(self) -> ConnectionSettings:
        """:attr:`settings` read inside an event loop, which must never block or call the supervisor
        synchronously (see ``_compat``)."""
        conn = await _compat.aget_connection(self.dpc_conn_id)
        settings = ConnectionSettings.from_connection(conn, await _compat.aextra_dejson(conn))
        for secret in settings.secrets:
            await _compat.amask_secret(secret)
        return settings

    def get_conn(self) -> httpx.Client:
        """The hook's sync client, created on first use."""
        if self._client is None:
            self._client = httpx.Client(**self.settings.client_options())
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def __aenter__(self) -> DpcHook:
        if self._settings is None:
            self._settings = await self._aread_settings()
        if self._aclient is None:
            if self.async_transport == "auto" and not _proxy_configured():
                from airflow_provider_dpc.hooks._aiohttp import AiohttpClient

                self._aclient = AiohttpClient(self._settings)
            else:
                self._aclient = _HttpxAsyncClient(self._settings)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None

    # ---- the request loop, sync and async ---------------------------------------------------

    def budget(self, settings: ConnectionSettings) -> Budget:
        """The account's request budget, shared by every hook of the process."""
        if self._budget is None:
            self._budget = BUDGETS.get(settings.account_key, settings.requests_per_minute)
        return self._budget

    def run(self, call: Call[T]) -> T:
        """Send ``call`` with authentication and retries; return its parsed answer."""
        settings, client = self.settings, self.get_conn()
        attempts = Attempts(self.retry_policy)
        while True:
            attempts.next_try()
            token = self._token(settings) if call.authenticated else None
            place = None
            if self.keep_to_budget:
                # Wait for this call's turn (the token grant's too), looking again on waking: a 429
                # meanwhile holds it too.
                budget = self.budget(settings)
                place, wait = budget.take()
                while wait > 0:
                    time.sleep(wait)
                    wait = budget.wait(place)
            try:
                response = client.send(call.build(client, settings.base_url, token))
            except httpx.HTTPError as exc:
                outcome = judge_error(call, exc, attempts)
            else:
                outcome = self._judge(call, response, attempts, place)
            if isinstance(outcome, Done):
                return outcome.value
            if isinstance(outcome, Fail):
                raise outcome.error
            self._before_retry(call, outcome, attempts, token)
            if not (outcome.throttled and place is not None):  # else it waits in the budget, with every caller
                time.sleep(outcome.delay)

    async def arun(self, call: Call[T]) -> T:
        """Async twin of :meth:`run`; needs ``async with hook:``."""
        if self._aclient is None or self._settings is None:
            raise RuntimeError("use the hook's async methods inside 'async with hook:'")
        settings, client = self._settings, self._aclient
        attempts = Attempts(self.retry_policy)
        while True:
            attempts.next_try()
            token = await self._atoken(settings) if call.authenticated else None
            place = None
            if self.keep_to_budget:
                budget = self.budget(settings)
                place, wait = budget.take()
                while wait > 0:
                    await asyncio.sleep(wait)
                    wait = budget.wait(place)
            try:
                response = await client.send(call, settings.base_url, token)
            except httpx.HTTPError as exc:
                outcome = judge_error(call, exc, attempts)
            else:
                outcome = self._judge(call, response, attempts, place)
            if isinstance(outcome, Done):
                return outcome.value
            if isinstance(outcome, Fail):
                raise outcome.error
            self._before_retry(call, outcome, attempts, token)
            if not (outcome.throttled and place is not None):
                await asyncio.sleep(outcome.delay)

    def _judge(self, call: Call[T], response: Answer, attempts: Attempts, place: int | None) -> Outcome[T]:
        """What the answer means for the call; a 429 is also a congestion signal to the budget,
        the last attempt's too, so the process slows down even when this call gives up."""
        if response.status_code == 429 and place is not None:
            self.budget(self.settings).throttled(retry_after(response), place)
        return judge(call, response, attempts, can_refresh=not self.settings.static_token)

    def _before_retry(self, call: Call[Any], retry: Retry, attempts: Attempts, token: str | None) -> None:
        if retry.refresh_token:
            log.info("%s %s: token refused, fetching a new one", call.method, call.path)
            TOKENS.invalidate(self.settings.token_key, token)
        else:
            log.warning(
                "%s %s did not succeed (attempt %d of %d); retrying in %.1f s",
                call.method,
                call.path,
                attempts.count,
                self.retry_policy.max_attempts,
                retry.delay,
            )

    def _token(self, settings: ConnectionSettings) -> str:
        if settings.static_token:
            return settings.static_token
        key = settings.token_key
        token = TOKENS.get(key)
        if token is not None:
            return token
        with TOKENS.fetch_lock(key):
            token = TOKENS.get(key)
            if token is None:
                try:
                    grant = self.run(token_call(settings))
                except DpcApiError as exc:
                    raise token_error(settings, exc) from None
                token, expires_in = grant
                _compat.mask_secret(token)
                TOKENS.put(key, token, expires_in)
        return token

    async def _atoken(self, settings: ConnectionSettings) -> str:
        if settings.static_token:
            return settings.static_token
        key = settings.token_key
        token = TOKENS.get(key)
        if token is not None:
            return token
        async with _one_token_fetch(key):
            token = TOKENS.get(key)
            if token is None:
                try:
                    grant = await self.arun(token_call(settings))
                except DpcApiError as exc:
                    raise token_error(settings, exc) from None
                token, expires_in = grant
                await _compat.amask_secret(token)
                TOKENS.put(key, token, expires_in)
        return token

    # ---- projects and environments ----------------------------------------------------------

    def list_projects(self) -> list[Project]:
        return list(self._pages(lambda page, size: _calls.list_projects(page, size)))

    def find_project_by_name(self, name: str) -> Project:
        """The project called ``name``; raises if there is none or more than one."""
        matches = [p for p in self.list_projects() if p.name == name]
        return _single(matches, f"project named {name!r}", "project_name", ids=[p.id for p in matches])

    def resolve_project_id(self, project_id: str | None = None, project_name: str | None = None) -> str:
        if project_id:
            return project_id
        if project_name:
            return self.find_project_by_name(project_name).id
        raise DpcValidationError(
            "give project_id or project_name", errors=[FieldError("project_id", "must not be empty")]
        )

    def list_environments(self, project_id: str) -> list[Environment]:
        return list(self._pages(lambda page, size: _calls.list_environments(project_id, page, size)))

    # ---- agents -----------------------------------------------------------------------------

    def list_agents(self) -> list[Agent]:
        """Every agent of the account, streaming and orchestration alike."""
        return list(self._pages(lambda page, size: _calls.list_agents(page, size)))

    def get_agent(self, agent_id: str) -> Agent:
        """One agent, with ``agent_status`` and ``connected`` (see :func:`~airflow_provider_dpc.status.agent_down`)."""
        return self.run(_calls.get_agent(agent_id))

    # ---- streaming pipelines ----------------------------------------------------------------

    def iter_streaming_pipelines(
        self, project_id: str, page_size: int = _calls.MAX_PAGE_SIZE
    ) -> Iterator[StreamingPipeline]:
        """Every streaming pipeline of the project, fetching page after page as needed."""
        return self._pages(lambda page, size: _calls.list_pipelines(project_id, page, size), page_size)

    def list_streaming_pipelines(self, project_id: str) -> list[StreamingPipeline]:
        return list(self.iter_streaming_pipelines(project_id))

    def get_streaming_pipeline(self, project_id: str, pipeline_id: str) -> StreamingPipeline:
        return self.run(_calls.get_pipeline(project_id, pipeline_id))

    def find_streaming_pipeline_by_name(self, project_id: str, name: str) -> StreamingPipeline | None:
        """The pipeline called ``name``, None if there is none; raises if several share the name."""
        matches = [p for p in self.iter_streaming_pipelines(project_id) if p.name == name]
        if not matches:
            return None
        return _single(
            matches,
            f"streaming pipeline named {name!r}",
            "pipeline_name",
            ids=[p.streaming_pipeline_id for p in matches],
        )

    def resolve_pipeline_id(
        self, project_id: str, pipeline_id: str | None = None, pipeline_name: str | None = None
    ) -> str:
        if pipeline_id:
            return pipeline_id
        if pipeline_name:
            found = self.find_streaming_pipeline_by_name(project_id, pipeline_name)
            if found is None:
                raise DpcNotFoundError(
                    f"no streaming pipeline named {pipeline_name!r} in project {project_id}",
                    status_code=404,
                    errors=[FieldError("pipeline_name", "not found")],
                )
            return found.streaming_pipeline_id
        raise DpcValidationError(
            "give pipeline_id or pipeline_name", errors=[FieldError("pipeline_id", "must not be empty")]
        )

    def create_streaming_pipeline(
        self, project_id: str, definition: StreamingPipelineDefinition | Mapping[str, Any]
    ) -> StreamingPipeline:
        """Create a pipeline, validating the definition locally first.

        A POST whose outcome is unclear (5xx, broken connection, a success whose body cannot be
        read) is never repeated blindly: the pipeline is looked up by name, and only sent again if
        it is not there.
        """
        checked = validate_definition(definition)
        call = _calls.create_pipeline(project_id, checked)
        attempts = Attempts(self.retry_policy)
        while True:
            attempts.next_try()
            try:
                return self.run(call)
            except DpcApiError as exc:
                if not _unclear(exc):
                    raise
                existing = self.find_streaming_pipeline_by_name(project_id, checked.name)
                if existing is not None:
                    log.warning(
                        "create of %r met %s, but the pipeline exists: using %s",
                        checked.name,
                        exc,
                        existing.streaming_pipeline_id,
                    )
                    return existing
                delay = attempts.wait()
                if delay is None:
                    raise
                log.warning(
                    "create of %r failed (%s) and it does not exist; retrying in %.1f s", checked.name, exc, delay
                )
                time.sleep(delay)

    def update_streaming_pipeline(
        self, project_id: str, pipeline_id: str, definition: StreamingPipelineDefinition | Mapping[str, Any]
    ) -> StreamingPipeline:
        """Replace a pipeline's definition (the API's PUT is a full replace)."""
        return self.run(_calls.update_pipeline(project_id, pipeline_id, validate_definition(definition)))

    def delete_streaming_pipeline(self, project_id: str, pipeline_id: str, *, missing_ok: bool = False) -> bool:
        """Delete a pipeline; returns False when it was already gone and ``missing_ok``."""
        try:
            self.run(_calls.delete_pipeline(project_id, pipeline_id))
        except DpcNotFoundError:
            if not missing_ok:
                raise
            return False
        return True

    def send_command(self, project_id: str, pipeline_id: str, command: PipelineCommand | str) -> None:
        """Send START or STOP; the API acknowledges at once and the pipeline changes status later."""
        self.run(_calls.send_command(project_id, pipeline_id, parse_command(command)))

    def get_status(self, project_id: str, pipeline_id: str) -> PipelineStatus:
        return self.run(_status_call(project_id, pipeline_id))

    async def aget_status(self, project_id: str, pipeline_id: str, *, max_age: float = 0.0) -> PipelineStatus:
        """The pipeline's status; concurrent callers of the event loop share one read, and one
        answered less than ``max_age`` seconds ago (a poller passes its interval)."""
        call = _status_call(project_id, pipeline_id)
        return await self._shared((call.method, call.path), lambda: self.arun(call), max_age)

    async def _shared(self, key: Hashable, fetch: Callable[[], Awaitable[T]], max_age: float) -> T:
        """``fetch()``'s answer, shared by the event loop's callers asking for ``key`` (see SharedReads)."""
        if self._settings is None:
            raise RuntimeError("use the hook's async methods inside 'async with hook:'")
        if not self.keep_to_budget:
            return await fetch()
        return await SharedReads.read((self._settings.account_key, key), fetch, max_age)

    def _follow(self, plan: _calls.Plan[T]) -> T:
        """Run a read of several calls (see ``_calls.Plan``), each call as :meth:`run` sends it."""
        steps = _calls.Steps(plan)
        while (call := steps.next()) is not None:
            try:
                steps.answer(self.run(call))
            except DpcApiError as exc:
                steps.fail(exc)
        return steps.value

    async def _afollow(self, plan: _calls.Plan[T]) -> T:
        """Async twin of :meth:`_follow`."""
        steps = _calls.Steps(plan)
        while (call := steps.next()) is not None:
            try:
                steps.answer(await self.arun(call))
            except DpcApiError as exc:
                steps.fail(exc)
        return steps.value

    async def aget_streaming_pipeline(self, project_id: str, pipeline_id: str) -> StreamingPipeline:
        return await self.arun(_calls.get_pipeline(project_id, pipeline_id))

    # ---- orchestration pipeline executions ------------------------------------------------------

    def list_published_pipelines(self, project_id: str, environment_name: str | None = None) -> list[PublishedPipeline]:
        """The project's published pipelines, those of ``environment_name`` where given: only these
        can be executed."""
        return list(
            self._pages(lambda page, size: _calls.list_published_pipelines(project_id, environment_name, page, size))
        )

    def execute_pipeline(
        self,
        project_id: str,
        *,
        pipeline_name: str,
        environment_name: str,
        scalar_variables: Mapping[str, str | int | float] | None = None,
        grid_variables: Mapping[str, Sequence[Sequence[str]]] | None = None,
        execution_tag: str | None = None,
        version_name: str | None = None,
        agent_id: str | None = None,
    ) -> str:
        """Run a published pipeline and return the execution id; the variables are checked locally first.

        DPC runs one execution per ``execution_tag`` at a time in an environment, which makes a
        second POST safe: under a tag, a POST whose outcome is unclear (5xx, broken connection, an
        unreadable answer) is sent again, and a 409 then means the first one was accepted, so the
        running execution of that tag is returned. Without a tag an unclear outcome is raised, as
        sending again could run the pipeline twice.
        """
        fields = {
            "pipelineName": pipeline_name,
            "environmentName": environment_name,
            "agentId": agent_id,
            "executionTag": execution_tag,
            "scalarVariables": None if scalar_variables is None else dict(scalar_variables),
            "gridVariables": None if grid_variables is None else {k: list(v) for k, v in grid_variables.items()},
            "versionName": version_name,
        }
        request = validate_execution_request({k: v for k, v in fields.items() if v is not None})
        call = _calls.execute_pipeline(project_id, request)
        attempts = Attempts(self.retry_policy)
        unclear: DpcApiError | None = None
        while True:
            attempts.next_try()
            try:
                return self.run(call)
            except DpcConflictError:
                if unclear is None or not execution_tag:
                    raise
                found = self.find_running_execution(project_id, pipeline_name, environment_name, execution_tag)
                if found is None:
                    raise
                log.warning(
                    "execute of %r met %s, but it was accepted: execution %s holds tag %r",
                    pipeline_name,
                    unclear,
                    found.pipeline_execution_id,
                    execution_tag,
                )
                return found.pipeline_execution_id
            except DpcApiError as exc:
                if not _unclear(exc):
                    raise
                delay = attempts.wait() if execution_tag else None
                if delay is None:
                    log.error(
                        "execute of %r met %s: it may have started; not sending it again%s",
                        pipeline_name,
                        exc,
                        "" if execution_tag else " (no execution tag makes a second request safe)",
                    )
                    raise
                unclear = exc
                log.warning(
                    "execute of %r met %s; sending it again under execution tag %r in %.1f s",
                    pipeline_name,
                    exc,
                    execution_tag,
                    delay,
                )
                time.sleep(delay)

    def get_pipeline_execution(self, project_id: str, execution_id: str) -> PipelineExecution:
        """The execution's details, read wrapped in ``result`` (as the service answers) or flat (as
        the reference shows), the ids filled in from the request where the answer leaves them out."""
        return self.run(_calls.get_execution(project_id, execution_id))

    async def aget_pipeline_execution(self, project_id: str, execution_id: str) -> PipelineExecution:
        return await self.arun(_calls.get_execution(project_id, execution_id))

    def get_pipeline_execution_status(self, project_id: str, execution_id: str) -> ExecutionStatus:
        """The execution's status through the API's lightweight status read (see :meth:`read_pipeline_execution`)."""
        return self.read_pipeline_execution(project_id, execution_id, check_finished=False).status

    async def aget_pipeline_execution_status(
        self, project_id: str, execution_id: str, *, max_age: float = 0.0
    ) -> ExecutionStatus:
        """As :meth:`aget_status`: callers of the event loop share reads."""
        found = await self.aread_pipeline_execution(project_id, execution_id, max_age=max_age, check_finished=False)
        return found.status

    def read_pipeline_execution(
        self, project_id: str, execution_id: str, *, check_finished: bool = True
    ) -> PipelineExecution:
        """What a wait needs of an execution: its status from the lightweight status read, and with
        ``check_finished`` its details too where the status alone does not say whether it has ended
        (UNKNOWN, FORBIDDEN or a status nobody documented: see ``status.ask_if_finished``), so
        ``finished`` tells.

        Where the status route answers 404 or 405 for an execution that exists, this process reads
        the details instead from then on, with one warning: the route is documented, but no client
        known to have run against the service uses it.
        """
        base_url = self.settings.base_url
        return self._follow(_calls.read_execution(base_url, project_id, execution_id, check_finished=check_finished))

    async def aread_pipeline_execution(
        self, project_id: str, execution_id: str, *, max_age: float = 0.0, check_finished: bool = True
    ) -> PipelineExecution:
        """Async twin of :meth:`read_pipeline_execution`; callers of the event loop share reads, as
        :meth:`aget_status`."""
        if self._settings is None:
            raise RuntimeError("use the hook's async methods inside 'async with hook:'")
        plan = functools.partial(
            _calls.read_execution, self._settings.base_url, project_id, execution_id, check_finished=check_finished
        )
        return await self._shared(
            ("execution", project_id, execution_id, check_finished), lambda: self._afollow(plan()), max_age
        )

    def cancel_pipeline_execution(self, project_id: str, execution_id: str, force: bool = False) -> None:
        """Ask DPC to cancel an execution (CANCELLING, then CANCELLED); ``force`` cancels it at once."""
        self.run(_calls.cancel_execution(project_id, execution_id, force))

    async def acancel_pipeline_execution(self, project_id: str, execution_id: str, force: bool = False) -> None:
        await self.arun(_calls.cancel_execution(project_id, execution_id, force))

    def get_pipeline_execution_steps(
        self, project_id: str, execution_id: str, *, page_size: int = _calls.MAX_PAGE_SIZE
    ) -> list[ExecutionStep]:
        """Each step's status and message, for a failure's log: every page of them, nested under each
        step's ``result`` (as the service answers) or flat."""
        return list(
            self._pages(lambda page, size: _calls.execution_steps(project_id, execution_id, page, size), page_size)
        )

    def iter_pipeline_executions(
        self,
        project_id: str | None = None,
        *,
        page_size: int = _calls.MAX_PAGE_SIZE,
        **filters: Unpack[ExecutionFilters],
    ) -> Iterator[PipelineExecution]:
        """The account's executions, newest first, filtered as given (``pipeline_name``,
        ``environment_name``, ``status``, ``started_after``, ``started_before``, ``schedule_id``);
        pages are fetched as needed.

        The API matches ``pipeline_name`` partially and in any case ("Pipeline 1" finds "Pipeline 10"
        too) and answers with file paths (``folder/load.orch.yaml``), so only the executions of the
        pipeline named, by :func:`~airflow_provider_dpc.models.same_pipeline`, are yielded.
        ``schedule_id`` keeps those a DPC schedule started (see :meth:`list_schedules`).
        """
        params = _calls.execution_filters(project_id, **filters)
        pipeline_name = filters.get("pipeline_name")
        token: str | None = None
        while True:
            page = self.run(_calls.list_executions(params, page_size, token))
            yield from _calls.of_pipeline(page.results, pipeline_name)
            if not page.more:
                return
            token = page.more

    def list_pipeline_executions(
        self,
        project_id: str,
        *,
        pipeline_name: str,
        environment_name: str,
        started_after: datetime | str | None = None,
    ) -> list[PipelineExecution]:
        """Every execution of a pipeline in an environment started after ``started_after``, newest
        first, as a wait on the pipeline's runs reads them (every page)."""
        filters = _calls.execution_filters(
            project_id, pipeline_name=pipeline_name, environment_name=environment_name, started_after=started_after
        )
        return self._follow(_calls.all_executions(filters, pipeline_name))

    async def alist_pipeline_executions(
        self,
        project_id: str,
        *,
        pipeline_name: str | None,
        environment_name: str | None,
        started_after: datetime | str | None = None,
        max_age: float = 0.0,
    ) -> list[PipelineExecution]:
        """Async twin of :meth:`list_pipeline_executions`. Callers of the event loop asking the same
        list share one read, and one answered less than ``max_age`` seconds ago (as
        :meth:`aget_status`): many waits on one pipeline cost one list read per interval. With no
        pipeline and environment named, the project's every execution (a read asset watchers share)."""
        filters = _calls.execution_filters(
            project_id, pipeline_name=pipeline_name, environment_name=environment_name, started_after=started_after
        )
        key = ("executions", tuple(sorted(filters.items())))
        plan = functools.partial(_calls.all_executions, filters, pipeline_name)
        return await self._shared(key, lambda: self._afollow(plan()), max_age)

    # ---- DPC's own schedules -------------------------------------------------------------------

    def list_schedules(self, project_id: str) -> list[Schedule]:
        """The project's DPC schedules: which published pipeline DPC's scheduler runs, where and when."""
        return list(self._pages(lambda page, size: _calls.list_schedules(project_id, page, size)))

    def find_running_execution(
        self, project_id: str, pipeline_name: str, environment_name: str, execution_tag: str | None = None
    ) -> PipelineExecution | None:
        """The RUNNING execution of a pipeline in an environment, None if there is none.

        The executions list cannot be filtered by tag, so where the answer shows each execution's
        ``executionTag`` it picks by tag; otherwise several running executions are ambiguous and
        raise :class:`DpcConflictError` naming them. So does a name that stands for more than one
        pipeline (``load`` when ``a/load.orch.yaml`` and ``b/load.orch.yaml`` run).
        """
        running = list(
            self.iter_pipeline_executions(
                project_id,
                pipeline_name=pipeline_name,
                environment_name=environment_name,
                status=ExecutionStatus.RUNNING,
            )
        )
        names = (e.pipeline_name for e in running)
        require_one_pipeline(pipeline_name, names, environment_name, field="pipelineName", doing="running")
        if execution_tag and any("executionTag" in (e.model_extra or {}) for e in running):
            running = [e for e in running if (e.model_extra or {}).get("executionTag") == execution_tag]
        if len(running) > 1:
            ids = ", ".join(e.pipeline_execution_id for e in running)
            raise DpcConflictError(
                f"{len(running)} executions of pipeline {pipeline_name!r} are running in environment "
                f"{environment_name!r} ({ids}); cannot tell which one holds execution tag {execution_tag!r}",
                errors=[FieldError("executionTag", "is ambiguous")],
            )
        return running[0] if running else None

    # ---- lineage events ----------------------------------------------------------------------

    def list_lineage_events(
        self,
        generated_from: datetime,
        generated_before: datetime,
        *,
        page_size: int = _calls.MAX_PAGE_SIZE,
        max_pages: int | None = None,
    ) -> list[LineageEvent]:
        """The OpenLineage events DPC generated for the account's pipeline runs in
        ``[generated_from, generated_before)`` (timezone-aware), oldest first, every page of them or
        the first ``max_pages`` (a warning says the rest were left). An event that cannot be read is
        skipped with a warning."""
        events, more = self._follow(
            _calls.all_lineage_events(generated_from, generated_before, size=page_size, max_pages=max_pages)
        )
        if more:
            log.warning(
                "more than %s pages of lineage events were generated from %s to %s; the rest were not read",
                max_pages,
                generated_from.isoformat(),
                generated_before.isoformat(),
            )
        return events

    # ---- Airflow conventions ------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection by listing projects (Airflow's 'Test' button and CLI)."""
        try:
            page = self.run(_calls.list_projects(0, 1))
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected to {self.settings.base_url}; {max(page.total, len(page.results))} project(s) visible"

    def send_as_is(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> httpx.Response:
        """One authenticated request to ``base URL + path``, its answer returned as it came: no retry,
        no error raised for a 4xx or 5xx. For checking what the API really answers
        (:mod:`airflow_provider_dpc.probe`); tasks use the typed methods."""
        settings, client = self.settings, self.get_conn()
        call: Call[Any] = Call(method, path, _identity, params=params, json=json, idempotent=False)
        return client.send(call.build(client, settings.base_url, self._token(settings)))

    # ---- helpers ------------------------------------------------------------------------------

    def _pages(self, make_call: Any, page_size: int = _calls.MAX_PAGE_SIZE) -> Iterator[Any]:
        page, seen = 0, 0
        while True:
            result = self.run(make_call(page, page_size))
            yield from result.results
            seen += len(result.results)
            # Follow ``total`` where it is given: a service may serve fewer per page than asked. It
            # is not always filled in (the guide shows 0): then a short page is the last.
            done = seen >= result.total if result.total else len(result.results) < page_size
            if done or not result.results:
                return
            page += 1


def parse_command(command: PipelineCommand | str) -> PipelineCommand:
    try:
        return PipelineCommand(command)
    except ValueError:
        raise DpcValidationError(
            f"command must be START or STOP, got {command!r}",
            errors=[FieldError("command", "must be START or STOP")],
        ) from None


def _single(matches: list[T], what: str, field: str, ids: list[str]) -> T:
    if not matches:
        raise DpcNotFoundError(f"no {what}", status_code=404, errors=[FieldError(field, "not found")])
    if len(matches) > 1:
        raise DpcConflictError(
            f"{len(matches)} of {what} exist ({', '.join(ids)}); use its id instead",
            errors=[FieldError(field, "is ambiguous")],
        )
    return matches[0]


def _unclear(error: DpcApiError) -> bool:
    """Whether a failed call may nevertheless have been carried out."""
    if isinstance(error, DpcServerError | DpcTransportError):
        return True
    # A 2xx whose body is not JSON, or not the expected JSON: the call was carried out.
    return error.status_code is not None and 200 <= error.status_code < 300


# A Call is immutable: a poller builds (and checks the ids of) its status read once, not per poll.
_status_call = functools.lru_cache(maxsize=4096)(_calls.get_status)


def _identity(body: Any) -> Any:
    return body


_ASYNC_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


@contextlib.asynccontextmanager
async def _one_token_fetch(key: tuple[str, str]) -> AsyncIterator[None]:
    """One token request in flight per client and process: a thousand triggers starting together
    share one grant, and an event loop's fetch waits for a worker thread's (the process-wide lock,
    polled so the loop never blocks)."""
    locks = _ASYNC_LOCKS.setdefault(asyncio.get_running_loop(), {})
    async with locks.setdefault(key, asyncio.Lock()):
        process_lock = TOKENS.fetch_lock(key)
        while not process_lock.acquire(blocking=False):
            await asyncio.sleep(0.05)
        try:
            yield
        finally:
            process_lock.release()


# ---- async clients ----------------------------------------------------------------------------


class _HttpxAsyncClient:
    """An ``async with hook:`` block's client on httpx's own async transport."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self._client = httpx.AsyncClient(**settings.client_options())

    async def send(self, call: Call[Any], base_url: str, token: str | None) -> Answer:
        return await self._client.send(call.build(self._client, base_url, token))

    async def aclose(self) -> None:
        await self._client.aclose()


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def _proxy_configured() -> bool:
    """Whether httpx (``trust_env``) would send through a proxy; such hooks stay on httpx.

    On Linux that is the environment alone, read directly: ``urllib.request.getproxies()`` walks
    the whole environment and costs more than a status read.
    """
    if sys.platform in ("darwin", "win32"):  # the system's proxy settings count there too
        return bool(urllib.request.getproxies())
    return any(os.environ.get(name) for name in _PROXY_VARIABLES)
