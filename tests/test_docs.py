"""Every code block in ``docs/`` and the README runs, so the documentation cannot rot.

Each fenced block carries a marker on the line before it, ``<!-- docs-test: KIND args -->``, that
says how it is checked:

============== ===================================================================================
kind           check
============== ===================================================================================
dag ID         the block is a DAG file: parsed like the DAG processor does, run with
               ``dag.test()`` against the emulator; every task must succeed.
               ``beside=PATH,...`` copies files of the repository next to it (a definition file
               the DAG names)
python         run against the emulator, with ``matillion_dpc_default`` pointing at it
python-shell   run as a script in a fresh process, with ``matillion_dpc_default`` saved in Airflow's
               metadata database (as the UI saves it) and not in the environment
file PATH      a file of the example project that the page's ``pytest`` block runs with
pytest PATH    written to PATH, beside the page's ``file`` blocks, and run with pytest in a
               subprocess; every test must pass
bash           run with bash; it must exit 0
bash-emulator  run with bash against the session's emulator (``127.0.0.1:8765`` and Matillion's
               token URL are replaced by the emulator's)
bash-server    run with bash as it is, on a free port instead of 8765; background jobs are ended
server         a command that serves: started, must print the ``output`` block that follows it
connection-env run like bash-emulator; the ``AIRFLOW_CONN_MATILLION_DPC_DEFAULT`` it exports is
               read as Airflow reads it and must give the settings the marker names
make-dry-run   the ``make`` targets exist (``make -n``)
error ID       a message of troubleshooting.md: the provider must raise exactly that message when
               the situation the page describes is set up against the emulator
output, skip   not run (``skip`` must give its reason)
============== ===================================================================================

A block without a marker, or a marker of an unknown kind, fails the suite.

The kinds that start Airflow or a server (``dag``, ``pytest``, ``bash-emulator``, ``bash-server``,
``connection-env``, ``python-shell``) are marked ``edge_lines``: they run on the oldest and the newest Airflow line,
and the operators and hooks they use are tested on every line by the other suites.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpc.emulator import EmulatorProcess
from airflow_provider_dpc.emulator.process import free_port
from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.models import PipelineCommand, PipelineStatus
from tests.guide import PROJECT_ID, guide_body, wait_for_status
from tests.task_runner import RecordingTI

pytestmark = pytest.mark.every_line

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
#: The pages whose blocks run: the README and every page of docs/.
PAGES = [README, *sorted(DOCS.glob("*.md"))]
FAST = {"max_attempts": 2, "backoff_base": 0.01, "backoff_max": 0.05, "max_elapsed": 10}
MATILLION_TOKEN_URL = "https://id.core.matillion.com/oauth/dpc/token"
DOC_ORIGIN = "http://127.0.0.1:8765"
KINDS = {
    "dag",
    "python",
    "python-shell",
    "pytest",
    "file",
    "bash",
    "bash-emulator",
    "bash-server",
    "server",
    "connection-env",
    "make-dry-run",
    "error",
    "output",
    "skip",
}
MARKER = re.compile(r"^<!--\s*docs-test:\s*(?P<kind>[\w-]+)(?P<args>.*?)\s*-->$")


# ---- reading the pages --------------------------------------------------------------------------


@dataclass
class Block:
    page: str
    line: int
    lang: str
    code: str
    kind: str | None
    args: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        start, lang = i, lines[i][3:].strip()
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        marker = MARKER.match(lines[start - 1].strip()) if start else None
        block = Block(path.name, start + 1, lang, "\n".join(lines[start + 1 : end]) + "\n", None)
        if marker:
            block.kind = marker["kind"]
            for word in shlex.split(marker["args"]):
                key, sep, value = word.partition("=")
                if sep:
                    block.options[key] = value
                else:
                    block.args.append(word)
        blocks.append(block)
        i = end + 1
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in read_blocks(page)]


#: Kinds whose blocks start Airflow, a nested pytest or a server: seconds to a minute each.
SLOW_KINDS = frozenset({"dag", "pytest", "bash-emulator", "bash-server", "connection-env", "python-shell"})


def blocks(kind: str) -> list[Any]:
    marks = [pytest.mark.edge_lines] if kind in SLOW_KINDS else []
    return [pytest.param(b, id=b.id, marks=marks) for b in ALL_BLOCKS if b.kind == kind]


def test_the_docs_exist() -> None:
    pages = {p.name for p in DOCS.glob("*.md")}
    assert {
        "index.md",
        "connection.md",
        "operators-and-sensor.md",
        "deferrable-mode.md",
        "emulator.md",
        "troubleshooting.md",
        "lineage.md",
        "compatibility.md",
        "reference.md",
        "benchmarks.md",
    } <= pages


def test_the_readme_runs_its_dags() -> None:
    """The README's DAGs are what a user copies first: each is a ``dag`` block, run like the docs'."""
    readme = [b for b in ALL_BLOCKS if b.page == README.name and b.lang == "python"]
    assert readme, "the README shows no DAG"
    assert {b.kind for b in readme} == {"dag"}, [(b.id, b.kind) for b in readme]


def test_every_code_block_is_checked() -> None:
    unchecked = [f"{b.id} ({b.kind or 'no marker'})" for b in ALL_BLOCKS if b.kind not in KINDS]
    assert not unchecked, f"code blocks without a known docs-test marker: {unchecked}"
    no_reason = [b.id for b in ALL_BLOCKS if b.kind == "skip" and not b.args]
    assert not no_reason, f"skipped blocks must say why: {no_reason}"
    for block in ALL_BLOCKS:
        if block.kind in ("dag", "error", "file", "pytest"):
            assert len(block.args) == 1, f"{block.id}: {block.kind} takes one argument"
        if block.kind == "file":
            runners = [b for b in ALL_BLOCKS if b.page == block.page and b.kind == "pytest"]
            assert runners, f"{block.id}: no pytest block of {block.page} uses this file"
    for i, block in enumerate(ALL_BLOCKS):
        if block.kind == "output":
            assert i > 0, f"{block.id}: an output block must follow a server block"
            assert ALL_BLOCKS[i - 1].kind == "server", f"{block.id}: an output block must follow a server block"


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)
    headings = re.findall(r"^#+\s+(.+?)\s*$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_relative_links_resolve() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#:]*)(?:#([^)]*))?\)", text):
            path = page.parent / target if target else page
            assert path.exists(), f"{page.name} links to missing {target}"
            if anchor and path.suffix == ".md":
                assert anchor in anchors(path), f"{page.name} links to {target}#{anchor}, a heading it lacks"


def test_the_compatibility_table_names_the_makefiles_lines() -> None:
    """docs/compatibility.md's table tests what the Makefile installs: the same lines at the same patches."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (lines,) = re.findall(r"^AIRFLOW_LINES := (.+)$", makefile, flags=re.MULTILINE)
    patches = dict(re.findall(r"^AIRFLOW_([\d.]+) := ([\w.]+)$", makefile, flags=re.MULTILINE))
    row = r"^\| ([\d.]+) \| ([\w.]+)(?: \(pre-release\))? \| 3\.\d+ \|"
    table = re.findall(row, (DOCS / "compatibility.md").read_text(encoding="utf-8"), re.MULTILINE)
    assert {line for line, _ in table} == set(lines.split())
    assert all(patch == patches[line] for line, patch in table), (table, patches)


