"""Deferrable waits on a streaming pipeline's status, run by Airflow's triggerer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_dpc._compat import base_event_trigger, without_event_triggers
from airflow_provider_dpc.exceptions import DpcError, DpcNotFoundError
from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.memory import WatchMemory, memory_key
from airflow_provider_dpc.models import check_uuid
from airflow_provider_dpc.status import Status, StatusWatch
from airflow_provider_dpc.status import statuses as normalised
from airflow_provider_dpc.triggers._status import DpcStatusTrigger, flat_kwargs


class DpcStreamingPipelineTrigger(DpcStatusTrigger):
    """Polls a pipeline's status until it reaches a target or failure status, or the deadline passes.

    See :class:`~airflow_provider_dpc.triggers._status.DpcStatusTrigger` for the kwargs; the
    watched id is ``pipeline_id``. A supervising task passes ``carry`` (its restart count and
    history), which comes back in the event.
    """

    id_field = "pipeline_id"

    def __init__(self, *, pipeline_id: str, **kwargs: Any) -> None:
        super().__init__(resource_id=pipeline_id, **kwargs)

    @property
    def pipeline_id(self) -> str:
        return self.resource_id

    async def read(self, hook: DpcHook, watch: StatusWatch) -> Status:
        return await hook.aget_status(self.project_id, self.resource_id, max_age=self.poll_interval)


#: The event status of a watched pipeline that does not exist (not one of DPC's statuses).
NOT_FOUND = "NOT_FOUND"


_BaseEventTrigger: Any = base_event_trigger()


def _event_trigger_class() -> type:
    """The event trigger, where Airflow has asset watchers (3.0+)."""

    class DpcStreamingPipelineEventTrigger(_BaseEventTrigger):
        """Fires each time a streaming pipeline moves into one of ``statuses``, for Airflow 3's asset
        watchers: ``AssetWatcher(name=..., trigger=DpcStreamingPipelineEventTrigger(...))``.

        A change, not a level: a pipeline that drops to NOT_RUNNING and stays there fires once, and
        again only after it has left the watched statuses. Its first start ever takes its first read
        as its starting point. Where Airflow keeps an asset watcher's state (3.3+), it remembers the
        last status it saw in the asset's state store: a pipeline that was STREAMING before a
        triggerer restart (or a move to another triggerer) and is down after it fires once; one
        still down after a second restart fires nothing; a pipeline that does not exist fires
        ``NOT_FOUND`` once, not after every restart. Before 3.3 a restarted watcher takes its first
        read as its starting point again, so a pipeline already down then does not fire. The event's payload
        is JSON: ``project_id``, ``pipeline_id``, ``status``, ``previous_status`` and ``observed_at``
        (ISO 8601, UTC). Its kwargs are ids, statuses and timings, always in the same form, so
        Airflow identifies the watcher by them, and never a secret. A read error is logged and the
        watch goes on. Its kwargs are flat (strings, a list, a number): Airflow 3.2 hands an asset
        watcher's nested kwargs to the trigger still encoded.
        """

        def __init__(
            self,
            dpc_conn_id: str,
            project_id: str,
            pipeline_id: str,
            statuses: Iterable[str] = ("NOT_RUNNING", "UNKNOWN"),
            poll_interval: float = 60.0,
        ) -> None:
            super().__init__()
            self.dpc_conn_id = dpc_conn_id
            self.project_id = check_uuid(project_id, "project_id")
            self.pipeline_id = check_uuid(pipeline_id, "pipeline_id")
            # Sorted and upper case, so the same watch always serializes alike (Airflow hashes it).
            self.statuses = sorted({str(status) for status in normalised(statuses)})
            if not self.statuses:
                raise ValueError("statuses must name at least one status")
            self.poll_interval = float(poll_interval)

        def serialize(self) -> tuple[str, dict[str, Any]]:
            return flat_kwargs(self, "dpc_conn_id", "project_id", "pipeline_id", "statuses", "poll_interval")

        def memory_key(self) -> str:
            """Where it keeps the status it last saw (``{"status": ...}``) in its asset's state store."""
            return memory_key("streaming_status", self.project_id, self.pipeline_id, *self.statuses)

        async def run(self) -> AsyncIterator[TriggerEvent]:
            memory = WatchMemory(self, self.memory_key(), self.log)
            kept = await memory.load()
            previous: str | None = kept.get("status") if isinstance(kept, dict) else None
            if previous is not None:
                self.log.info(
                    "streaming pipeline %s: going on from the status it last had, %s", self.pipeline_id, previous
                )
            else:
                watched = "/".join(self.statuses)
                self.log.info("streaming pipeline %s: watching for %s from its status now", self.pipeline_id, watched)
            async with DpcHook(self.dpc_conn_id) as hook:
                while True:
                    try:
                        status = str(
                            await hook.aget_status(self.project_id, self.pipeline_id, max_age=self.poll_interval)
                        )
                    except DpcNotFoundError as exc:
                        if previous != NOT_FOUND:
                            self.log.error(
                                "streaming pipeline %s does not exist in project %s, so this watcher watches "
                                "nothing; firing once so that its DAG's run shows it (%s)",
                                self.pipeline_id,
                                self.project_id,
                                exc,
                            )
                            yield self._event(NOT_FOUND, previous)
                        previous = NOT_FOUND
                    except DpcError as exc:
                        self.log.warning("streaming pipeline %s: status not read (%s)", self.pipeline_id, exc)
                    else:
                        if previous is not None and status in self.statuses and previous not in self.statuses:
                            self.log.info("streaming pipeline %s moved %s -> %s", self.pipeline_id, previous, status)
                            yield self._event(status, previous)
                        previous = status
                    # Fired, then kept: Airflow holds the events fired until its next sync, a second or so.
                    await memory.save({"status": previous})
                    await asyncio.sleep(self.poll_interval)

        def _event(self, status: str, previous: str | None) -> TriggerEvent:
            return TriggerEvent(
                {
                    "project_id": self.project_id,
                    "pipeline_id": self.pipeline_id,
                    "status": status,
                    "previous_status": previous,
                    "observed_at": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            )

    return DpcStreamingPipelineEventTrigger


if _BaseEventTrigger is not None:
    DpcStreamingPipelineEventTrigger = _event_trigger_class()
else:
    __getattr__ = without_event_triggers("DpcStreamingPipelineEventTrigger")
