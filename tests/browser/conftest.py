"""The browser test's Airflow (``airflow standalone``), its Chromium, and what a failing step leaves behind.

Every test of this folder is marked ``browser`` and ``slow`` (so ``make check`` leaves it out) and
runs on the newest Airflow line only (it is not ``every_line``). A failing test leaves a screenshot of
each open page, the standalone's log and the task logs in ``test-artifacts/browser/<test>/`` of the
checkout (git-ignored), which CI keeps as the run's artefacts.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpc.emulator.process import free_port
from tests.cluster.airflow_cluster import AirflowCluster, tail
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
    return report


class AirflowStandalone(AirflowCluster):
    """``airflow standalone`` in a fresh ``AIRFLOW_HOME``, with the cluster's settings (a loopback
    port, quick heartbeats, the simple auth manager letting everyone in as admin) and its REST
    helpers; :meth:`stop` ends every process it started, task runners included."""

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
        return self

    def log_tails(self, lines: int = 60) -> str:
        return f"----- airflow standalone: {self.log_path('standalone')}\n" + tail(self.log_path("standalone"), lines)

    def cli(self, *args: str, timeout: float = 120.0) -> str:
        """An ``airflow`` command against this deployment's database; its output."""
        return self._run_cli(*args, timeout=timeout)


@pytest.fixture(scope="module")
def standalone(emulator: Any) -> Iterator[AirflowStandalone]:
    """A new user's Airflow: ``airflow standalone`` with the quickstart in its DAGs folder and no
    connection at all (the test makes one in the UI)."""
    env = {"DPC_PROJECT_ID": PROJECT_ID, "DPC_POLL_INTERVAL": "1"}
    dag_files = [EXAMPLES / "example_dpc_quickstart.py", EXAMPLES / "streaming-pipeline.json"]
    with AirflowStandalone(dag_files, env=env, startup_timeout=STARTUP_TIMEOUT) as airflow:
        yield airflow


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
        if report is not None and report.failed:
            keep_artifacts(request.node.name, tab, standalone)
        tab.close()


def keep_artifacts(test: str, tab: Any, standalone: AirflowStandalone) -> Path:
    folder = ARTIFACTS / test
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with contextlib.suppress(Exception):
        tab.screenshot(path=str(folder / "page.png"), full_page=True)
        (folder / "page-url.txt").write_text(tab.url, encoding="utf-8")
    with contextlib.suppress(OSError):
        shutil.copy(standalone.log_path("standalone"), folder / "standalone.log")
    with contextlib.suppress(OSError):
        shutil.copytree(standalone.home / "logs", folder / "logs", dirs_exist_ok=True)
    return folder
