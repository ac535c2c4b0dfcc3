"""The emulator's FastAPI application: routes, problem answers and the error backstop.

Every error, including unknown paths, wrong methods and what FastAPI's request validation refuses,
is answered as an RFC 7807 problem in the API's dialect (FastAPI's own 422 never reaches a client).
A catch-all handler turns any unexpected exception into a 500 problem; it is a backstop only.
The OpenAPI document at ``GET /dpc/openapi.json`` is FastAPI's, generated from the routes.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from airflow_provider_dpc.emulator import admin, api, oauth
from airflow_provider_dpc.emulator.config import EmulatorConfig
from airflow_provider_dpc.emulator.middleware import FaultMiddleware
from airflow_provider_dpc.emulator.problems import ApiJSONResponse, ProblemError, api_path, problem_response
from airflow_provider_dpc.emulator.runtime import Emulator
from airflow_provider_dpc.emulator.state import Clock
from airflow_provider_dpc.models import FieldError, field_errors

__all__ = ["OPENAPI_PATH", "create_app"]

OPENAPI_PATH = "/dpc/openapi.json"


def _error_style(request: Request) -> str:
    emulator: Emulator = request.app.state.emulator
    return emulator.config.error_style


def _problem(request: Request, error: ProblemError) -> Response:
    return problem_response(
        error.status,
        error.detail,
        api_path(request),
        errors=error.errors,
        error_style=_error_style(request),
        headers=error.headers,
    )


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return _problem(request, exc)


def _query_problem(name: str, value: Any) -> ProblemError:
    if name in api.PAGING:
        low, high = api.PAGING[name]
        message = f"must be an integer from {low} to {high}"
    else:
        message = "must be an ISO 8601 date and time" if name in ("startedAfter", "startedBefore") else "is not valid"
    shown = str(value) if len(str(value)) <= 80 else str(value)[:77] + "..."
    return ProblemError(400, f"Query parameter '{name}' {message}, got '{shown}'", errors=[FieldError(name, message)])


def _body_problem(request: Request, errors: Sequence[Mapping[str, Any]]) -> ProblemError:
    route = request.scope.get("route")
    detail = api.INVALID_BODY.get(getattr(route, "name", ""), "There are validation errors with the request body")
    # FastAPI names the body ("body", <parameter>) only when a route has several body parameters.
    found = [{**error, "loc": tuple(error["loc"])[1:]} for error in errors]
    return ProblemError(400, detail, errors=field_errors(found))


async def _on_invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    query = [error for error in errors if tuple(error["loc"])[:1] == ("query",)]
    if query:
        return _problem(request, _query_problem(str(query[0]["loc"][1]), query[0].get("input")))
    return _problem(request, _body_problem(request, [e for e in errors if tuple(e["loc"])[:1] == ("body",)]))


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path: the 405's ``Allow``, as one route per path would."""
    allowed: list[str] = []
    for route in request.app.router.routes:
        methods = getattr(route, "methods", None) or ()
        if methods and route.matches({**request.scope, "method": next(iter(methods))})[0] is Match.FULL:
            allowed.extend(m for m in methods if m not in allowed)
    if "GET" in allowed and "HEAD" not in allowed:
        allowed.append("HEAD")
    return allowed


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        detail = f"No route matches {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        headers["Allow"] = ", ".join(_allowed_methods(request))
    else:
        detail = str(exc.detail)
    return problem_response(exc.status_code, detail, api_path(request), headers=headers)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    return problem_response(
        500, f"The emulator failed unexpectedly ({type(exc).__name__}); this is a bug", api_path(request)
    )


class HeadAsGet:
    """Serve HEAD like GET (the server sends no body), without listing HEAD in the document."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}
        await self.app(scope, receive, send)


def create_app(config: EmulatorConfig | None = None, *, clock: Clock = time.monotonic) -> FastAPI:
    """The emulator as an ASGI app; ``clock`` lets tests drive the status machine without sleeping."""
    app = FastAPI(
        title="Matillion DPC streaming pipelines API (emulator)",
        version="1",
        description="The emulated Data Productivity Cloud API; see airflow_provider_dpc.emulator.",
        openapi_url=None,  # served below, with the server's own address
        docs_url=None,
        redoc_url=None,
        separate_input_output_schemas=False,
        exception_handlers={
            ProblemError: _on_problem,
            RequestValidationError: _on_invalid_request,
            HTTPException: _on_http_error,
            Exception: _on_unexpected,
        },
    )
    app.include_router(api.router)
    app.include_router(oauth.router)
    app.include_router(admin.router)

    @app.get(OPENAPI_PATH, include_in_schema=False)
    async def openapi(request: Request) -> Response:
        with warnings.catch_warnings():
            # FastAPI names each body parameter with an alias that pydantic 2.12+ warns has no effect
            # on a model type; the generated document is right all the same.
            warnings.filterwarnings("ignore", message="The 'alias' attribute", category=UserWarning)
            generated = app.openapi()
        return ApiJSONResponse({**generated, "servers": [{"url": str(request.base_url).rstrip("/")}]})

    # Outermost first: faults see HEAD as HEAD (and count it so), routing sees GET.
    app.user_middleware = [Middleware(FaultMiddleware, routes=app.router.routes), Middleware(HeadAsGet)]
    app.state.emulator = Emulator.start(config or EmulatorConfig(), clock)
    return app
