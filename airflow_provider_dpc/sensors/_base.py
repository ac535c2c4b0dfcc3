"""What the sensors share: a status watch, poked here or deferred to the triggerer."""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any

from airflow_provider_dpc._compat import AirflowSensorTimeout, AirflowSkipException, BaseSensorOperator, Context
from airflow_provider_dpc._tasks import check_flag
from airflow_provider_dpc.exceptions import DpcError
from airflow_provider_dpc.status import Status, StatusGoal, StatusWatch, Verdict, WaitResult, conclude
from airflow_provider_dpc.waiting import WaitingMixin


class DpcStatusSensor(WaitingMixin, BaseSensorOperator):
    """Waits until a watched resource reaches its goal; a failure status fails the sensor at once,
    or skips it with ``soft_fail``. Deferred, the triggerer polls and enforces ``timeout``.

    Subclasses say what they watch (:meth:`watched`) and what they wait for (:meth:`goal`).
    """

    ui_color = "#e0f2ef"

    def __init__(self, *, deferrable: bool | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = check_flag(deferrable, "deferrable")
        self._watch: StatusWatch | None = None

    def goal(self) -> StatusGoal:
        raise NotImplementedError

    def watched(self) -> tuple[str, str]:
        """(project id, id of what is watched), resolved through the API where names were given."""
        raise NotImplementedError

    def failure_message(self, result: WaitResult) -> str | None:
        """More to say when the wait failed (an execution's own message)."""
        return None

    def new_watch(self, context: Context, project_id: str, resource_id: str, started_at: float) -> StatusWatch:
        """The watch of this wait, without its deadline; a sensor that reads more than one status
        says what else it needs from the run here."""
        return StatusWatch(self.goal(), project_id, resource_id, started_at=started_at)

    def conclude(self, context: Context, result: WaitResult, execution_message: str | None) -> Status:
        """:func:`~airflow_provider_dpc.status.conclude`, with what this sensor says of what it watched."""
        return conclude(result, execution_message=execution_message)

    def _start_watch(self, context: Context, timeout: float | None = None) -> StatusWatch:
        project_id, resource_id = self.watched()
        now = time.time()
        watch = self.new_watch(context, project_id, resource_id, now)
        watch.deadline = math.inf if timeout is None else now + timeout
        return watch

    def execute(self, context: Context) -> Any:
        if not self.defers:
            return super().execute(context)
        # Poke mode leaves the timeout to BaseSensorOperator; deferred, the trigger enforces it. One
        # read first: a goal already reached costs no trip through the triggerer.
        watch = self._start_watch(context, timeout=_seconds(self.timeout))
        return self.wait(context, watch, _seconds(self.poke_interval), read_first=True)

    def poke(self, context: Context) -> bool:
        if self._watch is None:
            self._watch = self._start_watch(context)
        return self._settle(context, self.read_status(self._watch))

    def execute_complete(self, context: Context, event: WaitResult | dict[str, Any]) -> None:
        self._settle(context, WaitResult.of(event))

    def _settle(self, context: Context, result: WaitResult | None) -> bool:
        """True once the goal is reached; raises (or skips, with ``soft_fail``) on failure."""
        if result is None:
            return False
        try:
            message = self.failure_message(result) if result.verdict is Verdict.FAILED else None
            status = self.conclude(context, result, message)
        except DpcError as exc:
            if self.soft_fail:
                raise AirflowSkipException(str(exc)) from exc
            if result.verdict is Verdict.TIMED_OUT:
                raise AirflowSensorTimeout(str(exc)) from exc
            raise
        self.reached(context, result, status)
        return True

    def reached(self, context: Context, result: WaitResult, status: Status) -> None:
        """What the sensor does once its goal is reached: say so."""
        self.log.info("%s %s is %s", result.goal.kind, result.resource_id, status)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
