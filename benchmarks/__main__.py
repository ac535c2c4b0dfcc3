"""``python -m benchmarks``: run the benchmarks, print one table, write the figures as JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks import budget, calls, imports, processes, report, tokens, triggerer, watchers
from benchmarks._common import (
    DPC_CONN_ID,
    HTTP_CONN_ID,
    PROJECT_ID,
    RESULTS,
    http_connection,
    machine,
    pipeline_definition,
)

ALL = ("imports", "calls", "triggers", "tokens", "budget", "processes", "watchers")


@dataclass
class Sizes:
    """How big each benchmark runs; the defaults are what ``make bench`` and docs/benchmarks.md report."""

    import_runs: int = 10
    import_warmup: bool = True
    calls: int = 1000
    call_rounds: int = 20
    triggers: int = 1000
    interval: float = 5.0
    warmup: float | None = None
    window: float | None = None
    trigger_reps: int = 3
    trigger_variants: list[str] | None = None
    token_hooks: int = 20
    token_calls: int = 10
    budget_waits: int = 1000
    budget_pipelines: int = 100
    budget_interval: float = 5.0
    budget_limit: int = 1000
    budget_window: float = 60.0
    budget_warmup: float = 45.0
    budget_spread: float = 20.0
    #: DPC-run asset watchers added to benchmark 5's shared case (``--budget-watchers``).
    budget_watchers: int = 0
    budget_watcher_interval: float = 60.0
    #: Benchmark 6 runs the budget's sizes above in several processes, pipelines turning STREAMING
    #: after ``process_warmup`` (None: two windows).
    process_cases: tuple[processes.Case, ...] = processes.CASES
    process_warmup: float | None = None
    #: Benchmark 7: DPC-run asset watchers on published pipelines, each watcher's own reads beside
    #: Airflow 3.3's shared stream; each pipeline runs ``watcher_runs`` times, the runs' ends spread
    #: over ``watcher_spread`` seconds from ``watcher_warmup`` (None: one interval) after the start.
    watchers: int = 1000
    watcher_pipelines: int = 100
    watcher_interval: float = 10.0
    watcher_runs: int = 2
    watcher_warmup: float | None = None
    watcher_spread: float = 60.0
    only: tuple[str, ...] = ALL
    workdir: Path = field(default_factory=lambda: RESULTS)


def run_all(sizes: Sizes, log: Any = None) -> dict[str, Any]:
    """Run the benchmarks ``sizes.only`` names; returns every figure (what the JSON file holds)."""
    say = log or (lambda text: None)
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "sizes": _jsonable(sizes), "skipped": {}}
    if "imports" in sizes.only:
        say(f"import cost: {sizes.import_runs} fresh processes each, interleaved ...")
        cases = imports.available_cases()
        if "dbt_cloud" not in cases:
            results["skipped"]["imports.dbt_cloud"] = "apache-airflow-providers-dbt-cloud is not installed"
        results["imports"] = imports.run(sizes.import_runs, warmup=sizes.import_warmup, cases=cases)
    if "calls" in sizes.only or "tokens" in sizes.only:
        _against_emulator(sizes, results, say)
    if "triggers" in sizes.only:
        variants = sizes.trigger_variants or triggerer.available_variants()
        if "http_sensor" not in variants and sizes.trigger_variants is None:
            results["skipped"]["triggers.http_sensor"] = "apache-airflow-providers-http is not installed"
        say(
            f"triggerer scale: {sizes.triggers} triggers, {sizes.interval:g} s interval, "
            f"{sizes.trigger_reps} rep(s) of {', '.join(variants)} ..."
        )
        results["triggers"] = triggerer.run(
            triggers=sizes.triggers,
            interval=sizes.interval,
            reps=sizes.trigger_reps,
            warmup=sizes.warmup,
            window=sizes.window,
            variants=variants,
            workdir=sizes.workdir,
        )
    if "budget" in sizes.only:
        variants = budget.available_variants()
        if "http_sensor" not in variants:
            results["skipped"]["budget.http_sensor"] = "apache-airflow-providers-http is not installed"
        say(
            f"API budget: {sizes.budget_waits} waits on {sizes.budget_pipelines} pipelines, limit "
            f"{sizes.budget_limit} per {sizes.budget_window:g} s"
            + (f", {sizes.budget_watchers} DPC-run watchers beside them" if sizes.budget_watchers else "")
            + " ..."
        )
        results["budget"] = budget.run(
            waits=sizes.budget_waits,
            pipelines=sizes.budget_pipelines,
            interval=sizes.budget_interval,
            limit=sizes.budget_limit,
            window=sizes.budget_window,
            warmup=sizes.budget_warmup,
            spread=sizes.budget_spread,
            variants=variants,
            watchers=sizes.budget_watchers,
            watcher_interval=sizes.budget_watcher_interval,
        )
    if "processes" in sizes.only:
        say(
            f"one account, several processes: {', '.join(c.name for c in sizes.process_cases)}; "
            f"{sizes.budget_waits} waits on {sizes.budget_pipelines} pipelines, limit {sizes.budget_limit} "
            f"per {sizes.budget_window:g} s ..."
        )
        results["processes"] = processes.run(
            cases=sizes.process_cases,
            waits=sizes.budget_waits,
            pipelines=sizes.budget_pipelines,
            interval=sizes.budget_interval,
            limit=sizes.budget_limit,
            window=sizes.budget_window,
            warmup=sizes.process_warmup,
            spread=sizes.budget_spread,
        )
    if "watchers" in sizes.only:
        _watchers(sizes, results, say)
    results["machine"]["load_average_at_end"] = (
        [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    )
    results["seconds"] = round(time.monotonic() - started, 1)
    return results


def _watchers(sizes: Sizes, results: dict[str, Any], say: Any) -> None:
    for mode, reason in watchers.skipped_modes().items():
        results["skipped"][f"watchers.{mode}"] = reason
    modes = watchers.available_modes()
    if not modes:
        return
    say(
        f"DPC-run watchers: {sizes.watchers} on {sizes.watcher_pipelines} pipelines, {sizes.watcher_interval:g} s, "
        f"{sizes.watcher_runs} runs each; {', '.join(modes)} ..."
    )
    results["watchers"] = watchers.run(
        watchers=sizes.watchers,
        pipelines=sizes.watcher_pipelines,
        interval=sizes.watcher_interval,
        runs=sizes.watcher_runs,
        warmup=sizes.watcher_warmup,
        spread=sizes.watcher_spread,
        modes=modes,
    )


def _against_emulator(sizes: Sizes, results: dict[str, Any], say: Any) -> None:
    from airflow_provider_dpc.emulator import EmulatorProcess

    with EmulatorProcess() as emulator:
        token = emulator.token()
        created = httpx.post(
            f"{emulator.base_url}/v1/projects/{PROJECT_ID}/streaming-pipelines",
            json=pipeline_definition("benchmark"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        created.raise_for_status()
        pipeline_id = created.json()["streamingPipelineId"]
        # The emulator runs without a rate limit here: the budget never makes a call wait.
        unlimited = {
            **emulator.connection_fields(),
            "extra": {"oauth_url": emulator.token_url, "requests_per_minute": 10**9},
        }
        env = {
            f"AIRFLOW_CONN_{DPC_CONN_ID.upper()}": json.dumps(unlimited),
            f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}": http_connection(emulator.origin),
            "BENCH_TOKEN": token,
            "BENCH_BASE_URL": emulator.base_url,
        }
        if "calls" in sizes.only:
            variants = calls.available_variants()
            if "http_hook" not in variants:
                results["skipped"]["calls.http_hook"] = "apache-airflow-providers-http is not installed"
            say(f"cost per call: {sizes.calls} status reads per client against the emulator ...")
            results["calls"] = calls.run(
                env, pipeline_id, calls=sizes.calls, rounds=sizes.call_rounds, variants=variants
            )
        if "tokens" in sizes.only:
            say(f"token reuse: {2 * sizes.token_hooks} hooks ...")
            results["tokens"] = tokens.run(
                env, pipeline_id, emulator.stats, hooks=sizes.token_hooks, calls_per_hook=sizes.token_calls
            )


def _jsonable(sizes: Sizes) -> dict[str, Any]:
    data = dict(vars(sizes))
    data["workdir"] = str(data["workdir"])
    data["only"] = list(data["only"])
    data["process_cases"] = [case.name for case in data["process_cases"]]
    return data


def _case_arg(case: processes.Case) -> str:
    return f"{case.triggerers}+{case.pokers}" if case.pokers else str(case.triggerers)


def _case(text: str, parser: argparse.ArgumentParser) -> processes.Case:
    triggerers, _, pokers = text.partition("+")
    try:
        case = processes.Case(int(triggerers), int(pokers or 0))
    except ValueError:
        parser.error(f"--process-cases: {text!r} is not TRIGGERERS or TRIGGERERS+POKERS")
    if case.triggerers < 1 or case.pokers < 0:
        parser.error(f"--process-cases: {text!r} needs at least one triggerer")
    return case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    defaults = Sizes()
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {', '.join(ALL)}")
    parser.add_argument("--import-runs", type=int, default=defaults.import_runs)
    parser.add_argument("--calls", type=int, default=defaults.calls, help="status reads per client")
    parser.add_argument("--triggers", type=int, default=defaults.triggers)
    parser.add_argument("--interval", type=float, default=defaults.interval, help="poll interval, seconds")
    parser.add_argument("--trigger-reps", type=int, default=defaults.trigger_reps)
    parser.add_argument(
        "--trigger-variants",
        default=None,
        help=f"comma-separated subset of {', '.join(triggerer.VARIANTS)} (default: all installed)",
    )
    parser.add_argument(
        "--budget-watchers",
        type=int,
        default=defaults.budget_watchers,
        help="DpcPipelineExecutionEventTrigger watchers (60 s) added to the API budget's shared case",
    )
    parser.add_argument(
        "--process-cases",
        default=",".join(_case_arg(c) for c in defaults.process_cases),
        help="benchmark 6's cases, comma-separated: N triggerer processes, or N+P with P poke-mode worker processes "
        "(default: %(default)s)",
    )
    parser.add_argument("--watchers", type=int, default=defaults.watchers, help="DPC-run asset watchers (benchmark 7)")
    parser.add_argument("--watcher-pipelines", type=int, default=defaults.watcher_pipelines)
    parser.add_argument(
        "--watcher-interval", type=float, default=defaults.watcher_interval, help="the watchers' poll interval, seconds"
    )
    parser.add_argument(
        "--watcher-runs", type=int, default=defaults.watcher_runs, help="runs of each pipeline during the benchmark"
    )
    parser.add_argument(
        "--watcher-spread",
        type=float,
        default=defaults.watcher_spread,
        help="seconds the runs' ends are spread over (each mode lasts about this plus 3 intervals)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "latest.json", help="where to write the figures")
    args = parser.parse_args(argv)
    only = tuple(x.strip() for x in args.only.split(",") if x.strip())
    unknown = set(only) - set(ALL)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    sizes = Sizes(
        import_runs=args.import_runs,
        calls=args.calls,
        triggers=args.triggers,
        interval=args.interval,
        trigger_reps=args.trigger_reps,
        trigger_variants=args.trigger_variants.split(",") if args.trigger_variants else None,
        budget_watchers=args.budget_watchers,
        process_cases=tuple(_case(x.strip(), parser) for x in args.process_cases.split(",") if x.strip()),
        watchers=args.watchers,
        watcher_pipelines=args.watcher_pipelines,
        watcher_interval=args.watcher_interval,
        watcher_runs=args.watcher_runs,
        watcher_spread=args.watcher_spread,
        only=only,
    )
    results = run_all(sizes, log=lambda text: print(text, file=sys.stderr, flush=True))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print()
    print(report.table(results))
    print()
    print(f"Machine: {report.machine_line(results['machine'])}")
    for what, reason in results["skipped"].items():
        print(f"Skipped {what}: {reason}")
    print(f"Figures written to {args.json} ({results['seconds']:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
