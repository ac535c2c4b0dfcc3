"""Benchmark 7, DPC-run watchers' reads: many asset watchers on one project, read each its own way
(Airflow 3.0-3.2) or through one shared read of the project's list (Airflow 3.3's shared streams).

The issue's target: ``watchers`` ``DpcPipelineExecutionEventTrigger`` asset watchers (1,000) on
``pipelines`` published pipelines (100) cost at most 2 list reads per poll interval, plus their
pages, where each watcher's own ``run()`` costs one read per pipeline (watchers of one pipeline
share a read through the hook's cache) or per watcher; event detection p99 within one interval
plus 2 s; no execution fired twice.

One child process (a triggerer's: Airflow and the trigger imported, the connection, token and HTTP
client made once before either mode, so neither pays them) runs both modes one after the other,
each against a fresh state of the bench server (``benchmarks.server``), which counts the requests:

* ``own``: every watcher's ``run()``: its pipeline's list (``pipelineName``, ``environmentName``,
  ``startedAfter``) every ``interval``;
* ``shared``: every watcher subscribed to Airflow's ``SharedStreamManager`` under its
  ``shared_stream_key()`` and fed through its ``filter_shared_stream()``: one read of the whole
  project's list (``projectId`` and ``startedAfter`` only, in pages of 100) every ``interval``.
  Skipped, with the reason, where Airflow has no ``airflow.triggers.shared_stream`` (before 3.3).

Watcher ``i`` watches ``bench-run-{i % pipelines}``, each rebuilt from ``serialize()`` as the
triggerer does. Each pipeline runs ``runs`` times in a row: its first run is under way when the
watchers start; each run ends (SUCCESS) at a known moment, the ends of all pipelines' runs spread
evenly over ``[start + warmup, start + warmup + spread)``, so the delays sample every phase of the
polling cycle, and the next run starts as one ends. A mode runs until two intervals and 2 s after
the last end, so a late event, or one fired twice, shows.

Figures per mode: list requests per poll interval (the server's count of executions list requests
over the mode's elapsed intervals), reads (first pages) per interval and pages per read, events
fired (one per watcher and execution of its pipeline) against those expected, events fired twice
and events for another pipeline's execution (both must be 0), detection delay p50/p99/max (the
event's arrival less the execution's end) and the CPU seconds the process spent (building the
watchers, watching and stopping them). Then the ratio shared / own of list requests per interval
and of CPU. The targets are judged by :func:`benchmarks.report.watcher_verdict`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks import report
from benchmarks._common import (
    DPC_CONN_ID,
    PROJECT_ID,
    BenchServer,
    connections_env,
    emit,
    installed,
    percentile,
    ratio,
    run_child,
    version,
)

MODES = ("own", "shared")
LABELS = {"own": "own run() (Airflow 3.0-3.2)", "shared": "shared stream (Airflow 3.3)"}
ENVIRONMENT = "bench"
#: How long before the watchers start each pipeline's first run began: under way at their first read.
FIRST_RUN_LEAD_S = 60.0


def skipped_modes() -> dict[str, str]:
    """The modes this Airflow cannot run, with what is missing; checked without importing the trigger."""
    airflow = version("apache-airflow") or "0"
    if int(airflow.split(".")[0]) < 3:
        reason = f"Airflow {airflow} has no asset watchers (BaseEventTrigger, Airflow 3.0+)"
        return dict.fromkeys(MODES, reason)
    if not installed("airflow.triggers.shared_stream"):
        return {"shared": f"airflow.triggers.shared_stream is missing (Airflow 3.3+ has it; this is {airflow})"}
    return {}


def available_modes() -> list[str]:
    missing = skipped_modes()
    return [mode for mode in MODES if mode not in missing]


def run(
    *,
    watchers: int = 1000,
    pipelines: int = 100,
    interval: float = 10.0,
    runs: int = 2,
    warmup: float | None = None,
    spread: float = 60.0,
    modes: list[str] | None = None,
) -> dict[str, Any]:
    """Both modes side by side in one child process; ``warmup`` (one interval unless given) is how
    long after the watchers start the first run ends, time enough for every watcher's first read."""
    modes = available_modes() if modes is None else modes
    warmup = interval if warmup is None else warmup
    out: dict[str, Any] = {
        "watchers": watchers,
        "pipelines": pipelines,
        "interval_s": interval,
        "runs_per_pipeline": runs,
        "warmup_s": warmup,
        "spread_s": spread,
        "expected_events": watchers * runs,
        "modes": {},
    }
    if modes:
        with BenchServer() as server:
            # The connection names no limit: the account's documented 1,000 requests a minute.
            env = {**connections_env(server.origin), "BENCH_ORIGIN": server.origin}
            args = ["--watchers", str(watchers), "--pipelines", str(pipelines), "--interval", str(interval)]
            args += ["--runs", str(runs), "--warmup", str(warmup), "--spread", str(spread)]
            args += ["--modes", ",".join(modes)]
            timeout = len(modes) * (warmup + spread + _tail(interval) + 120) + 120
            out["modes"] = run_child(["-m", "benchmarks.watchers", *args], env=env, timeout=timeout)
    own, shared = out["modes"].get("own"), out["modes"].get("shared")
    if own and shared:
        out["ratio_shared_to_own"] = {
            "list_requests_per_interval": ratio(
                shared["list_requests_per_interval"], own["list_requests_per_interval"]
            ),
            "cpu_s": ratio(shared["cpu_s"], own["cpu_s"]),
        }
    out.update(report.watcher_verdict(out))
    return out


