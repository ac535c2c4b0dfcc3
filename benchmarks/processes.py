"""Benchmark 6, one account and several processes: triggerers and poke-mode workers sharing its limit.

Production Airflow runs two or more triggerers, and every poke-mode sensor polls from a worker
process of its own: each process keeps its own request budget, and they share one account's limit
(DPC's 1,000 requests per rolling minute) without talking to each other. Against the benchmark
server enforcing the emulator's own limiter over a real 60 s window, each case runs ``waits`` waits
on ``pipelines`` pipelines (pipeline ``j`` turning STREAMING at ``start + warmup + spread * j /
pipelines``) in separate processes started together:

* ``N`` triggerer processes, each running its waits as ``DpcStreamingPipelineTrigger``s in one
  event loop (rebuilt from ``serialize()`` as the triggerer does). Pipelines are dealt to the
  triggerers in turn, each pipeline's waits with it (pipeline ``j`` to triggerer ``j mod N``), so
  a pipeline is read by one triggerer;
* with ``pokers``: that many of the waits are ``DpcStreamingPipelineSensor``s in poke mode instead,
  one per worker process, each running the sensor's ``execute`` (a sync read every poke interval);
  the triggerer holds the rest.

The warmup is two windows by default: the processes start together on an empty window and at full
rate, so the first window always ends in a congestion event; the pipelines turn STREAMING once the
budgets have had a window to settle, and the 429 share of each window shows how they got there.

Figures per case: the 429 share of each whole window (first -> last) and of the run, the most
requests admitted in any window, failed waits (an error) and undetected ones (no event by the end),
detection delay p50/p99 over every wait, and each process's 429s received and rate cuts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO, Any

from airflow_provider_dpc.emulator.process import stop_process
from benchmarks._common import (
    DPC_CONN_ID,
    PROJECT_ID,
    ROOT,
    BenchmarkError,
    BenchServer,
    child_env,
    connections_env,
    emit,
    percentile,
    pipeline_ids,
)


@dataclass(frozen=True)
class Case:
    """``triggerers`` triggerer processes, and ``pokers`` poke-mode worker processes of one wait each."""

    triggerers: int
    pokers: int = 0

    @property
    def name(self) -> str:
        name = f"{self.triggerers} triggerer" + ("s" if self.triggerers > 1 else "")
        return name + (f" + {self.pokers} poke-mode sensor" + ("s" if self.pokers > 1 else "") if self.pokers else "")


CASES = (Case(1), Case(2), Case(4), Case(1, 20))


def run(
    *,
    cases: tuple[Case, ...] = CASES,
    waits: int = 1000,
    pipelines: int = 100,
    interval: float = 5.0,
    limit: int = 1000,
    window: float = 60.0,
    warmup: float | None = None,
    spread: float = 20.0,
) -> dict[str, Any]:
    warmup = 2 * window if warmup is None else warmup
    out: dict[str, Any] = {
        "waits": waits,
        "pipelines": pipelines,
        "interval_s": interval,
        "limit": limit,
        "window_s": window,
        "warmup_s": warmup,
        "spread_s": spread,
        "cases": {},
    }
    ids = pipeline_ids(pipelines)
    with BenchServer() as server:
        env = connections_env(server.origin, requests_per_minute=limit * 60.0 / window)
        server.start_pipelines(ids)
        for case in cases:
            specs = _specs(case, ids, waits, interval, deadline=warmup + spread + 4 * interval + 120)
            result = _run_case(server, env, specs, limit, window, warmup, spread, ids)
            result["triggerers"], result["pokers"] = case.triggerers, case.pokers
            result["delay_bound_s"] = round(2 * max(interval, pipelines / (limit / window)) + 1.0, 2)
            out["cases"][case.name] = result
    return out


def _specs(case: Case, ids: list[str], waits: int, interval: float, deadline: float) -> list[dict[str, Any]]:
    """What each process runs: its role and its waits (pipeline id -> how many waits on it)."""
    per_pipeline = [waits // len(ids) + (1 if j < waits % len(ids) else 0) for j in range(len(ids))]
    pokers: list[dict[str, Any]] = []
    for s in range(case.pokers):  # spread over the pipelines, each taking one of its waits
        j = s * len(ids) // case.pokers
        per_pipeline[j] -= 1
        pokers.append({"role": "poker", "waits": {ids[j]: 1}})
    triggerers: list[dict[str, Any]] = [{"role": "triggerer", "waits": {}} for _ in range(case.triggerers)]
    for j, pipeline_id in enumerate(ids):
        if per_pipeline[j] > 0:
            triggerers[j % case.triggerers]["waits"][pipeline_id] = per_pipeline[j]
    return [{**spec, "interval": interval, "deadline": deadline} for spec in triggerers + pokers]


def _run_case(
    server: BenchServer,
    env: dict[str, str],
    specs: list[dict[str, Any]],
    limit: int,
    window: float,
    warmup: float,
    spread: float,
    ids: list[str],
) -> dict[str, Any]:
    children: list[subprocess.Popen[str]] = []
    try:
        for spec in specs:
            child = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.processes"],
                env=child_env(env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            children.append(child)
            _send(child.stdin, spec)
        for child in children:  # each has read its connection and built its waits
            _expect_ready(child)
        server.reset()
        server.rate_limit(limit, window)
        start = time.time() + 0.5
        flips = {pid: start + warmup + spread * j / len(ids) for j, pid in enumerate(ids)}
        server.schedule(at=flips)
        for child in children:
            _send(child.stdin, {"start": start, "flips": flips})
        deadline = time.monotonic() + specs[0]["deadline"] + 120
        results = [_result(child, deadline) for child in children]
    finally:
        for child in children:
            stop_process(child)
    return _figures(results, server.stats()["rate_limit"])


def _send(stream: IO[str] | None, message: dict[str, Any]) -> None:
    assert stream is not None
    stream.write(json.dumps(message) + "\n")
    stream.flush()


def _expect_ready(child: subprocess.Popen[str]) -> None:
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "ready":
        _, err = child.communicate(timeout=30)
        tail = "\n".join(err.strip().splitlines()[-25:])
        raise BenchmarkError(f"a benchmark process did not start ({line.strip()!r}):\n{tail}")


def _result(child: subprocess.Popen[str], deadline: float) -> dict[str, Any]:
    try:
        out, err = child.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError("a benchmark process did not finish in time") from exc
    lines = out.strip().splitlines()
    if child.returncode != 0 or not lines:
        tail = "\n".join(err.strip().splitlines()[-25:])
        raise BenchmarkError(f"a benchmark process exited with {child.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _figures(results: list[dict[str, Any]], limiter: dict[str, Any]) -> dict[str, Any]:
    """One case's figures: the account's, from the server's limiter, and the waits', from every process."""
    delays = sorted(d for r in results for d in r["delays"])
    minutes = limiter["per_minute"]
    whole = minutes[:-1] if len(minutes) > 1 else minutes  # the last minute is cut short by the run's end
    total = limiter["admitted"] + limiter["refused"]
    return {
        "waits": sum(r["waits"] for r in results),
        "processes": len(results),
        "requests": total,
        "throttled": limiter["refused"],
        "throttled_share": round(limiter["refused"] / total, 4) if total else 0.0,
        "throttled_share_per_window": [
            round(m["refused"] / (m["admitted"] + m["refused"]), 4) if m["admitted"] + m["refused"] else 0.0
            for m in whole
        ],
        "admitted_per_window": [m["admitted"] for m in whole],
        "admitted_peak_in_window": limiter["peak_in_window"],
        "failed_waits": sum(r["failed"] for r in results),
        "undetected_waits": sum(r["undetected"] for r in results),
        "error_samples": sorted({e for r in results for e in r["error_samples"]})[:5],
        "delay_p50_s": percentile(delays, 0.50),
        "delay_p99_s": percentile(delays, 0.99),
        "delay_max_s": round(delays[-1], 3) if delays else None,
        "per_process": [
            {k: r[k] for k in ("role", "waits", "throttles", "cuts", "rate_at_end", "wall_s")} for r in results
        ],
    }


# ---- inside each process -------------------------------------------------------------------------


def _child() -> None:
    spec = json.loads(sys.stdin.readline())
    waits: dict[str, int] = spec["waits"]
    interval, deadline = spec["interval"], spec["deadline"]
    run = _triggerer(waits, interval) if spec["role"] == "triggerer" else _poker(waits, interval, deadline)
    print("ready", flush=True)
    go = json.loads(sys.stdin.readline())
    time.sleep(max(0.0, go["start"] - time.time()))
    result = run(go["flips"], go["start"] + deadline)
    from airflow_provider_dpc.hooks._budget import BUDGETS

    budgets = list(BUDGETS._budgets.values())
    result.update(
        role=spec["role"],
        waits=sum(waits.values()),
        throttles=sum(b.throttles for b in budgets),
        cuts=sum(b.cuts for b in budgets),
        rate_at_end=round(budgets[0].rate, 2) if budgets else None,
        wall_s=round(time.time() - go["start"], 1),
    )
    emit(result)


def _triggerer(waits: dict[str, int], interval: float) -> Any:
    """Every wait a trigger, all in one event loop (see benchmarks.budget)."""
    import asyncio

    from benchmarks.budget import _reached, _trigger_units

    units = _trigger_units([pid for pid, n in waits.items() for _ in range(n)], interval)

    def run(flips: dict[str, float], until: float) -> dict[str, Any]:
        async def watch() -> dict[str, Any]:
            delays: list[float] = []
            errors: list[str] = []

            async def one(pipeline_id: str, make: Any) -> None:
                try:
                    payload = await make()
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    return
                if _reached(payload):
                    delays.append(time.time() - flips[pipeline_id])
                else:
                    errors.append(f"unexpected event: {str(payload)[:160]}")

            tasks = [asyncio.create_task(one(pid, make)) for pid, make in units]
            _, pending = await asyncio.wait(tasks, timeout=max(1.0, until - time.time()))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            return {"delays": delays, "failed": len(errors), "undetected": len(pending), "error_samples": errors[:5]}

        return asyncio.run(watch())

    return run


def _poker(waits: dict[str, int], interval: float, deadline: float) -> Any:
    """The wait as a worker runs a poke-mode sensor: its ``execute`` reads, sleeps, reads again."""
    from airflow_provider_dpc._compat import AirflowSensorTimeout
    from airflow_provider_dpc.sensors.streaming_pipeline import DpcStreamingPipelineSensor
    from benchmarks.triggerer import _TaskInstance

    ((pipeline_id, _),) = waits.items()
    sensor: Any = DpcStreamingPipelineSensor(
        task_id="wait_poked",
        dpc_conn_id=DPC_CONN_ID,
        project_id=PROJECT_ID,
        pipeline_id=pipeline_id,
        deferrable=False,
        poke_interval=interval,
        timeout=deadline,
    )

    def run(flips: dict[str, float], until: float) -> dict[str, Any]:
        result: dict[str, Any] = {"delays": [], "failed": 0, "undetected": 0, "error_samples": []}
        try:
            sensor.execute({"ti": _TaskInstance()})
        except AirflowSensorTimeout:
            result["undetected"] = 1
        except Exception as exc:
            result.update(failed=1, error_samples=[f"{type(exc).__name__}: {exc}"[:200]])
        else:
            result["delays"].append(time.time() - flips[pipeline_id])
        return result

    return run


if __name__ == "__main__":
    _child()
