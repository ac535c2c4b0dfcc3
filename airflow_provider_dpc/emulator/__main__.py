"""Command line: ``python -m airflow_provider_dpc.emulator --host 127.0.0.1 --port 8765``.

Every flag can also come from an environment variable ``DPC_EMULATOR_<FLAG>`` (``--token-ttl`` is
``DPC_EMULATOR_TOKEN_TTL``); a flag wins over its variable. Secrets are best passed that way, as
command lines are visible to other users of the machine. One line is printed, once the server
accepts connections, so a parent process can wait for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI

from airflow_provider_dpc.emulator.app import create_app
from airflow_provider_dpc.emulator.config import LOG_LEVELS, ConfigError, EmulatorConfig, load_seed
from airflow_provider_dpc.emulator.faults import FaultError

ENV_PREFIX = "DPC_EMULATOR_"
_DEFAULTS = EmulatorConfig()


class _QuietDroppedConnections(logging.Filter):
    """Hide the server's complaint about connections the drop_connections fault breaks on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None


def _faults(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--faults is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError("--faults must be a JSON object")
    return data


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_dpc.emulator",
        description="Local emulator of the Matillion DPC streaming-pipelines API.",
        epilog=f"Each flag may also be set by an environment variable {ENV_PREFIX}<FLAG>, e.g. {ENV_PREFIX}PORT.",
    )

    def add(flag: str, default: Any, convert: Callable[[str], Any] = str, **kwargs: Any) -> None:
        variable = ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()
        raw = env.get(variable)
        value = default if raw is None else raw
        parser.add_argument(flag, default=value, type=convert, help=f"{kwargs.pop('help')} (env {variable})", **kwargs)

    add("--host", _DEFAULTS.host, help="interface to listen on")
    add("--port", _DEFAULTS.port, int, help="port to listen on; 0 picks a free one")
    add("--client-id", _DEFAULTS.client_id, help="OAuth client id the token endpoint accepts")
    add("--client-secret", _DEFAULTS.client_secret, help="OAuth client secret the token endpoint accepts")
    add("--token-ttl", _DEFAULTS.token_ttl, _seconds, help="token lifetime in seconds")
    add("--starting-seconds", _DEFAULTS.starting_seconds, _seconds, help="time spent STARTING")
    add("--snapshotting-seconds", _DEFAULTS.snapshotting_seconds, _seconds, help="time spent SNAPSHOTTING")
    add("--stopping-seconds", _DEFAULTS.stopping_seconds, _seconds, help="time spent STOPPING")
    add("--cancelling-seconds", _DEFAULTS.cancelling_seconds, _seconds, help="time an execution spends CANCELLING")
    add(
        "--rate-limit",
        None,
        int,
        help="requests the account may make per --rate-window seconds (429 beyond); off by default",
    )
    add("--rate-window", _DEFAULTS.rate_window, _seconds, help="the rate limit's rolling window, seconds")
    add("--status-case", _DEFAULTS.status_case, choices=["upper", "lower"], help="case of status values")
    add(
        "--error-style",
        _DEFAULTS.error_style,
        choices=["validation-errors", "violations"],
        help="shape of field errors in 400 answers",
    )
    add(
        "--api-shape",
        _DEFAULTS.api_shape,
        choices=["observed", "documented"],
        help="pipeline execution answers as the service gives them, or as the API reference shows them",
    )
    add(
        "--execution-status-route",
        _DEFAULTS.execution_status_route,
        choices=["present", "404", "405"],
        help="serve GET .../pipeline-executions/{id}/status, or answer it 404 or 405",
    )
    add("--seed", None, help="JSON file of projects and environments replacing the guide's")
    add("--faults", None, _faults, help="initial faults, as the body of PUT /_emulator/faults")
    add("--log-level", _DEFAULTS.log_level, choices=LOG_LEVELS, help="log level")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="exit when the parent process ends (used by EmulatorProcess, so no emulator outlives its tests)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    faults = args.faults
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_ttl=args.token_ttl,
        starting_seconds=args.starting_seconds,
        snapshotting_seconds=args.snapshotting_seconds,
        stopping_seconds=args.stopping_seconds,
        cancelling_seconds=args.cancelling_seconds,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        status_case=args.status_case,
        error_style=args.error_style,
        api_shape=args.api_shape,
        execution_status_route=args.execution_status_route,
        seed=load_seed(args.seed) if args.seed else _DEFAULTS.seed,
        faults=faults or {},
        log_level=args.log_level,
    )


async def _exit_with_parent(server: uvicorn.Server) -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    server.should_exit = True


async def serve(config: EmulatorConfig, app: FastAPI, *, exit_with_parent: bool = False) -> None:
    """Serve ``app`` until interrupted, printing the listening line once connections are accepted."""
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=config.host, port=config.port, log_level=config.log_level, access_log=False, lifespan="off"
        )
    )
    logging.getLogger("uvicorn.error").addFilter(_QuietDroppedConnections())
    serving = asyncio.create_task(server.serve())
    watcher = asyncio.create_task(_exit_with_parent(server)) if exit_with_parent else None
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if server.started:
        port = server.servers[0].sockets[0].getsockname()[1] if server.servers else config.port
        origin = f"http://{config.host}:{port}"
        print(f"DPC emulator listening on {origin}/dpc (token URL {origin}/oauth/dpc/token)", flush=True)
    try:
        await serving
    finally:
        if watcher is not None:
            watcher.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(os.environ)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        app = create_app(config)  # checks the initial faults before the port is bound
    except (ConfigError, FaultError, argparse.ArgumentTypeError) as exc:
        parser.error(str(exc))
    asyncio.run(serve(config, app, exit_with_parent=args.exit_with_parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
