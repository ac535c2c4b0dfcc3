"""The benchmarks (``make bench``) at a tiny size, so their code keeps working.

One run of every benchmark feeds the tests below, which check the figures' shape and counts only:
timings depend on the machine and are never asserted here. Comparisons with other providers need
the ``bench`` extra; without it they are skipped, and the parts that need only this package run.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks import report
from benchmarks.__main__ import Sizes, run_all
from benchmarks._common import PROJECT_ID, BenchServer, grant_token, has_dbt_cloud, has_http_provider
from benchmarks.processes import Case
from benchmarks.watchers import skipped_modes

pytestmark = pytest.mark.slow

TRIGGERS = 10
CALLS, CALL_ROUNDS = 10, 2
IMPORT_RUNS = 2
TOKEN_HOOKS, TOKEN_CALLS = 2, 3
BUDGET_WAITS, BUDGET_PIPELINES, BUDGET_LIMIT = 12, 3, 30
BUDGET_WATCHERS = 2
WATCHERS, WATCHER_PIPELINES, WATCHER_RUNS = 20, 4, 2

needs_dbt_cloud = pytest.mark.skipif(
    not has_dbt_cloud(), reason="the bench extra is not installed (apache-airflow-providers-dbt-cloud missing)"
)
needs_http_provider = pytest.mark.skipif(
    not has_http_provider(), reason="the bench extra is not installed (apache-airflow-providers-http missing)"
)
needs_watchers = pytest.mark.skipif("own" in skipped_modes(), reason=skipped_modes().get("own", ""))
needs_shared_streams = pytest.mark.skipif("shared" in skipped_modes(), reason=skipped_modes().get("shared", ""))


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
        watchers=WATCHERS,
        watcher_pipelines=WATCHER_PIPELINES,
        watcher_interval=0.3,
        watcher_runs=WATCHER_RUNS,
        # Time for the first reads of a process that has just imported Airflow, before the first end.
        watcher_warmup=1.0,
        watcher_spread=1.5,
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


def _every_watcher_fired_once_per_run(mode: dict[str, Any]) -> None:
    assert mode["expected"] == WATCHERS * WATCHER_RUNS
    assert (mode["fired"], mode["fired_twice"], mode["unexpected"], mode["errors"]) == (
        mode["expected"], 0, 0, 0
    ), mode["samples"]  # fmt: skip
    assert mode["delay_max_s"] >= mode["delay_p99_s"] >= mode["delay_p50_s"] >= 0
    assert mode["list_requests"] >= mode["reads"] > 0
    assert mode["cpu_s"] > 0


@needs_watchers
def test_dpc_run_watchers_reading_each_their_own(results: dict[str, Any]) -> None:
    watchers = results["watchers"]
    assert (watchers["watchers"], watchers["pipelines"], watchers["expected_events"]) == (
        WATCHERS, WATCHER_PIPELINES, WATCHERS * WATCHER_RUNS
    )  # fmt: skip
    own = watchers["modes"]["own"]
    _every_watcher_fired_once_per_run(own)
    # Each its pipeline's list, a page of 2 runs; none reads the project's whole list.
    assert (own["project_wide_requests"], own["pages_per_read"]) == (0, 1.0)
    assert set(watchers["checks"]["own"]) == {"reads_per_interval", "delay_p99", "fired_all", "none_fired_twice"}


@needs_shared_streams
def test_dpc_run_watchers_sharing_one_read_of_the_project(results: dict[str, Any]) -> None:
    watchers = results["watchers"]
    own, shared = watchers["modes"]["own"], watchers["modes"]["shared"]
    _every_watcher_fired_once_per_run(shared)
    assert shared["project_wide_requests"] == shared["list_requests"]
    # One read of the project an interval against one of each pipeline's (4): far fewer, counted.
    assert shared["list_requests_per_interval"] * 2 <= own["list_requests_per_interval"]
    assert 0 < watchers["ratio_shared_to_own"]["list_requests_per_interval"] <= 0.5
    assert watchers["met"] in (True, False)  # judged; timings are the machine's, never asserted here
    table = report.table(results)
    assert "7 DPC-run watchers" in table
    assert watchers["target"] in table


def test_bench_server_pages_the_project_wide_list() -> None:
    """The shared stream's read: every pipeline's runs, newest first, in pages that ``more`` links,
    started after ``startedAfter`` and already started; one pipeline's list as before."""
    now = float(int(time.time()))  # whole seconds: the answer's timestamps say them exactly
    runs = [
        {"pipelineName": f"bench-run-{i % 7}", "pipelineExecutionId": str(uuid.UUID(int=i + 1)),
         "startedAt": now - 1000 + i, "finishedAt": now - 500 + i}
        for i in range(250)
    ] + [{"pipelineName": "bench-run-0", "startedAt": now + 3600, "finishedAt": now + 7200}]  # fmt: skip
    with BenchServer() as server:
        headers = {"Authorization": f"Bearer {grant_token(server.token_url)}"}
        httpx.put(f"{server.origin}/_bench/runs", json=runs, timeout=10).raise_for_status()

        def listed(**params: Any) -> list[dict[str, Any]]:
            pages, more = 0, None
            found: list[dict[str, Any]] = []
            while pages == 0 or more:
                query = {"projectId": PROJECT_ID, "limit": 100, **params, **({"paginationToken": more} if more else {})}
                body = httpx.get(f"{server.origin}/dpc/v1/pipeline-executions", params=query, headers=headers).json()
                pages, found, more = pages + 1, found + body["results"], body.get("more")
            assert pages == max(1, -(-len(found) // 100))
            return found

        every = listed()
        assert [e["pipelineExecutionId"] for e in every] == [str(uuid.UUID(int=i)) for i in range(250, 0, -1)]
        assert {(e["status"], e["environmentName"]) for e in every} == {("SUCCESS", "bench")}
        cut = every[49]["startedAt"]  # the 49 newer runs started after it
        assert len(listed(startedAfter=cut)) == 49
        assert {e["pipelineName"] for e in listed(pipelineName="bench-run-3")} == {"bench-run-3"}
        requests = server.stats()["requests"]
        assert requests["GET executions, next page"] == 2  # the whole list's pages after the first
        assert requests["GET executions, project-wide"] == 3 + 1


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
    numbers = ["1 import cost", "2 cost per call", "3 triggerer", "4 token reuse", "5 API budget", "6 one account"]
    if "watchers" in results:
        numbers.append("7 DPC-run watchers")
    for number in numbers:
        assert any(line.startswith(f"| {number}") for line in lines), number
    assert report.machine_line(results["machine"])
