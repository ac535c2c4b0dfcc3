"""Benchmark 5, the account's API budget: many deferred waits against an account's rate limit.

The server (``benchmarks.server``) enforces the emulator's own limiter: ``limit`` requests per rolling
``window`` (DPC's 1,000 a minute), answering 429 with ``Retry-After`` beyond it. A triggerer-like
child process runs ``waits`` waits on ``pipelines`` pipelines (``waits / pipelines`` on each, as
every consumer DAG holds its own sensor) in one event loop; pipeline ``j`` turns STREAMING at
``start + warmup + spread * j / pipelines``, known moments, so each wait's detection delay is known.

Cases:

* ``shared``: 1,000 waits on 100 pipelines, 10 on each, a 5 s interval: they would need 12,000
  requests a minute alone; ours (``DpcStreamingPipelineTrigger``) shares reads and keeps to the
  budget. Beside it the HTTP provider's ``HttpSensorTrigger`` on the same URLs and limit.
* ``one_each``: one wait per pipeline (100 waits), where sharing cannot help, to show that keeping
  to the budget stretches the polls evenly rather than failing any wait.

With ``watchers`` (``--budget-watchers 100``), the ``shared`` case of our trigger also runs that many
``DpcPipelineExecutionEventTrigger`` asset watchers in the same event loop, one per published
pipeline, each polling the executions list every ``watcher_interval`` seconds (60, the default) and
drawing from the same budget; each pipeline's execution ends in SUCCESS at a known moment within the
waits' spread. Their own figures: events (one per execution, never twice) and detection delay
against ``2 x watcher_interval + 1 s``; the waits' figures must stay within their targets.

Figures per run: events and failed waits, requests sent per minute (peak and mean of whole
minutes), the most admitted within any rolling window (never above the limit is the goal), 429s
received and their share, and detection delay p50/p99 against the bound ``2 x (the interval the
budget allows) + 1 s``, the interval being the larger of the poll interval and pipelines over the
budget's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks._common import (
    DPC_CONN_ID,
    PROJECT_ID,
    BenchmarkError,
    BenchServer,
    connections_env,
    emit,
    grant_token,
    percentile,
    pipeline_ids,
    run_child,
)

VARIANTS = ("dpc", "http_sensor")
LABELS = {"dpc": "DpcStreamingPipelineTrigger", "http_sensor": "HttpSensorTrigger"}


def available_variants() -> list[str]:
    from benchmarks import triggerer

    return triggerer.available_variants(VARIANTS)


def run(
    *,
    waits: int = 1000,
    pipelines: int = 100,
    interval: float = 5.0,
    limit: int = 1000,
    window: float = 60.0,
    warmup: float = 45.0,
    spread: float = 20.0,
    variants: list[str] | None = None,
    watchers: int = 0,
    watcher_interval: float = 60.0,
) -> dict[str, Any]:
    variants = variants or available_variants()
    cases = {"shared": (waits, variants), "one_each": (pipelines, ["dpc"])}
    out: dict[str, Any] = {
        "waits": waits,
        "pipelines": pipelines,
        "interval_s": interval,
        "limit": limit,
        "window_s": window,
        "warmup_s": warmup,
        "spread_s": spread,
        "watchers": watchers,
        "watcher_interval_s": watcher_interval,
        "cases": {},
        "overhead": overhead(),
    }
    with BenchServer() as server:
        # The account's limit as the connection states it (the documented 1,000 a minute by default).
        env = connections_env(server.origin, requests_per_minute=limit * 60.0 / window)
        ids = pipeline_ids(pipelines)
        server.start_pipelines(ids)
        env.update(BENCH_TOKEN=grant_token(server.token_url), BENCH_ORIGIN=server.origin)
        for case, (n, case_variants) in cases.items():
            out["cases"][case] = {"waits": n, "variants": {}}
            for variant in case_variants:
                server.reset()
                server.rate_limit(limit, window)
                args = ["--variant", variant, "--waits", str(n), "--pipelines", str(pipelines)]
                args += ["--interval", str(interval), "--warmup", str(warmup), "--spread", str(spread)]
                if watchers and case == "shared" and variant == "dpc":
                    args += ["--watchers", str(watchers), "--watcher-interval", str(watcher_interval)]
                timeout = warmup + spread + 4 * max(interval, watcher_interval) + 300
                result = run_child(["-m", "benchmarks.budget", *args], env=env, timeout=timeout)
                result.update(_requests(server.stats()["rate_limit"]))
                budget_interval = max(interval, pipelines / (limit / window))
                result["delay_bound_s"] = round(2 * budget_interval + 1.0, 2)
                result["label"] = LABELS[variant]
                out["cases"][case]["variants"][variant] = result
    return out


def overhead(polls: int = 200_000, rounds: int = 5) -> dict[str, Any]:
    """Client CPU the budget and shared reads add to one poll, measured in this process.

    Rounds alternate a poll's bookkeeping (``Budget.reserve`` and ``SharedReads.read`` over 1,000
    distinct keys, around a read that returns at once) with the bare read, so the difference is
    what a trigger's poll pays for them; far below the noise of a whole triggerer run.
    """
    from airflow_provider_dpc.hooks._budget import Budget, SharedReads

    async def read() -> int:
        return 1

    async def measure() -> list[float]:
        budget, keys, added = Budget(10**9), [("bench", "GET", f"/status/{i}") for i in range(1000)], []
        for _ in range(rounds):
            started = time.process_time()
            for i in range(polls):
                budget.take()
                await SharedReads.read(keys[i % 1000], read, 0.0)
            with_budget = time.process_time() - started
            started = time.process_time()
            for _ in range(polls):
                await read()
            added.append((with_budget - (time.process_time() - started)) / polls * 1e6)
        return added

    added = sorted(asyncio.run(measure()))
    return {"polls": polls, "rounds": rounds, "added_cpu_per_poll_us": round(added[len(added) // 2], 3)}


def _requests(limiter: dict[str, Any]) -> dict[str, Any]:
    """Requests per minute, 429s and the most admitted in a window, from the server's limiter."""
    minutes = limiter["per_minute"]
    sent = [m["admitted"] + m["refused"] for m in minutes]
    whole = sent[:-1] or sent  # the last minute is cut short by the run's end
    total = limiter["admitted"] + limiter["refused"]
    return {
        "requests": total,
        "throttled": limiter["refused"],
        "throttled_share": round(limiter["refused"] / total, 4) if total else 0.0,
        "requests_per_minute_peak": max(sent, default=0),
        "requests_per_minute_mean": round(sum(whole) / len(whole), 1) if whole else 0.0,
        "admitted_peak_in_window": limiter["peak_in_window"],
    }


