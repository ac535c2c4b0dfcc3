"""Run the emulator as a subprocess, for tests, benchmarks and demos.

A real process on a real port, rather than an in-process ASGI app, so clients under test go through
real sockets (timeouts, dropped connections, restarts) exactly as against the real API::

    with EmulatorProcess(starting_seconds=0.2) as dpc:
        token = dpc.token()
        dpc.set_faults(rate_limit={"count": 2, "retry_after": 0})
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from airflow_provider_dpc.connection_ui import CONN_TYPE
from airflow_provider_dpc.emulator.config import EmulatorConfig

__all__ = ["EmulatorProcess", "EmulatorStartError"]

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_ENV_PREFIX = "DPC_EMULATOR_"
# Every setting but the address, which the process picks itself.
_OPTIONS = frozenset(f.name for f in dataclasses.fields(EmulatorConfig)) - {"host", "port"}
_LISTENING = "DPC emulator listening on"  # the line the command prints once it serves


class EmulatorStartError(RuntimeError):
    """The emulator did not come up; the message holds its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[Any] | None, timeout: float = 5) -> None:
    """Terminate a server subprocess, killing it if it does not exit within ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


class EmulatorProcess:
    """The emulator in a subprocess, with helpers for its admin routes.

    ``options`` are the command-line settings in Python form: ``client_id``, ``client_secret``,
    ``token_ttl``, ``starting_seconds``, ``snapshotting_seconds``, ``stopping_seconds``, ``cancelling_seconds``,
    ``status_case``, ``error_style``, ``api_shape``, ``execution_status_route``, ``rate_limit``,
    ``rate_window``, ``seed`` (a file path or a mapping), ``faults`` (a mapping)
    and ``log_level``.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, *, startup_timeout: float = 20.0, **options: Any
    ) -> None:
        unknown = set(options) - _OPTIONS
        if unknown:
            raise TypeError(f"unknown emulator option(s): {', '.join(sorted(unknown))}")
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout = startup_timeout
        self.options = dict(options)
        self.client_id: str = options.get("client_id", "dpc-emulator-client")
        self.client_secret: str = options.get("client_secret", "dpc-emulator-secret")
        self._process: subprocess.Popen[bytes] | None = None
        self._http: httpx.Client | None = None
        self._log_path: Path | None = None
        self._seed_path: Path | None = None

    # URLs

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base URL, as a DPC connection's host (``.../dpc``)."""
        return self.origin + "/dpc"

    @property
    def token_url(self) -> str:
        return self.origin + "/oauth/dpc/token"

    @property
    def admin_url(self) -> str:
        return self.origin + "/_emulator"

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def log_text(self) -> str:
        """What the emulator wrote to stdout and stderr so far."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(encoding="utf-8", errors="replace")

    # Lifecycle

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> EmulatorProcess:
        """Start the emulator and wait until it has printed its address and answers its health check.

        Raises :class:`EmulatorStartError`, holding the emulator's log, if it exits or does not answer
        within ``startup_timeout`` seconds.
        """
        if self.running:
            return self
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="dpc-emulator-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self._env()
            )
        self._http = httpx.Client(timeout=10.0)
        self._wait_until_healthy()
        return self

    def stop(self) -> None:
        """Stop the emulator (terminate, then kill if it does not exit) and remove its temporary files."""
        self._terminate()
        for path in (self._log_path, self._seed_path):
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink()
        self._log_path = self._seed_path = None

    def restart(self) -> EmulatorProcess:
        """Stop and start again on the same port, losing all state (the startup faults apply again)."""
        self._terminate()
        return self.start()

    def _terminate(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        process, self._process = self._process, None
        stop_process(process)

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "airflow_provider_dpc.emulator", "--host", self.host, "--port", str(self.port)]
        command.append("--exit-with-parent")
        for name, value in self.options.items():
            if name in ("client_secret", "seed", "faults"):
                continue
            command += ["--" + name.replace("_", "-"), str(value)]
        faults = self.options.get("faults")
        if faults:
            command += ["--faults", json.dumps(faults)]
        seed = self.options.get("seed")
        if isinstance(seed, Mapping):
            if self._seed_path is None:
                fd, name = tempfile.mkstemp(prefix="dpc-emulator-seed-", suffix=".json")
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(seed, handle)
                self._seed_path = Path(name)
            command += ["--seed", str(self._seed_path)]
        elif seed is not None:
            command += ["--seed", str(seed)]
        return command

    def _env(self) -> dict[str, str]:
        # Settings not asked for must not leak in from the caller's environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_PREFIX)}
        env[_ENV_PREFIX + "CLIENT_SECRET"] = self.client_secret  # kept off the visible command line
        paths = [str(_PACKAGE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        assert self._process is not None
        assert self._http is not None
        while True:
            code = self._process.poll()
            if code is not None:
                raise EmulatorStartError(
                    f"DPC emulator exited with code {code} before answering on {self.origin}:\n{self.log_text()}"
                )
            try:
                healthy = self._http.get(self.admin_url + "/health", timeout=1.0).status_code == 200
            except httpx.TransportError:
                healthy = False
            if healthy and _LISTENING in self.log_text():
                return
            if time.monotonic() > deadline:
                log = self.log_text()
                self._terminate()
                raise EmulatorStartError(
                    f"DPC emulator did not answer on {self.origin} within {self.startup_timeout:g} s:\n{log}"
                )
            time.sleep(0.05)

    # Admin helpers

    def _admin(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        if self._http is None:
            raise RuntimeError("the DPC emulator is not running; call start() or use it as a context manager")
        response = self._http.request(method, self.admin_url + path, json=body)
        if response.is_error:
            raise RuntimeError(f"{method} {self.admin_url}{path} answered {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("GET", "/health")
        return result

    def stats(self) -> dict[str, Any]:
        """Request counts per route, token grants, pipelines created and faults injected."""
        result: dict[str, Any] = self._admin("GET", "/stats")
        return result

    def reset(self) -> None:
        """Back to how the process started: no pipelines or tokens, zero counters, startup settings and faults."""
        self._admin("POST", "/reset")

    def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("GET", "/faults")
        return result

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the faults in force, e.g. ``set_faults(rate_limit={"count": 2, "retry_after": 0})``."""
        result: dict[str, Any] = self._admin("PUT", "/faults", faults)
        return result

    def clear_faults(self) -> None:
        self._admin("DELETE", "/faults")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change run-time settings, e.g. ``configure(status_case="lower", starting_seconds=0)``."""
        result: dict[str, Any] = self._admin("PUT", "/config", settings)
        return result

    def fail_start(self, pipeline_id: str) -> dict[str, Any]:
        """Make every later start of the pipeline fail (STARTING -> NOT_RUNNING)."""
        result: dict[str, Any] = self._admin("POST", f"/pipelines/{quote(pipeline_id, safe='')}/fail-start")
        return result

    def die(self, pipeline_id: str) -> dict[str, Any]:
        """Drop a running pipeline to NOT_RUNNING now."""
        result: dict[str, Any] = self._admin("POST", f"/pipelines/{quote(pipeline_id, safe='')}/die")
        return result

    def die_after(self, pipeline_id: str, seconds: float) -> dict[str, Any]:
        """Make the pipeline fall to NOT_RUNNING ``seconds`` after it reaches STREAMING (or from now if it has)."""
        result: dict[str, Any] = self._admin(
            "POST", f"/pipelines/{quote(pipeline_id, safe='')}/die-after", {"seconds": seconds}
        )
        return result

    def set_agent(self, agent_id: str, **settings: Any) -> dict[str, Any]:
        """Change a seeded agent, e.g. ``set_agent(GUIDE_AGENT_ID, connected=False)`` takes it down."""
        result: dict[str, Any] = self._admin("PUT", f"/agents/{quote(agent_id, safe='')}", settings)
        return result

    def run_pipeline(
        self,
        pipeline_name: str | None = None,
        environment_name: str | None = None,
        *,
        schedule_id: str | None = None,
        project_id: str | None = None,
        outcome: str | None = None,
        seconds: float | None = None,
        message: str | None = None,
        clock_skew_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Make DPC run a published pipeline now, as its scheduler does (trigger ``SCHEDULE``): named
        by a seeded schedule or by pipeline and environment; ``outcome`` (SUCCESS, FAILED, FORBIDDEN...)
        and ``seconds`` override the seed's; ``clock_skew_seconds`` dates its ``startedAt`` that much
        later. Returns the execution as the executions list shows it."""
        body = {
            "pipelineName": pipeline_name,
            "environmentName": environment_name,
            "scheduleId": schedule_id,
            "projectId": project_id,
            "outcome": outcome,
            "seconds": seconds,
            "message": message,
            "clockSkewSeconds": clock_skew_seconds,
        }
        result: dict[str, Any] = self._admin("POST", "/runs", {k: v for k, v in body.items() if v is not None})
        return result

    def run_every(
        self,
        schedule_id: str,
        every_seconds: float,
        *,
        first_in_seconds: float | None = None,
        outcome: str | None = None,
        seconds: float | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        """Make DPC run a seeded schedule's pipeline every ``every_seconds`` from now on."""
        body = {
            "everySeconds": every_seconds,
            "firstInSeconds": first_in_seconds,
            "outcome": outcome,
            "seconds": seconds,
            "message": message,
        }
        path = f"/schedules/{quote(schedule_id, safe='')}/interval"
        result: dict[str, Any] = self._admin("PUT", path, {k: v for k, v in body.items() if v is not None})
        return result

    def stop_running(self, schedule_id: str) -> dict[str, Any]:
        """Stop the interval runs of a schedule."""
        result: dict[str, Any] = self._admin("DELETE", f"/schedules/{quote(schedule_id, safe='')}/interval")
        return result

    def token(self) -> str:
        """A fresh access token from the token endpoint."""
        if self._http is None:
            raise RuntimeError("the DPC emulator is not running")
        response = self._http.post(
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "audience": "https://api.matillion.com",
            },
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    # Airflow connection

    def connection_fields(self) -> dict[str, Any]:
        return {
            "conn_type": CONN_TYPE,
            "host": self.base_url,
            "login": self.client_id,
            "password": self.client_secret,
            "extra": {"oauth_url": self.token_url},
        }

    def connection_json(self) -> str:
        """The connection in Airflow's JSON form, for an ``AIRFLOW_CONN_<ID>`` variable."""
        return json.dumps(self.connection_fields())

    def connection_uri(self) -> str:
        """The connection as an Airflow URI; Airflow parses it back to host ``base_url``."""
        authority = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}@"
        host = quote(self.base_url.split("://", 1)[1], safe="")
        query = urlencode({"oauth_url": self.token_url})
        return f"{CONN_TYPE.replace('_', '-')}://http://{authority}{host}/?{query}"

    def airflow_env(self, conn_id: str = "matillion_dpc_default") -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": <JSON>}`` to point an Airflow process at this emulator."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.connection_json()}
