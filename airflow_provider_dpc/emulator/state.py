"""In-memory store of the DPC emulator: pipelines, their status machine, tokens and counters.

Status machine of one pipeline (durations come from the settings in force when the command arrived)::

    NOT_RUNNING --START--> STARTING --starting_seconds--> SNAPSHOTTING --snapshotting_seconds--> STREAMING
    STARTING | SNAPSHOTTING | STREAMING --STOP--> STOPPING --stopping_seconds--> NOT_RUNNING

START in any state but NOT_RUNNING, and STOP in NOT_RUNNING or STOPPING, are accepted and change
nothing, as the real API acknowledges a command before the agent acts on it.

Failure switches, so clients can be tested against pipelines that do not behave:

* fail-start: the pipeline goes STARTING -> NOT_RUNNING after ``starting_seconds`` instead of
  snapshotting. Set by ``"emulator.fail-start": "true"`` in the definition's ``advancedProperties``
  or by ``POST /_emulator/pipelines/{id}/fail-start``; applies to every later start.
* die-after-N-seconds: the pipeline falls from STREAMING to NOT_RUNNING N seconds after reaching
  STREAMING. Set by ``"emulator.die-after-seconds": "N"`` in ``advancedProperties`` or by
  ``POST /_emulator/pipelines/{id}/die-after``; when set on a pipeline already streaming, it dies N
  seconds from then.
* die: ``POST /_emulator/pipelines/{id}/die`` drops a pipeline that is not NOT_RUNNING to NOT_RUNNING now.
* agent down: ``PUT /_emulator/agents/{id}`` with ``{"connected": false}`` or ``{"agentStatus": "stopped"}``
  takes a seeded agent down; a START to a pipeline on it is then acknowledged and ignored, so the
  pipeline stays NOT_RUNNING, as it does in DPC.

Statuses are computed lazily from ``time.monotonic()`` timestamps whenever a pipeline is read, so
there are no background tasks and a pause of the process never loses a transition.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from airflow_provider_dpc.emulator.config import EmulatorConfig, PublishedPipelineSeed
from airflow_provider_dpc.emulator.executions import ExecutionStore
from airflow_provider_dpc.emulator.ratelimit import RateLimiter
from airflow_provider_dpc.models import FieldError, PipelineCommand, PipelineStatus, Schedule, same_pipeline

__all__ = [
    "DIE_AFTER_KEY",
    "FAIL_START_KEY",
    "RUNNING",
    "EmulatorState",
    "Pipeline",
    "TokenStore",
    "definition_marks",
]

Clock = Callable[[], float]

FAIL_START_KEY = "emulator.fail-start"
DIE_AFTER_KEY = "emulator.die-after-seconds"
RUNNING = frozenset({PipelineStatus.STARTING, PipelineStatus.SNAPSHOTTING, PipelineStatus.STREAMING})
# Fields the server owns: never stored from a request body, always added to responses.
_SERVER_FIELDS = ("streamingPipelineId", "projectId")


def definition_marks(definition: Mapping[str, Any]) -> tuple[bool, float | None, list[FieldError]]:
    """The failure switches in a definition's ``advancedProperties``, and errors for bad values."""
    properties = definition.get("advancedProperties") or {}
    errors: list[FieldError] = []
    fail_start = False
    die_after: float | None = None
    raw_fail = properties.get(FAIL_START_KEY)
    if raw_fail is not None:
        if str(raw_fail).strip().lower() not in ("true", "false"):
            errors.append(FieldError(f"advancedProperties.{FAIL_START_KEY}", "must be 'true' or 'false'"))
        fail_start = str(raw_fail).strip().lower() == "true"
    raw_die = properties.get(DIE_AFTER_KEY)
    if raw_die is not None:
        try:
            die_after = float(raw_die)
            if not math.isfinite(die_after) or die_after < 0:
                raise ValueError
        except ValueError:
            die_after = None
            errors.append(FieldError(f"advancedProperties.{DIE_AFTER_KEY}", "must be a non-negative number of seconds"))
    return fail_start, die_after, errors