# ---- triggerer side ------------------------------------------------------------------------------


Unit = tuple[str, Callable[[], Awaitable[Any]], Callable[[Any], bool]]


def _units(variant: str, n: int, ids: list[str], interval: float) -> list[Unit]:
    """One wait per unit: (its pipeline, its coroutine factory, how to tell a good event)."""
    from benchmarks.triggerer import _first_event

    targets = [ids[i % len(ids)] for i in range(n)]
    if variant == "dpc":
        return [(pid, make, _reached) for pid, make in _trigger_units(targets, interval)]
    if variant == "http_sensor":
        from benchmarks.triggerer import http_sensor_trigger

        token = os.environ["BENCH_TOKEN"]
        sensors = [(pid, http_sensor_trigger(pid, interval, token)) for pid in targets]
        return [(pid, functools.partial(_first_event, t), lambda p: p is True) for pid, t in sensors]
    raise BenchmarkError(f"unknown variant {variant!r}")


def _trigger_units(targets: list[str], interval: float) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
    """A ``DpcStreamingPipelineTrigger`` waiting for STREAMING on each of ``targets``, rebuilt from
    ``serialize()`` as the triggerer does: (its pipeline, its first event's coroutine factory)."""
    from airflow_provider_dpc.status import StatusGoal
    from airflow_provider_dpc.triggers.streaming_pipeline import DpcStreamingPipelineTrigger
    from benchmarks.triggerer import _build, _first_event

    goal = StatusGoal.of("STREAMING", "NOT_RUNNING").to_dict()
    units: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
    for pipeline_id in targets:
        made = DpcStreamingPipelineTrigger(
            dpc_conn_id=DPC_CONN_ID,
            project_id=PROJECT_ID,
            pipeline_id=pipeline_id,
            goal=goal,
            poll_interval=interval,
            started_at=time.time(),
        )
        classpath, kwargs = made.serialize()  # as the triggerer rebuilds it
        trigger = _build(classpath, json.loads(json.dumps(kwargs)))
        units.append((pipeline_id, functools.partial(_first_event, trigger)))
    return units


