"""Property tests over definitions, ids and names: bad input is refused clearly and never sent.

For any input, the hook, the operators and the sensor either accept it or raise a
:class:`~airflow_provider_dpc.exceptions.DpcError` (or, for a constructor argument, a ``ValueError``)
whose ``errors`` name the field; nothing else escapes. A definition, project id or pipeline id that is
refused costs no request, and every URL that is built holds canonical UUIDs only, so a path-like id
can never reach the API. The hook talks to an in-memory transport here: the API's side of bad input
is fuzzed against the emulator in ``test_openapi_fuzz.py``.

The default run tries a few hundred inputs per property; the ``reliability_heavy`` run over 10,000.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import unittest.mock
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")

import httpx  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from airflow_provider_dpc.exceptions import (  # noqa: E402
    DpcApiError,
    DpcConflictError,
    DpcError,
    DpcNotFoundError,
    DpcValidationError,
)
from airflow_provider_dpc.hooks._protocol import ConnectionSettings  # noqa: E402
from airflow_provider_dpc.hooks.dpc import DpcHook  # noqa: E402
from airflow_provider_dpc.models import validate_definition  # noqa: E402
from airflow_provider_dpc.operators.streaming_pipeline import (  # noqa: E402
    DpcCreateStreamingPipelineOperator,
    DpcDeleteStreamingPipelineOperator,
    DpcStartStreamingPipelineOperator,
    DpcStopStreamingPipelineOperator,
)
from airflow_provider_dpc.sensors.streaming_pipeline import DpcStreamingPipelineSensor  # noqa: E402
from tests.guide import PROJECT_ID, guide_body  # noqa: E402
from tests.reliability.figures import figures  # noqa: E402
from tests.task_runner import RecordingTI  # noqa: E402

pytestmark = pytest.mark.slow

BASE = "http://dpc.offline/dpc"
GUIDE_BODY = guide_body()
UUID_RE = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SAFE_PATH = re.compile(
    rf"^/dpc/v1/projects(/{UUID_RE}(/environments|/streaming-pipelines(/{UUID_RE}(/status|/commands)?)?)?)?$"
)
# A field is a dotted path from a named field; map keys below it are whatever the user wrote.
FIELD_PATH = re.compile(r"^[A-Za-z_]\w*(\.|$)")
DEFAULT, HEAVY = 300, 4000


def count(config: pytest.Config, source: str) -> None:
    figures(config).inputs[source] += 1


# ---- an offline hook: an in-memory API that records every request -------------------------------


class OfflineApi:
    def __init__(self, pipelines: list[str] = (), projects: list[str] = ("Test-project",)) -> None:  # type: ignore[assignment]
        self.sent: list[httpx.Request] = []
        self.pipelines = [{"streamingPipelineId": str(uuid.uuid4()), "name": name} for name in pipelines]
        self.projects = [{"id": PROJECT_ID if i == 0 else str(uuid.uuid4()), "name": n} for i, n in enumerate(projects)]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        path = request.url.path
        assert SAFE_PATH.match(path), f"unsafe request path {path!r}"
        if path.endswith("/status"):
            return _answer(200, {"status": "NOT_RUNNING"})
        if path.endswith("/commands"):
            return httpx.Response(200)
        if path.endswith("/projects"):
            return _answer(200, _page(self.projects))
        if path.endswith("/environments"):
            return _answer(200, _page([{"name": "env", "defaultAgentId": str(uuid.uuid4())}]))
        if path.endswith("/streaming-pipelines"):
            if request.method == "POST":
                return _answer(201, {"streamingPipelineId": str(uuid.uuid4()), **json.loads(request.content)})
            return _answer(200, _page(self.pipelines))
        if request.method == "DELETE":
            return httpx.Response(204)
        if request.method == "PUT":
            return _answer(200, {"streamingPipelineId": path.rsplit("/", 1)[1], **json.loads(request.content)})
        return _answer(200, {"streamingPipelineId": path.rsplit("/", 1)[1], "name": "p"})

    def hook(self) -> DpcHook:
        hook = DpcHook("dpc_offline", retry_policy={"max_attempts": 1})
        hook._settings = ConnectionSettings(
            conn_id="dpc_offline",
            base_url=BASE,
            token_url="http://dpc.offline/oauth/dpc/token",
            audience="https://api.matillion.com",
            static_token="offline-static-token",
        )
        hook._client = httpx.Client(transport=httpx.MockTransport(self), timeout=5.0)
        return hook

    async def arun(self, call: Callable[[DpcHook], Any]) -> Any:
        """``call`` on an ``async with hook:`` block whose httpx client talks to this API."""
        hook = self.hook()
        hook.async_transport = "httpx"  # type: ignore[misc]
        real = httpx.AsyncClient

        def offline_client(**options: Any) -> httpx.AsyncClient:
            return real(transport=httpx.MockTransport(self), timeout=5.0)

        with unittest.mock.patch.object(httpx, "AsyncClient", offline_client):
            async with hook:
                return await call(hook)


def _answer(status: int, body: Any) -> httpx.Response:
    """A JSON answer as a server sends it: ASCII, lone surrogates escaped (``\\ud800``)."""
    return httpx.Response(status, content=json.dumps(body).encode(), headers={"content-type": "application/json"})


def _page(results: list[Any]) -> dict[str, Any]:
    return {"page": 0, "size": 100, "total": len(results), "results": results}


def with_hook(task: Any, api: OfflineApi) -> Any:
    task.__dict__["hook"] = api.hook()  # the tasks' hook is a cached property
    return task


# ---- strategies ----------------------------------------------------------------------------------

# Any text, lone surrogates included: a JSON file may hold "\ud800", and json.loads returns it.
any_text = st.text(st.characters(codec=None, exclude_categories=[]), max_size=20)
odd_text = st.text(st.sampled_from(["\ud800", "\udfff", "\x00", "\u202e", "\ufeff", "a", "/", "é", " "]), max_size=6)
texts = st.one_of(st.text(max_size=20), any_text, odd_text, st.sampled_from(["", " ", "\t\n", "null", "0"]))
# What json.loads gives for NaN, Infinity and -Infinity.
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.sampled_from([float("nan"), float("inf")]), texts
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=6,
)
path_like = st.lists(
    st.sampled_from(
        ["..", ".", "/", "%2e%2e", "%2F", "\\", "?", "#", "&", "projects", "status", "x", "3dda0acf", " ", "\x00", "é"]
    ),
    min_size=1,
    max_size=6,
).map("".join)
uuid_forms = st.uuids().flatmap(
    lambda u: st.sampled_from(
        [str(u), str(u).upper(), u.hex, "{" + str(u) + "}", "urn:uuid:" + str(u), f" {u} ", f"{u}/../x", f"{u}?a=1"]
    )
)
ids = st.one_of(uuid_forms, path_like, texts, st.integers().map(str), st.just(PROJECT_ID))
names = st.one_of(texts, path_like, st.sampled_from(["ops", "OPS", "ops ", " ops"]))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key))


@st.composite
def mutated_definitions(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """The guide's definition with one to three fields deleted, blanked or replaced by any JSON value."""
    body = copy.deepcopy(GUIDE_BODY)
    changed = []
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(body))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        how = draw(st.sampled_from(["delete", "replace", "blank", "retag", "scalar", "alike", "alike", "alike"]))
        if how == "delete":
            del parent[path[-1]]
        elif how == "blank":
            parent[path[-1]] = draw(st.sampled_from(["", "  ", None]))
        elif how == "alike":  # a value of the same JSON type, so the definition may stay valid
            old = parent[path[-1]]
            if isinstance(old, str):
                parent[path[-1]] = draw(texts.filter(str.strip))
            elif isinstance(old, bool) or not isinstance(old, int | float):
                parent[path[-1]] = draw(json_values)
            else:
                parent[path[-1]] = draw(st.one_of(st.integers(), st.floats()))
        elif how == "scalar":
            parent[path[-1]] = draw(json_scalars)
        elif how == "retag":
            parent[path[-1]] = draw(st.sampled_from(["postgres", "mysql", "oracle", "s3", "abs", "snowflake", "x"]))
        else:
            parent[path[-1]] = draw(json_values)
        changed.append(path)
    return body, changed


