"""The reliability figures of one pytest run: scenarios, inputs, leaks and duplicates.

One :class:`Figures` object per run, registered with pytest's plugin manager under a fixed name,
so the suite-wide leak guard (``tests/conftest.py``), the fault matrix, the property tests and the
summary printed at the end (``tests/reliability/conftest.py``) all count into the same place
however their modules were imported.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

PLUGIN_NAME = "dpc-reliability-figures"


@dataclasses.dataclass(eq=False)  # a pytest plugin must be hashable
class Figures:
    scenarios_run: int = 0
    scenarios_passed: int = 0
    scenario_names: Counter[str] = dataclasses.field(default_factory=Counter)
    inputs: Counter[str] = dataclasses.field(default_factory=Counter)  # inputs tried, per source
    flows: int = 0
    pipelines_created: int = 0
    duplicates: int = 0
    tests_guarded: int = 0
    artifacts_scanned: int = 0
    secrets_tracked: set[str] = dataclasses.field(default_factory=set, repr=False)
    leaks: int = 0
    leaking_tests: list[str] = dataclasses.field(default_factory=list)

    @property
    def inputs_tried(self) -> int:
        return sum(self.inputs.values())

    def lines(self) -> list[str]:
        """The summary table, one line per figure."""
        sources = ", ".join(f"{name} {count:,}" for name, count in sorted(self.inputs.items())) or "none run"
        kinds = len(self.scenario_names)
        leak_note = f"in {', '.join(self.leaking_tests[:5])}" if self.leaking_tests else "none"
        return [
            f"fault scenarios passed  {self.scenarios_passed:>7,} of {self.scenarios_run:,} "
            f"({kinds} distinct cases, polling and deferrable)",
            f"inputs tried            {self.inputs_tried:>7,} ({sources})",
            f"secrets leaked          {self.leaks:>7,} ({leak_note}; {self.tests_guarded:,} tests guarded, "
            f"{self.artifacts_scanned:,} logs, outputs, XComs, trigger kwargs, errors and rendered fields "
            f"scanned for {len(self.secrets_tracked):,} secrets and tokens)",
            f"duplicates              {self.duplicates:>7,} ({self.pipelines_created:,} pipelines created "
            f"by {self.flows:,} flows)",
        ]


def figures(config: pytest.Config) -> Figures:
    """This run's figures, created on first use."""
    found = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if found is None:
        found = Figures()
        config.pluginmanager.register(found, PLUGIN_NAME)
    assert isinstance(found, Figures)
    return found
