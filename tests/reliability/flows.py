"""The create, start, wait, stop flow through the real operators, with faults injected on cue.

A :class:`Case` names the faults and when they strike: ``(step, event, n)`` is the ``n``-th call of
a kind (``list``, ``create``, ``get``, ``command``, ``status``) the tasks make during a step, counted
by wrapping :class:`DpcHook`'s methods, sync and async, so the cue is the same whether a wait polls
in the worker or runs in the trigger. Faults are set on the emulator right before that call (or a
timer clears them a little later), so each case strikes exactly where it means to.

The flow is that of a DAG: ``create >> start >> wait >> stop``, the stop being a teardown that runs
whatever happened upstream (``trigger_rule="all_done"``), and it looks its pipeline up by name, so a
duplicate would make it fail. After the flow the emulator is asked how many pipelines were created
and how many carry the flow's name.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

from airflow_provider_dpc.emulator import EmulatorProcess
from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.models import PipelineStatus
from airflow_provider_dpc.operators.streaming_pipeline import (
    DpcCreateStreamingPipelineOperator,
    DpcStartStreamingPipelineOperator,
    DpcStopStreamingPipelineOperator,
)
from airflow_provider_dpc.sensors.streaming_pipeline import DpcStreamingPipelineSensor
from tests.guide import PROJECT_ID, guide_body
from tests.task_runner import run_task

STEPS = ("create", "start", "wait", "stop")
TEARDOWN = "stop"
# Fast enough for a test, patient enough for an emulator restart (about a second of refused connections).
RELIABLE: dict[str, Any] = {"max_attempts": 12, "backoff_base": 0.05, "backoff_max": 0.5, "max_elapsed": 20.0}
MODES = ("polling", "deferrable")

Action = Callable[["Flow"], None]


@dataclasses.dataclass(frozen=True)
class Expect:
    """A step's documented outcome: success, or an error of ``error`` whose message matches ``patterns``.

    Patterns and ``attrs`` values may hold ``{pipeline}``, ``{project}`` and ``{name}``.
    """

    error: type[BaseException] | None = None
    patterns: tuple[str, ...] = ()
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def check(self, step: str, outcome: BaseException | None, values: Mapping[str, str]) -> list[str]:
        if self.error is None:
            if outcome is not None:
                return [f"{step}: expected success, got {type(outcome).__name__}: {outcome}"]
            return []
        if outcome is None:
            return [f"{step}: expected {self.error.__name__}, but it succeeded"]
        problems = []
        if not isinstance(outcome, self.error):
            problems.append(f"{step}: expected {self.error.__name__}, got {type(outcome).__name__}: {outcome}")
        for pattern in self.patterns:
            wanted = pattern.format(**{k: re.escape(v) for k, v in values.items()})
            if not re.search(wanted, str(outcome)):
                problems.append(f"{step}: message does not match {wanted!r}: {outcome}")
        for attr, value in self.attrs.items():
            wanted_value = value.format(**values) if isinstance(value, str) else value
            if getattr(outcome, attr, None) != wanted_value:
                problems.append(f"{step}: {attr} is {getattr(outcome, attr, None)!r}, expected {wanted_value!r}")
        return problems


OK = Expect()


@dataclasses.dataclass(frozen=True)
class Case:
    """One row of the fault matrix."""

    name: str
    actions: Mapping[tuple[str, str, int], Action | tuple[Action, ...]]
    expect: Mapping[str, Expect] = dataclasses.field(default_factory=dict)
    check: Callable[[Flow], None] | None = None
    modes: tuple[str, ...] = MODES
    timeout: float = 5.0  # the connection's client timeout (extra ``timeout``)
    retry_policy: Mapping[str, Any] = dataclasses.field(default_factory=lambda: dict(RELIABLE))
    grace_period: float = 0.5
    bound: float = 30.0  # seconds the whole flow may take
    state_lost: bool = False  # the emulator forgets the pipeline (restart)

    def outcome(self, step: str) -> Expect:
        return self.expect.get(step, OK)


# ---- fault actions ------------------------------------------------------------------------------


def faults(**settings: Any) -> Action:
    def set_faults(flow: Flow) -> None:
        flow.emulator.set_faults(**settings)

    return set_faults


def clear_faults(flow: Flow) -> None:
    flow.emulator.clear_faults()


def later(seconds: float, action: Action) -> Action:
    return lambda flow: flow.after(seconds, action)


def fail_start(flow: Flow) -> None:
    flow.emulator.fail_start(flow.pipeline_id)


def die(flow: Flow) -> None:
    flow.emulator.die(flow.pipeline_id)


def restart(flow: Flow) -> None:
    flow.keep_stats()
    flow.emulator.restart()


# ---- the flow -----------------------------------------------------------------------------------

_EVENTS = {
    "iter_streaming_pipelines": "list",
    "create_streaming_pipeline": "create",
    "get_streaming_pipeline": "get",
    "send_command": "command",
    "get_status": "status",
}
_ASYNC_EVENTS = {"aget_status": "status", "aget_streaming_pipeline": "get"}


@dataclasses.dataclass
class Flow:
    case: Case
    emulator: EmulatorProcess
    conn_id: str
    deferrable: bool
    name: str = dataclasses.field(default_factory=lambda: f"reliability-{uuid.uuid4().hex[:10]}")
    pipeline_id: str = ""
    step: str = "setup"
    calls: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    outcomes: dict[str, BaseException | str | None] = dataclasses.field(default_factory=dict)
    step_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    elapsed: float = 0.0
    earlier_stats: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    pipelines_created: int = 0
    named_pipelines: int = 0
    final_status: PipelineStatus | None = None
    _timers: list[threading.Timer] = dataclasses.field(default_factory=list)
    _errors: list[BaseException] = dataclasses.field(default_factory=list)

    # cues

    def fire(self, event: str) -> None:
        self.calls[(self.step, event)] += 1
        planned = self.case.actions.get((self.step, event, self.calls[(self.step, event)]))
        for action in planned if isinstance(planned, tuple) else (planned,) if planned else ():
            action(self)

    def after(self, seconds: float, action: Action) -> None:
        def run() -> None:
            try:
                action(self)
            except BaseException as exc:  # reported by finish()
                self._errors.append(exc)

        timer = threading.Timer(seconds, run)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def keep_stats(self) -> None:
        """Save the counters of an emulator about to lose them (restart)."""
        self.earlier_stats.append(self.emulator.stats())

    @contextmanager
    def cues(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        flow = self

        def wrap(method: Callable[..., Any], event: str) -> Callable[..., Any]:
            def wrapper(hook: DpcHook, *args: Any, **kwargs: Any) -> Any:
                flow.fire(event)
                return method(hook, *args, **kwargs)

            return wrapper

        def wrap_async(method: Callable[..., Any], event: str) -> Callable[..., Any]:
            async def wrapper(hook: DpcHook, *args: Any, **kwargs: Any) -> Any:
                flow.fire(event)
                return await method(hook, *args, **kwargs)

            return wrapper

        with monkeypatch.context() as patch:
            for name, event in _EVENTS.items():
                patch.setattr(DpcHook, name, wrap(getattr(DpcHook, name), event))
            for name, event in _ASYNC_EVENTS.items():
                patch.setattr(DpcHook, name, wrap_async(getattr(DpcHook, name), event))
            yield

    # the tasks

    def _common(self) -> dict[str, Any]:
        return {
            "dpc_conn_id": self.conn_id,
            "project_id": PROJECT_ID,
            "dpc_retry_policy": dict(self.case.retry_policy),
            "deferrable": self.deferrable,
        }

    def tasks(self) -> dict[str, Callable[[], Any]]:
        common = self._common()
        return {
            "create": lambda: DpcCreateStreamingPipelineOperator(
                task_id="create", definition=guide_body(self.name), if_exists="fail", poll_interval=0.1, **common
            ),
            "start": lambda: DpcStartStreamingPipelineOperator(
                task_id="start",
                pipeline_id=self.pipeline_id,
                grace_period=self.case.grace_period,
                timeout=20,
                poll_interval=0.1,
                **common,
            ),
            "wait": lambda: DpcStreamingPipelineSensor(
                task_id="wait", pipeline_id=self.pipeline_id, poke_interval=0.1, timeout=20, **common
            ),
            # The teardown finds its pipeline by name: a duplicate would make it fail.
            "stop": lambda: DpcStopStreamingPipelineOperator(
                task_id="stop", pipeline_name=self.name, poll_interval=0.1, timeout=20, **common
            ),
        }

    def run(self, monkeypatch: pytest.MonkeyPatch) -> Flow:
        started = time.monotonic()
        tasks = self.tasks()
        failed = False
        with self.cues(monkeypatch):
            for step in STEPS:
                if failed and step != TEARDOWN:
                    self.outcomes[step] = "skipped"
                    continue
                self.step = step
                step_started = time.monotonic()
                try:
                    result = run_task(tasks[step]())
                except Exception as exc:
                    self.outcomes[step] = exc
                    failed = True
                else:
                    self.outcomes[step] = None
                    if step == "create":
                        self.pipeline_id = result
                self.step_seconds[step] = round(time.monotonic() - step_started, 2)
        self.elapsed = time.monotonic() - started
        self.step = "after"
        self.finish()
        return self

    def finish(self) -> None:
        """Stop the timers, clear the faults and count what the emulator created."""
        for timer in self._timers:
            timer.cancel()
            timer.join(timeout=10)
        if self._errors:
            raise self._errors[0]
        self.emulator.clear_faults()
        self.stats = self.emulator.stats()
        self.pipelines_created = sum(s["pipelines_created"] for s in [*self.earlier_stats, self.stats])
        hook = DpcHook(self.conn_id, retry_policy=RELIABLE)
        named = [p for p in hook.list_streaming_pipelines(PROJECT_ID) if p.name == self.name]
        self.named_pipelines = len(named)
        if len(named) == 1:
            self.final_status = hook.get_status(PROJECT_ID, named[0].streaming_pipeline_id)
        for pipeline in named:  # leave the emulator clean for the next flow
            if hook.get_status(PROJECT_ID, pipeline.streaming_pipeline_id) is not PipelineStatus.NOT_RUNNING:
                self.emulator.die(pipeline.streaming_pipeline_id)
            hook.delete_streaming_pipeline(PROJECT_ID, pipeline.streaming_pipeline_id, missing_ok=True)

    # verdict

    @property
    def duplicates(self) -> int:
        return max(0, self.pipelines_created - 1) + max(0, self.named_pipelines - 1)

    def problems(self) -> list[str]:
        values = {"pipeline": self.pipeline_id or "<none>", "project": PROJECT_ID, "name": self.name}
        found: list[str] = []
        for step in STEPS:
            outcome = self.outcomes.get(step)
            if outcome == "skipped":
                if self.case.outcome(step).error is None and not any(
                    self.case.outcome(s).error for s in STEPS[: STEPS.index(step)]
                ):
                    found.append(f"{step}: skipped although no earlier step was meant to fail")
                continue
            assert not isinstance(outcome, str)
            found.extend(self.case.outcome(step).check(step, outcome, values))
        if self.elapsed > self.case.bound:
            found.append(f"the flow took {self.elapsed:.1f} s, more than its bound of {self.case.bound:g} s")
        if self.duplicates:
            found.append(
                f"duplicate pipelines: {self.pipelines_created} created, {self.named_pipelines} named {self.name!r}"
            )
        if not self.case.state_lost:
            if self.named_pipelines != 1:
                found.append(f"{self.named_pipelines} pipelines named {self.name!r} after the flow, expected 1")
            elif self.outcomes.get(TEARDOWN) is None and self.final_status is not PipelineStatus.NOT_RUNNING:
                found.append(f"the pipeline is {self.final_status} after the stop, expected NOT_RUNNING (orphaned)")
        return found

    def describe(self) -> str:
        lines = [f"flow {self.case.name} ({'deferrable' if self.deferrable else 'polling'}) in {self.elapsed:.1f} s"]
        for step in STEPS:
            outcome = self.outcomes.get(step)
            shown = "ok" if outcome is None else outcome if isinstance(outcome, str) else repr(outcome)
            lines.append(f"  {step:<6} {self.step_seconds.get(step, 0):>5.2f} s  {shown}")
        lines.append(
            f"  faults injected: {self.stats.get('faults_injected')}; token grants {self.stats.get('token_grants')}"
        )
        return "\n".join(lines)