# ---- checks --------------------------------------------------------------------------------------


def _dotted(path: tuple[Any, ...]) -> str:
    return ".".join(map(str, path))


def _related(field: str, path: str) -> bool:
    parent = path.rpartition(".")[0]
    return (
        field == path
        or field.startswith(path + ".")
        or path.startswith(field + ".")
        or (not parent or field.startswith(parent + "."))
    )


def check_rejection(error: DpcApiError, *, fields: tuple[str, ...] = ()) -> None:
    """The rejection lists at least one error, each naming a field and saying what is wrong with it."""
    assert error.errors, f"no field errors in {error!r}"
    for item in error.errors:
        assert item.field, f"unnamed field in {item!r}"
        assert FIELD_PATH.match(item.field), f"odd field in {item!r}"
        assert item.message.strip(), f"empty message in {item!r}"
    if fields:
        assert any(item.field in fields for item in error.errors), (fields, error.errors)


def attempt(call: Callable[[], Any]) -> tuple[Any, DpcError | None]:
    """``call``'s result, or the provider error it raised; anything else escapes and fails the test."""
    try:
        return call(), None
    except DpcError as exc:
        return None, exc


def check_definition(body: Any, changed: list[tuple[Any, ...]]) -> None:
    api = OfflineApi()
    accepted, exc = attempt(lambda: validate_definition(body))
    if exc is not None:
        assert isinstance(exc, DpcValidationError), exc
        check_rejection(exc)
        assert str(exc).startswith("invalid streaming pipeline definition: ")
        paths = [_dotted(p) for p in changed]
        assert any(_related(item.field, path) for item in exc.errors for path in paths), (paths, exc.errors)
        with pytest.raises(DpcValidationError):
            api.hook().create_streaming_pipeline(PROJECT_ID, body)
        task = with_hook(DpcCreateStreamingPipelineOperator(task_id="c", project_id=PROJECT_ID, definition=body), api)
        with pytest.raises(DpcValidationError):
            task.execute({"ti": RecordingTI()})
        assert api.sent == [], "a refused definition was sent"
        return
    created = api.hook().create_streaming_pipeline(PROJECT_ID, accepted)
    assert created.name == accepted.name
    assert [r.method for r in api.sent] == ["POST"]


