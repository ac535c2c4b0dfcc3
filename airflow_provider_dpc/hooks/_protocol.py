"""The DPC API's wire protocol without I/O, shared by the hook's sync and async paths.

Requests are described as :class:`Call` objects and every answer is judged by :func:`judge`, so
both paths build the same requests, parse the same bodies and retry by the same rules; they differ
only in how they send and sleep.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import httpx
from pydantic import ValidationError

from airflow_provider_dpc import __version__
from airflow_provider_dpc.connection_ui import (
    CONN_TYPE,
    DEFAULT_APP_URL,
    DEFAULT_AUDIENCE,
    DEFAULT_REGION,
    DEFAULT_TOKEN_URL,
)
from airflow_provider_dpc.exceptions import (
    DpcApiError,
    DpcAuthenticationError,
    DpcTransportError,
    DpcValidationError,
    FieldError,
)
from airflow_provider_dpc.hooks._budget import DOCUMENTED_LIMIT
from airflow_provider_dpc.hooks._retry import RetryPolicy
from airflow_provider_dpc.models import Problem

T = TypeVar("T")

USER_AGENT = f"airflow-provider-dpc/{__version__}"
RETRYABLE_STATUSES = frozenset({502, 503, 504})
# Errors raised before the request reached the server: always safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class ConnectionSettings:
    """What the hook needs from an Airflow connection, checked once."""

    conn_id: str
    base_url: str
    token_url: str
    audience: str
    client_id: str | None = field(default=None)
    client_secret: str | None = field(default=None, repr=False)
    static_token: str | None = field(default=None, repr=False)
    account_id: str | None = None
    app_url: str = DEFAULT_APP_URL
    pipeline_url_template: str | None = None
    timeout: float = 30.0
    verify: bool | str = True
    #: The account's API budget this process keeps to (see ``hooks/_budget.py``).
    requests_per_minute: float = DOCUMENTED_LIMIT

    @classmethod
    def from_connection(cls, conn: Any, extra: Mapping[str, Any] | None = None) -> ConnectionSettings:
        """Settings from an Airflow connection; ``extra`` is its extra when the caller has read it
        already (an event loop must, see ``_compat.aextra_dejson``), else ``conn.extra_dejson``."""
        if extra is None:
            extra = conn.extra_dejson or {}
        # Airflow 2's form may store extras as ``extra__matillion_dpc__<name>``.
        extra = {key.removeprefix(f"extra__{CONN_TYPE}__"): value for key, value in extra.items()}
        conn_id = conn.conn_id
        region = str(extra.get("region") or DEFAULT_REGION).strip()
        host = (conn.host or "").strip() or f"https://{region}.api.matillion.com/dpc"
        if "://" not in host:
            host = f"https://{host}"
        static_token = _text(extra.get("token"))
        client_id, client_secret = _text(conn.login), _text(conn.password)
        if not static_token and not (client_id and client_secret):
            raise DpcValidationError(
                f"connection {conn_id!r} needs a client id (login) and client secret (password), "
                "or a ready bearer token in extra 'token'",
                errors=[FieldError("login", "must not be empty"), FieldError("password", "must not be empty")],
            )
        return cls(
            conn_id=conn_id,
            base_url=host.rstrip("/"),
            # ``oauth_url``: Airflow masks every extra whose key holds "token", so ``token_url`` (still
            # read) showed as *** in the form and in every message naming the endpoint.
            token_url=_text(extra.get("oauth_url")) or _text(extra.get("token_url")) or DEFAULT_TOKEN_URL,
            audience=_text(extra.get("audience")) or DEFAULT_AUDIENCE,
            client_id=client_id,
            client_secret=client_secret,
            static_token=static_token,
            account_id=_text(extra.get("account_id")),
            app_url=_text(extra.get("app_url")) or DEFAULT_APP_URL,
            pipeline_url_template=_url_template(extra.get("pipeline_url_template"), conn_id),
            timeout=_number(extra.get("timeout"), "timeout", conn_id, default=30.0),
            requests_per_minute=_number(
                extra.get("requests_per_minute"), "requests_per_minute", conn_id, default=DOCUMENTED_LIMIT
            ),
            verify=_verify(extra.get("verify")),
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values to mask wherever Airflow writes logs."""
        return tuple(secret for secret in (self.client_secret, self.static_token) if secret)

    @property
    def token_key(self) -> tuple[str, str]:
        return (self.token_url, self.client_id or "")

    @cached_property
    def account_key(self) -> tuple[str, str, str]:
        """Who the API counts requests against: the client id, or a digest of a ready token."""
        digest = hashlib.sha256(self.static_token.encode()).hexdigest()[:16] if self.static_token else ""
        return (self.base_url, self.client_id or "", digest)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client`` and ``httpx.AsyncClient`` alike."""
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.account_id:
            headers["account-id"] = self.account_id
        return {
            "headers": headers,
            "timeout": httpx.Timeout(self.timeout),
            "verify": ssl_context(self.verify),
            "trust_env": True,
            "follow_redirects": False,
        }


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _number(value: Any, name: str, conn_id: str, *, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number <= 0:
        raise DpcValidationError(
            f"connection {conn_id!r}: extra {name!r} must be a positive number, got {value!r}",
            errors=[FieldError(f"extra.{name}", "must be a positive number")],
        )
    return number


def _url_template(value: Any, conn_id: str) -> str | None:
    from airflow_provider_dpc.links.dpc import template_problem

    template = _text(value)
    if template is None:
        return None
    problem = template_problem(template)
    if problem is not None:
        raise DpcValidationError(
            f"connection {conn_id!r}: extra 'pipeline_url_template' {problem}, got {template!r}",
            errors=[FieldError("extra.pipeline_url_template", problem)],
        )
    return template


def _verify(value: Any) -> bool | str:
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
        return False
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", ""):
        return True
    return value if isinstance(value, str) else value is not False


@lru_cache(maxsize=8)
def ssl_context(verify: bool | str) -> ssl.SSLContext:
    # Built once per process: a fresh context per client costs tens of milliseconds, which adds up
    # when a triggerer runs a thousand triggers.
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API operation: its request and how to read its successful answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    form: Mapping[str, str] | None = field(default=None, repr=False)  # the token grant's client secret
    # False for a create: after a 5xx or a broken connection the caller must look before it
    # sends again, since the first request may have succeeded.
    idempotent: bool = True
    authenticated: bool = True
    url: str | None = None  # absolute URL (the token endpoint); else base URL + path

    def target(self, base_url: str) -> str:
        """The absolute URL to send the call to."""
        return self.url or base_url + self.path

    def build(self, client: httpx.Client | httpx.AsyncClient, base_url: str, token: str | None) -> httpx.Request:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return client.build_request(
            self.method,
            self.target(base_url),
            params=self.params,
            json=self.json,
            data=self.form,
            headers=headers,
        )


if TYPE_CHECKING:  # annotations only: a Protocol class costs import time

    class Answer(Protocol):
        """What :func:`judge` reads of an HTTP answer: an ``httpx.Response`` or a :class:`RawAnswer`."""

        @property
        def status_code(self) -> int: ...

        @property
        def content(self) -> bytes: ...

        @property
        def headers(self) -> Mapping[str, str]: ...

        def json(self) -> Any: ...


class RawAnswer:
    """A fully read answer from a transport other than httpx's (the hook's aiohttp path)."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, content: bytes, headers: Mapping[str, str]) -> None:
        self.status_code = status_code
        self.content = content
        self.headers = headers

    def json(self) -> Any:
        return json.loads(self.content)  # as httpx.Response.json does


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


