"""A new user's first hour, in a real browser: Chromium driven by Playwright through the Airflow 3 UI
of ``airflow standalone``, against the emulator.

The connection is made in the form, the quickstart triggered from its trigger form (deferred, so its
waits run in the triggerer too), the link and the logs read where a user reads them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from airflow_provider_dpc.connection_ui import EXTRA_FIELDS, RELABELING
from tests.browser.conftest import AirflowStandalone, keep_artifacts
from tests.guide import PROJECT_ID, requests_to

DAG_ID = "example_dpc_quickstart"
CONN_ID = "matillion_dpc_default"
RUN_TIMEOUT = 240.0
TOO_SHORT = "Skipping masking for a secret as it's too short"


def open_connection_form(page: Any, standalone: AirflowStandalone) -> Any:
    """The Add Connection dialog with type Matillion DPC chosen (its standard fields open)."""
    page.goto(f"{standalone.base_url}/connections", wait_until="networkidle")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox").first.focus()  # the type chooser: type to filter, Enter to pick
    page.keyboard.type("Matillion DPC")
    page.keyboard.press("Enter")
    dialog.get_by_label(RELABELING["host"]).wait_for()
    return dialog


def open_extra_fields(dialog: Any) -> None:
    """Open the form's extra fields (which folds the standard ones)."""
    dialog.get_by_text("Extra Fields", exact=True).click()
    dialog.locator("[name=element_oauth_url]").wait_for()


def test_the_connection_form_shows_every_field_with_its_label(page: Any, standalone: AirflowStandalone) -> None:
    dialog = open_connection_form(page, standalone)
    open_extra_fields(dialog)
    labels = [text.strip() for text in dialog.locator("label").all_inner_texts()]
    wanted = [*RELABELING.values(), *(label for label, _, _ in EXTRA_FIELDS.values())]
    assert [label for label in wanted if label not in labels] == [], labels
    for name, (label, description, _) in EXTRA_FIELDS.items():
        field = dialog.locator(f"[name=element_{name}]")
        assert field.count() == 1, f"no input for {name} ({label})"
        assert dialog.get_by_text(description.split(". ")[0], exact=False).count() >= 1, f"no hint for {label}"
    assert "Port" not in labels
    assert "Schema" not in labels


@pytest.fixture(scope="module")
def saved_connection(browser: Any, standalone: AirflowStandalone, emulator: Any) -> dict[str, Any]:
    """The connection as a new user saves it in the form: endpoint, client id and secret, token URL."""
    emulator.reset()
    page = browser.new_page()
    try:
        dialog = open_connection_form(page, standalone)
        dialog.locator("input[name=connection_id]").fill(CONN_ID)
        dialog.get_by_label(RELABELING["host"]).fill(emulator.base_url)
        dialog.get_by_label(RELABELING["login"]).fill(emulator.client_id)
        dialog.get_by_label(RELABELING["password"]).fill(emulator.client_secret)
        open_extra_fields(dialog)
        dialog.locator("[name=element_oauth_url]").fill(emulator.token_url)
        dialog.get_by_role("button", name="Save").click()
        page.get_by_text("Connection has been successfully created").wait_for()
    except BaseException:
        keep_artifacts("saving_the_connection", page, standalone)
        raise
    finally:
        page.close()
    saved: dict[str, Any] = standalone.api("GET", f"/connections/{CONN_ID}")
    return saved


def test_a_connection_saved_through_the_form_passes_a_test(
    saved_connection: dict[str, Any], page: Any, standalone: AirflowStandalone, emulator: Any
) -> None:
    extra = json.loads(saved_connection["extra"])
    assert extra["oauth_url"] == emulator.token_url  # readable: Airflow masks no key of ours but the token
    short = {key: value for key, value in extra.items() if isinstance(value, str) and len(value) < 5}
    assert short == {}, f"text the masker would warn about: {short}"
    # The UI's Test button sends port 0 on Airflow 3.3.2 and is refused (docs/connection.md): the CLI.
    listed = requests_to(emulator, "GET", "/projects")
    output = standalone.cli("connections", "test", CONN_ID)
    assert "Connection success!" in output, output
    assert requests_to(emulator, "GET", "/projects") == listed + 1  # the hook's test lists the projects
    # Opened again for editing, the token endpoint reads as it was typed, not as ***.
    page.goto(f"{standalone.base_url}/connections", wait_until="networkidle")
    page.get_by_role("row", name=re.compile(CONN_ID)).get_by_role("button", name=re.compile("Edit", re.I)).click()
    dialog = page.get_by_role("dialog")
    open_extra_fields(dialog)
    assert dialog.locator("[name=element_oauth_url]").input_value() == emulator.token_url


