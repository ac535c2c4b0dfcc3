"""RFC 7807 problem answers and strict JSON request bodies.

Every error the emulator gives is a problem document like the real API's, and every way a body can
be wrong (wrong media type, not JSON, too deep, not an object, NaN, huge) ends in a 4xx problem
rather than an exception, so fuzzing the emulator finds client bugs and not emulator crashes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from airflow_provider_dpc.models import FieldError

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ApiJSONResponse",
    "ProblemError",
    "api_path",
    "problem_response",
    "problem_type",
    "read_json_object",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://api.matillion.com/problems"
MAX_BODY_BYTES = 1_048_576
MAX_DEPTH = 64
_API_PREFIX = "/dpc"


class ApiJSONResponse(JSONResponse):
    """JSON rendered as ASCII, so strings holding lone surrogates echo back instead of failing."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class ProblemError(Exception):
    """Raised by a handler to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: Iterable[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})


def api_path(request: Request) -> str:
    """The request path as the API reports it in ``instance``: without the ``/dpc`` base."""
    path = request.url.path
    return path[len(_API_PREFIX) :] if path.startswith(_API_PREFIX + "/") else path


def problem_response(
    status: int,
    detail: str,
    instance: str,
    *,
    errors: Iterable[FieldError] = (),
    error_style: str = "validation-errors",
    headers: Mapping[str, str] | None = None,
) -> ApiJSONResponse:
    """A problem answer as the API reference shows it (``type``, ``title``, ``status``, ``detail``,
    ``instance``); field errors go in ``validation-errors`` or ``violations`` per ``error_style``."""
    title = _title(status)
    body: dict[str, Any] = {
        "type": problem_type(status),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    found = list(errors)
    if found:
        if error_style == "violations":
            body["violations"] = [str(error) for error in found]
        else:
            body["validation-errors"] = [{"field": e.field, "message": e.message} for e in found]
    return ApiJSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE)


def problem_type(status: int) -> str:
    """The reference's problem ``type`` URI for a status, e.g. ``.../problems/bad-request`` for 400."""
    slug = "-".join(_title(status).lower().replace("'", "").split())
    return f"{PROBLEM_TYPE_BASE}/{slug}"


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a :class:`ProblemError` saying what is wrong with it."""
    if not _is_json(request.headers.get("content-type", "")):
        raise ProblemError(415, "The request body must be sent as application/json")
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > MAX_BODY_BYTES:
            raise ProblemError(413, f"The request body must not exceed {MAX_BODY_BYTES} bytes")
    request._body = bytes(raw)  # kept, so FastAPI reads the same body after this check
    try:
        data = json.loads(bytes(raw), parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise ProblemError(400, f"The request body is not valid JSON: {_short(exc)}") from None
    if _depth(data) > MAX_DEPTH:
        raise ProblemError(400, f"The request body is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        raise ProblemError(400, f"The request body must be a JSON object, not {_json_kind(data)}")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _short(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _depth(data: Any) -> int:
    """Nesting depth, found without recursion so a deep document cannot exhaust the stack."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _json_kind(data: Any) -> str:
    if isinstance(data, list):
        return "an array"
    if isinstance(data, str):
        return "a string"
    if isinstance(data, bool):
        return "a boolean"
    if data is None:
        return "null"
    return "a number"