@dataclass(frozen=True)
class Retry:
    delay: float
    refresh_token: bool = False
    #: A 429 naming its ``Retry-After``: the budget holds the whole process that long (see
    #: ``hooks/_budget.py``), and this call waits there with every other, not on its own.
    throttled: bool = False


@dataclass(frozen=True)
class Fail:
    error: DpcApiError


Outcome = Done[T] | Retry | Fail


@dataclass
class Attempts:
    """Book-keeping of one call's attempts against its retry policy."""

    policy: RetryPolicy
    started: float = field(default_factory=time.monotonic)
    count: int = 0
    refreshed: bool = False

    def next_try(self) -> None:
        self.count += 1

    def wait(self, wanted: float | None = None) -> float | None:
        """The delay before the next attempt, or None when the budget is spent."""
        if self.count >= self.policy.max_attempts:
            return None
        delay = self.policy.backoff(self.count) if wanted is None else wanted
        if time.monotonic() - self.started + delay > self.policy.max_elapsed:
            return None
        return delay


def judge(call: Call[T], response: Answer, attempts: Attempts, can_refresh: bool) -> Outcome[T]:
    """Decide what an HTTP answer means for ``call``: a result, a retry, or an error."""
    status = response.status_code
    if 200 <= status < 300:
        try:
            body = response.json() if response.content else None
        except ValueError:
            return _retry_or_fail(call, attempts, None, _bad_body(call, response))
        try:
            return Done(call.parse(body))
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            return Fail(_unexpected_body(call, response, exc))
    wanted = retry_after(response)
    error = api_error(call, response, wanted)
    if status == 401 and call.authenticated and can_refresh and not attempts.refreshed:
        attempts.refreshed = True
        return Retry(0.0, refresh_token=True)
    if status == 429:
        # Without Retry-After the budget holds the process only briefly; this call backs off on its own.
        return _retry_or_fail(call, attempts, wanted, error, always=True, throttled=wanted is not None)
    if status in RETRYABLE_STATUSES:
        return _retry_or_fail(call, attempts, wanted, error)
    return Fail(error)


def judge_error(call: Call[Any], exc: httpx.HTTPError, attempts: Attempts) -> Outcome[Any]:
    """Decide whether a transport error is worth another attempt."""
    error = DpcTransportError(
        f"{call.method} {call.path} failed: {type(exc).__name__}: {_safe_reason(exc)}",
        method=call.method,
        path=call.path,
    )
    return _retry_or_fail(call, attempts, None, error, always=isinstance(exc, _NOT_SENT))


