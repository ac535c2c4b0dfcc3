"""The OAuth2 client-credentials token endpoint, ``POST /oauth/dpc/token``.

Mirrors Matillion's identity service: form-encoded ``grant_type=client_credentials``, client id and
secret (in the form or as HTTP Basic) and ``audience=https://api.matillion.com``. Errors use the
OAuth2 shape ``{"error", "error_description"}`` rather than problem documents, as the real one does.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from airflow_provider_dpc.emulator.problems import ApiJSONResponse
from airflow_provider_dpc.emulator.runtime import Emulator

__all__ = ["AUDIENCE", "TOKEN_PATH", "router"]

TOKEN_PATH = "/oauth/dpc/token"
AUDIENCE = "https://api.matillion.com"
_MAX_FORM_BYTES = 65_536
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class _OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _error_response(exc: _OAuthError) -> Response:
    headers = dict(_NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="dpc-emulator"'
    return ApiJSONResponse(
        {"error": exc.error, "error_description": exc.description}, status_code=exc.status, headers=headers
    )


async def _form(request: Request) -> dict[str, str]:
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > _MAX_FORM_BYTES:
            raise _OAuthError(400, "invalid_request", "the request body is too large")
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    text = bytes(raw).decode("utf-8", errors="replace")
    if media_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(text, keep_blank_values=True))
    if media_type == "application/json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict):
            return {str(k): v for k, v in data.items() if isinstance(v, str)}
        raise _OAuthError(400, "invalid_request", "the request body must be a JSON object")
    raise _OAuthError(400, "invalid_request", "the request body must be application/x-www-form-urlencoded")


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _OAuthError(401, "invalid_client", "the Basic authorization header is malformed") from None
    client_id, sep, client_secret = decoded.partition(":")
    if not sep:
        raise _OAuthError(401, "invalid_client", "the Basic authorization header is malformed")
    return unquote_plus(client_id), unquote_plus(client_secret)


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def _check_grant(request: Request, form: dict[str, str], emulator: Emulator) -> None:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise _OAuthError(400, "invalid_request", "grant_type is required")
    if grant_type != "client_credentials":
        raise _OAuthError(400, "unsupported_grant_type", "only grant_type=client_credentials is supported")
    credentials = _basic_credentials(request) or (form.get("client_id", ""), form.get("client_secret", ""))
    client_id, client_secret = credentials
    config = emulator.config
    # Both comparisons always run, so the answer time does not tell which one failed.
    id_ok = _same(client_id, config.client_id)
    secret_ok = _same(client_secret, config.client_secret)
    if not (id_ok and secret_ok):
        raise _OAuthError(401, "invalid_client", "client authentication failed")
    audience = form.get("audience")
    if audience != AUDIENCE:
        raise _OAuthError(
            400, "invalid_request", f"audience is {'wrong' if audience else 'missing'}; it must be {AUDIENCE}"
        )


async def issue_token(request: Request) -> Response:
    emulator: Emulator = request.app.state.emulator
    try:
        form = await _form(request)
        _check_grant(request, form, emulator)
    except _OAuthError as exc:
        return _error_response(exc)
    ttl = emulator.token_ttl()
    token = emulator.state.issue_token(ttl)
    return ApiJSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": round(ttl)}, headers=_NO_STORE)


class TokenAnswer(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int


class OAuthErrorAnswer(BaseModel):
    error: str
    error_description: str | None = None


# The form is read by hand (see _form), so its fields are declared for the document here.
_TOKEN_FORM = {
    "type": "object",
    "properties": {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
        "audience": {"type": "string", "enum": [AUDIENCE]},
    },
    "required": ["grant_type", "audience"],
}

router = APIRouter()
router.add_api_route(
    TOKEN_PATH,
    issue_token,
    methods=["POST"],
    response_model=TokenAnswer,
    responses={
        400: {"model": OAuthErrorAnswer, "description": "Malformed request"},
        401: {"model": OAuthErrorAnswer, "description": "Client authentication failed"},
    },
    summary="OAuth2 client-credentials token",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": _TOKEN_FORM}},
        }
    },
)