@dataclasses.dataclass
class Pipeline:
    """One streaming pipeline: its definition as received and where its status machine stands."""

    pipeline_id: str
    project_id: str
    definition: dict[str, Any]
    status: PipelineStatus = PipelineStatus.NOT_RUNNING
    since: float = 0.0  # when ``status`` began
    phase_seconds: float = 0.0  # length of the current timed phase, fixed when it began
    snapshotting_seconds: float = 0.0  # fixed at START, used when STARTING ends
    marked_fail_start: bool = False
    marked_die_after: float | None = None
    dies_at: float | None = None  # end of the current STREAMING run when set while streaming

    def body(self) -> dict[str, Any]:
        """The pipeline as the API returns it."""
        return {"streamingPipelineId": self.pipeline_id, **self.definition, "projectId": self.project_id}

    @property
    def fail_start(self) -> bool:
        return self.marked_fail_start or definition_marks(self.definition)[0]

    @property
    def die_after(self) -> float | None:
        if self.marked_die_after is not None:
            return self.marked_die_after
        return definition_marks(self.definition)[1]

    def settle(self, now: float) -> PipelineStatus:
        """Apply every transition due by ``now`` and return the status."""
        while (step := self._next_transition()) is not None and step[0] <= now:
            at, status, phase_seconds = step
            self.status, self.since, self.phase_seconds = status, at, phase_seconds
            if status is not PipelineStatus.STREAMING:
                self.dies_at = None
        return self.status

    def _next_transition(self) -> tuple[float, PipelineStatus, float] | None:
        end = self.since + self.phase_seconds
        if self.status is PipelineStatus.STARTING:
            if self.fail_start:
                return end, PipelineStatus.NOT_RUNNING, 0.0
            return end, PipelineStatus.SNAPSHOTTING, self.snapshotting_seconds
        if self.status is PipelineStatus.SNAPSHOTTING:
            return end, PipelineStatus.STREAMING, 0.0
        if self.status is PipelineStatus.STOPPING:
            return end, PipelineStatus.NOT_RUNNING, 0.0
        if self.status is PipelineStatus.STREAMING:
            if self.dies_at is not None:
                return self.dies_at, PipelineStatus.NOT_RUNNING, 0.0
            if self.die_after is not None:
                return self.since + self.die_after, PipelineStatus.NOT_RUNNING, 0.0
        return None

    def command(self, command: PipelineCommand, now: float, config: EmulatorConfig) -> None:
        """Accept a START or STOP; a command that does not apply in the current status is a no-op."""
        status = self.settle(now)
        if command is PipelineCommand.START and status is PipelineStatus.NOT_RUNNING:
            self._enter(PipelineStatus.STARTING, now, config.starting_seconds)
            self.snapshotting_seconds = config.snapshotting_seconds
        elif command is PipelineCommand.STOP and status in RUNNING:
            self._enter(PipelineStatus.STOPPING, now, config.stopping_seconds)

    def die(self, now: float) -> None:
        if self.settle(now) is not PipelineStatus.NOT_RUNNING:
            self._enter(PipelineStatus.NOT_RUNNING, now, 0.0)

    def mark_die_after(self, seconds: float, now: float) -> None:
        streaming = self.settle(now) is PipelineStatus.STREAMING  # settle under the old switch first
        self.marked_die_after = seconds
        if streaming:
            self.dies_at = now + seconds

    def _enter(self, status: PipelineStatus, now: float, phase_seconds: float) -> None:
        self.status, self.since, self.phase_seconds, self.dies_at = status, now, phase_seconds, None


