"""Settings of the DPC emulator, and the seed data it serves.

Settings are plain data so the command line, the test helper and the admin ``PUT /_emulator/config``
route all go through the same checks. The seed replaces the guide's project and environment when a
test or demo needs other ones.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from airflow_provider_dpc.models import Agent, Environment, LineageDataset, Project, Schedule

__all__ = [
    "DEFAULT_SEED",
    "LOG_LEVELS",
    "RUNTIME_SETTINGS",
    "ConfigError",
    "EmulatorConfig",
    "LineageSeed",
    "PublishedPipelineSeed",
    "Seed",
    "load_seed",
]

StatusCase = Literal["upper", "lower"]
ErrorStyle = Literal["validation-errors", "violations"]
#: How pipeline executions are answered: as clients that ran against the service found them
#: ("observed": details wrapped in ``result`` without ``projectId``, steps nested and paged, 201 on
#: execute), or as the API reference shows them ("documented": flat details and steps, 200).
ApiShape = Literal["observed", "documented"]
#: Whether ``GET .../pipeline-executions/{id}/status`` is served, or answers 404 or 405 as a
#: service without that route would.
StatusRoute = Literal["present", "404", "405"]
#: What a lineage event's ``run.runId`` is: the execution's id ("execution"), or an id of its own
#: ("own"). Matillion does not say which the service writes; clients must work with both.
LineageRunIds = Literal["execution", "own"]

# Settings that PUT /_emulator/config may change while the emulator runs.
RUNTIME_SETTINGS = frozenset(
    {
        "starting_seconds",
        "snapshotting_seconds",
        "stopping_seconds",
        "cancelling_seconds",
        "rate_limit",
        "rate_window",
        "status_case",
        "error_style",
        "api_shape",
        "execution_status_route",
        "token_ttl",
        "lineage_run_ids",
        "lineage_delay",
    }
)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


class ConfigError(ValueError):
    """A setting or seed is invalid; the message names it."""


class LineageSeed(BaseModel):
    """What a seeded pipeline's lineage events name as its inputs and outputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: list[LineageDataset] = Field(default_factory=list)
    outputs: list[LineageDataset] = Field(default_factory=list)


class PublishedPipelineSeed(BaseModel):
    """A published pipeline the emulator can execute, and how its executions behave.

    ``outcome`` is where an execution ends after ``seconds``: SUCCESS; FAILED, FORBIDDEN or any other
    status in capitals (with ``message``), a status the API reference does not list included; or
    RUNNING, which runs until it is cancelled. A scalar variable ``emulator.seconds`` of an execute
    request sets ``seconds`` for that execution. A ``disabled`` pipeline answers 410 to an execute.
    ``file_path`` (``orders/load.orch.yaml``) is the name execution answers carry, as the service's
    do; an execute may name the pipeline by ``name`` or by that path, with or without its folder
    and suffix. Fields may be written in snake_case or camelCase.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    project_id: str
    environment_name: str
    name: str
    published_time: str = "2026-01-05T09:00:00Z"
    outcome: Annotated[str, Field(pattern=r"^[A-Z][A-Z_]*$")] = "SUCCESS"
    seconds: float = Field(default=2.0, ge=0, le=86400)
    message: str | None = None
    disabled: bool = False
    steps: list[str] = Field(default_factory=lambda: ["Start", "Run", "End"], min_length=1)
    file_path: str | None = None
    #: The datasets its runs read and write, OpenLineage's ``{namespace, name, facets}``: each
    #: execution of a pipeline that has them gets a START event and one for how it ended.
    lineage: LineageSeed | None = None

    @property
    def answered_name(self) -> str:
        """The pipeline's name in execution answers."""
        return self.file_path or self.name


