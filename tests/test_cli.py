"""Airflow's own CLI sees the provider and tests its connection against the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.guide import PROJECT_ID, ROOT, requests_to

pytestmark = [pytest.mark.every_line, pytest.mark.slow]


def airflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env={**os.environ, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled", **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


def json_output(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON document a command printed; Airflow 3.0 logs to stdout around it."""
    for line in reversed(result.stdout.splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    raise AssertionError(f"no JSON in the output:\n{result.stdout}\n{result.stderr}")


def test_providers_list_shows_the_provider() -> None:
    listed = airflow("providers", "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    packages = {p["package_name"]: p for p in json_output(listed)}
    assert "airflow-provider-dpc" in packages


def test_providers_hooks_and_links_show_the_connection_type_and_link() -> None:
    hooks = airflow("providers", "hooks", "--output", "json")
    assert any(h.get("connection_type") == "matillion_dpc" for h in json_output(hooks)), hooks.stdout
    links = airflow("providers", "links", "--output", "json")
    assert "airflow_provider_dpc.links.dpc.DpcStreamingPipelineLink" in links.stdout


def test_connections_test_succeeds_and_fails_clearly(emulator: Any) -> None:
    good = airflow("connections", "test", "matillion_dpc_default", env=emulator.airflow_env())
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Connection success!" in good.stdout

    fields = emulator.connection_fields()
    fields["password"] = "wrong-secret-value"
    bad = airflow(
        "connections",
        "test",
        "matillion_dpc_default",
        env={"AIRFLOW_CONN_MATILLION_DPC_DEFAULT": json.dumps(fields)},
    )
    output = bad.stdout + bad.stderr
    assert "Connection failed!" in output
    assert "refused the client credentials" in output
    assert "wrong-secret-value" not in output


def test_dags_test_of_a_past_weekdays_window_sends_nothing(fresh_emulator: Any, airflow_db: None) -> None:
    """``airflow dags test <window DAG> <a weekday two or more days ago>``: a user who names a date
    means that date's window, long closed, so the run changes nothing in DPC, on every line."""
    day = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0) - timedelta(days=2)
    while day.weekday() > 4:
        day -= timedelta(days=1)
    began = time.monotonic()
    result = airflow(
        "dags",
        "test",
        "example_dpc_scheduled_window",
        day.isoformat(),
        env={
            **fresh_emulator.airflow_env(),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "DPC_PROJECT_ID": PROJECT_ID,
        },
    )
    took = time.monotonic() - began
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert requests_to(fresh_emulator, "POST", "/commands") == 0  # no START, no STOP
    assert requests_to(fresh_emulator, "GET", "/status") == 0
    # Nothing was read, so nothing was waited for: the bound only rules out a hold of the window (ten
    # hours) or the start's timeout (half an hour); Airflow's CLI alone takes most of a minute when
    # CI runs every suite at once on two cores.
    assert took < 300, f"the run took {took:.0f} s"
