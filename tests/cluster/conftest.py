"""One real Airflow 3 deployment per test session, shared by every test under ``tests/cluster``.

Starting a scheduler, triggerer, DAG processor and API server takes half a minute or more on two
cores, so every module of this folder uses the same one: the examples it needs are in its DAGs
folder from the start, and a module adds its own DAG files with ``airflow_cluster.write_dag_file``
(see ``test_scheduler.py``). Each test gets it through ``airflow``: all components up, the emulator
reset, and afterwards any run still going failed, so nothing of one test acts during the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.airflow_cluster import COMPONENTS, AirflowCluster, ClusterError
from tests.guide import PROJECT_ID, ROOT

EXAMPLES = ROOT / "example_dags"
# Starting the cluster takes 30-60 s on two cores; the wait fails (with Airflow's logs) well before
# pytest-timeout, whose limit includes starting the cluster for the first test that runs.
STARTUP_TIMEOUT = 150.0


HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder is a ``scheduler`` test, needs Airflow 3's components, and runs
    after every other test of the session.

    Last, because the deployment lives until the session ends and keeps working in the background
    (an asset watcher polls its pipeline in the triggerer): no test outside this folder may find
    its requests in the shared emulator's counts or its rate limit.
    """
    skip = pytest.mark.skipif(
        find_spec("airflow.api_fastapi") is None,
        reason=f"the cluster runs Airflow 3's API server and Task Execution API, which Airflow "
        f"{version('apache-airflow')} does not have",
    )
    cluster = [item for item in items if HERE in item.path.parents]
    for item in cluster:
        item.add_marker(pytest.mark.scheduler)
        item.add_marker(skip)
    items[:] = [item for item in items if HERE not in item.path.parents] + cluster


class _LogsOnFailure:
    """Adds the tail of every Airflow log to the report of a failed test that used the cluster.

    A :class:`ClusterError` already carries them in its message.
    """

    def __init__(self, cluster: AirflowCluster) -> None:
        self.cluster = cluster

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if (
            report.failed
            and "airflow" in getattr(item, "fixturenames", ())
            and not (call.excinfo is not None and call.excinfo.errisinstance(ClusterError))
        ):
            report.sections.append(("Airflow logs (tails)", self.cluster.log_tails()))
        return report


@pytest.fixture(scope="session")
def airflow_cluster(emulator: Any, request: pytest.FixtureRequest) -> Iterator[AirflowCluster]:
    """The session's Airflow deployment, its DAGs folder holding the quickstart from the start."""
    env = {
        **emulator.airflow_env(),  # AIRFLOW_CONN_MATILLION_DPC_DEFAULT
        "DPC_DEFERRABLE": "true",
        "DPC_POLL_INTERVAL": "0.5",
        "DPC_PROJECT_ID": PROJECT_ID,
    }
    dag_files = [EXAMPLES / "example_dpc_quickstart.py", EXAMPLES / "streaming-pipeline.json"]
    with AirflowCluster(dag_files, env=env, startup_timeout=STARTUP_TIMEOUT) as cluster:
        plugin = _LogsOnFailure(cluster)
        request.config.pluginmanager.register(plugin, "dpc-airflow-cluster-logs")
        try:
            yield cluster
        finally:
            request.config.pluginmanager.unregister(plugin)


@pytest.fixture
def airflow(airflow_cluster: AirflowCluster, fresh_emulator: Any, conn_env: Any) -> Iterator[AirflowCluster]:
    """The session's cluster, all components up, with a freshly reset emulator.

    Afterwards every DAG the test unpaused is paused again and any run still going is failed, so
    nothing of it acts on the emulator during the next test.
    """
    conn_env("matillion_dpc_default")  # for DpcHook calls in this process
    stopped = [name for name in COMPONENTS if not airflow_cluster.running(name)]
    for name in stopped:  # an earlier test may have left one down
        airflow_cluster.start_component(name)
    if stopped:
        airflow_cluster.wait_healthy()
    yield airflow_cluster
    airflow_cluster.pause_all()
    airflow_cluster.fail_unfinished_runs()
