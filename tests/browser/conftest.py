"""The browser test's Airflow (``airflow standalone``), its Chromium, and what a failing step leaves behind.

Every test of this folder is marked ``browser`` and ``slow`` (so ``make check`` leaves it out) and
runs on the newest Airflow line only (it is not ``every_line``). A failing test leaves a screenshot of
each open page, the standalone's log and the task logs in ``test-artifacts/browser/<test>/`` of the
checkout (git-ignored), which CI keeps as the run's artefacts, and every failing test's report (or its
error) says what Airflow was doing: each run the test started and its task instances as the REST API
has them, the components' health, the scheduler's and triggerer's own lines and the log files' tails.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from airflow_provider_dpc.emulator.process import free_port
from tests.cluster.airflow_cluster import AirflowCluster, ClusterError, tail
from tests.guide import PROJECT_ID, ROOT

HERE = Path(__file__).parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
EXAMPLES = ROOT / "example_dags"
#: Debian's Chromium (`make browser-deps` installs it); Playwright never downloads a browser here.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# `airflow standalone` migrates its database and starts the API server, scheduler, DAG processor
# and triggerer: 40-90 s on two busy cores. The wait fails, with the log, before pytest's timeout.
STARTUP_TIMEOUT = 240.0
#: The components `airflow standalone` runs as its children (its API server renames its process, and
#: answers every REST call anyway). The standalone runs on when one of them exits.
WATCHED = ("scheduler", "dag-processor", "triggerer")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = _missing()
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)
            if missing:
                item.add_marker(pytest.mark.skip(reason=missing))


def _missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if find_spec("airflow.api_fastapi") is None:
        return "the browser test drives Airflow 3's UI, which this Airflow does not have"
    if find_spec("playwright") is None:
        return "Playwright for Python is not installed (the dev extra has it: make install)"
    if not CHROMIUM.exists():
        return f"Debian's chromium is not installed ({CHROMIUM} is missing; `make browser-deps` installs it)"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    standalone = item.config.stash.get(STANDALONE, None)
    if report.failed and report.when in ("setup", "call") and standalone is not None:
        # A failing step or module fixture says why: what Airflow was doing, in the report (a
        # ClusterError's message holds it already) and with the logs among the artefacts.
        diagnosis = standalone.log_tails()
        if not (call.excinfo and call.excinfo.errisinstance(ClusterError)):
            report.sections.append(("Airflow when the test failed", diagnosis))
        keep_artifacts(item.name, None, standalone, diagnosis)
    return report


class AirflowStandalone(AirflowCluster):
    """``airflow standalone`` in a fresh ``AIRFLOW_HOME``, with the cluster's settings (a loopback
    port, quick heartbeats, the simple auth manager letting everyone in as admin) and its REST
    helpers; :meth:`stop` ends every process it started, task runners included."""

    _started = False  # whether its components are up, so one missing has exited

    def start(self) -> AirflowStandalone:
        # Its scheduler and triggerer serve logs on ports of their own: free ones, not 8793/8794.
        self.env.update(
            {
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            }
        )
        deadline = time.monotonic() + self.startup_timeout
        with self.log_path("standalone").open("ab") as log:
            self.processes["standalone"] = subprocess.Popen(
                [self.python, "-m", "airflow", "standalone"],
                cwd=self.home,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_for_api(deadline)
        self.wait_healthy(timeout=max(10.0, deadline - time.monotonic()))
        self._started = True
        return self

    def check_components(self) -> None:
        """Raise if the standalone exited or, once it is up, one of its components did: a run would
        otherwise wait on a dead scheduler or triggerer until its timeout."""
        super().check_components()
        process = self.processes.get("standalone")
        if not self._started or process is None:
            return
        try:
            children = psutil.Process(process.pid).children()
        except psutil.Error:  # the standalone exited just now: the next check says so
            return
        alive: list[list[str]] = []
        for child in children:
            with contextlib.suppress(psutil.Error):  # exited meanwhile, or a zombie the standalone never reaps
                if child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child.cmdline())
        gone = [name for name in WATCHED if not any(name in cmdline for cmdline in alive)]
        if gone:
            raise self._fail(f"airflow standalone's {', '.join(gone)} exited; its last lines are below")

    def log_tails(self, lines: int = 60) -> str:
        """What Airflow was doing: every run the test started, the components' health, the scheduler's
        and triggerer's own lines of the standalone's combined log, that log, and log files' tails."""
        log = self.log_path("standalone")
        parts = [self.run_report(dag_id, run_id) for dag_id, run_id in self.runs]
        parts.append(f"----- GET /api/v2/monitor/health: {self._get('/monitor/health')}")
        for name in ("scheduler", "triggerer"):
            parts.append(f"----- {name}'s own lines of {log}\n{tail(log, lines, skip=_not_from(name))}")
        everything = tail(log, lines, skip=_routine_access)
        parts.append(f"----- airflow standalone (every component, no successful request): {log}\n{everything}")
        # Airflow 3 writes no scheduler log file by default; one configured to would write it here.
        files = sorted((self.home / "logs").glob("scheduler/**/*.log"), key=_mtime)[-3:]
        files += sorted((self.home / "logs").glob("dag_id=*/**/*.log"), key=_mtime)[-12:]
        parts += [f"----- {path.relative_to(self.home)}\n{tail(path, lines // 2)}" for path in files]
        return "\n".join(parts)

    def run_report(self, dag_id: str, run_id: str) -> str:
        """A run, its DAG's flags and its task instances as the REST API has them."""
        run = self._get(f"/dags/{dag_id}/dagRuns/{run_id}")
        dag = self._get(f"/dags/{dag_id}")
        instances = self._get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        lines = [
            f"----- run {run_id} of {dag_id}: {_fields(run, 'state', 'queued_at', 'start_date', 'end_date')}",
            f"  its DAG: {_fields(dag, 'is_paused', 'is_stale', 'has_import_errors', 'max_active_runs')}",
        ]
        if not isinstance(instances, dict):
            return "\n".join([*lines, f"  task instances: {instances}"])
        for ti in instances["task_instances"]:
            keys = ("state", "try_number", "scheduled_when", "queued_when", "start_date", "end_date", "pid")
            lines.append(f"  task {ti['task_id']}: {_fields(ti, *keys)}")
        return "\n".join(lines)

    def _get(self, path: str) -> dict[str, Any] | str:
        """A REST answer, or why there is none: this runs when something already failed, so it
        neither raises nor waits long (a plain GET, not :meth:`api` with its retries)."""
        try:
            response = self._http.get(path, timeout=10.0)
        except httpx.HTTPError as error:
            return f"no answer ({error!r})"
        if response.is_error:
            return f"HTTP {response.status_code}: {response.text[:500]}"
        answer: dict[str, Any] = response.json()
        return answer

    def cli(self, *args: str, timeout: float = 120.0) -> str:
        """An ``airflow`` command against this deployment's database; its output."""
        return self._run_cli(*args, timeout=timeout)