@pytest.fixture(scope="module")
def quickstart_run(
    saved_connection: dict[str, Any], browser: Any, standalone: AirflowStandalone, emulator: Any
) -> dict[str, Any]:
    """The quickstart triggered from its trigger form, deferred, waited on until it ends."""
    # The scheduler starts a queued run only if its DAG is unpaused (the query of
    # DagRun.get_queued_dag_runs_to_set_running joins DagModel.is_paused == false) and logs nothing of
    # one it skips: the run stays queued, its tasks without a state. The form's "Unpause ... on
    # trigger" box sends its PATCH beside the run's POST, unretried (SQLite, busy with every
    # component's heartbeat, can answer "database is locked") and unawaited (the page closes once the
    # POST answers). So the DAG is parsed and unpaused here first (retried), with the scheduler and
    # the triggerer heartbeating now, not only when the standalone started.
    standalone.wait_for_dag(DAG_ID)
    standalone.unpause(DAG_ID)
    standalone.wait_healthy()
    page = browser.new_page()
    try:
        page.goto(f"{standalone.base_url}/dags/{DAG_ID}", wait_until="networkidle")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Wait in the triggerer").wait_for()  # the param's description
        switch = dialog.locator("[name=element_deferrable]")  # the param's switch: a hidden input in a label
        switch.locator("xpath=..").click()
        assert switch.is_checked()
        with page.expect_response(lambda r: r.url.endswith("/dagRuns") and r.request.method == "POST") as answer:
            dialog.get_by_role("button", name="Trigger").click()
        assert answer.value.ok, answer.value.text()
        run = answer.value.json()
    except BaseException:
        keep_artifacts("triggering_the_quickstart", page, standalone)
        raise
    finally:
        page.close()
    standalone.runs.append((DAG_ID, run["dag_run_id"]))  # so a failing wait or test reports this run
    state, seen = standalone.wait_for_run(DAG_ID, run["dag_run_id"], timeout=RUN_TIMEOUT)
    tokens = httpx.get(f"{emulator.admin_url}/tokens", timeout=10).json()["tokens"]
    return {**run, "final_state": state, "states_seen": seen, "tokens": tokens, "stats": emulator.stats()}


def test_the_quickstart_triggered_from_the_ui_ends_green(quickstart_run: dict[str, Any], emulator: Any) -> None:
    assert quickstart_run["conf"] == {"pipeline_name": "my-streaming-pipeline", "deferrable": True}
    assert quickstart_run["final_state"] == "success", quickstart_run["states_seen"]
    assert set(quickstart_run["states_seen"][-1].values()) == {"success"}, quickstart_run["states_seen"]
    assert quickstart_run["stats"]["pipelines_created"] == 1
    assert requests_to(emulator, "POST", "/commands") == 2  # START, STOP


def test_the_task_shows_the_matillion_dpc_link(
    quickstart_run: dict[str, Any], page: Any, standalone: AirflowStandalone
) -> None:
    run_id = quote(quickstart_run["dag_run_id"], safe="")
    page.goto(f"{standalone.base_url}/dags/{DAG_ID}/runs/{run_id}/tasks/start_pipeline/details")
    link = page.get_by_role("link", name="Matillion DPC")
    link.wait_for()
    assert link.get_attribute("href") == f"https://app.matillion.com/projects/{PROJECT_ID}/branches"


def test_no_task_or_trigger_log_holds_a_secret(
    quickstart_run: dict[str, Any], standalone: AirflowStandalone, emulator: Any
) -> None:
    logs = sorted(Path(standalone.home, "logs").glob(f"dag_id={DAG_ID}/**/*.log"))
    trigger_logs = [path for path in logs if ".trigger." in path.name]
    assert len(logs) > len(trigger_logs) > 0, [path.name for path in logs]  # the deferred waits logged too
    secrets = [emulator.client_secret, *quickstart_run["tokens"]]
    assert quickstart_run["tokens"], "the run was granted no token: the check below would prove nothing"
    for path in logs:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not [secret for secret in secrets if secret in text], f"a secret in {path}"
        assert TOO_SHORT not in text, f"{path}: {TOO_SHORT}"
