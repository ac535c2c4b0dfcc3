"""Pydantic models of the DPC streaming-pipeline API.

The same models validate a definition on the client, before anything is sent, and in the emulator,
so both report a bad definition with the same dotted field paths and messages as the real API
(``streamingSource.connection.username: must not be empty``). Fields are snake_case in Python and
camelCase on the wire; unknown fields are kept so that a read-modify-write never drops what a newer
API added.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from airflow_provider_dpc.enums import (
    DecimalMapping,
    ExecutionStatus,
    PipelineCommand,
    PipelineStatus,
    SecretType,
    TablePrefixType,
    TemporalMapping,
    TransformationType,
)
from airflow_provider_dpc.exceptions import DpcConflictError, DpcValidationError, FieldError

__all__ = [
    "PIPELINE_FILE_SUFFIXES",
    "AbsTarget",
    "CommandRequest",
    "DatabaseConnection",
    "Db2IbmiSource",
    "DecimalMapping",
    "Environment",
    "ExecutionCancel",
    "ExecutionEnvelope",
    "ExecutionRequest",
    "ExecutionStatus",
    "ExecutionStatusAnswer",
    "ExecutionStep",
    "FieldError",
    "HostConnection",
    "KeyPairAuthentication",
    "LineageDataset",
    "LineageEvent",
    "LineageJob",
    "LineageRun",
    "LineageRunEvent",
    "MySqlSource",
    "OracleConnection",
    "OracleSource",
    "Page",
    "PasswordAuthentication",
    "PipelineCommand",
    "PipelineExecution",
    "PipelineStatus",
    "PostgresSource",
    "Problem",
    "Project",
    "PublishedPipeline",
    "S3Target",
    "Schedule",
    "SecretReference",
    "SecretType",
    "SnowflakeConnection",
    "SnowflakeTarget",
    "SourceTable",
    "SqlServerSource",
    "StatusAnswer",
    "StepResult",
    "StreamingPipeline",
    "StreamingPipelineDefinition",
    "TablePrefixType",
    "TemporalMapping",
    "TokenPage",
    "TransformationType",
    "check_uuid",
    "execution_details",
    "field_errors",
    "load_definition",
    "parse_time",
    "pipeline_candidates",
    "require_one_pipeline",
    "same_pipeline",
    "unwrap_result",
    "validate_definition",
    "validate_execution_request",
]


def _require_text(value: Any) -> Any:
    # The API's wording for a missing, null or blank string.
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PydanticCustomError("not_empty", "must not be empty")
    return value


def _stringify_scalars(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: str(v).lower() if isinstance(v, bool) else str(v) if isinstance(v, int | float) else v
            for k, v in value.items()
        }
    return value


Text = Annotated[str, BeforeValidator(_require_text)]
Port = Annotated[int, Field(ge=1, le=65535)]
JdbcProperties = dict[str, str | int | float | bool]
StringMap = Annotated[dict[str, str], BeforeValidator(_stringify_scalars)]


class DpcModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        use_enum_values=False,
        # Validators are built on first use, not at import: a task or trigger that only reads
        # statuses never needs the definition's.
        defer_build=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _absent_is_null(cls, data: Any) -> Any:
        # An absent required field is validated as null, so it gets the API's message for its
        # kind ("must not be null" for an object, "must not be empty" for a string).
        if isinstance(data, Mapping):
            absent = {
                field.alias or name: None
                for name, field in cls.model_fields.items()
                if field.is_required() and (field.alias or name) not in data and name not in data
            }
            if absent:
                return {**data, **absent}
        return data

    def to_wire(self) -> dict[str, Any]:
        """The JSON body as the API expects it: camelCase, upper-case enums, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class SecretReference(DpcModel):
    """Where the agent finds a secret; the secret's value never passes through Airflow.

    The key inside the secret is accepted as ``secretKey`` (the API reference) or ``key`` (Matillion's
    Terraform provider) and always sent as ``secretKey``; the type in any case, sent upper case.
    """

    secret_type: SecretType
    secret_name: Text
    secret_location: str | None = None
    secret_key: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _key_spelling(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "key" in data and "secretKey" not in data and "secret_key" not in data:
            data = {("secretKey" if name == "key" else name): value for name, value in data.items()}
        return data


class HostConnection(DpcModel):
    """Connection of a source addressed without a database (MySQL, Db2 for IBM i)."""

    host: Text
    port: Port
    username: Text
    password: SecretReference
    jdbc_properties: JdbcProperties | None = None


class DatabaseConnection(HostConnection):
    database: Text


class OracleConnection(DatabaseConnection):
    pdb: str | None = None


class SourceTable(DpcModel):
    table_schema: Text = Field(alias="schema")
    table: Text


Tables = Annotated[list[SourceTable], Field(min_length=1)]


class PostgresSource(DpcModel):
    type: Literal["postgres"] = "postgres"
    connection: DatabaseConnection
    tables: Tables


class SqlServerSource(DpcModel):
    type: Literal["sqlserver"] = "sqlserver"
    connection: DatabaseConnection
    tables: Tables


class OracleSource(DpcModel):
    type: Literal["oracle"] = "oracle"
    connection: OracleConnection
    tables: Tables


class MySqlSource(DpcModel):
    type: Literal["mysql"] = "mysql"
    connection: HostConnection
    tables: Tables


class Db2IbmiSource(DpcModel):
    type: Literal["db2ibmi"] = "db2ibmi"
    connection: HostConnection
    tables: Tables


StreamingSource = Annotated[
    PostgresSource | SqlServerSource | OracleSource | MySqlSource | Db2IbmiSource,
    Field(discriminator="type"),
]


class KeyPairAuthentication(DpcModel):
    type: Literal["key-pair"] = "key-pair"
    private_key: SecretReference
    passphrase: SecretReference | None = None


class PasswordAuthentication(DpcModel):
    type: Literal["password"] = "password"
    password: SecretReference


SnowflakeAuthentication = Annotated[KeyPairAuthentication | PasswordAuthentication, Field(discriminator="type")]


class SnowflakeConnection(DpcModel):
    account_name: Text
    username: Text
    authentication: SnowflakeAuthentication
    jdbc_properties: JdbcProperties | None = None


class SnowflakeTarget(DpcModel):
    type: Literal["snowflake"] = "snowflake"
    connection: SnowflakeConnection
    role: Text
    warehouse: Text
    database: Text
    stage_schema: Text
    stage_name: Text
    stage_prefix: str | None = None
    table_schema: Text
    table_prefix_type: TablePrefixType
    transformation_type: TransformationType
    temporal_mapping: TemporalMapping | None = None


class S3Target(DpcModel):
    type: Literal["s3"] = "s3"
    bucket: Text
    prefix: Text
    decimal_mapping: DecimalMapping | None = None


class AbsTarget(DpcModel):
    """Azure Blob Storage."""

    type: Literal["abs"] = "abs"
    container: Text
    prefix: Text
    account_name: Text
    account_key: SecretReference
    decimal_mapping: DecimalMapping | None = None


StreamingTarget = Annotated[SnowflakeTarget | S3Target | AbsTarget, Field(discriminator="type")]

# Fields holding a tagged union: pydantic puts the tag in an error's location, the API does not.
_UNION_FIELDS = frozenset({"streamingSource", "streamingTarget", "authentication"})
# Members of a JDBC property's value type (str | int | float | bool): pydantic reports a bad value
# once per member, with the member's name in the location; the API names the property once.
_SCALAR_MEMBERS = frozenset({"str", "int", "float", "bool"})


class StreamingPipelineDefinition(DpcModel):
    """What is sent to create or replace a streaming pipeline."""

    name: Text
    agent_id: Text
    streaming_source: StreamingSource
    streaming_target: StreamingTarget
    advanced_properties: StringMap | None = None


class StreamingPipeline(DpcModel):
    """A pipeline as the API returns it.

    Read leniently (only the identity fields are required) so that a source or target type newer
    than this provider never breaks a status check; ``definition()`` validates the rest on demand.
    """

    streaming_pipeline_id: str
    name: str
    project_id: str | None = None
    agent_id: str | None = None

    def definition(self) -> StreamingPipelineDefinition:
        body = self.to_wire()
        body.pop("streamingPipelineId", None)
        body.pop("projectId", None)
        return validate_definition(body)


class Project(DpcModel):
    id: str
    name: str
    description: str | None = None


class Environment(DpcModel):
    name: str
    default_agent_id: str | None = None
    default_agent_name: str | None = None


class Agent(DpcModel):
    """A DPC agent, as ``GET /v1/agents/{agentId}`` returns it.

    Read leniently: only the id is required, and fields this provider does not know are kept. A
    streaming pipeline runs on its agent and cannot start while the agent is not connected.
    """

    agent_id: str
    name: str | None = None
    agent_type: str | None = None
    agent_status: str | None = None
    connected: bool | None = None
    cloud_provider: str | None = None


T = TypeVar("T")


class Page(DpcModel, Generic[T]):
    page: int = 0
    size: int = 0
    total: int = 0
    results: list[T] = Field(default_factory=list)


def _command(value: Any) -> Any:
    # The API's messages: a missing or blank command is empty, anything else unknown lists the choices.
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PydanticCustomError("not_empty", "must not be empty")
    if isinstance(value, str):
        try:
            return PipelineCommand(value)
        except ValueError:
            pass
    allowed = str([c.value for c in PipelineCommand])
    raise PydanticCustomError("enum", "must be one of {expected}", {"expected": allowed})


class CommandRequest(DpcModel):
    """The body of ``POST .../{pipelineId}/commands``: START or STOP, accepted in any case."""

    command: Annotated[PipelineCommand, BeforeValidator(_command)]


class StatusAnswer(DpcModel):
    """The answer of ``GET .../{pipelineId}/status``."""

    status: PipelineStatus


# ---- orchestration pipeline executions ----------------------------------------------------------


def _scalar_value(value: Any) -> Any:
    # A scalar variable's value is text or a number; a boolean is neither (the API would read it as text).
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PydanticCustomError("scalar", "must be a string or a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("scalar", "must be a finite number")
    return value


def _grid_cell(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("grid_cell", "must be a string")
    return value


ScalarValue = Annotated[str | int | float, BeforeValidator(_scalar_value)]
GridRow = list[Annotated[str, BeforeValidator(_grid_cell)]]


class ExecutionRequest(DpcModel):
    """The body of ``POST /v1/projects/{projectId}/pipeline-executions``: run a published pipeline.

    Scalar variables map a name to a string or a number; grid variables map a name to rows of
    strings. Only one execution per ``executionTag`` may run at a time in an environment.
    """

    pipeline_name: Text
    environment_name: Annotated[Text, Field(max_length=255)]
    agent_id: str | None = None
    execution_tag: str | None = None
    scalar_variables: dict[str, ScalarValue] | None = None
    grid_variables: dict[str, list[GridRow]] | None = None
    version_name: str | None = None


class ExecutionAnswer(DpcModel):
    """The answer of an execute or a cancel."""

    pipeline_execution_id: str


class ExecutionStatusAnswer(DpcModel):
    """The answer of ``GET .../pipeline-executions/{id}/status``."""

    status: ExecutionStatus


class ExecutionCancel(DpcModel):
    """The body of ``PATCH .../pipeline-executions/{id}``: ``forceUpdate`` true cancels at once."""

    force_update: bool = False
    status: Literal["CANCELLED"] = "CANCELLED"


class PublishedPipeline(DpcModel):
    """A published orchestration or transformation pipeline: only these can be executed."""

    name: str
    published_time: str | None = None


class PipelineExecution(DpcModel):
    """One execution of a published pipeline, as ``GET .../pipeline-executions/{id}`` returns it.

    Read leniently: only the id and status are required, and fields this provider does not know
    are kept. The service answers the details wrapped in ``result`` and without ``projectId`` (and
    at times without the id); :func:`execution_details` reads either shape.
    """

    pipeline_execution_id: str
    status: ExecutionStatus = ExecutionStatus.UNKNOWN
    pipeline_name: str | None = None
    environment_name: str | None = None
    project_id: str | None = None
    pipeline_type: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    message: str | None = None
    trigger: str | None = None
    schedule_id: str | None = None
    user: str | None = None

    @property
    def finished(self) -> bool:
        """Whether DPC says the execution has ended (it sets ``finishedAt``), whatever its status."""
        return bool(self.finished_at)

    @property
    def started(self) -> datetime | None:
        """``startedAt`` as a timezone-aware time, None where it is absent or unreadable."""
        return parse_time(self.started_at)


def parse_time(value: str | datetime | None) -> datetime | None:
    """An API timestamp as a timezone-aware time (UTC where it names no zone), None where it is
    absent or unreadable. Reads what the service answers: any number of fractional digits
    (``2026-02-02T22:53:51.41235+00:00``), ``Z`` or an offset."""
    if isinstance(value, datetime):
        moment = value
    elif not isinstance(value, str) or not value.strip():
        return None
    else:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Schedule(DpcModel):
    """One of a project's DPC schedules, as ``GET /v1/projects/{projectId}/schedules`` lists them:
    DPC's own scheduler runs ``pipeline_name`` in ``environment_name`` on ``cron_expression``.

    Read leniently: only the id is required, and fields this provider does not know are kept.
    """

    schedule_id: str
    name: str | None = None
    pipeline_name: str | None = None
    environment_name: str | None = None
    cron_expression: str | None = None
    cron_timezone: str | None = None
    next_run_at: str | None = None
    schedule_enabled: bool | None = None


class ExecutionEnvelope(DpcModel):
    """The details as the service answers them: the execution wrapped in ``result``."""

    result: PipelineExecution


def unwrap_result(body: Any) -> Any:
    """The object inside ``{"result": {...}}``, the service's wrapping of one resource; else ``body``."""
    if isinstance(body, Mapping) and isinstance(body.get("result"), Mapping) and "status" not in body:
        return body["result"]
    return body


def execution_details(body: Any, project_id: str, execution_id: str) -> PipelineExecution:
    """An execution's details, wrapped or flat, with the ids the request named where the answer lacks them."""
    details = unwrap_result(body)
    if not isinstance(details, Mapping):
        raise ValueError("expected an execution object, or one wrapped in 'result'")
    fields = dict(details)
    for key, value in (("pipelineExecutionId", execution_id), ("projectId", project_id)):
        if not fields.get(key):
            fields[key] = value
    return PipelineExecution.model_validate(fields)


class StepResult(DpcModel):
    """How a step ended, as the service nests it under each step's ``result``."""

    status: str | None = None
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class ExecutionStep(DpcModel):
    """One step's result within an execution.

    The service nests the status, message and times under ``result`` (and leaves the times out of
    some ended steps); a flat step is read too. Either way they are read from ``status``,
    ``message``, ``started_at`` and ``finished_at``.
    """

    id: str | None = None
    name: str | None = None
    status: str | None = None
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    result: StepResult | None = None
    child_pipeline: Any = None

    @model_validator(mode="after")
    def _lift_result(self) -> ExecutionStep:
        if self.result is not None:
            for name in ("status", "message", "started_at", "finished_at"):
                if getattr(self, name) is None:
                    setattr(self, name, getattr(self.result, name))
        return self


#: The endings of a pipeline's file name, which execution answers carry (``folder/load.orch.yaml``).
PIPELINE_FILE_SUFFIXES = (".orch.yaml", ".tran.yaml")


def _pipeline_key(name: str, keep_folder: bool) -> str:
    name = name.strip().strip("/")
    for suffix in PIPELINE_FILE_SUFFIXES:
        if name.endswith(suffix):
            name = name.removesuffix(suffix)
            break
    return name if keep_folder else name.rsplit("/", 1)[-1]


def same_pipeline(asked: str, answered: str | None) -> bool:
    """Whether the pipeline an answer names (``answered``) is the one a user asked for by name.

    The one rule every comparison of pipeline names uses. Names are equal, or equal once the file
    suffix (``.orch.yaml``, ``.tran.yaml``) is dropped from both and, when ``asked`` names no
    folder, the folder of ``answered`` too: ``load`` is ``load.orch.yaml`` and
    ``folder/load.orch.yaml``; ``Pipeline 1`` is never ``Pipeline 10``, and case counts.
    """
    if answered is None:
        return False
    if asked == answered:
        return True
    keep_folder = "/" in asked.strip().strip("/")
    return _pipeline_key(asked, True) == _pipeline_key(answered, keep_folder)


def pipeline_candidates(asked: str, answered: Iterable[str | None]) -> list[str]:
    """The distinct names among ``answered`` that are the pipeline ``asked``, in order: more than one
    is ambiguous (the same name in two folders), which callers report, never resolve by a guess."""
    return list(dict.fromkeys(name for name in answered if name is not None and same_pipeline(asked, name)))


def closest_pipelines(asked: str, answered: Iterable[str | None]) -> tuple[list[str], list[str]]:
    """The names among ``answered`` that are the pipeline ``asked`` and match it most closely, and
    the others that match it less closely: equal first, then equal without the file suffix, then
    equal only once the folder is dropped. For a watch that goes on beside a stray pipeline of the
    same name in another folder (``scratch/load.orch.yaml`` while ``load`` runs): the closest names
    are watched and the others reported. More than one closest name is still a conflict."""
    candidates = pipeline_candidates(asked, answered)

    def distance(name: str) -> int:
        if name == asked:
            return 0
        return 1 if _pipeline_key(name, True) == _pipeline_key(asked, True) else 2

    best = min(map(distance, candidates), default=0)
    return [n for n in candidates if distance(n) == best], [n for n in candidates if distance(n) != best]


def require_one_pipeline(
    asked: str, answered: Iterable[str | None], environment_name: str, *, field: str, doing: str
) -> None:
    """Raise a :class:`DpcConflictError` naming them when ``asked`` stands for more than one of the
    pipelines ``answered`` (executions that are ``doing``, "running" or "run", in the environment);
    ``field`` is what the caller was given the name as."""
    candidates = pipeline_candidates(asked, answered)
    if len(candidates) > 1:
        raise DpcConflictError(
            f"pipeline name {asked!r} matches {len(candidates)} pipelines {doing} in environment "
            f"{environment_name!r}: {', '.join(map(repr, candidates))}; name it with its folder",
            errors=[FieldError(field, "is ambiguous")],
        )


class TokenPage(DpcModel, Generic[T]):
    """A page of the executions list: ``more`` is the token of the next page, absent on the last."""

    results: list[T] = Field(default_factory=list)
    more: str | None = None


# ---- lineage events (``GET /v1/lineage/events``) --------------------------------------------------


def _facets(value: Any) -> Any:
    # DPC writes facets it has nothing for as null (``documentation``, ``sql``, ``ownership``), and at
    # times the whole facets object: read either as absent.
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {name: facet for name, facet in value.items() if facet is not None}
    return value


def _list_or_empty(value: Any) -> Any:
    return [] if value is None else value


Facets = Annotated[dict[str, Any], BeforeValidator(_facets)]


class LineageDataset(DpcModel):
    """A dataset an OpenLineage run event names: ``namespace`` (``postgresql://host:5432``), ``name``
    (``public.orders``) and its facets (``schema``, and on outputs ``columnLineage``), as raw objects."""

    namespace: str
    name: str
    facets: Facets = Field(default_factory=dict)


class LineageJob(DpcModel):
    """The job of a DPC lineage event: namespace ``matillion://<account>.<project>``, name the
    pipeline's file path (``folder/load.orch.yaml``)."""

    namespace: str = ""
    name: str
    facets: Facets = Field(default_factory=dict)


class LineageRun(DpcModel):
    run_id: str
    facets: Facets = Field(default_factory=dict)


class LineageRunEvent(DpcModel):
    """One OpenLineage run event (schema 2-0-2) as DPC records it for a pipeline run."""

    event_type: str | None = None
    event_time: str
    producer: str | None = None
    schema_url: str | None = Field(default=None, alias="schemaURL")
    job: LineageJob
    run: LineageRun
    inputs: Annotated[list[LineageDataset], BeforeValidator(_list_or_empty)] = Field(default_factory=list)
    outputs: Annotated[list[LineageDataset], BeforeValidator(_list_or_empty)] = Field(default_factory=list)

    @property
    def moment(self) -> datetime | None:
        """``eventTime`` as a timezone-aware time, None where it is unreadable."""
        return parse_time(self.event_time)


class LineageEvent(DpcModel):
    """One result of ``GET /v1/lineage/events``: DPC's id for the event, and the event."""

    id: str
    event: LineageRunEvent


class ProblemFieldError(DpcModel):
    field: str = ""
    message: str = ""


class Problem(DpcModel):
    """An RFC 7807 problem, in either of the API's two validation shapes."""

    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    validation_errors: list[ProblemFieldError] | None = Field(default=None, alias="validation-errors")
    violations: list[str] | None = None


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    skip_tag = False
    for item in loc:
        if skip_tag:
            skip_tag = False
            continue
        parts.append(str(item))
        skip_tag = item in _UNION_FIELDS
    return ".".join(parts)


def _field_message(error: Mapping[str, Any]) -> tuple[str, str]:
    kind = error["type"]
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        tag = error.get("ctx", {}).get("discriminator", "'type'").strip("'")
        if kind == "union_tag_not_found":
            return tag, "must not be empty"
        return tag, f"must be one of {error['ctx']['expected_tags']}"
    if kind == "not_empty" or (kind == "too_short" and isinstance(error.get("input"), list)):
        return "", "must not be empty"
    if error.get("input", ...) is None:
        return "", "must not be null"
    if kind == "enum":
        return "", f"must be one of {error['ctx']['expected']}"
    if kind == "too_long" and isinstance(error.get("input"), str):
        return "", f"must be at most {error['ctx']['max_length']} characters"
    if kind in _TYPE_MESSAGES:
        return "", _TYPE_MESSAGES[kind]
    return "", str(error["msg"])


_TYPE_MESSAGES = {"list_type": "must be a list", "dict_type": "must be an object", "string_type": "must be a string"}


def field_errors(exc: ValidationError | Sequence[Mapping[str, Any]]) -> list[FieldError]:
    """The API's ``(field, message)`` pairs for a pydantic validation error (or its ``errors()``)."""
    found: list[FieldError] = []
    for error in exc.errors(include_url=False) if isinstance(exc, ValidationError) else exc:
        suffix, message = _field_message(error)
        loc = tuple(error["loc"])
        if len(loc) > 1 and loc[-1] in _SCALAR_MEMBERS:
            loc = loc[:-1]
            if error.get("input", ...) is not None:
                message = "must be a string, a number or a boolean"
        path = _field_path(loc)
        field = f"{path}.{suffix}" if suffix and path else suffix or path
        if FieldError(field, message) not in found:
            found.append(FieldError(field, message))
    # The API's example lists its errors in descending path order; keep to it for identical bodies.
    return sorted(found, reverse=True)


def load_definition(value: Any) -> Any:
    """A definition as a dict or model: a string is JSON (a rendered ``.json`` template) or a file path."""
    if isinstance(value, BaseModel | Mapping):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("{") and os.path.isfile(text):
            with open(text, encoding="utf-8") as handle:
                text = handle.read()
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DpcValidationError(
                f"definition is neither valid JSON nor a readable .json file: {exc.msg} at line {exc.lineno}",
                errors=[FieldError("definition", "must be a JSON object or the path of a .json file")],
            ) from None
    return value


def validate_definition(definition: StreamingPipelineDefinition | Mapping[str, Any]) -> StreamingPipelineDefinition:
    """Validate a definition, raising :class:`~airflow_provider_dpc.exceptions.DpcValidationError`.

    The request body is JSON in UTF-8, so text holding a lone surrogate (``"\\ud800"`` in a JSON
    file) and NaN or infinite numbers are refused here too, naming their fields, rather than
    failing while the request is built.
    """
    return _checked(StreamingPipelineDefinition, definition, "streaming pipeline definition")


M = TypeVar("M", bound=DpcModel)


def _checked(model: type[M], value: M | Mapping[str, Any], what: str) -> M:
    """``value`` validated as ``model`` and sendable as JSON, or a DpcValidationError naming each field."""
    if isinstance(value, model):
        checked = value
    elif not isinstance(value, Mapping):
        raise DpcValidationError(
            f"{what} must be a JSON object", errors=[FieldError("", f"must be an object, not {type(value).__name__}")]
        )
    else:
        try:
            checked = model.model_validate(value)
        except ValidationError as exc:
            errors = field_errors(exc)
            raise DpcValidationError(f"invalid {what}: " + "; ".join(map(str, errors)), errors=errors) from None
    unsendable = _unsendable(checked.to_wire())
    if unsendable:
        raise DpcValidationError(f"invalid {what}: " + "; ".join(map(str, unsendable)), errors=unsendable)
    return checked


def _unsendable(body: Any) -> list[FieldError]:
    """The fields a JSON body in UTF-8 cannot carry: text with lone surrogates, NaN and infinities."""
    found: list[FieldError] = []
    stack: list[tuple[str, Any]] = [("", body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str) and not _is_unicode(value):
            found.append(FieldError(path, "must be valid Unicode text"))
        elif isinstance(value, float) and not math.isfinite(value):
            found.append(FieldError(path, "must be a finite number"))
        elif isinstance(value, Mapping | list):
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            for key, child in items:
                name = str(key) if _is_unicode(str(key)) else str(key).encode("utf-8", "backslashreplace").decode()
                where = f"{path}.{name}" if path else name
                if name != str(key):
                    found.append(FieldError(where, "must be valid Unicode text"))
                stack.append((where, child))
    return sorted(found, reverse=True)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_uuid(value: Any, field: str) -> str:
    """Return ``value`` as a canonical UUID string, or raise naming ``field``.

    Every id is checked before it goes into a URL, so a path-like value can never reach the API.
    """
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise DpcValidationError(
            f"{field} must be a UUID, got {shown}", errors=[FieldError(field, "must be a UUID")]
        ) from None


def validate_execution_request(request: ExecutionRequest | Mapping[str, Any]) -> ExecutionRequest:
    """Validate an execute request, raising :class:`~airflow_provider_dpc.exceptions.DpcValidationError`
    whose errors name each bad field as the API does (``scalarVariables.region: must be a string or
    a number``)."""
    return _checked(ExecutionRequest, request, "pipeline execution request")
