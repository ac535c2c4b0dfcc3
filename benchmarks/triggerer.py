"""Benchmark 3, triggerer scale: many pipelines watched concurrently in one event loop.

1. A worker-like child process executes ``DpcStreamingPipelineSensor`` (half of the pipelines,
   already started) and ``DpcStartStreamingPipelineOperator`` (the other half: it sends START)
   with ``deferrable=True`` and catches the ``TaskDeferred`` each raises, keeping the trigger's
   ``serialize()`` output, as Airflow stores it.
2. For each variant, a fresh triggerer-like child process rebuilds the triggers from those
   ``(classpath, kwargs)`` pairs as the triggerer does, runs them all concurrently in one event
   loop, and takes the first event of each. The server (``benchmarks.server``, another process)
   turns pipeline ``i`` STREAMING at ``start + warmup + window + interval * i / n``: known moments
   spread over one poll interval, so the detection delays sample every phase of the polling cycle.

The run has three windows, and the client's CPU time is read at their edges:

* start-up, ``[start, start + warmup)``: every trigger reads its connection, builds its client,
  gets the token and polls twice (the second round, all at once, grows the connection pool);
* polling, ``[start + warmup, first flip)``: nothing but polls. Its CPU per poll is the steady cost
  that decides how many pipelines a triggerer can watch;
* detection, from the first flip to the last event: polls, and each trigger's event and exit.

Besides the CPU per poll of the polling window and of the whole run (all-in), the fixed costs are
given per trigger: start-up and end (each window's CPU less its polls at the steady cost).

Variants: ``dpc`` (our trigger, on its aiohttp transport), ``dpc_httpx`` (our trigger
forced onto ``httpx.AsyncClient``), ``dpc_unbudgeted`` (our trigger without the account's request
budget and shared reads, to show what they cost per poll), ``http_sensor`` (the HTTP provider's ``HttpSensorTrigger`` on
the same URLs, answered 404 until the flip) and ``aiohttp_floor`` (a bare loop over one shared
``aiohttp.ClientSession``: the practical floor in Python).

Figures per run: events and error events, detection delay p50/p99, client CPU per poll (steady
and all-in), start-up and end CPU per trigger, peak RSS growth per trigger, and token grants.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import resource
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks._common import (
    DPC_CONN_ID,
    HTTP_CONN_ID,
    PROJECT_ID,
    RESULTS,
    BenchmarkError,
    BenchServer,
    connections_env,
    emit,
    grant_token,
    has_http_provider,
    percentile,
    pipeline_ids,
    ratio,
    run_child,
    summary,
)

VARIANTS = ("dpc", "http_sensor", "aiohttp_floor", "dpc_httpx", "dpc_unbudgeted")
TRIGGERER_MODULES = (
    "airflow.sdk",
    "airflow.triggers.base",
    "airflow_provider_dpc.triggers.streaming_pipeline",
    "airflow.providers.http.triggers.http",
    "aiohttp",
)
LABELS = {
    "dpc": "DpcStreamingPipelineTrigger",
    "dpc_httpx": "DpcStreamingPipelineTrigger on httpx.AsyncClient",
    "http_sensor": "HttpSensorTrigger",
    "aiohttp_floor": "raw aiohttp loop (floor)",
    "dpc_unbudgeted": "DpcStreamingPipelineTrigger without the request budget and shared reads",
}


def available_variants(wanted: tuple[str, ...] = VARIANTS) -> list[str]:
    return [v for v in wanted if v != "http_sensor" or has_http_provider()]


def run(
    *,
    triggers: int = 1000,
    interval: float = 5.0,
    reps: int = 3,
    warmup: float | None = None,
    window: float | None = None,
    variants: list[str] | None = None,
    workdir: Path | None = None,
) -> dict[str, Any]:
    variants = variants or available_variants()
    warmup = interval + 1.5 if warmup is None else warmup
    window = 1.5 * interval if window is None else window  # a whole round even of a slow client
    workdir = workdir or RESULTS
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"triggers-{triggers}.json"
    with BenchServer() as server:
        # This server has no rate limit: the budget never makes a poll wait, and costs only its CPU.
        env = connections_env(server.origin, requests_per_minute=10**9)
        ids = pipeline_ids(triggers)
        server.start_pipelines(ids[0::2])  # the sensor's pipelines were started upstream
        deferral = run_child(
            [
                "-m",
                "benchmarks.triggerer",
                "defer",
                "--n",
                str(triggers),
                "--interval",
                str(interval),
                "--out",
                str(path),
            ],
            env=env,
            timeout=600,
        )
        deferral["start_commands"] = server.stats()["commands"]
        env.update(BENCH_TOKEN=grant_token(server.token_url), BENCH_ORIGIN=server.origin)
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        for rep in range(reps):
            order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
            for variant in order:
                server.reset()
                args = ["watch", "--variant", variant, "--triggers", str(path)]
                args += ["--interval", str(interval), "--warmup", str(warmup), "--window", str(window)]
                timeout = warmup + window + 3 * interval + 180
                result = run_child(["-m", "benchmarks.triggerer", *args], env=env, timeout=timeout)
                stats = server.stats()
                result["polls"] = stats["status_reads"]
                result["token_grants"] = stats["token_grants"]
                result["unauthorized"] = stats["requests"].get("unauthorized", 0)
                result["connections_opened"] = stats["connections_opened"]
                _per_poll(result)
                runs[variant].append(result)
    return _aggregate(triggers, interval, warmup, window, reps, deferral, runs)


def _per_poll(r: dict[str, Any]) -> None:
    """CPU per poll (all-in and in the polling window) and the fixed CPU per trigger, in us.

    Full collections of the garbage collector come a couple of times a run, each costing as much as
    hundreds of polls, at moments set by everything allocated so far. Charged to whichever window
    they fall in they would swing its figure from run to run, so their time is taken out of the
    windows and spread over all the run's polls instead; the all-in figure is as measured.
    """
    n, polls = r["n"], r["polls"]
    (cpu_a, polls_a, full_a), (cpu_b, polls_b, full_b) = r["at_warmup"], r["at_first_flip"]
    full = r["gc_full_s"]
    r["cpu_per_poll_us"] = r["cpu_s"] / polls * 1e6 if polls else None
    r["polls_per_trigger"] = polls / n
    r["polls_in_window"] = polls_b - polls_a
    if polls_b <= polls_a or not polls:
        return
    per_poll = (cpu_b - cpu_a - (full_b - full_a)) / (polls_b - polls_a)  # without full collections
    r["steady_cpu_per_poll_us"] = (per_poll + full / polls) * 1e6
    r["startup_cpu_per_trigger_us"] = (cpu_a - full_a - polls_a * per_poll) / n * 1e6
    r["end_cpu_per_trigger_us"] = (r["cpu_s"] - cpu_b - (full - full_b) - (polls - polls_b) * per_poll) / n * 1e6


def _aggregate(
    n: int,
    interval: float,
    warmup: float,
    window: float,
    reps: int,
    deferral: dict[str, Any],
    runs: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "triggers": n,
        "interval_s": interval,
        "warmup_s": warmup,
        "window_s": window,
        "reps": reps,
        "deferral": deferral,
        "variants": {},
    }
    for variant, results in runs.items():

        def values(key: str, rs: list[dict[str, Any]] = results) -> list[float]:
            return [r[key] for r in rs if r.get(key) is not None]

        out["variants"][variant] = {
            "label": LABELS[variant],
            "events": min(values("events")),
            "error_events": max(values("errors")),
            "missing_events": max(values("missing")),
            "errors_seen": sorted({e for r in results for e in r["error_samples"]})[:5],
            "delay_p50_s": summary(values("delay_p50_s")),
            "delay_p99_s": summary(values("delay_p99_s")),
            "delay_max_s": summary(values("delay_max_s")),
            "cpu_per_poll_us": summary(values("cpu_per_poll_us"), 1),
            "steady_cpu_per_poll_us": summary(values("steady_cpu_per_poll_us"), 1),
            "startup_cpu_per_trigger_us": summary(values("startup_cpu_per_trigger_us"), 1),
            "end_cpu_per_trigger_us": summary(values("end_cpu_per_trigger_us"), 1),
            "polls_in_window": summary(values("polls_in_window"), 0),
            "rss_growth_per_trigger_kb": summary(values("rss_growth_per_trigger_kb"), 1),
            "polls_per_trigger": summary(values("polls_per_trigger"), 2),
            "token_grants": max(values("token_grants")),
            "unauthorized": max(values("unauthorized")),
            "wall_s": summary(values("wall_s"), 1),
            "gc_s": summary(values("gc_s"), 3),
            "runs": [{k: v for k, v in r.items() if k != "error_samples"} for r in results],
        }
    ours = out["variants"].get("dpc")
    if ours:
        for other in ("http_sensor", "aiohttp_floor", "dpc_httpx", "dpc_unbudgeted"):
            if other in out["variants"]:
                theirs = out["variants"][other]
                ours[f"cpu_ratio_to_{other}"] = ratio(
                    ours["cpu_per_poll_us"]["median"], theirs["cpu_per_poll_us"]["median"]
                )
                ours[f"steady_cpu_ratio_to_{other}"] = ratio(
                    ours["steady_cpu_per_poll_us"]["median"], theirs["steady_cpu_per_poll_us"]["median"]
                )
    return out


# ---- worker side: obtain the triggers as Airflow does ------------------------------------------


class _TaskInstance:
    """What the operators touch of a task instance: XCom pushes."""

    try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def _defer(n: int, interval: float, out: Path) -> dict[str, Any]:
    try:
        from airflow.sdk.exceptions import TaskDeferred
    except ImportError:  # Airflow 2.11
        from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined,unused-ignore]

    from airflow_provider_dpc.operators.streaming_pipeline import DpcStartStreamingPipelineOperator
    from airflow_provider_dpc.sensors.streaming_pipeline import DpcStreamingPipelineSensor

    records = []
    kinds = {"sensor": 0, "start": 0}
    started = time.perf_counter()
    for i, pipeline_id in enumerate(pipeline_ids(n)):
        common = {"dpc_conn_id": DPC_CONN_ID, "project_id": PROJECT_ID, "pipeline_id": pipeline_id, "deferrable": True}
        operator: Any
        if i % 2 == 0:
            kind = "sensor"
            operator = DpcStreamingPipelineSensor(task_id=f"wait_{i}", poke_interval=interval, timeout=3600, **common)
        else:
            kind = "start"
            # The benchmark server serves statuses and commands only: the agent check has nothing to read.
            operator = DpcStartStreamingPipelineOperator(
                task_id=f"start_{i}", poll_interval=interval, timeout=3600, check_agent=False, **common
            )
        try:
            operator.execute({"ti": _TaskInstance()})
        except TaskDeferred as deferred:
            classpath, kwargs = deferred.trigger.serialize()
            records.append({"kind": kind, "classpath": classpath, "kwargs": kwargs})
            kinds[kind] += 1
        else:
            raise BenchmarkError(f"{operator.task_id} did not defer")
        finally:
            operator.hook.close()
    out.write_text(json.dumps(records), encoding="utf-8")
    return {"deferred": len(records), **kinds, "seconds": round(time.perf_counter() - started, 2)}


# ---- triggerer side ------------------------------------------------------------------------------


def _rss_kb() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() // 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _admin(origin: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(origin + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def _build(classpath: str, kwargs: dict[str, Any]) -> Any:
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


async def _first_event(trigger: Any) -> Any:
    events = trigger.run()
    try:
        async for event in events:
            return event.payload
    finally:
        await events.aclose()
    raise BenchmarkError("the trigger ended without an event")


Unit = tuple[str, Callable[[], Awaitable[Any]], Callable[[Any], bool]]


def http_sensor_trigger(pipeline_id: str, interval: float, token: str) -> Any:
    """The HTTP provider's ``HttpSensorTrigger`` on a pipeline's status URL (answered 404 until its
    flip), rebuilt from ``serialize()`` as the triggerer does."""
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    made = HttpSensorTrigger(
        endpoint=f"v1/projects/{PROJECT_ID}/streaming-pipelines/{pipeline_id}/status",
        http_conn_id=HTTP_CONN_ID,
        method="GET",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json", "x-bench-not-ready": "404"},
        poke_interval=interval,
    )
    classpath, kwargs = made.serialize()
    return _build(classpath, json.loads(json.dumps(kwargs)))


def _units(variant: str, records: list[dict[str, Any]], interval: float) -> tuple[list[Unit], Callable[[], Any]]:
    """One coroutine factory per pipeline, how to tell a good event, and a clean-up."""
    import os

    origin, token = os.environ["BENCH_ORIGIN"], os.environ["BENCH_TOKEN"]
    ids = [r["kwargs"]["pipeline_id"] for r in records]

    async def nothing() -> None:
        return None

    if variant in ("dpc", "dpc_httpx", "dpc_unbudgeted"):
        from airflow_provider_dpc.hooks.dpc import DpcHook

        if variant == "dpc_httpx":
            DpcHook.async_transport = "httpx"
        if variant == "dpc_unbudgeted":
            DpcHook.keep_to_budget = False
        # As the triggerer does: import the class path, call it with the stored kwargs.
        triggers = [_build(r["classpath"], json.loads(json.dumps(r["kwargs"]))) for r in records]

        def reached(p: Any) -> bool:
            return isinstance(p, dict) and p.get("verdict") == "reached" and p.get("status") == "STREAMING"

        return [(t.pipeline_id, lambda t=t: _first_event(t), reached) for t in triggers], nothing
    if variant == "http_sensor":
        triggers = [(pid, http_sensor_trigger(pid, interval, token)) for pid in ids]
        return [(pid, lambda t=t: _first_event(t), lambda p: p is True) for pid, t in triggers], nothing
    if variant == "aiohttp_floor":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

        async def poll(pipeline_id: str) -> Any:
            url = f"{origin}/dpc/v1/projects/{PROJECT_ID}/streaming-pipelines/{pipeline_id}/status"
            while True:
                async with session.get(url, headers=headers) as response:
                    status = (await response.json())["status"]
                if status == "STREAMING":
                    return status
                await asyncio.sleep(interval)

        return [(pid, lambda pid=pid: poll(pid), lambda p: p == "STREAMING") for pid in ids], session.close
    raise BenchmarkError(f"unknown variant {variant!r}")


async def _watch(
    variant: str, records: list[dict[str, Any]], interval: float, warmup: float, window: float
) -> dict[str, Any]:
    origin = __import__("os").environ["BENCH_ORIGIN"]
    gc_time = _GcClock()
    # Objects from the imports are frozen out of the collector's sight: a full collection walks
    # them all (~0.1 s with Airflow loaded) at moments that have nothing to do with the variant, and
    # would add that to whichever window it falls in. Collections of what the variant allocates,
    # as often as it allocates, still count.
    gc.collect()
    gc.freeze()
    rss_before = _rss_kb()
    units, cleanup = _units(variant, records, interval)
    n = len(units)
    start = time.time() + 0.2
    first_flip = start + warmup + window
    flips = {pid: first_flip + interval * i / n for i, (pid, _, _) in enumerate(units)}
    _admin(origin, "PUT", "/_bench/schedule", {"default": None, "at": flips})
    await asyncio.sleep(max(0.0, start - time.time()))
    gc.callbacks.append(gc_time)

    cpu0, wall0 = time.process_time(), time.time()
    received: dict[str, float] = {}
    errors: list[str] = []
    bad = 0

    async def one(pipeline_id: str, make: Callable[[], Awaitable[Any]], good: Callable[[Any], bool]) -> None:
        nonlocal bad
        try:
            payload = await make()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        if good(payload):
            received[pipeline_id] = time.time()
        else:
            bad += 1
            errors.append(f"unexpected event: {str(payload)[:160]}")

    def edge() -> list[float]:
        cpu, full = time.process_time() - cpu0, gc_time.by_generation[2]
        return [cpu, _admin(origin, "GET", "/_bench/stats")["status_reads"], full]

    tasks = [asyncio.create_task(one(pid, make, good)) for pid, make, good in units]
    await asyncio.sleep(max(0.0, start + warmup - time.time()))
    at_warmup = edge()
    await asyncio.sleep(max(0.0, first_flip - time.time()))
    at_first_flip = edge()
    _, pending = await asyncio.wait(tasks, timeout=2 * interval + 60)
    for task in pending:
        task.cancel()
    with contextlib.suppress(BaseException):
        await asyncio.gather(*pending, return_exceptions=True)
    await cleanup()  # the floor closes its session here; ours closes with the last trigger's exit
    cpu, wall = time.process_time() - cpu0, time.time() - wall0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gc.callbacks.remove(gc_time)
    delays = [received[pid] - flips[pid] for pid in received]
    return {
        "variant": variant,
        "n": n,
        "events": len(received),
        "errors": len(errors),
        "missing": len(pending),
        "error_samples": sorted(set(errors))[:5],
        "delay_p50_s": percentile(delays, 0.50),
        "delay_p99_s": percentile(delays, 0.99),
        "delay_max_s": max(delays) if delays else None,
        "cpu_s": cpu,
        "at_warmup": at_warmup,
        "at_first_flip": at_first_flip,
        "wall_s": wall,
        "rss_growth_per_trigger_kb": max(0, peak_kb - rss_before) / n,
        "gc_s": round(sum(gc_time.by_generation), 4),
        "gc_full_s": gc_time.by_generation[2],
        "gc_collections": gc_time.collections,
    }


class _GcClock:
    """CPU time spent in the garbage collector, and collections per generation (a ``gc.callbacks`` hook)."""

    def __init__(self) -> None:
        self.by_generation = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.by_generation[info["generation"]] += time.process_time() - self._started
            self.collections[info["generation"]] += 1


def _main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.triggerer")
    sub = parser.add_subparsers(dest="command", required=True)
    defer = sub.add_parser("defer", help="execute the sensor and start operator until they defer")
    defer.add_argument("--n", type=int, required=True)
    defer.add_argument("--interval", type=float, required=True)
    defer.add_argument("--out", type=Path, required=True)
    watch = sub.add_parser("watch", help="run the deferred triggers (or a comparison) in one event loop")
    watch.add_argument("--variant", choices=VARIANTS, required=True)
    watch.add_argument("--triggers", type=Path, required=True)
    watch.add_argument("--interval", type=float, required=True)
    watch.add_argument("--warmup", type=float, required=True)
    watch.add_argument("--window", type=float, required=True)
    args = parser.parse_args()
    if args.command == "defer":
        emit(_defer(args.n, args.interval, args.out))
        return
    # Every variant runs in the same kind of process, a triggerer's: Airflow and all the triggers
    # compared are imported before the memory baseline, so the heap the garbage collector walks and
    # the modules loaded are alike, and only what each variant does per trigger and per poll differs.
    for module in TRIGGERER_MODULES:
        if module == "airflow.providers.http.triggers.http" and not has_http_provider():
            continue
        importlib.import_module(module)
    records = json.loads(args.triggers.read_text(encoding="utf-8"))
    emit(asyncio.run(_watch(args.variant, records, args.interval, args.warmup, args.window)))


if __name__ == "__main__":
    _main()
