"""Reliability suite: fault matrix, property tests, API fuzzing, and the figures printed at the end.

Tests marked ``reliability_heavy`` (the full-size runs: more seeds, >= 10,000 property inputs,
longer fuzzing) are skipped unless ``DPC_RELIABILITY_HEAVY=1`` is set or ``--reliability-heavy``
is given (the option exists when pytest is pointed at ``tests/reliability``). ``make reliability``
runs them. Whatever ran, a summary table of the figures closes the run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from airflow_provider_dpc.emulator import EmulatorProcess
from tests.reliability.figures import figures

HEAVY_ENV = "DPC_RELIABILITY_HEAVY"

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the property and fuzzing modules skip themselves
    pass
else:
    # No example database: nothing is written into the work tree, and every run starts afresh.
    settings.register_profile(
        "dpc-reliability",
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile("dpc-reliability")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-heavy",
        action="store_true",
        default=False,
        help=f"run the reliability_heavy tests (or set {HEAVY_ENV}=1)",
    )


def heavy_enabled(config: pytest.Config) -> bool:
    option = False
    try:
        option = bool(config.getoption("--reliability-heavy"))
    except ValueError:  # the option is only known when this conftest was loaded at startup
        option = False
    return option or os.environ.get(HEAVY_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if heavy_enabled(config):
        return
    skip = pytest.mark.skip(reason=f"heavy reliability run: `make reliability` or {HEAVY_ENV}=1")
    for item in items:
        if item.get_closest_marker("reliability_heavy") is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    counts = figures(config)
    ran_here = any(
        str(getattr(report, "nodeid", "")).startswith("tests/reliability/")
        for reports in terminalreporter.stats.values()
        for report in reports
    )
    if not ran_here:
        return
    terminalreporter.write_sep("=", "DPC reliability figures")
    for line in counts.lines():
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def chaos_emulator() -> Iterator[EmulatorProcess]:
    """An emulator of its own for the fault matrix: it gets restarted, and its secret is random.

    A random secret cannot match anything by chance, so a hit of the leak guard is a real leak.
    """
    with EmulatorProcess(
        client_secret="chaos-" + secrets.token_urlsafe(24),
        starting_seconds=0.3,
        snapshotting_seconds=0.3,
        stopping_seconds=0.2,
    ) as process:
        yield process