#: The running standalone, which a failing test's report describes.
STANDALONE = pytest.StashKey[AirflowStandalone]()


@pytest.fixture(scope="module")
def standalone(emulator: Any, request: pytest.FixtureRequest) -> Iterator[AirflowStandalone]:
    """A new user's Airflow: ``airflow standalone`` with the quickstart in its DAGs folder and no
    connection at all (the test makes one in the UI)."""
    env = {"DPC_PROJECT_ID": PROJECT_ID, "DPC_POLL_INTERVAL": "1"}
    dag_files = [EXAMPLES / "example_dpc_quickstart.py", EXAMPLES / "streaming-pipeline.json"]
    airflow = AirflowStandalone(dag_files, env=env, startup_timeout=STARTUP_TIMEOUT)
    with airflow:  # (its __enter__ is typed as the base class's)
        request.config.stash[STANDALONE] = airflow  # for the report of a failing test
        try:
            yield airflow
        finally:
            del request.config.stash[STANDALONE]


def _not_from(component: str) -> Callable[[str], bool]:
    """A ``tail`` filter keeping only the lines standalone relays from ``component`` (it prefixes
    each with the name padded to 10 characters and a bar)."""
    prefix = f"{component:10} | "
    return lambda line: not line.startswith(prefix)


def _routine_access(line: str) -> bool:
    """An API server access-log line of a successful request (the test polls several times a second)."""
    return "[http.access]" in line and "status_code=2" in line


def _fields(answer: dict[str, Any] | str, *keys: str) -> str:
    return " ".join(f"{key}={answer.get(key)}" for key in keys) if isinstance(answer, dict) else answer


def _mtime(path: Path) -> float:
    with contextlib.suppress(OSError):
        return path.stat().st_mtime
    return 0.0


@pytest.fixture(scope="module")
def browser(standalone: AirflowStandalone) -> Iterator[Any]:
    """Chromium with a fresh profile, through Playwright; closed with the module, as Playwright's
    sync API keeps an event loop running in this thread, where ``asyncio.run`` then fails."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="dpc-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1400, "height": 1200},
            )
            context.set_default_timeout(30_000)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Any, standalone: AirflowStandalone, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A new tab; when the test fails, its screenshot and Airflow's logs go to the artefacts folder."""
    tab = browser.new_page()
    try:
        yield tab
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:  # the report hook kept the logs there already
            keep_page(ARTIFACTS / request.node.name, tab)
        tab.close()


def keep_artifacts(test: str, tab: Any | None, standalone: AirflowStandalone, diagnosis: str | None = None) -> Path:
    """Keep the page (if any), Airflow's logs and ``diagnosis`` (else :meth:`~AirflowStandalone.log_tails`)
    in ``test-artifacts/browser/<test>/``."""
    folder = ARTIFACTS / test
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if tab is not None:
        keep_page(folder, tab)
    with contextlib.suppress(OSError):
        shutil.copy(standalone.log_path("standalone"), folder / "standalone.log")
    with contextlib.suppress(OSError):
        shutil.copytree(standalone.home / "logs", folder / "logs", dirs_exist_ok=True)
    text = standalone.log_tails() if diagnosis is None else diagnosis
    (folder / "diagnosis.txt").write_text(text, encoding="utf-8")
    return folder


def keep_page(folder: Path, tab: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(Exception):
        tab.screenshot(path=str(folder / "page.png"), full_page=True)
        (folder / "page-url.txt").write_text(tab.url, encoding="utf-8")