def _retry_or_fail(
    call: Call[Any],
    attempts: Attempts,
    wanted: float | None,
    error: DpcApiError,
    *,
    always: bool = False,
    throttled: bool = False,
) -> Outcome[Any]:
    if not (call.idempotent or always):
        return Fail(error)
    delay = attempts.wait(wanted)
    if delay is None:
        return Fail(error)
    return Retry(delay, throttled=throttled)


def retry_after(response: Answer) -> float | None:
    """``Retry-After`` in seconds, given as seconds or as an HTTP date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def api_error(call: Call[Any], response: Answer, wanted: float | None) -> DpcApiError:
    """The error an HTTP error answer stands for; ``wanted`` is its ``Retry-After``, read once."""
    problem = _problem(response)
    errors: list[FieldError] = []
    if problem is not None:
        errors.extend(FieldError(e.field, e.message) for e in problem.validation_errors or ())
        errors.extend(_violation(v) for v in problem.violations or ())
    if call.url and problem is None:
        # The OAuth token endpoint answers {"error": ..., "error_description": ...}.
        problem = _oauth_problem(response)
    return DpcApiError.from_response(
        response.status_code,
        call.method,
        call.path,
        problem_type=problem.type if problem else None,
        title=problem.title if problem else None,
        detail=problem.detail if problem else None,
        instance=problem.instance if problem else None,
        errors=errors,
        retry_after=wanted,
    )


def _problem(response: Answer) -> Problem | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not ({"type", "title", "detail", "validation-errors", "violations"} & set(body)):
        return None
    try:
        return Problem.model_validate(body)
    except ValidationError:
        return None


def _oauth_problem(response: Answer) -> Problem | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("error_description")
        return Problem(detail=f"{body['error']}: {description}" if description else body["error"])
    return None


def _violation(text: str) -> FieldError:
    field_name, sep, message = str(text).partition(": ")
    return FieldError(field_name, message) if sep else FieldError("", str(text))


def _bad_body(call: Call[Any], response: Answer) -> DpcApiError:
    return DpcApiError(
        f"{response.status_code} on {call.method} {call.path}: the response body is not valid JSON",
        status_code=response.status_code,
        method=call.method,
        path=call.path,
    )


def _unexpected_body(call: Call[Any], response: Answer, exc: Exception) -> DpcApiError:
    reason = (
        "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        if isinstance(exc, ValidationError)
        else f"{type(exc).__name__}: {exc}"
    )
    return DpcApiError(
        f"{response.status_code} on {call.method} {call.path}: unexpected response body ({reason})",
        status_code=response.status_code,
        method=call.method,
        path=call.path,
    )


def _safe_reason(exc: httpx.HTTPError) -> str:
    # httpx's messages name the URL at most; requests carry no secret in their URLs here.
    return str(exc) or "no details"


# ---- authentication ------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    expires_at: float  # time.monotonic()


class TokenCache:
    """Access tokens shared by every hook in the process, keyed by (token URL, client id).

    A token is refreshed a minute (or a tenth of its life) before it expires, so a call never
    starts with a token about to lapse.
    """

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], Token] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[tuple[str, str], threading.Lock] = {}

    def get(self, key: tuple[str, str]) -> str | None:
        token = self._tokens.get(key)
        if token is not None and time.monotonic() < token.expires_at:
            return token.value
        return None

    def put(self, key: tuple[str, str], value: str, expires_in: float) -> None:
        margin = min(60.0, expires_in / 10)
        self._tokens[key] = Token(value, time.monotonic() + max(0.0, expires_in - margin))

    def invalidate(self, key: tuple[str, str], value: str | None) -> None:
        """Drop ``value`` unless another caller has already replaced it."""
        with self._lock:
            current = self._tokens.get(key)
            if current is not None and (value is None or current.value == value):
                del self._tokens[key]

    def fetch_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._fetch_locks.setdefault(key, threading.Lock())

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


TOKENS = TokenCache()


def token_call(settings: ConnectionSettings) -> Call[tuple[str, float]]:
    """The client-credentials grant against the token endpoint."""
    return Call(
        "POST",
        "/oauth/dpc/token",
        parse=_parse_token,
        form={
            "grant_type": "client_credentials",
            "client_id": settings.client_id or "",
            "client_secret": settings.client_secret or "",
            "audience": settings.audience,
        },
        authenticated=False,
        url=settings.token_url,
    )


def _parse_token(body: Any) -> tuple[str, float]:
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise ValueError("the token endpoint's answer has no access_token")
    expires_in = body.get("expires_in")
    return body["access_token"], float(expires_in) if isinstance(expires_in, int | float) else 1800.0


def token_error(settings: ConnectionSettings, error: DpcApiError) -> DpcApiError:
    """A token-endpoint failure, worded for the person who set up the connection."""
    if isinstance(error, DpcAuthenticationError) or error.status_code in (400, 401, 403):
        reason = error.detail or error.title or str(error.status_code)
        return DpcAuthenticationError(
            f"the token endpoint {settings.token_url} refused the client credentials of connection "
            f"{settings.conn_id!r} (client id {settings.client_id!r}): {reason}",
            status_code=error.status_code,
            method="POST",
            path=settings.token_url,
        )
    return error
