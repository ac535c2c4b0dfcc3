"""Errors raised by the DPC provider.

Every API error says what was called and what the API answered, e.g.
``400 Bad Request on POST /v1/projects/<id>/streaming-pipelines: streamingSource.connection.username:
must not be empty``. Messages are built only from the method, the path and the problem body, never
from headers or request bodies, so no credential can reach one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from airflow_provider_dpc.enums import PipelineStatus

__all__ = [
    "DpcApiError",
    "DpcAuthenticationError",
    "DpcConflictError",
    "DpcError",
    "DpcNotFoundError",
    "DpcPipelineExecutionError",
    "DpcPipelineStateError",
    "DpcRateLimitError",
    "DpcServerError",
    "DpcTransportError",
    "DpcValidationError",
    "FieldError",
]


class FieldError(NamedTuple):
    """One ``(field, message)`` pair, ``field`` a dotted camelCase path as the API names it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class DpcError(Exception):
    """Base of every error this provider raises."""


class DpcApiError(DpcError):
    """The API refused or failed a call, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str | None = None,
        path: str | None = None,
        problem_type: str | None = None,
        title: str | None = None,
        detail: str | None = None,
        instance: str | None = None,
        errors: Iterable[FieldError | tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.method = method
        self.path = path
        #: The problem's ``type`` URI, e.g. ``https://api.matillion.com/problems/bad-request``.
        self.type = problem_type
        self.title = title
        self.detail = detail
        self.instance = instance
        self.errors: list[FieldError] = [FieldError(*e) for e in errors]

    @classmethod
    def from_response(
        cls,
        status_code: int,
        method: str,
        path: str,
        *,
        problem_type: str | None = None,
        title: str | None = None,
        detail: str | None = None,
        instance: str | None = None,
        errors: Sequence[FieldError] = (),
        retry_after: float | None = None,
    ) -> DpcApiError:
        """The error of the right class for an HTTP error answer."""
        error_class = _class_for_status(status_code)
        reason = title or _reason(status_code)
        explanation = "; ".join(map(str, errors)) or detail or ""
        message = f"{status_code} {reason} on {method} {path}" + (f": {explanation}" if explanation else "")
        error = error_class(
            message,
            status_code=status_code,
            method=method,
            path=path,
            problem_type=problem_type,
            title=title,
            detail=detail,
            instance=instance,
            errors=errors,
        )
        if isinstance(error, DpcRateLimitError):
            error.retry_after = retry_after
        return error


class DpcAuthenticationError(DpcApiError):
    """401 or 403: the credentials or token were refused."""


class DpcNotFoundError(DpcApiError):
    """404: the project or pipeline does not exist."""


class DpcValidationError(DpcApiError, ValueError):
    """A definition or argument is invalid; ``errors`` lists every ``(field, message)`` pair.

    Raised locally before any request (``status_code`` is None) and for the API's 400 answers.
    """


class DpcConflictError(DpcApiError):
    """409: the request conflicts with the resource's state."""


class DpcRateLimitError(DpcApiError):
    """429 that outlasted the retry budget."""

    retry_after: float | None = None


class DpcServerError(DpcApiError):
    """5xx that outlasted the retry budget."""


class DpcTransportError(DpcApiError):
    """The API could not be reached, or the connection broke, after every retry."""


class DpcPipelineStateError(DpcError):
    """A pipeline did not reach the awaited status; names the pipeline and its recent statuses."""

    def __init__(self, message: str, *, pipeline_id: str, statuses: Sequence[PipelineStatus | str] = ()) -> None:
        super().__init__(message)
        self.pipeline_id = pipeline_id
        self.statuses = [str(s) for s in statuses]


class DpcPipelineExecutionError(DpcPipelineStateError):
    """A pipeline execution ended other than SUCCESS, or did not end in time.

    ``execution_id`` and ``status`` name it; ``execution_message`` holds the execution's own message
    when there is one. A wait for a pipeline's next execution that timed out before any ended has
    no ``execution_id`` (None).
    """

    def __init__(
        self,
        message: str,
        *,
        execution_id: str | None,
        status: str | None = None,
        statuses: Sequence[str] = (),
        execution_message: str | None = None,
    ) -> None:
        super().__init__(message, pipeline_id=execution_id or "", statuses=statuses)
        self.execution_id = execution_id
        self.status = status
        self.execution_message = execution_message


def _class_for_status(status_code: int) -> type[DpcApiError]:
    if status_code in (401, 403):
        return DpcAuthenticationError
    if status_code == 404:
        return DpcNotFoundError
    if status_code in (400, 422):
        return DpcValidationError
    if status_code == 409:
        return DpcConflictError
    if status_code == 429:
        return DpcRateLimitError
    if status_code >= 500:
        return DpcServerError
    return DpcApiError


def _reason(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"
