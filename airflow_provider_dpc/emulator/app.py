"""The emulator's Starlette application: routes, problem answers and the error backstop.

Every error, including unknown paths and wrong methods, is answered as an RFC 7807 problem. A
catch-all handler turns any unexpected exception into a 500 problem; it is a backstop only, since
every handler validates its input and answers client mistakes with 4xx problems.
"""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_dpc.emulator.admin import admin_routes
from airflow_provider_dpc.emulator.api import api_routes
from airflow_provider_dpc.emulator.config import EmulatorConfig
from airflow_provider_dpc.emulator.middleware import FaultMiddleware
from airflow_provider_dpc.emulator.oauth import token_routes
from airflow_provider_dpc.emulator.openapi import build_openapi
from airflow_provider_dpc.emulator.problems import ApiJSONResponse, ProblemError, api_path, problem_response
from airflow_provider_dpc.emulator.runtime import Emulator
from airflow_provider_dpc.emulator.state import Clock

__all__ = ["OPENAPI_PATH", "create_app"]

OPENAPI_PATH = "/dpc/openapi.json"


def _error_style(request: Request) -> str:
    emulator: Emulator = request.app.state.emulator
    return emulator.config.error_style


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status,
        exc.detail,
        api_path(request),
        errors=exc.errors,
        error_style=_error_style(request),
        headers=exc.headers,
    )


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        detail = f"No route matches {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    else:
        detail = str(exc.detail)
    return problem_response(exc.status_code, detail, api_path(request), headers=exc.headers)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    return problem_response(
        500, f"The emulator failed unexpectedly ({type(exc).__name__}); this is a bug", api_path(request)
    )


async def _openapi(request: Request) -> Response:
    return ApiJSONResponse(build_openapi(str(request.base_url)))


def create_app(config: EmulatorConfig | None = None, *, clock: Clock = time.monotonic) -> Starlette:
    """The emulator as an ASGI app; ``clock`` lets tests drive the status machine without sleeping."""
    routes: list[Route] = [
        *api_routes(),
        *token_routes(),
        Route(OPENAPI_PATH, _openapi, methods=["GET"]),
        *admin_routes(),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(FaultMiddleware, routes=routes)],
        exception_handlers={ProblemError: _on_problem, HTTPException: _on_http_error, Exception: _on_unexpected},
    )
    app.state.emulator = Emulator.start(config or EmulatorConfig(), clock)
    return app
