"""The API's enumerations: statuses, commands and the definition's fixed values.

Kept apart from :mod:`airflow_provider_dpc.models` (which re-exports them) so that the operators and
the sensor can name statuses without building the pydantic models: a DAG file is parsed far more
often than a task runs.
"""

from __future__ import annotations

import enum

__all__ = [
    "DecimalMapping",
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


class PipelineStatus(_UpperEnum):
    """A streaming pipeline's status.

    Parsed case-insensitively (the guide shows ``streaming``, the API ``STREAMING``). A value this
    version does not know is kept as it came, as a pseudo-member whose ``is_known`` is false, so a
    new API status never crashes a running task.
    """

    STARTING = "STARTING"
    SNAPSHOTTING = "SNAPSHOTTING"
    STREAMING = "STREAMING"
    STOPPING = "STOPPING"
    NOT_RUNNING = "NOT_RUNNING"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def _missing_(cls, value: object) -> PipelineStatus:
        known = super()._missing_(value)
        if isinstance(known, PipelineStatus):
            return known
        text = str(value)
        pseudo = str.__new__(cls, text)
        pseudo._name_ = text
        pseudo._value_ = text
        return pseudo

    @property
    def is_known(self) -> bool:
        return self.name in type(self).__members__


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