class Seed(BaseModel):
    """The projects and environments the emulator serves; pipelines always start empty."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    projects: list[Project] = Field(default_factory=list)
    environments: dict[str, list[Environment]] = Field(default_factory=dict)
    #: Agents as ``GET /v1/agents`` lists them. An agent a pipeline names but the seed does not is
    #: taken to be a connected, running streaming agent.
    agents: list[Agent] = Field(default_factory=list)
    #: Published pipelines per project and environment, with the behaviour of their executions.
    published_pipelines: list[PublishedPipelineSeed] = Field(default_factory=list, alias="publishedPipelines")
    #: DPC schedules per project id, as ``GET /v1/projects/{p}/schedules`` lists them. The emulator
    #: runs none by their cron: the admin routes run a schedule's pipeline now or on an interval.
    schedules: dict[str, list[Schedule]] = Field(default_factory=dict)

    @field_validator("projects")
    @classmethod
    def _project_ids_are_uuids(cls, projects: list[Project]) -> list[Project]:
        for project in projects:
            _require_uuid(project.id, "projects[].id")
        return projects

    @field_validator("environments")
    @classmethod
    def _environment_keys_are_uuids(cls, environments: dict[str, list[Environment]]) -> dict[str, Any]:
        return {_require_uuid(key, "environments key"): value for key, value in environments.items()}

    @field_validator("schedules")
    @classmethod
    def _schedule_ids_are_uuids(cls, schedules: dict[str, list[Schedule]]) -> dict[str, Any]:
        for found in schedules.values():
            for schedule in found:
                schedule.schedule_id = _require_uuid(schedule.schedule_id, "schedules[].scheduleId")
        return {_require_uuid(key, "schedules key"): value for key, value in schedules.items()}


def _require_uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"{what} must be a UUID, got {value!r}") from None


GUIDE_PROJECT_ID = "3dda0acf-e646-4f4b-b4f6-e00449b69427"
GUIDE_AGENT_ID = "2734aa6f-0c64-4d2b-9406-f44dc8f1f3b6"

_ORDERS_FIELDS = [("id", "INTEGER"), ("customer", "VARCHAR"), ("amount", "NUMERIC")]
#: A load of Postgres's ``public.orders`` into Snowflake, as DPC's lineage events name them: the
#: source's namespace with DPC's ``postgresql`` scheme, ``schema.table`` names, a schema facet on
#: both and column lineage on the output.
ORDERS_LINEAGE = LineageSeed(
    inputs=[
        LineageDataset(
            namespace="postgresql://pg.example.com:5432",
            name="public.orders",
            facets={
                "schema": {"fields": [{"name": n, "type": t, "description": None} for n, t in _ORDERS_FIELDS]},
                "documentation": None,
            },
        )
    ],
    outputs=[
        LineageDataset(
            namespace="snowflake://myorg-myaccount",
            name="ANALYTICS.PUBLIC.ORDERS",
            facets={
                "schema": {"fields": [{"name": n.upper(), "type": t} for n, t in _ORDERS_FIELDS]},
                "columnLineage": {
                    "fields": {
                        n.upper(): {
                            "inputFields": [
                                {"namespace": "postgresql://pg.example.com:5432", "name": "public.orders", "field": n}
                            ]
                        }
                        for n, _ in _ORDERS_FIELDS
                    }
                },
            },
        )
    ],
)

# The project and environment of the DPC streaming-pipeline guide, so its examples work unchanged.
DEFAULT_SEED = Seed(
    projects=[Project(id=GUIDE_PROJECT_ID, name="Test-project", description="project-1")],
    environments={
        GUIDE_PROJECT_ID: [
            Environment(name="Environment-1", default_agent_id=GUIDE_AGENT_ID, default_agent_name="Test-agent")
        ]
    },
    agents=[
        Agent(
            agent_id=GUIDE_AGENT_ID,
            name="Test-agent",
            agent_type="streaming",
            agent_status="running",
            connected=True,
            cloud_provider="aws",
        )
    ],
    published_pipelines=[
        PublishedPipelineSeed(project_id=GUIDE_PROJECT_ID, environment_name="Environment-1", name="Pipeline 1"),
        PublishedPipelineSeed(
            project_id=GUIDE_PROJECT_ID,
            environment_name="Environment-1",
            name="Failing pipeline",
            outcome="FAILED",
            seconds=1.0,
            message="Table 'ANALYTICS.ORDERS' does not exist or not authorized.",
            lineage=ORDERS_LINEAGE,
        ),
        PublishedPipelineSeed(
            project_id=GUIDE_PROJECT_ID, environment_name="Environment-1", name="Long pipeline", outcome="RUNNING"
        ),
        PublishedPipelineSeed(
            project_id=GUIDE_PROJECT_ID, environment_name="Environment-1", name="Disabled pipeline", disabled=True
        ),
        # What the service answers beyond its reference: a status it does not list, one nobody
        # documented, pipeline names as file paths, and a name inside another ("Pipeline 1").
        PublishedPipelineSeed(
            project_id=GUIDE_PROJECT_ID,
            environment_name="Environment-1",
            name="Forbidden pipeline",
            outcome="FORBIDDEN",
            seconds=1.0,
            message="The agent is not permitted to run pipelines of this project.",
        ),
        PublishedPipelineSeed(
            project_id=GUIDE_PROJECT_ID,
            environment_name="Environment-1",
            name="Terminated pipeline",
            outcome="TERMINATED",
            seconds=1.0,
            message="Terminated by an administrator.",
        ),
        PublishedPipelineSeed(
            project_id=GUIDE_PROJECT_ID,
            environment_name="Environment-1",
            name="Load orders",
            file_path="orders/Load orders.orch.yaml",
            steps=["Start", "Extract orders", "Load orders", "End"],
            lineage=ORDERS_LINEAGE,
        ),
        PublishedPipelineSeed(
            project_id=GUIDE_PROJECT_ID,
            environment_name="Environment-1",
            name="Archived load orders",
            file_path="archive/Load orders.orch.yaml",
        ),
        PublishedPipelineSeed(project_id=GUIDE_PROJECT_ID, environment_name="Environment-1", name="Pipeline 10"),
        # "load" stands for both: the one at the top, and a stray copy in a scratch folder.
        PublishedPipelineSeed(
            project_id=GUIDE_PROJECT_ID, environment_name="Environment-1", name="load", file_path="load.orch.yaml"
        ),
        PublishedPipelineSeed(
            project_id=GUIDE_PROJECT_ID,
            environment_name="Environment-1",
            name="Scratch load",
            file_path="scratch/load.orch.yaml",
        ),
    ],
    # DPC's own schedules of some of them, which the admin routes run now or on an interval.
    schedules={
        GUIDE_PROJECT_ID: [
            Schedule(
                schedule_id="5c0e8f3a-7b1d-4e2a-9c6f-1a2b3c4d5e01",
                name="Nightly Pipeline 1",
                pipeline_name="Pipeline 1",
                environment_name="Environment-1",
                cron_expression="0 2 * * *",
                cron_timezone="Europe/London",
                next_run_at="2026-01-06T02:00:00Z",
                schedule_enabled=True,
            ),
            Schedule(
                schedule_id="5c0e8f3a-7b1d-4e2a-9c6f-1a2b3c4d5e02",
                name="Hourly Pipeline 10",
                pipeline_name="Pipeline 10",
                environment_name="Environment-1",
                cron_expression="0 * * * *",
                cron_timezone="UTC",
                next_run_at="2026-01-05T10:00:00Z",
                schedule_enabled=True,
            ),
            Schedule(
                schedule_id="5c0e8f3a-7b1d-4e2a-9c6f-1a2b3c4d5e03",
                name="Nightly orders",
                pipeline_name="orders/Load orders.orch.yaml",
                environment_name="Environment-1",
                cron_expression="30 1 * * *",
                cron_timezone="UTC",
                next_run_at="2026-01-06T01:30:00Z",
                schedule_enabled=False,
            ),
        ]
    },
)


def load_seed(source: str | Path | Mapping[str, Any]) -> Seed:
    """Read a seed from a JSON file or a mapping, raising :class:`ConfigError` naming what is wrong."""
    data: Any = source
    if isinstance(source, str | Path):
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read seed file {source}: {exc}") from None
    try:
        return Seed.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid seed: {_first_errors(exc)}") from None


def _first_errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors(include_url=False)[:5]
    )


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulator's behaviour depends on; immutable, changed by :meth:`replace`."""

    host: str = "127.0.0.1"
    port: int = 8765
    client_id: str = "dpc-emulator-client"
    client_secret: str = dataclasses.field(default="dpc-emulator-secret", repr=False)
    token_ttl: float = 1800.0
    starting_seconds: float = 1.0
    snapshotting_seconds: float = 1.0
    stopping_seconds: float = 1.0
    cancelling_seconds: float = 0.5
    #: Requests the account may make per ``rate_window`` seconds, as DPC's 1,000 a minute; None: no limit.
    rate_limit: int | None = None
    rate_window: float = 60.0
    status_case: StatusCase = "upper"
    error_style: ErrorStyle = "validation-errors"
    api_shape: ApiShape = "observed"
    execution_status_route: StatusRoute = "present"
    lineage_run_ids: LineageRunIds = "own"
    #: Seconds after a run's event happens that DPC has written it (``generatedFrom`` finds it).
    lineage_delay: float = 0.0
    seed: Seed = DEFAULT_SEED
    faults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    log_level: str = "warning"

    def __post_init__(self) -> None:
        for name in (
            "token_ttl",
            "starting_seconds",
            "snapshotting_seconds",
            "stopping_seconds",
            "cancelling_seconds",
            "lineage_delay",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 86400:
                raise ConfigError(f"{name} must be a number of seconds between 0 and 86400, got {value!r}")
        if self.rate_limit is not None and (
            isinstance(self.rate_limit, bool)
            or not isinstance(self.rate_limit, int)
            or not 1 <= self.rate_limit <= 10**6
        ):
            raise ConfigError(
                f"rate_limit must be a whole number of requests from 1 to 1000000, or null, got {self.rate_limit!r}"
            )
        if (
            isinstance(self.rate_window, bool)
            or not isinstance(self.rate_window, int | float)
            or not 0.1 <= self.rate_window <= 3600
        ):
            raise ConfigError(f"rate_window must be a number of seconds from 0.1 to 3600, got {self.rate_window!r}")
        if self.status_case not in ("upper", "lower"):
            raise ConfigError(f"status_case must be 'upper' or 'lower', got {self.status_case!r}")
        if self.error_style not in ("validation-errors", "violations"):
            raise ConfigError(f"error_style must be 'validation-errors' or 'violations', got {self.error_style!r}")
        if self.api_shape not in ("observed", "documented"):
            raise ConfigError(f"api_shape must be 'observed' or 'documented', got {self.api_shape!r}")
        if self.execution_status_route not in ("present", "404", "405"):
            raise ConfigError(
                f"execution_status_route must be 'present', '404' or '405', got {self.execution_status_route!r}"
            )
        if self.lineage_run_ids not in ("execution", "own"):
            raise ConfigError(f"lineage_run_ids must be 'execution' or 'own', got {self.lineage_run_ids!r}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        if not self.client_id or not self.client_secret:
            raise ConfigError("client_id and client_secret must not be empty")

    def replace(self, **changes: Any) -> EmulatorConfig:
        """A copy with ``changes`` applied and checked."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def runtime_settings(self) -> dict[str, Any]:
        """The settings ``PUT /_emulator/config`` can change, as JSON."""
        return {name: getattr(self, name) for name in sorted(RUNTIME_SETTINGS)}
