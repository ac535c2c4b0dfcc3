"""The benchmarks (``make bench``) at a tiny size, so their code keeps working.

One run of every benchmark feeds the tests below, which check the figures' shape and counts only:
timings depend on the machine and are never asserted here. Comparisons with other providers need
the ``bench`` extra; without it they are skipped, and the parts that need only this package run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import report
from benchmarks.__main__ import Sizes, run_all
from benchmarks._common import has_dbt_cloud, has_http_provider
from benchmarks.processes import Case

pytestmark = pytest.mark.slow

TRIGGERS = 10
CALLS, CALL_ROUNDS = 10, 2
IMPORT_RUNS = 2
TOKEN_HOOKS, TOKEN_CALLS = 2, 3
BUDGET_WAITS, BUDGET_PIPELINES, BUDGET_LIMIT = 12, 3, 30
BUDGET_WATCHERS = 2

needs_dbt_cloud = pytest.mark.skipif(
    not has_dbt_cloud(), reason="the bench extra is not installed (apache-airflow-providers-dbt-cloud missing)"
)
needs_http_provider = pytest.mark.skipif(
    not has_http_provider(), reason="the bench extra is not installed (apache-airflow-providers-http missing)"
)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # dpc_httpx: the hook's httpx transport; dpc_unbudgeted: without the request budget
    variants = ["dpc", "aiohttp_floor", "dpc_httpx", "dpc_unbudgeted"]
    if has_http_provider():
        variants.append("http_sensor")
    sizes = Sizes(
        import_runs=IMPORT_RUNS,
        import_warmup=False,
        calls=CALLS,
        call_rounds=CALL_ROUNDS,
        triggers=TRIGGERS,
        interval=0.3,
        warmup=0.5,
        window=0.3,
        trigger_reps=1,
        trigger_variants=variants,
        token_hooks=TOKEN_HOOKS,
        token_calls=TOKEN_CALLS,
        budget_waits=BUDGET_WAITS,
        budget_pipelines=BUDGET_PIPELINES,
        budget_interval=0.5,
        budget_limit=BUDGET_LIMIT,
        budget_window=3.0,
        budget_warmup=1.5,
        budget_spread=1.0,
        budget_watchers=BUDGET_WATCHERS,
        budget_watcher_interval=1.0,
        # One triggerer process and one poke-mode worker process: each imports Airflow, the run's cost.
        process_cases=(Case(1, 1),),
        process_warmup=1.5,
        workdir=Path(tmp_path_factory.mktemp("bench")),
    )
    return run_all(sizes)


def _is_summary(value: Any, n: int) -> bool:
    return isinstance(value, dict) and value["n"] == n and value["min"] <= value["median"] <= value["max"]


def test_machine_is_described(results: dict[str, Any]) -> None:
    machine = results["machine"]
    assert machine["nproc"] >= 1
    assert machine["cpu"]
    assert machine["versions"]["apache-airflow"]


def test_import_cost_of_ours(results: dict[str, Any]) -> None:
    ours = results["imports"]["cases"]["dpc"]
    assert _is_summary(ours["wall_ms"], IMPORT_RUNS)
    assert _is_summary(ours["cpu_ms"], IMPORT_RUNS)
    assert ours["new_modules"]["median"] > 0
    assert "requests" not in ours["pulls_in"]


@needs_dbt_cloud
def test_import_cost_of_dbt_cloud_side_by_side(results: dict[str, Any]) -> None:
    imports = results["imports"]
    assert _is_summary(imports["cases"]["dbt_cloud"]["wall_ms"], IMPORT_RUNS)
    assert imports["ratio_to_dbt_cloud"] > 0


def test_cost_per_call_of_ours_and_raw_httpx(results: dict[str, Any]) -> None:
    calls = results["calls"]
    assert calls["calls"] == CALLS
    for variant in ("dpc", "httpx_raw"):
        figures = calls["variants"][variant]
        assert figures["ok"] == CALLS, f"{variant}: every read answers NOT_RUNNING"
        assert _is_summary(figures["cpu_us"], CALL_ROUNDS)
    assert calls["variants"]["httpx_raw"]["ours_ratio"]["median"] > 0


@needs_http_provider
def test_cost_per_call_of_http_hook(results: dict[str, Any]) -> None:
    figures = results["calls"]["variants"]["http_hook"]
    assert figures["ok"] == CALLS
    assert figures["ours_ratio"]["median"] > 0


def _trigger_run_is_complete(figures: dict[str, Any]) -> None:
    assert figures["events"] == TRIGGERS
    assert figures["error_events"] == 0, figures["errors_seen"]
    assert figures["missing_events"] == 0
    assert figures["delay_p99_s"]["median"] >= figures["delay_p50_s"]["median"] > 0
    assert figures["cpu_per_poll_us"]["median"] > 0
    assert figures["polls_per_trigger"]["median"] >= 1


def test_triggerer_scale_of_our_trigger(results: dict[str, Any]) -> None:
    triggers = results["triggers"]
    assert triggers["deferral"] == {
        "deferred": TRIGGERS,
        "sensor": TRIGGERS // 2,
        "start": TRIGGERS // 2,
        "seconds": triggers["deferral"]["seconds"],
        "start_commands": TRIGGERS // 2,
    }
    ours = triggers["variants"]["dpc"]
    _trigger_run_is_complete(ours)
    assert ours["token_grants"] == 1
    assert ours["unauthorized"] == 0
    assert ours["rss_growth_per_trigger_kb"]["n"] == 1


@needs_http_provider
def test_triggerer_scale_of_http_sensor_trigger(results: dict[str, Any]) -> None:
    _trigger_run_is_complete(results["triggers"]["variants"]["http_sensor"])


def test_triggerer_scale_of_the_floor_and_of_our_httpx_fallback(results: dict[str, Any]) -> None:
    variants = results["triggers"]["variants"]
    _trigger_run_is_complete(variants["aiohttp_floor"])
    _trigger_run_is_complete(variants["dpc_httpx"])
    assert variants["dpc_httpx"]["token_grants"] == 1
    _trigger_run_is_complete(variants["dpc_unbudgeted"])
    assert (
        variants["dpc"]["steady_cpu_ratio_to_dpc_unbudgeted"] is None
        or variants["dpc"]["steady_cpu_ratio_to_dpc_unbudgeted"] > 0
    )


def test_api_budget_keeps_every_wait_within_the_limit(results: dict[str, Any]) -> None:
    budget = results["budget"]
    shared, one_each = budget["cases"]["shared"], budget["cases"]["one_each"]
    assert (shared["waits"], one_each["waits"]) == (BUDGET_WAITS, BUDGET_PIPELINES)
    for figures in (shared["variants"]["dpc"], one_each["variants"]["dpc"]):
        assert figures["failed_waits"] == 0, figures["error_samples"]
        assert figures["admitted_peak_in_window"] <= BUDGET_LIMIT
        assert figures["requests"] == figures["requests_per_minute_peak"] > 0  # the run is under a minute
        assert figures["delay_p99_s"] >= figures["delay_p50_s"] > 0


def test_api_budget_with_dpc_run_watchers_beside_the_waits(results: dict[str, Any]) -> None:
    watchers = results["budget"]["cases"]["shared"]["variants"]["dpc"]["watchers"]
    assert (watchers["watchers"], watchers["fired"], watchers["fired_twice"]) == (BUDGET_WATCHERS, BUDGET_WATCHERS, 0)
    assert watchers["delay_p99_s"] >= watchers["delay_p50_s"] > 0
    assert "watchers fired (one execution each)" in report.table(results)


@needs_http_provider
def test_api_budget_beside_the_http_sensor_trigger(results: dict[str, Any]) -> None:
    http = results["budget"]["cases"]["shared"]["variants"]["http_sensor"]
    assert http["waits"] == BUDGET_WAITS
    assert http["requests"] >= http["throttled"] >= 0


def test_processes_on_one_account(results: dict[str, Any]) -> None:
    several = results["processes"]
    (case,) = several["cases"].values()
    assert (case["waits"], case["processes"], case["triggerers"], case["pokers"]) == (BUDGET_WAITS, 2, 1, 1)
    assert [p["role"] for p in case["per_process"]] == ["triggerer", "poker"]
    assert [p["waits"] for p in case["per_process"]] == [BUDGET_WAITS - 1, 1]
    assert (case["failed_waits"], case["undetected_waits"]) == (0, 0), case["error_samples"]
    assert case["admitted_peak_in_window"] <= BUDGET_LIMIT
    assert case["requests"] >= case["throttled"] >= 0
    assert len(case["throttled_share_per_window"]) == len(case["admitted_per_window"]) >= 1
    assert case["delay_p99_s"] >= case["delay_p50_s"] > 0


def test_token_reuse(results: dict[str, Any]) -> None:
    tokens = results["tokens"]
    assert tokens["hooks"] == 2 * TOKEN_HOOKS
    assert tokens["client_calls"] == 2 * TOKEN_HOOKS * TOKEN_CALLS
    # Every sync call reaches the API; concurrent async reads of the one pipeline share theirs.
    assert TOKEN_HOOKS * TOKEN_CALLS < tokens["api_calls"] <= tokens["client_calls"]
    assert tokens["token_grants"] == 1
    assert tokens["calls_per_grant"] == tokens["api_calls"]


def test_one_table_holds_every_benchmark(results: dict[str, Any]) -> None:
    table = report.table(results)
    lines = table.splitlines()
    assert lines[0].startswith("| benchmark |")
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    for number in ("1 import cost", "2 cost per call", "3 triggerer", "4 token reuse", "5 API budget", "6 one account"):
        assert any(line.startswith(f"| {number}") for line in lines), number
    assert report.machine_line(results["machine"])
