"""The guide's example project and create request, and what the emulator counted: shared by the tests."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_dpc.hooks.dpc import DpcHook
    from airflow_provider_dpc.models import PipelineStatus

#: The project's checkout, and the suite's fixtures.
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
GUIDE = FIXTURES / "guide"
PROJECT_ID = "3dda0acf-e646-4f4b-b4f6-e00449b69427"  # the guide's project, which the emulator serves
#: A retry policy for tests: the same attempts as by default, in a fraction of the time.
FAST_RETRIES = {"max_attempts": 5, "backoff_base": 0.05, "backoff_max": 0.2, "max_elapsed": 20}
GUIDE_AGENT_ID = "2734aa6f-0c64-4d2b-9406-f44dc8f1f3b6"  # the agent of the guide's pipeline, seeded as up


def guide_body(name: str | None = None) -> dict[str, Any]:
    """The guide's create request, named ``name`` when given."""
    body: dict[str, Any] = json.loads((GUIDE / "create_request.json").read_text(encoding="utf-8"))
    if name:
        body["name"] = name
    return body


def requests_to(emulator: Any, method: str, suffix: str) -> int:
    """How many ``method`` requests the emulator answered on routes ending in ``suffix``."""
    return sum(
        n for route, n in emulator.stats()["requests"].items() if route.startswith(method) and route.endswith(suffix)
    )


def wait_for_status(hook: DpcHook, pipeline_id: str, status: PipelineStatus, within: float) -> None:
    deadline = time.monotonic() + within
    while hook.get_status(PROJECT_ID, pipeline_id) is not status:
        assert time.monotonic() < deadline, f"pipeline {pipeline_id} did not reach {status} within {within} s"
        time.sleep(0.1)
