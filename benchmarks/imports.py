"""Benchmark 1, import cost: what a DAG file importing the operators and sensor adds to every parse.

Each sample is a fresh process that imports ``airflow.sdk`` first (the scheduler's and DAG
processor's baseline) and then times the provider's operator and sensor modules. Ours and dbt
Cloud's alternate, run after run, so drift in the machine's load hits both alike. One unmeasured
run of each comes first, so both are measured from compiled byte-code as deployed.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from benchmarks._common import emit, has_dbt_cloud, ratio, run_child, summary

CASES: dict[str, tuple[str, ...]] = {
    "dpc": (
        "airflow_provider_dpc.operators.streaming_pipeline",
        "airflow_provider_dpc.sensors.streaming_pipeline",
    ),
    "dbt_cloud": (
        "airflow.providers.dbt.cloud.operators.dbt",
        "airflow.providers.dbt.cloud.sensors.dbt",
    ),
}
# Heavy modules worth naming when an import pulls them in.
NOTABLE = ("requests", "aiohttp", "airflow.providers.http", "airflow.triggers.base", "tenacity", "yaml")


def available_cases() -> list[str]:
    return ["dpc", "dbt_cloud"] if has_dbt_cloud() else ["dpc"]


def run(runs: int = 10, *, warmup: bool = True, cases: list[str] | None = None) -> dict[str, Any]:
    cases = cases or available_cases()
    if warmup:
        for case in cases:
            run_child(["-m", "benchmarks.imports", case], timeout=120)
    samples: dict[str, list[dict[str, Any]]] = {case: [] for case in cases}
    for i in range(runs):
        order = cases if i % 2 == 0 else cases[::-1]
        for case in order:
            samples[case].append(run_child(["-m", "benchmarks.imports", case], timeout=120))
    result: dict[str, Any] = {"runs": runs, "cases": {}}
    for case, values in samples.items():
        result["cases"][case] = {
            "modules": list(CASES[case]),
            "wall_ms": summary(s["wall_ms"] for s in values),
            "cpu_ms": summary(s["cpu_ms"] for s in values),
            "sdk_wall_ms": summary(s["sdk_wall_ms"] for s in values),
            "new_modules": summary(s["new_modules"] for s in values),
            "pulls_in": values[-1]["pulls_in"],
        }
    if "dbt_cloud" in result["cases"]:
        ours, theirs = result["cases"]["dpc"]["wall_ms"]["median"], result["cases"]["dbt_cloud"]["wall_ms"]["median"]
        result["ratio_to_dbt_cloud"] = ratio(ours, theirs)
    return result


def _measure(case: str) -> dict[str, Any]:
    started = time.perf_counter()
    import airflow.sdk  # noqa: F401

    sdk_wall = time.perf_counter() - started
    before = set(sys.modules)
    wall, cpu = time.perf_counter(), time.process_time()
    for module in CASES[case]:
        __import__(module)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    new = set(sys.modules) - before
    return {
        "case": case,
        "wall_ms": round(wall * 1000, 2),
        "cpu_ms": round(cpu * 1000, 2),
        "sdk_wall_ms": round(sdk_wall * 1000, 1),
        "new_modules": len(new),
        "pulls_in": sorted(m for m in NOTABLE if m in new),
    }


if __name__ == "__main__":
    emit(_measure(sys.argv[1]))