def _tail(interval: float) -> float:
    """How long a mode watches after the last end: the delay's bound, and one interval more for a
    second event of the same execution to show."""
    return 2 * interval + report.WATCHER_DELAY_SLACK_S


# ---- triggerer side ------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a mode runs: the sizes, and the runs it scheduled (execution id -> pipeline, end)."""

    watchers: int
    pipelines: int
    interval: float
    runs: int
    warmup: float
    spread: float
    ends: dict[str, tuple[str, float]] = field(default_factory=dict)

    def pipeline(self, watcher: int) -> str:
        return f"bench-run-{watcher % self.pipelines}"

    def schedule(self, start: float) -> list[dict[str, Any]]:
        """Every pipeline's runs, one after another, their ends spread evenly over the spread,
        interleaved (every pipeline's first run ends before any second run does)."""
        total = self.pipelines * self.runs
        self.ends.clear()
        put: list[dict[str, Any]] = []
        for j in range(self.pipelines):
            began = start - FIRST_RUN_LEAD_S
            for k in range(self.runs):
                end = start + self.warmup + self.spread * (k * self.pipelines + j) / total
                execution_id = str(uuid.uuid4())
                self.ends[execution_id] = (f"bench-run-{j}", end)
                put.append({"pipelineName": f"bench-run-{j}", "pipelineExecutionId": execution_id,
                            "startedAt": began, "finishedAt": end})  # fmt: skip
                began = end
        return put