class TokenStore:
    """Opaque bearer tokens and when they expire."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}

    def issue(self, ttl: float) -> str:
        now = self._clock()
        # Drop expired tokens so a long fuzzing run cannot grow the store without bound.
        self._expiry = {token: expiry for token, expiry in self._expiry.items() if expiry > now}
        token = secrets.token_urlsafe(32)
        self._expiry[token] = now + ttl
        return token

    def is_valid(self, token: str) -> bool:
        expiry = self._expiry.get(token)
        return expiry is not None and expiry > self._clock()

    def expire_all(self) -> None:
        now = self._clock()
        self._expiry = dict.fromkeys(self._expiry, now)

    def clear(self) -> None:
        self._expiry.clear()


class EmulatorState:
    """Projects, environments, streaming pipelines, executions, tokens and counters of one emulator run."""

    def __init__(self, config: EmulatorConfig, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.config = config
        self.tokens = TokenStore(clock)
        self.pipelines: dict[str, Pipeline] = {}
        self.agents: dict[str, dict[str, Any]] = {agent.agent_id: agent.to_wire() for agent in config.seed.agents}
        self.executions = ExecutionStore(clock)
        self.limiter = RateLimiter(config.rate_limit, config.rate_window, started=clock())
        self.requests: Counter[str] = Counter()
        self.token_grants = 0
        self.pipelines_created = 0

    @property
    def projects(self) -> dict[str, dict[str, Any]]:
        return {project.id: project.to_wire() for project in self.config.seed.projects}

    def environments(self, project_id: str) -> list[dict[str, Any]]:
        return [env.to_wire() for env in self.config.seed.environments.get(project_id, [])]

    def schedules(self, project_id: str) -> list[Schedule]:
        """The project's seeded schedules; one the emulator runs on an interval says when it runs next."""
        found = []
        for schedule in self.config.seed.schedules.get(project_id, []):
            due = self.executions.next_run(schedule.schedule_id)
            found.append(schedule if due is None else schedule.model_copy(update={"next_run_at": due}))
        return found

    def schedule(self, schedule_id: str) -> tuple[str, Schedule] | None:
        """(project id, schedule) of a seeded schedule."""
        for project_id, schedules in self.config.seed.schedules.items():
            for schedule in schedules:
                if schedule.schedule_id == schedule_id:
                    return project_id, schedule
        return None

    def published_pipelines(self, project_id: str) -> list[PublishedPipelineSeed]:
        return [p for p in self.config.seed.published_pipelines if p.project_id == project_id]

    def published(self, project_id: str, environment_name: str, name: str) -> list[PublishedPipelineSeed]:
        """The pipelines of the project's environment that ``name`` stands for: its published name,
        or its file path with or without folder and suffix (more than one is ambiguous)."""
        found = [
            pipeline
            for pipeline in self.published_pipelines(project_id)
            if pipeline.environment_name == environment_name
            and (pipeline.name == name or same_pipeline(name, pipeline.file_path))
        ]
        exact = [pipeline for pipeline in found if pipeline.name == name]
        return exact or found

    def project_pipelines(self, project_id: str) -> list[Pipeline]:
        return [p for p in self.pipelines.values() if p.project_id == project_id]

    def find(self, project_id: str, pipeline_id: str) -> Pipeline | None:
        pipeline = self.pipelines.get(pipeline_id)
        return pipeline if pipeline is not None and pipeline.project_id == project_id else None

    def create(self, project_id: str, definition: Mapping[str, Any]) -> Pipeline:
        pipeline_id = str(uuid.uuid4())
        pipeline = Pipeline(pipeline_id, project_id, _stored(definition), since=self.clock())
        self.pipelines[pipeline_id] = pipeline
        self.pipelines_created += 1
        return pipeline

    def replace(self, pipeline: Pipeline, definition: Mapping[str, Any]) -> None:
        pipeline.definition = _stored(definition)

    def delete(self, pipeline: Pipeline) -> None:
        self.pipelines.pop(pipeline.pipeline_id, None)

    def agent(self, agent_id: str) -> dict[str, Any] | None:
        return self.agents.get(agent_id)

    def agent_is_up(self, agent_id: str | None) -> bool:
        """Whether a pipeline on ``agent_id`` can start: a seeded agent must be connected and running;
        an agent the seed does not list is taken to be up."""
        agent = self.agents.get(agent_id or "")
        return agent is None or (
            agent.get("connected") is True and str(agent.get("agentStatus", "")).lower() == "running"
        )

    def command(self, pipeline: Pipeline, command: PipelineCommand) -> None:
        """START is acknowledged but changes nothing while the pipeline's agent is down, as in DPC."""
        if command is PipelineCommand.START and not self.agent_is_up(pipeline.definition.get("agentId")):
            return
        pipeline.command(command, self.clock(), self.config)

    def status(self, pipeline: Pipeline) -> PipelineStatus:
        return pipeline.settle(self.clock())

    def issue_token(self, ttl: float) -> str:
        self.token_grants += 1
        return self.tokens.issue(ttl)


def _stored(definition: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in definition.items() if key not in _SERVER_FIELDS}
