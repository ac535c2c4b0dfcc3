"""What the benchmarks share: child processes, the servers they run against, statistics, the machine."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_dpc.emulator.process import stop_process

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PROJECT_ID = "3dda0acf-e646-4f4b-b4f6-e00449b69427"  # the guide's project, served by the emulator
AGENT_ID = "2734aa6f-0c64-4d2b-9406-f44dc8f1f3b6"
DPC_CONN_ID = "bench_dpc"
HTTP_CONN_ID = "bench_http"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-client-secret"


class BenchmarkError(RuntimeError):
    """A benchmark could not run; the message says why (a child's stderr, a missing package)."""


# ---- what is installed -------------------------------------------------------------------------


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def has_dbt_cloud() -> bool:
    return installed("airflow.providers.dbt.cloud")


def has_http_provider() -> bool:
    return installed("airflow.providers.http")


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """Where the figures come from: cores, CPU model, Python, Airflow and the HTTP stacks."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "versions": {
            dist: version(dist)
            for dist in (
                "apache-airflow",
                "airflow-provider-dpc",
                "httpx",
                "aiohttp",
                "apache-airflow-providers-http",
                "apache-airflow-providers-dbt-cloud",
            )
        },
    }


# ---- statistics ----------------------------------------------------------------------------------


def summary(values: Iterable[float], digits: int = 3) -> dict[str, Any]:
    """Median, min and max (and how many values) of ``values``."""
    data = sorted(values)
    if not data:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": round(statistics.median(data), digits),
        "min": round(data[0], digits),
        "max": round(data[-1], digits),
        "n": len(data),
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by the nearest-rank method."""
    if not values:
        return None
    data = sorted(values)
    rank = max(1, min(len(data), round(q * len(data) + 0.5 - 1e-9)))
    return data[rank - 1]


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


# ---- child processes -----------------------------------------------------------------------------


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a benchmark's child process.

    A deployed provider is imported from compiled byte-code, so where the caller's environment
    forbids writing it next to the sources (``PYTHONDONTWRITEBYTECODE``), the children cache it
    under ``benchmarks/results/pycache`` instead of compiling every module on every import. Airflow
    gets a throw-away home unless one is set.
    """
    env = dict(os.environ)
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        env.setdefault("PYTHONPYCACHEPREFIX", str(RESULTS / "pycache"))
    if "AIRFLOW_HOME" not in env:
        home = RESULTS / "airflow-home"
        home.mkdir(parents=True, exist_ok=True)
        env["AIRFLOW_HOME"] = str(home)
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
    paths = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_child(args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 300) -> Any:
    """Run ``python ARGS`` in a fresh process and return the JSON of its last stdout line."""
    try:
        done = subprocess.run(
            [sys.executable, *args],
            env=child_env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"{' '.join(args)} did not finish within {timeout:g} s") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-25:])
        raise BenchmarkError(f"{' '.join(args)} exited with {done.returncode}:\n{tail}")
    return json.loads(lines[-1])


def emit(result: Any) -> None:
    """A child's answer to :func:`run_child`: one JSON line on stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def pipeline_ids(n: int, offset: int = 0) -> list[str]:
    return [str(uuid.UUID(int=offset + i + 1)) for i in range(n)]


def dpc_connection(origin: str, **extra: Any) -> str:
    """A ``matillion_dpc`` connection (Airflow JSON form) to a server at ``origin``."""
    return json.dumps(
        {
            "conn_type": "matillion_dpc",
            "host": f"{origin}/dpc",
            "login": CLIENT_ID,
            "password": CLIENT_SECRET,
            "extra": {"oauth_url": f"{origin}/oauth/dpc/token", **extra},
        }
    )


def http_connection(origin: str) -> str:
    """An ``http`` connection to the same server, for the HTTP provider's hook and trigger."""
    return json.dumps({"conn_type": "http", "host": f"{origin}/dpc"})


def connections_env(origin: str, **dpc_extra: Any) -> dict[str, str]:
    return {
        f"AIRFLOW_CONN_{DPC_CONN_ID.upper()}": dpc_connection(origin, **dpc_extra),
        f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}": http_connection(origin),
    }


def grant_token(token_url: str, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> str:
    response = httpx.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "audience": "https://api.matillion.com",
        },
        timeout=10,
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


# ---- the benchmark's own server ------------------------------------------------------------------


class BenchServer:
    """``benchmarks.server`` in a subprocess (see its module docstring)."""

    def __init__(self) -> None:
        self.origin = ""
        self._process: subprocess.Popen[str] | None = None
        self._http = httpx.Client(timeout=30)

    def __enter__(self) -> BenchServer:
        from benchmarks.server import READY_LINE

        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.server", "--port", "0"],
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
        assert self._process.stdout is not None
        deadline = time.monotonic() + 30
        line = self._process.stdout.readline()
        while READY_LINE not in line:
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise BenchmarkError(f"the benchmark server did not start: {line!r}")
            line = self._process.stdout.readline()
        self.origin = line.split(READY_LINE, 1)[1].strip()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()
        process, self._process = self._process, None
        stop_process(process)

    @property
    def token_url(self) -> str:
        return f"{self.origin}/oauth/dpc/token"

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._http.get(f"{self.origin}/_bench/stats").raise_for_status().json()
        return result

    def reset(self) -> None:
        self._http.post(f"{self.origin}/_bench/reset").raise_for_status()

    def schedule(self, default: float | None = None, at: Mapping[str, float] | None = None) -> None:
        body = {"default": default, "at": dict(at or {})}
        self._http.put(f"{self.origin}/_bench/schedule", json=body).raise_for_status()

    def rate_limit(self, limit: int | None, window: float = 60.0) -> None:
        """Refuse API requests beyond ``limit`` per rolling ``window`` seconds, as the account's limit does."""
        self._http.put(f"{self.origin}/_bench/rate_limit", json={"limit": limit, "window": window}).raise_for_status()

    def start_pipelines(self, ids: Iterable[str]) -> None:
        """Mark pipelines as started (SNAPSHOTTING until their flip), as an upstream task would have."""
        self._http.put(f"{self.origin}/_bench/started", json=list(ids)).raise_for_status()


def pipeline_definition(name: str) -> dict[str, Any]:
    """A valid streaming-pipeline definition (the DPC guide's SQL Server to Snowflake example)."""
    secret = {"secretType": "AZURE_KEY_VAULT", "secretLocation": "streaming-key-vault"}
    return {
        "name": name,
        "agentId": AGENT_ID,
        "streamingSource": {
            "type": "sqlserver",
            "connection": {
                "host": "sqlserver.my-org.com",
                "port": 1433,
                "database": "my_database",
                "username": "sa",
                "password": {**secret, "secretName": "sqlserver-password"},
            },
            "tables": [{"schema": "my_schema", "table": "my_first_table"}],
        },
        "streamingTarget": {
            "type": "snowflake",
            "connection": {
                "accountName": "my-snowflake-account.eu-central-1",
                "username": "STREAMING_USER",
                "authentication": {"type": "key-pair", "privateKey": {**secret, "secretName": "snowflake-key"}},
            },
            "role": "STREAMING_ROLE",
            "warehouse": "STREAMING_WH",
            "database": "STREAMING_DB",
            "stageSchema": "STREAMING_SCHEMA",
            "stageName": "STREAMING_STAGE",
            "tableSchema": "STREAMING_SCHEMA",
            "tablePrefixType": "PREFIX",
            "transformationType": "CHANGE_LOG",
            "temporalMapping": "NATIVE",
        },
    }
