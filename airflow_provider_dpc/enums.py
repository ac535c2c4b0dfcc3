"""The API's enumerations: statuses, commands and the definition's fixed values.

Kept apart from :mod:`airflow_provider_dpc.models` (which re-exports them) so that the operators and
the sensor can name statuses without building the pydantic models: a DAG file is parsed far more
often than a task runs.
"""

from __future__ import annotations

import enum

__all__ = [
    "DecimalMapping",
    "ExecutionStatus",
    "PipelineCommand",
    "PipelineStatus",
    "SecretType",
    "TablePrefixType",
    "TemporalMapping",
    "TransformationType",
]


class _UpperEnum(enum.StrEnum):
    """An API enum: sent upper case, accepted in any case."""

    @classmethod
    def _missing_(cls, value: object) -> _UpperEnum | None:
        if isinstance(value, str):
            return cls.__members__.get(value.strip().upper().replace("-", "_"))
        return None


class _OpenEnum(_UpperEnum):
    """A status enum that keeps a value this version does not know, as a pseudo-member whose
    ``is_known`` is false, so a new API status never crashes a running task."""

    @classmethod
    def _missing_(cls, value: object) -> _OpenEnum:
        known = super()._missing_(value)
        if isinstance(known, cls):
            return known
        text = str(value)
        pseudo = str.__new__(cls, text)
        pseudo._name_ = text
        pseudo._value_ = text
        return pseudo

    @property
    def is_known(self) -> bool:
        return self.name in type(self).__members__


class PipelineStatus(_OpenEnum):
    """A streaming pipeline's status, parsed case-insensitively (the guide shows ``streaming``, the
    API ``STREAMING``); an unknown value is kept."""

    STARTING = "STARTING"
    SNAPSHOTTING = "SNAPSHOTTING"
    STREAMING = "STREAMING"
    STOPPING = "STOPPING"
    NOT_RUNNING = "NOT_RUNNING"
    UNKNOWN = "UNKNOWN"


class ExecutionStatus(_OpenEnum):
    """An orchestration pipeline execution's status; an unknown value is kept.

    ``FORBIDDEN`` is not in the API reference's enum, but the service answers it (an execution the
    credential may not run): it ends the execution as FAILED does.
    """

    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"
    UNKNOWN = "UNKNOWN"
    FORBIDDEN = "FORBIDDEN"


class PipelineCommand(_UpperEnum):
    START = "START"
    STOP = "STOP"


class SecretType(_UpperEnum):
    AZURE_KEY_VAULT = "AZURE_KEY_VAULT"
    AWS_SECRETS_MANAGER = "AWS_SECRETS_MANAGER"
    GOOGLE_SECRET_MANAGER = "GOOGLE_SECRET_MANAGER"


class TransformationType(_UpperEnum):
    COPY_TABLE = "COPY_TABLE"
    COPY_TABLE_SOFT_DELETE = "COPY_TABLE_SOFT_DELETE"
    CHANGE_LOG = "CHANGE_LOG"


class TablePrefixType(_UpperEnum):
    PREFIX = "PREFIX"
    SOURCE_DATABASE_AND_SCHEMA = "SOURCE_DATABASE_AND_SCHEMA"
    NONE = "NONE"


class TemporalMapping(_UpperEnum):
    NATIVE = "NATIVE"
    EPOCH = "EPOCH"


class DecimalMapping(_UpperEnum):
    LOGICAL = "LOGICAL"
    LEGACY = "LEGACY"
