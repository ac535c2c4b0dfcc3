"""A run's window, from the contexts each Airflow line gives a task: when it opens, closes, and what
a late or expired run does. The same windows under real Airflow runs are in test_example_dags.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_dpc.exceptions import DpcValidationError
from airflow_provider_dpc.windows import Timing, Window, window_length

pytestmark = pytest.mark.every_line

MON_6 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
TUE_6 = MON_6 + timedelta(days=1)
TEN_HOURS = 10 * 3600


def run_type(name: str) -> Any:
    """The DagRunType member a task's context holds on the installed Airflow: the Task SDK's own
    enum on Airflow 3 (whose str() is its name, not its value), else Airflow's."""
    try:
        from airflow.sdk.api.datamodels._generated import DagRunType
    except ImportError:
        from airflow.utils.types import DagRunType  # type: ignore[no-redef,attr-defined,unused-ignore]
    return DagRunType(name)


def airflow3_context(run_after: datetime, kind: str, logical_date: datetime | None) -> dict[str, Any]:
    """Airflow 3: every run has run_after; a manual run may have no logical date or interval."""
    dag_run = SimpleNamespace(run_after=run_after, run_type=run_type(kind), start_date=run_after + timedelta(hours=3))
    interval = {} if logical_date is None else {"data_interval_start": logical_date, "data_interval_end": logical_date}
    return {"dag_run": dag_run, "logical_date": logical_date, **interval}


def airflow2_context(kind: str, logical_date: datetime, start: datetime, end: datetime) -> dict[str, Any]:
    """Airflow 2.11: no run_after; a scheduled run's interval ends when it was due."""
    dag_run = SimpleNamespace(run_type=run_type(kind), start_date=end + timedelta(hours=3))
    return {"dag_run": dag_run, "logical_date": logical_date, "data_interval_start": start, "data_interval_end": end}


def test_an_event_triggered_run_opens_its_window_when_the_event_came() -> None:
    """Airflow 3: run_after is when the event came. Airflow 2.11: the run's logical date is the newest
    event's time, while its data interval is the upstream run's (a run due at 00:00 whose event came
    at 07:00 would open a window that closed at 06:00)."""
    from airflow.utils.types import DagRunType

    event = MON_6 + timedelta(hours=1)
    if hasattr(DagRunType, "ASSET_TRIGGERED"):
        context = airflow3_context(event, "asset_triggered", None)
    else:
        context = airflow2_context("dataset_triggered", event, MON_6 - timedelta(days=1), MON_6 - timedelta(hours=6))
    assert Window.of_run(context, TEN_HOURS).opens == event


@pytest.mark.parametrize(
    ("context", "opens"),
    [
        pytest.param(airflow3_context(MON_6, "scheduled", MON_6), MON_6, id="3.x scheduled (cron trigger)"),
        pytest.param(airflow3_context(MON_6, "manual", None), MON_6, id="3.x manual, no logical date"),
        pytest.param(
            airflow3_context(MON_6, "manual", MON_6 - timedelta(days=3)),
            MON_6 - timedelta(days=3),
            id="3.x manual given a date: that date's window, not the trigger's",
        ),
        pytest.param(airflow3_context(MON_6, "backfill", MON_6), MON_6, id="3.x backfill: when it was due"),
        pytest.param(airflow2_context("scheduled", MON_6, MON_6, TUE_6), TUE_6, id="2.11 scheduled: interval end"),
        pytest.param(
            airflow2_context("manual", MON_6 + timedelta(hours=2), MON_6 - timedelta(days=1), MON_6),
            MON_6 + timedelta(hours=2),
            id="2.11 manual: its logical date, not the inferred interval",
        ),
    ],
)
def test_a_window_opens_when_the_run_was_due_never_when_it_started(context: dict[str, Any], opens: datetime) -> None:
    window = Window.of_run(context, TEN_HOURS)
    assert (window.opens, window.closes) == (opens, opens + timedelta(hours=10))


def test_on_time_late_and_closed() -> None:
    window = Window.of_run(airflow3_context(MON_6, "scheduled", MON_6), TEN_HOURS)
    on_time, late, closed = MON_6 + timedelta(seconds=5), MON_6 + timedelta(hours=7), MON_6 + timedelta(days=4)
    assert window.timing(on_time) is Timing.ON_TIME
    assert window.remaining(on_time) == TEN_HOURS - 5
    assert window.timing(late) is Timing.LATE
    assert window.remaining(late) == 3 * 3600  # a late run holds only what remains
    assert "opened 7 h 00 min ago; 3 h 00 min of it remain" in window.explain(late)
    assert window.timing(closed) is Timing.CLOSED
    assert window.remaining(closed) == 0
    assert window.explain(closed) == (
        "the run's window 2026-11-30T06:00:00Z to 2026-11-30T16:00:00Z closed 3 d 14 h ago, before this task ran"
    )
    assert window.timing(window.closes) is Timing.CLOSED  # the close itself is outside the window


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(3600, 3600), (0.5, 0.5), ("36000.0", 36000), (" 90 ", 90), ("PT10H", 36000), ("P1DT30M", 88200)],
)
def test_window_lengths(value: Any, seconds: float) -> None:
    assert window_length(value) == timedelta(seconds=seconds)
    assert window_length(timedelta(seconds=seconds)) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "value", [0, -5, "", "soon", "P1M", "2026-01-01", True, None, float("inf"), float("nan"), 1e20, "1e20"]
)
def test_a_bad_window_length_is_named(value: Any) -> None:
    with pytest.raises(DpcValidationError, match=r"window_length must be a positive number of seconds") as caught:
        window_length(value)
    assert [(e.field, e.message) for e in caught.value.errors] == [("window_length", "must be a positive duration")]


def test_operators_refuse_a_bad_window_when_the_dag_is_parsed_and_take_a_template() -> None:
    from airflow_provider_dpc.operators.streaming_pipeline import (
        DpcKeepStreamingOperator,
        DpcStartStreamingPipelineOperator,
    )

    common = {"project_id": "p", "pipeline_name": "x"}
    with pytest.raises(DpcValidationError, match="window_length"):
        DpcStartStreamingPipelineOperator(task_id="s", window_length="ten hours", **common)
    with pytest.raises(ValueError, match="give one of until or window_length"):
        DpcKeepStreamingOperator(task_id="k", **common)
    with pytest.raises(ValueError, match="give one of until or window_length"):
        DpcKeepStreamingOperator(task_id="k", until="2026-01-01T00:00:00", window_length=60, **common)
    templated = DpcKeepStreamingOperator(task_id="k", window_length="{{ params.hours * 3600 }}", **common)
    assert "window_length" in templated.template_fields


def test_a_window_that_would_end_after_the_last_date_is_refused_naming_the_field() -> None:
    """A valid timedelta (ten thousand years) whose window cannot be computed: a clear error, not a
    bare OverflowError, from a literal or a rendered template alike."""
    context = {"dag_run": SimpleNamespace(run_after=datetime(2026, 1, 5, 6, tzinfo=UTC))}
    for length in (86400 * 365 * 10_000, str(86400 * 365 * 10_000)):
        with pytest.raises(DpcValidationError, match=r"window_length .* ends after the last date") as caught:
            Window.of_run(context, length)
        assert [(e.field, e.message) for e in caught.value.errors] == [("window_length", "is too long")]
