"""The OpenLineage events DPC records for runs of published pipelines (``GET /v1/lineage/events``).

Every execution of a seeded pipeline with ``lineage`` gets a START event when it starts and, once it
has ended, a COMPLETE (SUCCESS), ABORT (CANCELLED) or FAIL (any other end) event, each naming the
seed's inputs and outputs. Events are computed from the executions whenever they are read, so they
follow the executions' clock. ``lineage_delay`` makes each one generated that long after it happened,
as a service that writes its events late; ``lineage_run_ids`` says whether ``run.runId`` is the
execution's id or an id of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from airflow_provider_dpc.emulator.config import LineageRunIds
from airflow_provider_dpc.emulator.executions import Execution, iso
from airflow_provider_dpc.lineage import DPC_PRODUCER
from airflow_provider_dpc.models import (
    ExecutionStatus,
    LineageEvent,
    LineageJob,
    LineageRun,
    LineageRunEvent,
)
from airflow_provider_dpc.status import EXECUTION_UNDER_WAY

__all__ = ["ACCOUNT_ID", "lineage_events"]

#: The account the emulator stands for, in job namespaces (``matillion://<account>.<project>``).
ACCOUNT_ID = "dpc-emulator"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_ENDINGS = {ExecutionStatus.SUCCESS: "COMPLETE", ExecutionStatus.CANCELLED: "ABORT"}
_IDS = uuid.UUID("6f1c1c2e-29a4-4b8e-9d0e-3c1f5b1d7a00")


def _event(execution: Execution, kind: str, at: float, run_id: str, shape: str) -> LineageEvent:
    lineage = execution.pipeline.lineage
    assert lineage is not None
    job = LineageJob(
        namespace=f"matillion://{ACCOUNT_ID}.{execution.project_id}",
        name=execution.pipeline.answered_name,
        facets={"jobType": {"jobType": "ORCHESTRATION", "integration": "MATILLION", "processingType": "BATCH"}},
    )
    event = LineageRunEvent(
        event_type=kind,
        event_time=iso(at, shape),
        producer=DPC_PRODUCER,
        schema_url=SCHEMA_URL,
        job=job,
        run=LineageRun(run_id=run_id),
        inputs=list(lineage.inputs),
        outputs=list(lineage.outputs),
    )
    return LineageEvent(id=str(uuid.uuid5(_IDS, f"{execution.execution_id}:{kind}")), event=event)


def lineage_events(
    executions: Iterable[Execution],
    now: float,
    *,
    run_ids: LineageRunIds,
    delay: float,
    generated_from: float,
    generated_before: float,
    shape: str,
) -> list[LineageEvent]:
    """The events generated (epoch seconds) in ``[generated_from, generated_before)``, oldest first."""
    found: list[tuple[float, LineageEvent]] = []
    for execution in executions:
        if execution.pipeline.lineage is None:
            continue
        status = execution.settle(now)
        run_id = execution.execution_id if run_ids == "execution" else str(uuid.uuid5(_IDS, execution.execution_id))
        happened = [("START", execution.started_wall)]
        if status not in EXECUTION_UNDER_WAY:
            happened.append((_ENDINGS.get(status, "FAIL"), execution.epoch_offset + execution.since))
        for kind, at in happened:
            generated = at + delay
            if generated_from <= generated < generated_before and generated <= execution.epoch_offset + now:
                found.append((generated, _event(execution, kind, at, run_id, shape)))
    return [event for _, event in sorted(found, key=lambda item: item[0])]