# ---- definitions ---------------------------------------------------------------------------------


def _definitions(config: pytest.Config, case: tuple[dict[str, Any], list[tuple[Any, ...]]]) -> None:
    count(config, "property: definitions")
    check_definition(*case)


@given(case=mutated_definitions())
@settings(max_examples=DEFAULT)
def test_definitions(pytestconfig: pytest.Config, case: Any) -> None:
    _definitions(pytestconfig, case)


@pytest.mark.reliability_heavy
@given(case=mutated_definitions())
@settings(max_examples=HEAVY)
def test_definitions_heavy(pytestconfig: pytest.Config, case: Any) -> None:
    _definitions(pytestconfig, case)


def _raw_definitions(config: pytest.Config, value: Any) -> None:
    """Anything at all as a definition, as a value or as the JSON text of a rendered template."""
    count(config, "property: definitions")
    api = OfflineApi()
    for given_value in (value, json.dumps(value, allow_nan=True) if not isinstance(value, str) else value):
        task = with_hook(
            DpcCreateStreamingPipelineOperator(task_id="c", project_id=PROJECT_ID, definition=given_value), api
        )
        with pytest.raises(DpcValidationError) as info:
            task.execute({"ti": RecordingTI()})
        assert info.value.errors
        assert all(item.message for item in info.value.errors)
    assert api.sent == []


