"""`make demo`: run the quickstart DAG with `airflow dags test` against a local DPC emulator.

Starts the emulator, points a throw-away Airflow home at it, runs the DAG, and shows the pipeline's
status timeline as the emulator saw it, the task states and the API calls that were made.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from airflow_provider_dpc.emulator import EmulatorProcess

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "example_dpc_quickstart"
TASKS = ("create_pipeline", "start_pipeline", "consume", "stop_pipeline", "delete_pipeline")
PROJECT_ID = "3dda0acf-e646-4f4b-b4f6-e00449b69427"


LIST_ROUTE = "GET /dpc/v1/projects/{projectId}/streaming-pipelines"
STATUS_ROUTE = "GET /dpc/v1/projects/{projectId}/streaming-pipelines/{pipelineId}/status"


def watch_statuses(
    emulator: EmulatorProcess, timeline: list[str], own_calls: dict[str, int], stop: threading.Event
) -> None:
    """Record each status change of the pipeline the DAG creates, as a client of the API."""
    headers = {"Authorization": f"Bearer {emulator.token()}"}
    with httpx.Client(base_url=emulator.base_url, headers=headers, timeout=5) as api:
        pipeline_id = None
        while not stop.is_set():
            try:
                if pipeline_id is None:
                    own_calls[LIST_ROUTE] += 1
                    found = api.get(f"/v1/projects/{PROJECT_ID}/streaming-pipelines").json()["results"]
                    pipeline_id = found[0]["streamingPipelineId"] if found else None
                if pipeline_id is not None:
                    own_calls[STATUS_ROUTE] += 1
                    answer = api.get(f"/v1/projects/{PROJECT_ID}/streaming-pipelines/{pipeline_id}/status")
                    status = answer.json()["status"] if answer.status_code == 200 else "(deleted)"
                    if not timeline or timeline[-1] != status:
                        timeline.append(status)
            except httpx.HTTPError:
                pass
            time.sleep(0.2)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--require-installed",
        action="store_true",
        help="fail unless the provider is imported from an installed distribution, not this source tree",
    )
    args = parser.parse_args(argv)
    import airflow_provider_dpc

    package = Path(airflow_provider_dpc.__file__).resolve().parent
    if args.require_installed and package == ROOT / "airflow_provider_dpc":
        print(f"the provider was imported from the source tree ({package}), not from an installation")
        return 1
    print(f"0. airflow-provider-dpc {airflow_provider_dpc.__version__} from {package}")
    home = Path(tempfile.mkdtemp(prefix="dpc-demo-airflow-"))
    with EmulatorProcess(starting_seconds=2, snapshotting_seconds=2, stopping_seconds=2) as emulator:
        env = {
            **os.environ,
            **emulator.airflow_env(),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "DPC_PROJECT_ID": PROJECT_ID,
            "DPC_POLL_INTERVAL": "1",
        }
        print(f"1. DPC emulator running at {emulator.base_url}")
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
        print(f"2. Airflow metadata database ready in {home}")
        print(f"3. airflow dags test {DAG_ID} ...")
        timeline: list[str] = []
        own_calls = {LIST_ROUTE: 0, STATUS_ROUTE: 0}
        stop = threading.Event()
        watcher = threading.Thread(target=watch_statuses, args=(emulator, timeline, own_calls, stop), daemon=True)
        watcher.start()
        log_path = home / "dags-test.log"
        with log_path.open("w") as log:
            result = subprocess.run(
                [sys.executable, "-m", "airflow", "dags", "test", DAG_ID],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        stop.set()
        watcher.join(timeout=5)
        stats = emulator.stats()

    output = log_path.read_text(errors="replace")
    print("\nPipeline status, as the API reported it:\n   " + " -> ".join(timeline))
    print("\nTask results:")
    states = task_states(env)
    for task_id in TASKS:
        print(f"   {task_id:<18} {states.get(task_id, 'did not run')}")
    print("\nAPI calls the provider made:")
    for route, count in sorted(stats["requests"].items()):
        count -= own_calls.get(route, 0)
        if count and "/oauth/" not in route:
            print(f"   {count:>4}  {route}")
    grants = stats["token_grants"] - 1  # the status watcher's own token
    print(f"   token grants: {grants}, pipelines created: {stats['pipelines_created']}")
    if result.returncode != 0 or any(states.get(task_id) != "success" for task_id in TASKS):
        print(f"\nThe DAG run failed; full log: {log_path}\n" + "\n".join(output.splitlines()[-40:]))
        return 1
    print(f"\nThe quickstart DAG ran green. Full log: {log_path}")
    return 0


STATES_SCRIPT = f"""
from airflow.models import DagRun, TaskInstance
from airflow.utils.session import create_session
with create_session() as session:
    run = session.query(DagRun).filter(DagRun.dag_id == "{DAG_ID}").order_by(DagRun.id.desc()).first()
    for ti in session.query(TaskInstance).filter(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id):
        print(ti.task_id, ti.state)
"""


def task_states(env: dict[str, str]) -> dict[str, str]:
    """The state of each task of the latest run, read from Airflow's metadata database."""
    result = subprocess.run([sys.executable, "-c", STATES_SCRIPT], env=env, capture_output=True, text=True)
    return dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