# ---- shared set-up ------------------------------------------------------------------------------


@pytest.fixture
def docs_env(conn_env: Any, fresh_emulator: EmulatorProcess) -> EmulatorProcess:
    """``matillion_dpc_default`` points at a freshly reset emulator, as every example expects."""
    conn_env("matillion_dpc_default")
    return fresh_emulator


def set_up(block: Block, emulator: EmulatorProcess | None = None) -> str | None:
    """``setup=pipeline:NAME`` creates a pipeline; ``setup=streaming:NAME`` also starts it;
    ``setup="dpc-runs:SCHEDULE"`` makes the emulator run that seeded schedule's pipeline half a
    second from now, and every minute after, as DPC's scheduler would (for a wait on DPC's own runs)."""
    spec = block.options.get("setup")
    if not spec:
        return None
    state, _, name = spec.partition(":")
    hook = DpcHook(retry_policy=FAST)
    if state == "dpc-runs":
        assert emulator is not None, f"{block.id}: {spec!r} needs the emulator"
        (schedule,) = [s for s in hook.list_schedules(PROJECT_ID) if s.name == name]
        emulator.run_every(schedule.schedule_id, 60, first_in_seconds=0.5, seconds=0.2)
        return schedule.schedule_id
    pipeline_id = hook.create_streaming_pipeline(PROJECT_ID, guide_body(name)).streaming_pipeline_id
    if state == "streaming":
        hook.send_command(PROJECT_ID, pipeline_id, PipelineCommand.START)
        wait_for_status(hook, pipeline_id, PipelineStatus.STREAMING, within=20)
    else:
        assert state == "pipeline", f"{block.id}: unknown setup {spec!r}"
    return pipeline_id


