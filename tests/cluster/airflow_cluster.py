"""A real Airflow 3 deployment in subprocesses, for tests that need the scheduler and the triggerer.

:class:`AirflowCluster` gives a test its own ``AIRFLOW_HOME``, a SQLite metadata database (``airflow
db migrate`` first) and a DAGs folder, then runs ``airflow api-server`` (on a free loopback port),
``airflow scheduler`` (LocalExecutor), ``airflow dag-processor`` and ``airflow triggerer``, each in
its own process group with its output in ``AIRFLOW_HOME/component-logs/<name>.log``::

    with AirflowCluster(dag_files=[...], env=emulator.airflow_env()) as cluster:
        cluster.wait_for_dag("example_dpc_quickstart")
        cluster.unpause("example_dpc_quickstart")
        run_id = cluster.trigger("example_dpc_quickstart", conf={"pipeline_name": "x"})
        cluster.wait_for_run("example_dpc_quickstart", run_id)

The test talks to Airflow through the public REST API (``/api/v2``); the simple auth manager runs
with ``simple_auth_manager_all_admins``, so no login is needed. Task workers reach the API server's
Task Execution API at ``/execution/``, authenticated with JWTs signed by a per-cluster secret.

Every process the cluster starts carries a per-cluster marker in its environment, so :meth:`stop`
finds and ends all of them (task runners too, which Airflow puts in process groups of their own),
terminating first and killing what is left after a timeout, even when the test failed.
Waiting helpers raise :class:`ClusterError` carrying the tail of every component's log.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import psutil
from cryptography.fernet import Fernet

from airflow_provider_dpc.emulator.process import free_port

__all__ = ["COMPONENTS", "AirflowCluster", "ClusterError"]

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
T = TypeVar("T")
_MARKER = "DPC_TEST_AIRFLOW_CLUSTER"  # in the environment of every process a cluster starts


class ClusterError(AssertionError):
    """Airflow did not do what the test waited for; the message ends with the components' logs."""