@given(value=json_values)
@settings(max_examples=DEFAULT // 3)
def test_arbitrary_definitions(pytestconfig: pytest.Config, value: Any) -> None:
    _raw_definitions(pytestconfig, value)


@pytest.mark.reliability_heavy
@given(value=json_values)
@settings(max_examples=HEAVY // 4)
def test_arbitrary_definitions_heavy(pytestconfig: pytest.Config, value: Any) -> None:
    _raw_definitions(pytestconfig, value)


# ---- ids -----------------------------------------------------------------------------------------


def _canonical(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        return None


def _arun(api: OfflineApi, call: Callable[[DpcHook], Any]) -> Any:
    return asyncio.run(api.arun(call))


HOOK_CALLS: dict[str, tuple[bool, Callable[[OfflineApi, Any, Any], Any]]] = {
    # name: (uses the pipeline id, call)
    "get_status": (True, lambda api, p, q: api.hook().get_status(p, q)),
    "aget_status": (True, lambda api, p, q: _arun(api, lambda h: h.aget_status(p, q))),
    "get_streaming_pipeline": (True, lambda api, p, q: api.hook().get_streaming_pipeline(p, q)),
    "send_command": (True, lambda api, p, q: api.hook().send_command(p, q, "START")),
    "delete_streaming_pipeline": (True, lambda api, p, q: api.hook().delete_streaming_pipeline(p, q)),
    "update_streaming_pipeline": (True, lambda api, p, q: api.hook().update_streaming_pipeline(p, q, GUIDE_BODY)),
    "list_streaming_pipelines": (False, lambda api, p, q: api.hook().list_streaming_pipelines(p)),
    "list_environments": (False, lambda api, p, q: api.hook().list_environments(p)),
    "create_streaming_pipeline": (False, lambda api, p, q: api.hook().create_streaming_pipeline(p, GUIDE_BODY)),
}


def _task_call(kind: str, project_id: Any, pipeline_id: Any) -> Callable[[OfflineApi], Any]:
    def run(api: OfflineApi) -> Any:
        common = {"project_id": project_id, "pipeline_id": pipeline_id}
        task: Any
        if kind == "start":
            task = DpcStartStreamingPipelineOperator(task_id="s", wait_for_streaming=False, **common)
        elif kind == "stop":
            task = DpcStopStreamingPipelineOperator(task_id="t", wait_for_stopped=False, **common)
        elif kind == "delete":
            task = DpcDeleteStreamingPipelineOperator(task_id="d", **common)
        else:
            task = DpcStreamingPipelineSensor(task_id="w", target_status="NOT_RUNNING", failure_statuses=(), **common)
        return with_hook(task, api).execute({"ti": RecordingTI()})

    return run


def _ids(config: pytest.Config, method: str, project_id: Any, pipeline_id: Any) -> None:
    count(config, "property: ids")
    api = OfflineApi()
    project, pipeline = _canonical(project_id), _canonical(pipeline_id)
    if method in HOOK_CALLS:
        uses_pipeline, call = HOOK_CALLS[method]
        run: Callable[[], Any] = lambda: call(api, project_id, pipeline_id)  # noqa: E731
    else:
        uses_pipeline, task_call = True, _task_call(method, project_id, pipeline_id)
        run = lambda: task_call(api)  # noqa: E731
        if not project_id or not pipeline_id:  # the constructors refuse what is missing
            with pytest.raises(ValueError, match=r"project_id|pipeline_id"):
                run()
            assert api.sent == []
            return
    wanted = "project_id" if project is None else "pipeline_id" if uses_pipeline and pipeline is None else None
    for text in (project_id, pipeline_id if uses_pipeline else ""):
        if isinstance(text, str) and any(c in text for c in "/\\?#%") and wanted is None:
            raise AssertionError(f"a path-like id was accepted: {text!r}")
    if wanted is None:
        run()
        assert project is not None
        assert api.sent, "nothing was sent"
        for request in api.sent:
            assert project in request.url.path
            if uses_pipeline and request.url.path.count("/") > 5:
                assert pipeline is not None
                assert pipeline in request.url.path
        return
    with pytest.raises(DpcValidationError) as info:
        run()
    check_rejection(info.value, fields=(wanted,))
    assert wanted in str(info.value)
    assert api.sent == [], f"{method} sent a request for a refused id"


id_methods = st.sampled_from([*HOOK_CALLS, "start", "stop", "delete", "sensor"])


@given(method=id_methods, project_id=st.one_of(st.just(PROJECT_ID), ids), pipeline_id=ids)
@settings(max_examples=DEFAULT)
def test_ids(pytestconfig: pytest.Config, method: str, project_id: Any, pipeline_id: Any) -> None:
    _ids(pytestconfig, method, project_id, pipeline_id)


@pytest.mark.reliability_heavy
@given(method=id_methods, project_id=st.one_of(st.just(PROJECT_ID), ids), pipeline_id=ids)
@settings(max_examples=HEAVY)
def test_ids_heavy(pytestconfig: pytest.Config, method: str, project_id: Any, pipeline_id: Any) -> None:
    _ids(pytestconfig, method, project_id, pipeline_id)


# ---- names ---------------------------------------------------------------------------------------


def _names(config: pytest.Config, kind: str, name: str, existing: list[str]) -> None:
    count(config, "property: names")
    api = OfflineApi(pipelines=existing, projects=["Test-project", *existing])
    hook = api.hook()
    # As the API returns them: JSON joins a surrogate pair written as two code points into one.
    returned = [json.loads(json.dumps(n)) for n in existing]
    matches = returned.count(name) + (kind == "project" and name == "Test-project")

    def resolve() -> Any:
        if kind == "project":
            return hook.resolve_project_id(project_name=name)
        if kind == "pipeline":
            return hook.resolve_pipeline_id(PROJECT_ID, pipeline_name=name)
        task = DpcStartStreamingPipelineOperator(
            task_id="s", project_id=PROJECT_ID, pipeline_name=name, wait_for_streaming=False
        )
        return with_hook(task, api).execute({"ti": RecordingTI()})

    found, exc = attempt(resolve)
    if isinstance(exc, DpcValidationError):
        assert not name, f"{name!r} was refused: {exc}"
        check_rejection(exc)
    elif isinstance(exc, DpcNotFoundError | DpcConflictError):
        assert matches != 1, f"{name!r} names exactly one, yet {exc}"
        check_rejection(exc, fields=(f"{'project' if kind == 'project' else 'pipeline'}_name",))
        assert repr(name)[1:-1] in str(exc) or name in str(exc)
    elif exc is not None:
        raise AssertionError(f"unexpected {type(exc).__name__}: {exc}") from exc
    else:
        assert matches == 1, f"{name!r} resolved to {found} though {matches} carry it"
        assert _canonical(found) is not None
    for request in api.sent:  # a name is looked up, never put in a URL
        assert request.method in ("GET", "POST")
        assert SAFE_PATH.match(request.url.path)


name_kinds = st.sampled_from(["project", "pipeline", "start"])
existing_names = st.lists(names, max_size=4)


@given(kind=name_kinds, name=names, existing=existing_names)
@settings(max_examples=DEFAULT)
def test_names(pytestconfig: pytest.Config, kind: str, name: str, existing: list[str]) -> None:
    _names(pytestconfig, kind, name, existing)


@pytest.mark.reliability_heavy
@given(kind=name_kinds, name=names, existing=existing_names)
@settings(max_examples=HEAVY)
def test_names_heavy(pytestconfig: pytest.Config, kind: str, name: str, existing: list[str]) -> None:
    _names(pytestconfig, kind, name, existing)