def shell_env(**extra: str) -> dict[str, str]:
    env = os.environ.copy()
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


def run_bash(script: str, env: dict[str, str], *, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    prelude = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
    return subprocess.run(
        ["bash", "-c", prelude + script], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def for_emulator(text: str, emulator: EmulatorProcess) -> str:
    return text.replace(MATILLION_TOKEN_URL, emulator.token_url).replace(DOC_ORIGIN, emulator.origin)


def task_states(run: Any) -> dict[str, str]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
        return {ti.task_id: str(ti.state) for ti in rows}


# ---- code examples ------------------------------------------------------------------------------


@pytest.mark.parametrize("block", blocks("dag"))
def test_dag_example(
    block: Block, docs_env: EmulatorProcess, airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2.11
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    (dag_id,) = block.args
    set_up(block, docs_env)
    for name in filter(None, block.options.get("beside", "").split(",")):
        shutil.copy(ROOT / name, tmp_path)
    path = tmp_path / f"{dag_id}.py"
    path.write_text(block.code, encoding="utf-8")
    # Airflow 3's dag.test() runs the DAG as the DAGs folder (its bundle) holds it.
    from airflow import settings

    monkeypatch.setattr(settings, "DAGS_FOLDER", str(tmp_path))
    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[dag_id]
    for task in dag.tasks:  # the examples' intervals are for real pipelines; the emulator is quicker
        if hasattr(task, "poll_interval"):
            task.poll_interval = 0.2
        if hasattr(task, "poke_interval"):
            task.poke_interval = 0.2
    run = dag.test()
    states = task_states(run)
    assert states, "no task ran"
    assert set(states.values()) == {"success"}, states
    assert str(run.state) == "success"


@pytest.mark.parametrize("block", blocks("python"))
def test_python_example(block: Block, docs_env: EmulatorProcess) -> None:
    set_up(block, docs_env)
    exec(compile(block.code, block.id, "exec"), {"__name__": "__docs__"})


@pytest.mark.parametrize("block", blocks("python-shell"))
def test_python_shell_example(block: Block, docs_env: EmulatorProcess, airflow_db: None, tmp_path: Path) -> None:
    env = shell_env()
    env.pop("AIRFLOW_CONN_MATILLION_DPC_DEFAULT", None)  # saved in the database only, as the UI saves it
    airflow = [sys.executable, "-m", "airflow", "connections"]
    add = [*airflow, "add", "matillion_dpc_default", "--conn-json", docs_env.connection_json()]
    subprocess.run(add, env=env, check=True, capture_output=True, timeout=120)
    try:
        script = tmp_path / "shell.py"
        script.write_text(block.code, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        assert PROJECT_ID in result.stdout, result.stdout[-2000:]
    finally:
        subprocess.run([*airflow, "delete", "matillion_dpc_default"], env=env, capture_output=True, timeout=120)


@pytest.mark.parametrize("block", blocks("pytest"))
def test_pytest_example(block: Block, airflow_db: None, tmp_path: Path) -> None:
    (test_file,) = block.args
    files = [b for b in ALL_BLOCKS if b.page == block.page and b.kind == "file"] + [block]
    for b in files:
        path = tmp_path / (b.args[0] if b.kind == "file" else test_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(b.code, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "pytest.ini", test_file],
        cwd=tmp_path,
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", result.stdout), result.stdout[-2000:]


@pytest.mark.parametrize("block", blocks("bash"))
def test_bash_example(block: Block, tmp_path: Path) -> None:
    result = run_bash(block.code, shell_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("block", blocks("bash-emulator"))
def test_bash_emulator_example(block: Block, docs_env: EmulatorProcess, airflow_db: None, tmp_path: Path) -> None:
    if "curl" in block.code and shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    pipeline_id = set_up(block)
    env = shell_env(
        DPC_CLIENT_ID=docs_env.client_id,
        DPC_CLIENT_SECRET=docs_env.client_secret,
        PIPELINE_ID=pipeline_id or "",
    )
    try:
        result = run_bash(for_emulator(block.code, docs_env), env, cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    finally:
        cleanup = block.options.get("cleanup")
        if cleanup:
            subprocess.run(
                [sys.executable, "-m", "airflow", "connections", "delete", cleanup], env=env, capture_output=True
            )


@pytest.mark.parametrize("block", blocks("bash-server"))
def test_bash_server_example(block: Block, airflow_db: None) -> None:
    port = str(free_port())
    env = shell_env(DPC_POLL_INTERVAL="0.2")
    result = run_bash(block.code.replace("8765", port), env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize("block", blocks("server"))
def test_server_example(block: Block) -> None:
    output = ALL_BLOCKS[ALL_BLOCKS.index(block) + 1]
    assert output.kind == "output"
    port = str(free_port())
    process = subprocess.Popen(
        ["bash", "-c", "exec " + block.code.strip().replace("8765", port)],
        env=shell_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed = process.stdout.readline()  # the server prints one line once it listens
    finally:
        process.terminate()
        process.wait(timeout=10)
    expected = output.code.strip().replace("8765", port)
    assert printed.strip() == expected


@pytest.mark.parametrize("block", blocks("connection-env"))
def test_connection_env_example(block: Block, docs_env: EmulatorProcess, tmp_path: Path) -> None:
    from airflow.models.connection import Connection

    from airflow_provider_dpc.hooks._protocol import ConnectionSettings

    out = tmp_path / "conn.json"
    env = shell_env(DPC_CLIENT_ID=docs_env.client_id, DPC_CLIENT_SECRET=docs_env.client_secret)
    script = for_emulator(block.code, docs_env) + f'\nprintf "%s" "$AIRFLOW_CONN_MATILLION_DPC_DEFAULT" > {out}\n'
    result = run_bash(script, env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    conn = Connection.from_json(out.read_text(), conn_id="matillion_dpc_default")
    assert conn.conn_type == "matillion_dpc"
    settings = ConnectionSettings.from_connection(conn)
    for key, wanted in block.options.items():
        value = getattr(settings, key)
        if wanted == "none":
            assert value is None, key
        elif wanted == "set":
            assert value, key
        elif isinstance(value, float):
            assert value == float(wanted), key
        else:
            assert value == for_emulator(wanted, docs_env), key


@pytest.mark.parametrize("block", blocks("make-dry-run"))
def test_make_targets_exist(block: Block) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    for line in block.code.splitlines():
        command = line.split("#", 1)[0].split()
        if not command:
            continue
        assert command[0] == "make", line
        result = subprocess.run(["make", "-n", *command[1:]], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


# ---- troubleshooting: each documented message is really raised ----------------------------------


def context() -> dict[str, Any]:
    return {"ti": RecordingTI()}


def message_of(action: Callable[[], Any]) -> str:
    try:
        action()
    except Exception as exc:
        return str(exc)
    raise AssertionError("expected an error, got none")


@dataclass
class Situation:
    emulator: EmulatorProcess
    conn_env: Any
    caplog: pytest.LogCaptureFixture

    def hook(self, conn_id: str = "matillion_dpc_default", **conn: Any) -> DpcHook:
        if conn:
            self.conn_env(conn_id, **conn)
        return DpcHook(conn_id, retry_policy=FAST)

    def pipeline(self, name: str = "orders-to-s3", *, streaming: bool = False) -> str:
        hook = self.hook()
        pipeline_id = hook.create_streaming_pipeline(PROJECT_ID, guide_body(name)).streaming_pipeline_id
        if streaming:
            hook.send_command(PROJECT_ID, pipeline_id, PipelineCommand.START)
            wait_for_status(hook, pipeline_id, PipelineStatus.STREAMING, within=20)
        return pipeline_id


def _missing_connection(s: Situation) -> str:
    return message_of(lambda: DpcHook("docs_no_such_connection").settings)


def _no_credentials(s: Situation) -> str:
    return message_of(lambda: s.hook("docs_empty", login=None, password=None).settings)


def _credentials_refused(s: Situation) -> str:
    return message_of(lambda: s.hook("docs_wrong", password="not-the-secret").list_projects())


def _token_refused(s: Situation) -> str:
    return message_of(
        lambda: s.hook("docs_token", login=None, password=None, extra={"token": "an-expired-token"}).list_projects()
    )


def _bad_extra(s: Situation) -> str:
    return message_of(lambda: s.hook("docs_timeout", extra={"timeout": "soon"}).settings)


def _invalid_definition(s: Situation) -> str:
    from airflow_provider_dpc.models import validate_definition

    body = guide_body("broken")
    del body["streamingSource"]["connection"]["username"]
    return message_of(lambda: validate_definition(body))


def _definition_file(s: Situation) -> str:
    from airflow_provider_dpc.operators.streaming_pipeline import DpcCreateStreamingPipelineOperator

    op = DpcCreateStreamingPipelineOperator(task_id="create", project_id=PROJECT_ID, definition="pipelines/orders.json")
    return message_of(lambda: op.execute(context()))


def _name_exists(s: Situation) -> str:
    from airflow_provider_dpc.operators.streaming_pipeline import DpcCreateStreamingPipelineOperator

    s.pipeline("orders-to-s3")
    op = DpcCreateStreamingPipelineOperator(
        task_id="create", project_id=PROJECT_ID, definition=guide_body("orders-to-s3"), dpc_retry_policy=FAST
    )
    return message_of(lambda: op.execute(context()))


def _no_pipeline_named(s: Situation) -> str:
    return message_of(lambda: s.hook().resolve_pipeline_id(PROJECT_ID, pipeline_name="orders-to-s3"))


def _no_project_named(s: Situation) -> str:
    return message_of(lambda: s.hook().resolve_project_id(project_name="Shop"))


def _ambiguous_name(s: Situation) -> str:
    s.pipeline("orders-to-s3")
    s.pipeline("orders-to-s3")
    return message_of(lambda: s.hook().resolve_pipeline_id(PROJECT_ID, pipeline_name="orders-to-s3"))


def _not_uuid(s: Situation) -> str:
    from airflow_provider_dpc.operators.streaming_pipeline import DpcStartStreamingPipelineOperator

    op = DpcStartStreamingPipelineOperator(task_id="start", project_id="Test-project", pipeline_name="orders-to-s3")
    return message_of(lambda: op.execute(context()))


def _pipeline_404(s: Situation) -> str:
    pipeline_id = s.pipeline()
    s.hook().delete_streaming_pipeline(PROJECT_ID, pipeline_id)
    return message_of(lambda: s.hook().get_status(PROJECT_ID, pipeline_id))


def _delete_running(s: Situation) -> str:
    from airflow_provider_dpc.operators.streaming_pipeline import DpcDeleteStreamingPipelineOperator

    pipeline_id = s.pipeline(streaming=True)
    op = DpcDeleteStreamingPipelineOperator(
        task_id="delete", project_id=PROJECT_ID, pipeline_id=pipeline_id, stop_if_running=False
    )
    return message_of(lambda: op.execute(context()))


def _start(s: Situation, pipeline_id: str, **kwargs: Any) -> str:
    from airflow_provider_dpc.operators.streaming_pipeline import DpcStartStreamingPipelineOperator

    op = DpcStartStreamingPipelineOperator(
        task_id="start", project_id=PROJECT_ID, pipeline_id=pipeline_id, poll_interval=0.1, **kwargs
    )
    return message_of(lambda: op.execute(context()))


def _fell_to_not_running(s: Situation) -> str:
    pipeline_id = s.pipeline()
    s.emulator.fail_start(pipeline_id)
    return _start(s, pipeline_id, grace_period=0)


def _timeout(s: Situation) -> str:
    pipeline_id = s.pipeline()
    s.emulator.configure(starting_seconds=60)
    return _start(s, pipeline_id, timeout=0.5)


def _trigger_error(s: Situation) -> str:
    from airflow_provider_dpc.status import StatusGoal, WaitResult, conclude
    from airflow_provider_dpc.triggers.streaming_pipeline import DpcStreamingPipelineTrigger

    pipeline_id = s.pipeline()
    # The credentials are revoked while the trigger waits: its token stops working, a new one is refused.
    s.conn_env("docs_revoked", password="revoked-secret")
    s.emulator.set_faults(expire_tokens=True)
    trigger = DpcStreamingPipelineTrigger(
        dpc_conn_id="docs_revoked",
        project_id=PROJECT_ID,
        pipeline_id=pipeline_id,
        goal=StatusGoal.of("STREAMING").to_dict(),
        poll_interval=0.1,
        started_at=time.time(),
        deadline=time.time() + 30,
        retry_policy=FAST,
        history=["STARTING"],
    )

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    return message_of(lambda: conclude(WaitResult.from_event(asyncio.run(first_event()))))


def _rate_limited(s: Situation) -> str:
    s.emulator.set_faults(rate_limit={"count": 10, "retry_after": 0})
    return message_of(lambda: s.hook().list_projects())


def _server_error(s: Situation) -> str:
    s.emulator.set_faults(server_errors={"count": 10, "status": 503})
    return message_of(lambda: s.hook().list_projects())


def _unreachable(s: Situation) -> str:
    return message_of(lambda: s.hook("docs_unreachable", host=f"http://127.0.0.1:{free_port()}/dpc").list_projects())


def _not_json(s: Situation) -> str:
    s.emulator.set_faults(malformed_json={"count": 10})
    return message_of(lambda: s.hook().list_projects())


def _bad_command(s: Situation) -> str:
    return message_of(lambda: s.hook().send_command(PROJECT_ID, s.pipeline(), "restart"))


def _lineage_warning(s: Situation) -> str:
    from airflow_provider_dpc.operators.streaming_pipeline import DpcStartStreamingPipelineOperator

    op = DpcStartStreamingPipelineOperator(task_id="start_pipeline", project_id=PROJECT_ID, pipeline_name="gone")
    with s.caplog.at_level(logging.WARNING, logger="airflow_provider_dpc.lineage"):
        assert op.get_openlineage_facets_on_complete(None) is None
    (record,) = [r for r in s.caplog.records if r.name == "airflow_provider_dpc.lineage"]
    return record.getMessage()


def _run(s: Situation, pipeline: str) -> str:
    from airflow_provider_dpc.operators.pipeline_execution import DpcRunPipelineOperator

    op = DpcRunPipelineOperator(
        task_id="run",
        project_id=PROJECT_ID,
        environment_name="Environment-1",
        pipeline_name=pipeline,
        poll_interval=0.1,
        timeout=30,
        dpc_retry_policy=FAST,
    )
    return message_of(lambda: op.execute(context()))


def _ambiguous_pipeline_name(s: Situation) -> str:
    hook = s.hook()
    for name in ("Load orders", "Archived load orders"):  # orders/ and archive/Load orders.orch.yaml
        hook.execute_pipeline(
            PROJECT_ID, pipeline_name=name, environment_name="Environment-1", scalar_variables={"emulator.seconds": 30}
        )
    return message_of(lambda: hook.find_running_execution(PROJECT_ID, "Load orders", "Environment-1"))


def _bad_window_length(s: Situation) -> str:
    from airflow_provider_dpc.windows import window_length

    return message_of(lambda: window_length("{{ params.window_hours }}"))  # a template left unrendered


def _bad_deferrable(s: Situation) -> str:
    from airflow_provider_dpc.operators.streaming_pipeline import DpcStopStreamingPipelineOperator

    op = DpcStopStreamingPipelineOperator(
        task_id="stop", project_id=PROJECT_ID, pipeline_id=s.pipeline(streaming=True), deferrable="{{ params.d }}"
    )
    op.deferrable = "sometimes"  # what the template rendered to
    return message_of(lambda: op.execute(context()))


def _next_run_sensor(s: Situation, pipeline: str, **kwargs: Any) -> str:
    from datetime import UTC, datetime

    from airflow_provider_dpc.sensors.pipeline_execution import DpcPipelineExecutionSensor
    from tests.task_runner import run_task

    moment = datetime.now(UTC)
    time.sleep(0.02)
    for name in kwargs.pop("runs", ()):
        s.emulator.run_pipeline(name, "Environment-1", seconds=0)
    sensor = DpcPipelineExecutionSensor(
        task_id="wait",
        project_id=PROJECT_ID,
        pipeline_name=pipeline,
        environment_name="Environment-1",
        started_after=moment.isoformat(),
        poke_interval=0.1,
        dpc_retry_policy=FAST,
        **kwargs,
    )
    return message_of(lambda: run_task(sensor))


TRIGGERS: dict[str, Callable[[Situation], str]] = {
    "missing-connection": _missing_connection,
    "no-credentials": _no_credentials,
    "credentials-refused": _credentials_refused,
    "token-refused": _token_refused,
    "bad-extra": _bad_extra,
    "bad-window-length": _bad_window_length,
    "bad-deferrable": _bad_deferrable,
    "invalid-definition": _invalid_definition,
    "definition-file": _definition_file,
    "name-exists": _name_exists,
    "no-pipeline-named": _no_pipeline_named,
    "no-project-named": _no_project_named,
    "ambiguous-name": _ambiguous_name,
    "not-uuid": _not_uuid,
    "pipeline-404": _pipeline_404,
    "delete-running": _delete_running,
    "fell-to-not-running": _fell_to_not_running,
    "timeout": _timeout,
    "trigger-error": _trigger_error,
    "rate-limited": _rate_limited,
    "server-error": _server_error,
    "unreachable": _unreachable,
    "not-json": _not_json,
    "bad-command": _bad_command,
    "lineage-warning": _lineage_warning,
    "execution-failed": lambda s: _run(s, "Failing pipeline"),
    "execution-finished-unknown": lambda s: _run(s, "Terminated pipeline"),
    "ambiguous-pipeline-name": _ambiguous_pipeline_name,
    "next-run-timeout": lambda s: _next_run_sensor(s, "Pipeline 1", deferrable=True, timeout=0.5),
    "ambiguous-pipeline-runs": lambda s: _next_run_sensor(
        s, "Load orders", runs=("Load orders", "Archived load orders"), timeout=30
    ),
}


def template_pattern(template: str) -> re.Pattern[str]:
    """``<anything>`` in a documented message stands for one or more characters."""
    parts = re.split(r"<[^<>]+>", template.strip())
    return re.compile(".+?".join(map(re.escape, parts)), re.DOTALL)


def test_every_documented_message_has_a_trigger() -> None:
    documented = [b.args[0] for b in ALL_BLOCKS if b.kind == "error"]
    assert len(documented) == len(set(documented)), "an error id is documented twice"
    assert set(documented) == set(TRIGGERS)


@pytest.mark.parametrize("block", blocks("error"))
def test_documented_message_is_raised(
    block: Block, docs_env: EmulatorProcess, conn_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    (error_id,) = block.args
    message = TRIGGERS[error_id](Situation(docs_env, conn_env, caplog))
    assert template_pattern(block.code).fullmatch(message), f"documented:\n{block.code}\nraised:\n{message}"


def test_template_pattern() -> None:
    pattern = template_pattern("no project named '<name>'")
    assert pattern.fullmatch("no project named 'Shop'")
    assert not pattern.fullmatch("no pipeline named 'Shop'")
    assert not pattern.fullmatch("no project named ''")