def _reached(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("verdict") == "reached" and payload.get("status") == "STREAMING"


def _run_watchers(n: int, interval: float, runs_end: dict[str, float]) -> tuple[list[asyncio.Task[None]], Any]:
    """``n`` asset watchers on the published pipelines ``runs_end`` names, each counting its events."""
    from airflow_provider_dpc.triggers.pipeline_execution import DpcPipelineExecutionEventTrigger
    from benchmarks.triggerer import _build

    fired: dict[str, list[float]] = {name: [] for name in runs_end}

    async def watch(name: str) -> None:
        made = DpcPipelineExecutionEventTrigger(DPC_CONN_ID, PROJECT_ID, name, "bench", poll_interval=interval)
        classpath, kwargs = made.serialize()  # as the triggerer rebuilds it
        async for event in _build(classpath, json.loads(json.dumps(kwargs))).run():
            if event.payload.get("status") == "SUCCESS":
                fired[name].append(time.time())

    return [asyncio.create_task(watch(name)) for name in list(runs_end)[:n]], fired


def _watcher_figures(fired: dict[str, list[float]], runs_end: dict[str, float], interval: float) -> dict[str, Any]:
    delays = [times[0] - runs_end[name] for name, times in fired.items() if times]
    return {
        "watchers": len(fired),
        "interval_s": interval,
        "fired": sum(1 for times in fired.values() if times),
        "fired_twice": sum(1 for times in fired.values() if len(times) > 1),
        "delay_p50_s": percentile(delays, 0.50),
        "delay_p99_s": percentile(delays, 0.99),
        "delay_bound_s": round(2 * interval + 1.0, 2),
    }


async def _watch(
    variant: str,
    n: int,
    pipelines: int,
    interval: float,
    warmup: float,
    spread: float,
    watchers: int = 0,
    watcher_interval: float = 60.0,
) -> dict[str, Any]:
    from benchmarks.triggerer import _admin

    origin = os.environ["BENCH_ORIGIN"]
    ids = pipeline_ids(pipelines)
    units = _units(variant, n, ids, interval)
    start = time.time() + 0.2
    flips = {pid: start + warmup + spread * j / pipelines for j, pid in enumerate(ids)}
    # Each watched pipeline's execution ends in SUCCESS at a known moment within the waits' spread.
    runs_end = {f"bench-run-{j}": start + warmup + spread * j / max(watchers, 1) for j in range(watchers)}
    _admin(origin, "PUT", "/_bench/schedule", {"default": None, "at": {**flips, **runs_end}})
    watching, fired = _run_watchers(watchers, watcher_interval, runs_end) if watchers else ([], {})
    await asyncio.sleep(max(0.0, start - time.time()))
    delays: list[float] = []
    errors: list[str] = []

    async def one(pipeline_id: str, make: Callable[[], Awaitable[Any]], good: Callable[[Any], bool]) -> None:
        try:
            payload = await make()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        if good(payload):
            delays.append(time.time() - flips[pipeline_id])
        else:
            errors.append(f"unexpected event: {str(payload)[:160]}")

    tasks = [asyncio.create_task(one(pid, make, good)) for pid, make, good in units]
    _, pending = await asyncio.wait(tasks, timeout=warmup + spread + 4 * interval + 120)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    waits_wall = round(time.time() - start, 1)
    watched: dict[str, Any] = {}
    if watching:
        # Until every watcher fired, and one interval more: an execution fired twice would show.
        deadline = start + warmup + spread + 2 * watcher_interval + 60
        while time.time() < deadline and not all(fired.values()):
            await asyncio.sleep(0.5)
        await asyncio.sleep(min(watcher_interval, max(0.0, deadline - time.time())))
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
        watched = {"watchers": _watcher_figures(fired, runs_end, watcher_interval)}
    return {
        **watched,
        "variant": variant,
        "waits": n,
        "events": len(delays),
        "failed_waits": n - len(delays),
        "errors": len(errors),
        "missing": len(pending),
        "error_samples": sorted(set(errors))[:5],
        "delay_p50_s": percentile(delays, 0.50),
        "delay_p99_s": percentile(delays, 0.99),
        "delay_max_s": round(max(delays), 3) if delays else None,
        "wall_s": waits_wall,
    }


def _main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.budget")
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--waits", type=int, required=True)
    parser.add_argument("--pipelines", type=int, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--warmup", type=float, required=True)
    parser.add_argument("--spread", type=float, required=True)
    parser.add_argument("--watchers", type=int, default=0)
    parser.add_argument("--watcher-interval", type=float, default=60.0)
    args = parser.parse_args()
    waits = (args.variant, args.waits, args.pipelines, args.interval, args.warmup, args.spread)
    emit(asyncio.run(_watch(*waits, watchers=args.watchers, watcher_interval=args.watcher_interval)))


if __name__ == "__main__":
    _main()
