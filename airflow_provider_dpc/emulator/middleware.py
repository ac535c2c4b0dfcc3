"""Raw ASGI middleware that counts requests, enforces the account's rate limit and applies injected faults.

It is raw ASGI, not ``BaseHTTPMiddleware``, because breaking a connection mid-answer needs control of
the individual ``http.response.*`` messages: it announces a ``Content-Length`` longer than the body
it sends, then returns, and the server closes the connection, so a client sees the same broken
transfer as from a network failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_provider_dpc.emulator.admin import ADMIN_PREFIX
from airflow_provider_dpc.emulator.api import API_PREFIX
from airflow_provider_dpc.emulator.faults import Fault, FaultAction
from airflow_provider_dpc.emulator.oauth import TOKEN_PATH
from airflow_provider_dpc.emulator.problems import problem_response
from airflow_provider_dpc.emulator.runtime import Emulator

__all__ = ["FaultMiddleware"]

_MISSING_BYTES = 100  # announced but never sent when a connection is dropped


def _instance(path: str) -> str:
    """A problem's ``instance``: an API path as the API names it, the token endpoint's as it is."""
    return path[len("/dpc") :] if path.startswith(API_PREFIX + "/") else path


def _format_seconds(seconds: float) -> str:
    return f"{seconds:g}"


class FaultMiddleware:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        emulator: Emulator = scope["app"].state.emulator
        emulator.state.requests[f"{scope['method']} {self._template(scope)}"] += 1
        faults = emulator.faults
        if not (path.startswith(API_PREFIX + "/") or (path == TOKEN_PATH and faults.applies_to_token_endpoint())):
            await self.app(scope, receive, send)
            return
        # The account's limit counts token grants too where faults reach the token endpoint.
        if await self._over_limit(emulator, scope, receive, send):
            return
        delay = faults.latency()
        if delay:
            await asyncio.sleep(delay)
        action = faults.pick()
        if action is None:
            await self.app(scope, receive, send)
        elif action.fault in (Fault.RATE_LIMIT, Fault.SERVER_ERROR):
            await self._refuse(action, scope, receive, send)
        elif action.fault is Fault.DROP_CONNECTION:
            await self._drop_connection(scope, receive, send)
        else:
            await self._malformed_json(scope, receive, send)

    async def _over_limit(self, emulator: Emulator, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer 429 when the account's limit is used up; True when it did."""
        limiter = emulator.state.limiter
        wait = limiter.admit(emulator.state.clock())
        if wait is None:
            return False
        retry_after = limiter.retry_after(wait)
        response = problem_response(
            429,
            f"Rate limit of {limiter.limit} requests per {limiter.window:g} seconds exceeded; "
            f"retry after {retry_after} seconds",
            _instance(scope["path"]),
            headers={"Retry-After": retry_after},
        )
        await response(scope, receive, send)
        return True

    def _template(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return str(getattr(route, "path", "(unmatched)"))
        return "(unmatched)"

    async def _refuse(self, action: FaultAction, scope: Scope, receive: Receive, send: Send) -> None:
        instance = _instance(scope["path"])
        if action.fault is Fault.RATE_LIMIT:
            if action.retry_after is None:
                response = problem_response(429, "Rate limit exceeded", instance)
            else:
                retry_after = _format_seconds(action.retry_after)
                response = problem_response(
                    429,
                    f"Rate limit exceeded; retry after {retry_after} seconds",
                    instance,
                    headers={"Retry-After": retry_after},
                )
        else:
            response = problem_response(action.status, "Injected server error; try again later", instance)
        await response(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[Message, bytes]:
        """Run the call and keep its answer instead of sending it."""
        start: Message = {"type": "http.response.start", "status": 500, "headers": []}
        body = bytearray()

        async def keep(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, keep)
        return start, bytes(body)

    async def _drop_connection(self, scope: Scope, receive: Receive, send: Send) -> None:
        start, body = await self._answer(scope, receive)
        status = start["status"] if body else 200
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body) + _MISSING_BYTES).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        # Returning before the announced length was sent makes the server close the connection.

    async def _malformed_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        _, body = await self._answer(scope, receive)
        truncated = body[: len(body) // 2] if len(body) > 1 else b'{"status": '
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(truncated)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": truncated})