def tail(path: Path, lines: int, *, skip: Callable[[str], bool] | None = None) -> str:
    """The last ``lines`` lines of a text file, leaving out those ``skip`` is true of ('' when it is missing)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 2_000_000))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if not (skip and skip(line))]
    return "\n".join(kept[-lines:])


def _routine_access(line: str) -> bool:
    """An API server access-log line of a successful request (the test polls several times a second)."""
    return "[http.access]" in line and "status_code=2" in line


class AirflowCluster:
    """Airflow's scheduler, triggerer, DAG processor and API server as subprocesses of this test.

    :param dag_files: files copied into the DAGs folder before anything starts (DAG files and what
        they read, e.g. ``streaming-pipeline.json``); :meth:`add_dag_file` adds more later.
    :param env: extra environment for every Airflow process (connections, settings the DAGs read).
    :param python: the interpreter with Airflow installed (this one by default).
    :param parallelism: ``[core] parallelism``: task instances running at once (deferred ones do not count).
    :param startup_timeout: seconds for ``db migrate`` plus starting every component until it is healthy.
    :param keep_home: keep the temporary ``AIRFLOW_HOME`` after :meth:`stop` (default: when the
        ``DPC_KEEP_AIRFLOW_HOME`` environment variable is set), for debugging.
    """

    def __init__(
        self,
        dag_files: Iterable[str | os.PathLike[str]] = (),
        *,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        parallelism: int = 2,
        startup_timeout: float = 180.0,
        keep_home: bool | None = None,
    ) -> None:
        self.python = python
        self.parallelism = parallelism
        self.startup_timeout = startup_timeout
        self.keep_home = bool(os.environ.get("DPC_KEEP_AIRFLOW_HOME")) if keep_home is None else keep_home
        self.home = Path(tempfile.mkdtemp(prefix="dpc-airflow-cluster-"))
        self.dags_folder = self.home / "dags"
        self.log_dir = self.home / "component-logs"
        self.dags_folder.mkdir()
        self.log_dir.mkdir()
        for path in dag_files:
            self.add_dag_file(path)
        self.port = free_port()
        self.marker = uuid.uuid4().hex
        self.env = self._environment(env or {})
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.runs: list[tuple[str, str]] = []  # (dag_id, run_id) of every run triggered
        self._starts: dict[str, int] = {}
        self._unpaused: set[str] = set()
        self._http = httpx.Client(base_url=self.base_url + "/api/v2", timeout=30.0)

    # Configuration

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        # Nothing of the caller's Airflow set-up (the test session's own AIRFLOW_HOME, connections,
        # settings) may leak into the cluster: it gets exactly what is set here.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW", "DPC_", "PYTEST_", "_AIRFLOW"))
        }
        bin_dir = str(Path(self.python).parent)
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
        env.update(
            {
                _MARKER: self.marker,
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                # A writer waits up to a minute for SQLite's lock (pysqlite's default is 5 s): on a
                # busy machine the scheduler's, triggerer's and API server's writes otherwise meet
                # "database is locked" (a backfill's creation can meet it still: see
                # test_window_backfill.py).
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db?timeout=60",
                # The API server: the REST API for the test and the Task Execution API for workers.
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),  # HS512 wants >= 64 bytes
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                # Airflow 3.0 answers ``?deserialize=true`` XCom reads only with this on.
                "AIRFLOW__API__ENABLE_XCOM_DESERIALIZE_SUPPORT": "True",
                # Quick reactions: parse new files within seconds, schedule every second, notice a
                # dead triggerer within seconds so another one adopts its triggers.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD": "60",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
                # A task's supervisor notices its task process has ended at its next heartbeat
                # check, 5 s by default: until then the run waits and the worker slot stays taken.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            }
        )
        env.update(extra)
        return env

    def add_dag_file(self, source: str | os.PathLike[str], *, name: str | None = None) -> Path:
        """Copy a file into the DAGs folder (the DAG processor picks new files up within seconds)."""
        target = self.dags_folder / (name or Path(source).name)
        shutil.copyfile(source, target)
        return target

    def write_dag_file(self, name: str, text: str) -> Path:
        """Write a DAG file from text (written aside and renamed, so it is never parsed half-written)."""
        target = self.dags_folder / name
        partial = self.home / (name + ".partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
        return target

    # Lifecycle

    def __enter__(self) -> AirflowCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> AirflowCluster:
        """Migrate the database, then start every component and wait until all of them are healthy."""
        deadline = time.monotonic() + self.startup_timeout
        self._run_cli("db", "migrate", timeout=self.startup_timeout)
        for name in COMPONENTS:  # all at once: each needs only the database to start
            self.start_component(name)
        self._wait_for_api(deadline)
        self.wait_healthy(timeout=max(10.0, deadline - time.monotonic()))
        return self

    def start_component(self, name: str) -> None:
        """Start one component (again), its output appended to its log file. ``triggerer-2`` (any
        ``triggerer-<n>``) is a further triggerer beside ``triggerer``, as in an HA deployment."""
        kind = "triggerer" if name.startswith("triggerer-") and name[10:].isdigit() else name
        if kind not in COMPONENTS:
            raise ValueError(f"unknown component {name!r}; one of {', '.join(COMPONENTS)} or triggerer-<n>")
        if self.running(name):
            raise RuntimeError(f"{name} is already running (pid {self.processes[name].pid})")
        command = [self.python, "-m", "airflow", kind]
        if kind == "api-server":
            command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        elif kind in ("scheduler", "triggerer"):
            # No log server on a fixed port of every interface: the API server reads the log files.
            command.append("--skip-serve-logs")
        self._starts[name] = self._starts.get(name, 0) + 1
        with self.log_path(name).open("ab") as log:
            log.write(f"\n===== start #{self._starts[name]} of {name}: {' '.join(command)}\n".encode())
            log.flush()
            self.processes[name] = subprocess.Popen(
                command,
                cwd=self.home,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so signals reach its children
            )

    def running(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def kill_component(self, name: str, sig: signal.Signals = signal.SIGKILL, timeout: float = 15.0) -> None:
        """Send ``sig`` to a component and every process under it, and wait until they are gone.

        With SIGKILL (the default) this is a crash: nothing gets to clean up or to tell the database.
        """
        process = self.processes.pop(name, None)
        if process is None:
            return
        victims = _tree(process.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        for victim in victims:
            with contextlib.suppress(psutil.Error):
                victim.send_signal(sig)
        _, alive = psutil.wait_procs(victims, timeout=timeout)
        for victim in alive:
            with contextlib.suppress(psutil.Error):
                victim.kill()
        psutil.wait_procs(alive, timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)

    def stop(self, timeout: float = 15.0) -> None:
        """End every process this cluster started: SIGTERM first, SIGKILL after ``timeout`` seconds."""
        self._http.close()  # an open keep-alive connection would hold up the API server's shutdown
        try:
            victims = self._all_processes()
            for process in self.processes.values():
                if process.poll() is None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(process.pid, signal.SIGTERM)
            for victim in victims:
                with contextlib.suppress(psutil.Error):
                    victim.terminate()
            _, alive = psutil.wait_procs(victims, timeout=timeout)
            # Whatever is left (and anything started meanwhile) is killed outright.
            for victim in {*alive, *self._all_processes()}:
                with contextlib.suppress(psutil.Error):
                    print(f"airflow cluster: killing pid {victim.pid} {victim.cmdline()[:4]}", file=sys.stderr)
                with contextlib.suppress(psutil.Error):
                    victim.kill()
            psutil.wait_procs(alive, timeout=5)
            for process in self.processes.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
        finally:
            if not self.keep_home:
                shutil.rmtree(self.home, ignore_errors=True)

    def _all_processes(self) -> list[psutil.Process]:
        """Every live process carrying this cluster's marker, plus the components' process trees."""
        found: dict[int, psutil.Process] = {}
        for process in self.processes.values():
            for member in _tree(process.pid):
                found[member.pid] = member
        for candidate in psutil.process_iter():
            if candidate.pid in found:
                continue
            with contextlib.suppress(psutil.Error):
                if candidate.environ().get(_MARKER) == self.marker:
                    found[candidate.pid] = candidate
        found.pop(os.getpid(), None)
        return list(found.values())

    # Logs

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log_tails(self, lines: int = 40) -> str:
        """The last ``lines`` lines of each component's log and of each task attempt's log."""
        parts = []
        for name in [*COMPONENTS, *sorted(set(self._starts) - set(COMPONENTS))]:
            process = self.processes.get(name)
            state = "not started" if process is None else f"pid {process.pid}, exit code {process.poll()}"
            text = tail(self.log_path(name), lines, skip=_routine_access)
            parts.append(f"----- {name} ({state}): {self.log_path(name)}\n{text}")
        task_logs = sorted((self.home / "logs").glob("dag_id=*/**/*.log"), key=_mtime)
        for path in task_logs[-12:]:
            parts.append(f"----- task log {path.relative_to(self.home)}\n{tail(path, lines // 2)}")
        return "\n".join(parts)

    def task_logs(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str]:
        """``{file name: text}`` of a task's log files: ``attempt=<n>.log`` for each try, and
        ``attempt=<n>.log.trigger.<triggerer job id>.log`` for each triggerer that ran its trigger."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return {path.name: path.read_text(encoding="utf-8", errors="replace") for path in sorted(folder.glob("*.log"))}

    def _fail(self, message: str) -> ClusterError:
        return ClusterError(f"{message}\n\n===== Airflow logs (tails) =====\n{self.log_tails()}")

    def check_components(self) -> None:
        """Raise if a component exited that was not stopped on purpose."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise self._fail(f"airflow {name} exited with code {process.returncode}")

    # CLI and REST API

    def _run_cli(self, *args: str, timeout: float = 120.0) -> str:
        command = [self.python, "-m", "airflow", *args]
        with self.log_path("cli").open("ab") as log:
            log.write(f"\n===== {' '.join(command)}\n".encode())
        try:
            result = subprocess.run(
                command, cwd=self.home, env=self.env, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise self._fail(f"`airflow {' '.join(args)}` did not finish within {timeout:g} s") from exc
        output = (result.stdout + result.stderr).decode("utf-8", errors="replace")
        with self.log_path("cli").open("a", encoding="utf-8") as log:
            log.write(output)
        if result.returncode != 0:
            raise self._fail(f"`airflow {' '.join(args)}` exited with code {result.returncode}:\n{output[-4000:]}")
        return output

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the public REST API (``/api/v2`` + ``path``); returns the JSON body, raises on errors.

        A "Database error" (500) or "Database is locked" (503, which a backfill's creation answers)
        means SQLite was locked by the scheduler's and triggerer's writes on a busy machine: asked
        again, up to ten times a second apart, as the deployment's database is not what is tested.
        """
        for _ in range(10):
            response = self._http.request(method, path, **kwargs)
            if not _sqlite_locked(response):
                break
            time.sleep(1.0)
        if response.is_error:
            raise self._fail(f"{method} /api/v2{path} answered {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def _wait_for_api(self, deadline: float) -> None:
        while True:
            self.check_components()
            with contextlib.suppress(httpx.TransportError):
                if self._http.get("/version", timeout=2.0).status_code == 200:
                    self._log_in()
                    return
            if time.monotonic() > deadline:
                raise self._fail(f"the API server did not answer on {self.base_url} in time")
            time.sleep(0.3)

    def _log_in(self) -> None:
        """Take an admin token where the simple auth manager hands one out without credentials
        (``simple_auth_manager_all_admins``); Airflow 3.1 asks for it on every REST call, 3.0 has no
        such route and asks for none."""
        response = self._http.get(f"{self.base_url}/auth/token", timeout=10.0)
        if response.is_success:
            self._http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.api("GET", "/monitor/health")
        return result

    def wait_healthy(self, timeout: float = 60.0, components: Iterable[str] | None = None) -> None:
        """Wait until the metadatabase and the scheduler, triggerer and DAG processor report healthy."""
        wanted = tuple(components or ("metadatabase", "scheduler", "triggerer", "dag_processor"))
        deadline = time.monotonic() + timeout
        health: dict[str, Any] = {}
        while True:
            self.check_components()
            health = self.health()
            if all((health.get(name) or {}).get("status") == "healthy" for name in wanted):
                return
            if time.monotonic() > deadline:
                raise self._fail(f"Airflow is not healthy after {timeout:g} s: {health}")
            time.sleep(0.5)

    def wait_for_dag(self, dag_id: str, timeout: float = 90.0) -> dict[str, Any]:
        """Wait until the DAG processor has parsed and stored ``dag_id``; import errors fail at once."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_components()
            response = self._http.get(f"/dags/{dag_id}")
            if response.status_code == 200:
                dag: dict[str, Any] = response.json()
                return dag
            errors = self.api("GET", "/importErrors").get("import_errors", [])
            if errors:
                raise self._fail(f"DAG files failed to import: {errors}")
            if time.monotonic() > deadline:
                raise self._fail(f"DAG {dag_id!r} was not parsed within {timeout:g} s")
            time.sleep(0.5)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        self._unpaused.add(dag_id)

    def pause_all(self) -> None:
        """Pause every DAG a test unpaused, so an asset watcher's events start no run after it."""
        while self._unpaused:
            self.api("PATCH", f"/dags/{self._unpaused.pop()}", json={"is_paused": True})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        """Trigger a manual run with ``conf``; returns its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf or {})}
        if run_id:
            body["dag_run_id"] = run_id
        run: dict[str, Any] = self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)
        self.runs.append((dag_id, str(run["dag_run_id"])))
        return str(run["dag_run_id"])

    def fail_unfinished_runs(self) -> list[str]:
        """Mark every triggered run that has not finished as failed, so it cannot disturb later tests."""
        failed = []
        for dag_id, run_id in self.runs:
            if self.run_state(dag_id, run_id) not in TERMINAL_RUN_STATES:
                self.api("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"})
                failed.append(run_id)
        return failed

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        result = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        instances: list[dict[str, Any]] = result["task_instances"]
        return instances

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``{task_id: state}`` of the run's task instances (None before a task is scheduled)."""
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.api("GET", path, params={"deserialize": "true"})["value"]

    def wait_for(self, probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.3) -> T:
        """Call ``probe`` every ``interval`` seconds until it returns something other than None.

        Components are checked between calls; on timeout the error names ``what`` and holds the logs.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.check_components()
            result = probe()
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise self._fail(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(interval)

    def wait_for_run(
        self, dag_id: str, run_id: str, *, timeout: float, interval: float = 0.3
    ) -> tuple[str, list[dict[str, str | None]]]:
        """Wait until the run succeeds or fails; returns its state and every distinct task-state map seen."""
        deadline = time.monotonic() + timeout
        seen: list[dict[str, str | None]] = []
        while True:
            self.check_components()
            states = self.task_states(dag_id, run_id)
            if not seen or seen[-1] != states:
                seen.append(states)
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL_RUN_STATES:
                final = self.task_states(dag_id, run_id)
                if seen[-1] != final:
                    seen.append(final)
                return state, seen
            if time.monotonic() > deadline:
                history = "\n".join(f"  {s}" for s in seen)
                raise self._fail(
                    f"run {run_id} of {dag_id} is still {state} after {timeout:g} s; states seen:\n{history}"
                )
            time.sleep(interval)


def _sqlite_locked(response: httpx.Response) -> bool:
    if response.status_code == 500:
        return "Database error" in response.text
    return response.status_code == 503 and "Database is locked" in response.text


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