@dataclass
class Seen:
    """What the watchers fired: arrival times per (watcher, execution), and what they should not have."""

    fired: dict[tuple[int, str], list[float]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def record(self, plan: Plan, watcher: int, payload: dict[str, Any]) -> None:
        execution_id = str(payload.get("pipeline_execution_id"))
        pipeline, _ = plan.ends.get(execution_id, ("", 0.0))
        if pipeline != plan.pipeline(watcher) or payload.get("status") != "SUCCESS":
            self.unexpected.append(f"watcher {watcher} on {plan.pipeline(watcher)}: {str(payload)[:160]}")
            return
        self.fired.setdefault((watcher, execution_id), []).append(time.time())


def _build_watchers(plan: Plan) -> list[Any]:
    """The watchers, rebuilt from ``serialize()`` as the triggerer does."""
    from airflow_provider_dpc.triggers.pipeline_execution import DpcPipelineExecutionEventTrigger
    from benchmarks.triggerer import _build

    built = []
    for i in range(plan.watchers):
        made = DpcPipelineExecutionEventTrigger(
            DPC_CONN_ID, PROJECT_ID, plan.pipeline(i), ENVIRONMENT, poll_interval=plan.interval
        )
        classpath, kwargs = made.serialize()
        built.append(_build(classpath, json.loads(json.dumps(kwargs))))
    return built


async def _watch(mode: str, watchers: list[Any], plan: Plan, seen: Seen, until: float) -> float:
    """Run ``watchers`` the ``mode``'s way until ``until`` (epoch); returns when they were stopped."""
    follow, stop = _own() if mode == "own" else _shared()

    async def one(i: int, watcher: Any) -> None:
        try:
            # Closed when cancelled, so each watcher's hook closes before the next mode begins.
            async with contextlib.aclosing(follow(i, watcher)) as events:
                async for event in events:
                    seen.record(plan, i, event.payload)
        except Exception as exc:  # a watcher that dies is a figure, not the end of the benchmark
            seen.errors.append(f"{type(exc).__name__}: {exc}"[:200])

    tasks = [asyncio.create_task(one(i, w)) for i, w in enumerate(watchers)]
    await asyncio.sleep(max(0.0, until - time.time()))
    stopped = time.time()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await stop()
    return stopped


Follow = Callable[[int, Any], AsyncGenerator[Any, None]]


def _own() -> tuple[Follow, Callable[[], Any]]:
    """Airflow 3.0-3.2: each watcher's own ``run()``."""

    async def stop() -> None:
        return None

    return lambda i, watcher: watcher.run(), stop


def _shared() -> tuple[Follow, Callable[[], Any]]:
    """Airflow 3.3: as its triggerer runs an event trigger with a shared stream key."""
    from airflow.triggers.shared_stream import SharedStreamManager

    manager = SharedStreamManager()

    def follow(i: int, watcher: Any) -> AsyncGenerator[Any, None]:
        stream = manager.subscribe(trigger_id=i, trigger=watcher, key=watcher.shared_stream_key())
        events: AsyncGenerator[Any, None] = watcher.filter_shared_stream(stream)
        return events

    return follow, manager.stop_all


def _measure(mode: str, plan: Plan) -> dict[str, Any]:
    """One mode against a fresh server state: its figures."""
    from benchmarks.triggerer import _admin

    origin = os.environ["BENCH_ORIGIN"]
    # What the imports made is frozen out of the collector's sight, as in benchmark 3: a full
    # collection walking Airflow's objects would land in whichever mode it happened to fall in.
    gc.collect()
    gc.freeze()
    _admin(origin, "POST", "/_bench/reset")
    cpu0 = time.process_time()
    watchers = _build_watchers(plan)
    start = time.time()
    _admin(origin, "PUT", "/_bench/runs", plan.schedule(start))
    seen = Seen()
    until = start + plan.warmup + plan.spread + _tail(plan.interval)
    stopped = asyncio.run(_watch(mode, watchers, plan, seen, until))
    cpu = time.process_time() - cpu0
    return _figures(mode, plan, seen, _admin(origin, "GET", "/_bench/stats"), stopped - start, cpu)


def _figures(mode: str, plan: Plan, seen: Seen, stats: dict[str, Any], elapsed: float, cpu: float) -> dict[str, Any]:
    requests = stats["requests"]
    listed = requests.get("GET executions", 0)
    reads = listed - requests.get("GET executions, next page", 0)
    intervals = elapsed / plan.interval
    delays = [times[0] - plan.ends[execution_id][1] for (_, execution_id), times in seen.fired.items()]
    return {
        "label": LABELS[mode],
        "elapsed_s": round(elapsed, 1),
        "intervals": round(intervals, 2),
        "list_requests": listed,
        "reads": reads,
        "project_wide_requests": requests.get("GET executions, project-wide", 0),
        "list_requests_per_interval": round(listed / intervals, 2),
        "reads_per_interval": round(reads / intervals, 2),
        "pages_per_read": round(listed / reads, 2) if reads else None,
        "token_grants": stats["token_grants"],
        "fired": len(seen.fired),
        "expected": plan.watchers * plan.runs,
        "fired_twice": sum(1 for times in seen.fired.values() if len(times) > 1),
        "unexpected": len(seen.unexpected),
        "errors": len(seen.errors),
        "samples": sorted(set(seen.unexpected + seen.errors))[:5],
        "delay_p50_s": _rounded(percentile(delays, 0.50)),
        "delay_p99_s": _rounded(percentile(delays, 0.99)),
        "delay_max_s": _rounded(max(delays, default=None)),
        "cpu_s": round(cpu, 2),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def _warm_up() -> None:
    """The connection read, the token granted and the client made once, before either mode."""
    from airflow_provider_dpc.hooks.dpc import DpcHook

    async with DpcHook(DPC_CONN_ID) as hook:
        await hook.alist_pipeline_executions(PROJECT_ID, pipeline_name="bench-warm-up", environment_name=ENVIRONMENT)


def _main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watchers")
    parser.add_argument("--watchers", type=int, required=True)
    parser.add_argument("--pipelines", type=int, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--warmup", type=float, required=True)
    parser.add_argument("--spread", type=float, required=True)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    plan = Plan(args.watchers, args.pipelines, args.interval, args.runs, args.warmup, args.spread)
    # A triggerer's process: what either mode runs is imported before the first one is measured.
    import airflow_provider_dpc.triggers.pipeline_execution  # noqa: F401

    modes = [m for m in args.modes.split(",") if m]
    if "shared" in modes:
        import airflow.triggers.shared_stream  # noqa: F401
    asyncio.run(_warm_up())
    emit({mode: _measure(mode, plan) for mode in modes})


if __name__ == "__main__":
    _main()
