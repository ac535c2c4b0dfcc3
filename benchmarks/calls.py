"""Benchmark 2, cost per call: client CPU of one status read, against the emulator in another process.

Three clients read the same pipeline's status in one worker-like process, in rounds that rotate
their order: ``DpcHook.get_status``; a raw ``httpx.Client`` loop sending the same headers (the
floor: no retries, no parsing beyond the JSON); and the HTTP provider's ``HttpHook``, as a DAG
author would use it. The figure is the process's CPU time per call (``time.process_time``), so
the server's time and the network wait do not count.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import (
    DPC_CONN_ID,
    HTTP_CONN_ID,
    PROJECT_ID,
    emit,
    has_http_provider,
    ratio,
    run_child,
    summary,
)

VARIANTS = ("dpc", "httpx_raw", "http_hook")
LABELS = {"dpc": "DpcHook.get_status", "httpx_raw": "raw httpx.Client", "http_hook": "HttpHook.run"}


def available_variants() -> list[str]:
    return [v for v in VARIANTS if v != "http_hook" or has_http_provider()]


def run(
    env: dict[str, str], pipeline_id: str, *, calls: int = 700, rounds: int = 7, variants: list[str] | None = None
) -> dict[str, Any]:
    """Run the child against the server ``env`` points at; ``calls`` per variant in ``rounds`` blocks."""
    variants = variants or available_variants()
    block = max(1, calls // rounds)
    raw = run_child(
        [
            "-m",
            "benchmarks.calls",
            "--pipeline",
            pipeline_id,
            "--block",
            str(block),
            "--rounds",
            str(rounds),
            "--variants",
            ",".join(variants),
        ],
        env=env,
        timeout=600,
    )
    result: dict[str, Any] = {"calls": block * rounds, "rounds": rounds, "variants": {}}
    for variant in variants:
        data = raw[variant]
        result["variants"][variant] = {
            "label": LABELS[variant],
            "cpu_us": summary(data["cpu_us"], 1),
            "wall_us": summary(data["wall_us"], 1),
            "ok": data["ok"],
        }
    ours = raw["dpc"]["cpu_us"]
    for other in variants:
        if other == "dpc":
            continue
        paired = [a / b for a, b in zip(ours, raw[other]["cpu_us"], strict=True)]
        result["variants"][other]["ours_ratio"] = summary(paired, 3)
        result["variants"][other]["ours_ratio_of_medians"] = ratio(
            result["variants"]["dpc"]["cpu_us"]["median"], result["variants"][other]["cpu_us"]["median"]
        )
    return result


# ---- the child ---------------------------------------------------------------------------------


def _clients(
    pipeline_id: str, token: str, variants: list[str]
) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    import httpx

    from airflow_provider_dpc.hooks._protocol import USER_AGENT, ssl_context
    from airflow_provider_dpc.hooks.dpc import DpcHook

    path = f"/v1/projects/{PROJECT_ID}/streaming-pipelines/{pipeline_id}/status"
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json", "Authorization": f"Bearer {token}"}
    made: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
    if "dpc" in variants:
        hook = DpcHook(DPC_CONN_ID)
        made["dpc"] = (lambda: str(hook.get_status(PROJECT_ID, pipeline_id)), hook.close)
    if "httpx_raw" in variants:
        base = hook.settings.base_url if "dpc" in variants else os.environ["BENCH_BASE_URL"]
        client = httpx.Client(headers=headers, timeout=30.0, verify=ssl_context(True), follow_redirects=False)

        def raw() -> Any:
            response = client.get(base + path)
            return response.json()["status"] if response.status_code == 200 else response.status_code

        made["httpx_raw"] = (raw, client.close)
    if "http_hook" in variants:
        from airflow.providers.http.hooks.http import HttpHook

        http_hook = HttpHook(method="GET", http_conn_id=HTTP_CONN_ID)
        made["http_hook"] = (lambda: http_hook.run(path.lstrip("/"), headers=headers).json()["status"], lambda: None)
    return made


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--block", type=int, required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--variants", required=True)
    args = parser.parse_args()
    variants = args.variants.split(",")
    clients = _clients(args.pipeline, os.environ["BENCH_TOKEN"], variants)
    for call, _ in clients.values():  # warm up: connections, the token cache, lazy imports
        for _ in range(10):
            call()
    # As in the triggerer benchmark: a full collection walks everything Airflow's imports left
    # (~0.1 s), at a moment that says nothing about the client whose round it lands in.
    gc.collect()
    gc.freeze()
    out: dict[str, Any] = {v: {"cpu_us": [], "wall_us": [], "ok": 0} for v in variants}
    for i in range(args.rounds):
        order = variants[i % len(variants) :] + variants[: i % len(variants)]
        for variant in order:
            call = clients[variant][0]
            answers = []
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(args.block):
                answers.append(call())
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            out[variant]["cpu_us"].append(cpu / args.block * 1e6)
            out[variant]["wall_us"].append(wall / args.block * 1e6)
            out[variant]["ok"] += sum(1 for a in answers if a == "NOT_RUNNING")
    for _, close in clients.values():
        close()
    emit(out)


if __name__ == "__main__":
    _main()
