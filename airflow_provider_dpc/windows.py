"""Scheduled streaming windows: the one place that decides what a run's window is.

A window is ``[due, due + length]``, where ``due`` is when the run was due
(:func:`airflow_provider_dpc._compat.run_moment`: a scheduled or backfill run's due time, a manual
run's logical date where one was given, else its trigger time, an asset-triggered run's event time),
never when it happened to start. So a run that starts late holds only what remains of its window,
and a run whose window has passed (the latest scheduled run Airflow creates when a DAG is unpaused,
a run queued behind another for hours, a backfill, a catch-up, an old run cleared) is skipped and
changes nothing in DPC: a stream that runs outside its window costs money and serves no one, and
today's window must not be stopped by last week's run.

The start operator and the hold read their window here; so does nothing else, so the rule is the
same for every task of a window DAG.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_dpc._compat import AirflowSkipException, run_moment
from airflow_provider_dpc.exceptions import DpcValidationError, FieldError

__all__ = ["Timing", "Window", "window_length"]

#: How long after its scheduled time a run still counts as on time (a scheduler's usual delay).
ON_TIME_SLACK = timedelta(minutes=1)

WindowLength = timedelta | float | int | str


class Timing(enum.StrEnum):
    """Where ``now`` falls in a run's window."""

    ON_TIME = "on time"
    LATE = "late"  # the window is open, but part of it has passed
    CLOSED = "closed"  # the window passed before the task ran: nothing to start or hold


def _seconds(value: float) -> timedelta | None:
    """``value`` seconds; None for one no timedelta holds (infinite, NaN, beyond 999,999,999 days)."""
    try:
        return timedelta(seconds=value)
    except (OverflowError, ValueError):
        return None


def window_length(value: WindowLength, field: str = "window_length") -> timedelta:
    """A window's length: a timedelta, seconds (a number or a numeric string, as a template renders
    one), or an ISO 8601 duration such as ``PT10H``; positive, and in days at most (a month or a
    year has no fixed length)."""
    length: timedelta | None = None
    if isinstance(value, timedelta):
        length = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        length = _seconds(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            length = _iso_duration(text)
        else:
            length = _seconds(seconds)
    if length is None or length <= timedelta(0):
        raise DpcValidationError(
            f"{field} must be a positive number of seconds, a timedelta or an ISO 8601 duration "
            f"such as 'PT10H', got {value!r}",
            errors=[FieldError(field, "must be a positive duration")],
        )
    return length


def _iso_duration(text: str) -> timedelta | None:
    import pendulum

    try:
        parsed = pendulum.parse(text)
    except ValueError:  # pendulum's ParserError is one
        return None
    if not isinstance(parsed, pendulum.Duration) or parsed.years or parsed.months:
        return None
    return timedelta(seconds=parsed.total_seconds())


@dataclass(frozen=True)
class Window:
    """One run's window: from when the run was due, for its length."""

    opens: datetime
    closes: datetime

    @classmethod
    def of_run(cls, context: Mapping[str, Any], length: WindowLength, field: str = "window_length") -> Window:
        """The window of the task's run: it opens when the run was due."""
        opens = run_moment(context)
        try:
            return cls(opens, opens + window_length(length, field))
        except OverflowError:  # a valid timedelta that reaches past the year 9999
            raise DpcValidationError(
                f"{field} {length!r} makes a window that ends after the last date Python can hold",
                errors=[FieldError(field, "is too long")],
            ) from None

    def skip_if_closed(self, doing: str, now: datetime | None = None) -> None:
        """Skip the task when the window has passed, saying why: a run whose window has passed (a
        backfill, a catch-up, an old run cleared) changes nothing in DPC. Skipped, a window's setup
        skips its teardown too, so no STOP reaches a stream today's window keeps running."""
        now = now or datetime.now(UTC)
        if self.timing(now) is Timing.CLOSED:
            raise AirflowSkipException(f"{self.explain(now)}; {doing}: a run whose window has passed changes nothing")

    def timing(self, now: datetime) -> Timing:
        if now >= self.closes:
            return Timing.CLOSED
        return Timing.LATE if now - self.opens > ON_TIME_SLACK else Timing.ON_TIME

    def remaining(self, now: datetime) -> float:
        """Seconds until the window closes, 0 once it has."""
        return max(0.0, (self.closes - now).total_seconds())

    def explain(self, now: datetime | None = None) -> str:
        """What a task's log says about its window, e.g. that a late run holds only what remains."""
        now = now or datetime.now(UTC)
        span = f"the run's window {_stamp(self.opens)} to {_stamp(self.closes)}"
        timing = self.timing(now)
        if timing is Timing.CLOSED:
            ago = _duration((now - self.closes).total_seconds())
            return f"{span} closed {ago} ago, before this task ran"
        if timing is Timing.LATE:
            late = _duration((now - self.opens).total_seconds())
            return f"{span} opened {late} ago; {_duration(self.remaining(now))} of it remain"
        return f"{span} is open; {_duration(self.remaining(now))} remain"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _duration(seconds: float) -> str:
    """``3 h 05 min``, ``12 min 30 s`` or ``4.2 s``: enough to read a log by."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"
