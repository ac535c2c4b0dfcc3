"""Benchmark 4, token reuse: API calls per OAuth token grant across hook instances.

A fresh process (an empty token cache, like a new worker or triggerer) makes status reads through
many ``DpcHook`` instances, sync ones one after another and async ones concurrently (each in its own
``async with hook:`` block, as triggers do). The emulator counts the calls and the grants; the
async hooks' concurrent reads of the one pipeline are shared, so it sees fewer calls than were made.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from benchmarks._common import DPC_CONN_ID, PROJECT_ID, emit, run_child

TOKEN_ROUTE = "POST /oauth/dpc/token"


def run(
    env: dict[str, str], pipeline_id: str, stats: Any, *, hooks: int = 20, calls_per_hook: int = 10
) -> dict[str, Any]:
    """``stats`` reads the server's counters: ``{"requests": {route: n}, "token_grants": n}``."""
    before = stats()
    child = run_child(
        ["-m", "benchmarks.tokens", "--pipeline", pipeline_id, "--hooks", str(hooks), "--calls", str(calls_per_hook)],
        env=env,
        timeout=300,
    )
    after = stats()
    grants = after["token_grants"] - before["token_grants"]
    api_calls = sum(
        n - before["requests"].get(route, 0) for route, n in after["requests"].items() if route != TOKEN_ROUTE
    )
    return {
        "hooks": child["hooks"],
        "api_calls": api_calls,
        "client_calls": child["calls"],
        "token_grants": grants,
        "calls_per_grant": round(api_calls / grants, 1) if grants else None,
    }


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--hooks", type=int, required=True)
    parser.add_argument("--calls", type=int, required=True)
    args = parser.parse_args()

    from airflow_provider_dpc.hooks.dpc import DpcHook

    sync_hooks = [DpcHook(DPC_CONN_ID) for _ in range(args.hooks)]
    for _ in range(args.calls):
        for hook in sync_hooks:
            hook.get_status(PROJECT_ID, args.pipeline)
    for hook in sync_hooks:
        hook.close()

    async def one() -> None:
        async with DpcHook(DPC_CONN_ID) as hook:
            for _ in range(args.calls):
                await hook.aget_status(PROJECT_ID, args.pipeline)

    async def all_async() -> None:
        await asyncio.gather(*(one() for _ in range(args.hooks)))

    asyncio.run(all_async())
    emit({"hooks": 2 * args.hooks, "calls": 2 * args.hooks * args.calls})


if __name__ == "__main__":
    _main()
