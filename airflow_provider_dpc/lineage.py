"""OpenLineage for streaming pipelines: the tables a pipeline reads and the tables or prefixes it writes.

The naming is pure functions over :class:`~airflow_provider_dpc.models.StreamingPipelineDefinition`,
importable and testable without OpenLineage. Datasets follow OpenLineage's dataset naming
(https://openlineage.io/docs/spec/naming) so that they join the same tables reported by other jobs:

============== ======================================================= =====================================
store          namespace                                               name
============== ======================================================= =====================================
SQL Server     ``mssql://{host}:{port}``                               ``{database}.{schema}.{table}``
Postgres       ``postgres://{host}:{port}``                            ``{database}.{schema}.{table}``
MySQL          ``mysql://{host}:{port}``                               ``{schema}.{table}`` (schema = database)
Oracle         ``oracle://{host}:{port}``                              ``{pdb or database}.{schema}.{table}``
Db2 for IBM i  ``db2://{host}:{port}``                                 ``{schema}.{table}``
Snowflake      ``snowflake://{account identifier}``                    ``{DATABASE}.{TABLE_SCHEMA}.{TABLE}``
S3             ``s3://{bucket}``                                       ``{prefix}``
Azure Blob     ``wasbs://{container}@{account}.blob.core.windows.net`` ``{prefix}``
============== ======================================================= =====================================

Each namespace is the one Airflow's own hooks report for the same database (``MsSqlHook``,
``PostgresHook``, ``MySqlHook``, ``OracleHook``, ``SnowflakeHook``) and OpenLineage's naming helpers
give, so the tables join those of every other task. Hosts are lower-cased (host names are
case-insensitive; OpenLineage's JDBC naming lower-cases them too). The Snowflake account identifier
is normalised as OpenLineage's Snowflake helper
(``openlineage.common.provider.snowflake.fix_account_name``) does. Which of these facts are
confirmed and which are inferred is written next to each function and in ``docs/lineage.md``.

The operators report these datasets through the mixins of
:mod:`airflow_provider_dpc.operators._lineage`. OpenLineage's classes are imported only inside
:func:`operator_lineage`, which only the OpenLineage provider's call leads to, so nothing is
imported when it is not installed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_dpc.models import (
    AbsTarget,
    Db2IbmiSource,
    LineageEvent,
    LineageRunEvent,
    MySqlSource,
    OracleSource,
    PostgresSource,
    S3Target,
    SnowflakeTarget,
    SourceTable,
    SqlServerSource,
    StreamingPipelineDefinition,
    TablePrefixType,
    same_pipeline,
)
from airflow_provider_dpc.models import LineageDataset as ModelDataset

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

__all__ = [
    "DPC_PRODUCER",
    "START_TOLERANCE_SECONDS",
    "LineageDataset",
    "RunLineage",
    "child_run_events",
    "dpc_namespace",
    "input_datasets",
    "operator_lineage",
    "output_datasets",
    "run_lineage",
    "run_operator_lineage",
    "snowflake_account_identifier",
    "snowflake_table_name",
]


@dataclass(frozen=True, order=True)
class LineageDataset:
    """An OpenLineage dataset identifier: ``namespace`` (the data source) and ``name`` within it."""

    namespace: str
    name: str

    @property
    def uri(self) -> str:
        return f"{self.namespace}/{self.name}"


# ---- sources ------------------------------------------------------------------------------------


def _authority(host: str, port: int) -> str:
    host = host.strip().lower()
    if ":" in host and not host.startswith("["):  # an IPv6 address
        host = f"[{host}]"
    return f"{host}:{port}"


def _db2_database(jdbc_properties: dict[str, Any] | None) -> str | None:
    # Db2 for IBM i has one relational database per system, so the host names it; the jt400 driver's
    # "database name" property selects an independent ASP's database, which then prefixes the name.
    for key, value in (jdbc_properties or {}).items():
        if key.replace(" ", "").replace("_", "").lower() == "databasename" and str(value).strip():
            return str(value).strip()
    return None


def _source_database(source: Any) -> str | None:
    """The source's database as OpenLineage names it: None for MySQL and, usually, Db2 for IBM i."""
    if isinstance(source, PostgresSource | SqlServerSource):
        return str(source.connection.database)
    if isinstance(source, OracleSource):
        # Tables of a pluggable database are reached through the PDB's service name.
        return str(source.connection.pdb or source.connection.database)
    if isinstance(source, Db2IbmiSource):
        return _db2_database(source.connection.jdbc_properties)
    return None


_SCHEMES = {
    PostgresSource: "postgres",
    # Airflow's MsSqlHook names SQL Server ``mssql``; OpenLineage's ``sqlserver`` is Azure Synapse.
    SqlServerSource: "mssql",
    OracleSource: "oracle",
    MySqlSource: "mysql",
    Db2IbmiSource: "db2",
}


def input_datasets(definition: StreamingPipelineDefinition) -> list[LineageDataset]:
    """One dataset per source table, in the definition's order."""
    source = definition.streaming_source
    scheme = _SCHEMES[type(source)]
    namespace = f"{scheme}://{_authority(source.connection.host, source.connection.port)}"
    database = _source_database(source)
    prefix = f"{database}." if database else ""
    return [LineageDataset(namespace, f"{prefix}{t.table_schema}.{t.table}") for t in source.tables]


# ---- targets ------------------------------------------------------------------------------------


def snowflake_account_identifier(account_name: str) -> str:
    """The account identifier of a Snowflake namespace, as OpenLineage's Snowflake helper gives it.

    The installed helper (``openlineage.common.provider.snowflake.fix_account_name``) is used where
    there is one, since its rules changed between releases and the datasets join only when every
    producer of the deployment names them alike; else :func:`_snowflake_account_identifier`.
    """
    try:
        from openlineage.common.provider.snowflake import fix_account_name
    except ImportError:
        return _snowflake_account_identifier(account_name)
    return str(fix_account_name(account_name))


def _snowflake_account_identifier(account_name: str) -> str:
    """What OpenLineage's Snowflake helper gives today, for a process without it.

    ``myorg-myaccount`` (organization-account form) is kept as it is; an account locator gets its
    region and cloud, defaulting to ``us-west-1`` and ``aws``: ``xy12345`` ->
    ``xy12345.us-west-1.aws``, ``xy12345.eu-central-1`` -> ``xy12345.eu-central-1.aws``. A full
    account URL (``https://<account>.snowflakecomputing.com``) is reduced to its account part first.
    """
    name = account_name.strip()
    name = name.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    name = name.removesuffix(".snowflakecomputing.com")
    parts = name.split(".")
    if "-" in parts[0]:
        return parts[0]
    if len(parts) == 1:
        return f"{parts[0]}.us-west-1.aws"
    if len(parts) == 2:
        return f"{parts[0]}.{parts[1]}.aws"
    return name


def snowflake_table_name(definition: StreamingPipelineDefinition, table: SourceTable) -> str:
    """The Snowflake table a source table is replicated to, as ``DATABASE.SCHEMA.TABLE``.

    Matillion documents replica tables named ``<source_database>_<source_schema>_<source_table>`` in
    the target's table schema. ``PREFIX`` and ``SOURCE_DATABASE_AND_SCHEMA`` are taken to give that
    name, ``NONE`` the bare source table name; a source without a database (MySQL, Db2 for IBM i)
    contributes its schema only. Names are upper-cased, as Snowflake stores unquoted identifiers.
    """
    target = definition.streaming_target
    if not isinstance(target, SnowflakeTarget):
        raise TypeError(f"the pipeline's target is {target.type}, not snowflake")
    if TablePrefixType(target.table_prefix_type) is TablePrefixType.NONE:
        table_name = table.table
    else:
        database = _source_database(definition.streaming_source)
        parts = [database, table.table_schema, table.table] if database else [table.table_schema, table.table]
        table_name = "_".join(parts)
    return f"{target.database}.{target.table_schema}.{table_name}".upper()


def _object_key(prefix: str) -> str:
    # OpenLineage's object-store naming: no leading or trailing slash; the bucket root is "/".
    return prefix.strip().strip("/") or "/"


def output_datasets(definition: StreamingPipelineDefinition) -> list[LineageDataset]:
    """The replica tables (Snowflake), or the object prefix the change files go to (S3, Azure Blob)."""
    target = definition.streaming_target
    if isinstance(target, SnowflakeTarget):
        namespace = f"snowflake://{snowflake_account_identifier(target.connection.account_name)}"
        tables = definition.streaming_source.tables
        return [LineageDataset(namespace, snowflake_table_name(definition, t)) for t in tables]
    if isinstance(target, S3Target):
        bucket = target.bucket.strip().removeprefix("s3://").strip("/")
        return [LineageDataset(f"s3://{bucket}", _object_key(target.prefix))]
    if isinstance(target, AbsTarget):
        account = target.account_name.strip().lower()
        namespace = f"wasbs://{target.container.strip()}@{account}.blob.core.windows.net"
        return [LineageDataset(namespace, _object_key(target.prefix))]
    raise TypeError(f"unsupported streaming target {type(target).__name__}")


# ---- DPC's own lineage events, for runs of published pipelines -----------------------------------

#: The producer of the DPC runs' events this provider passes on: DPC's own.
DPC_PRODUCER = "https://www.matillion.com"
#: DPC's dataset schemes as Airflow's hooks name the same databases (see ``_SCHEMES``).
_DPC_SCHEMES = {"postgresql": "postgres", "sqlserver": "mssql"}
#: Schemes whose authority is a host and port, compared in any case.
_HOST_SCHEMES = frozenset({"postgres", "mssql", "mysql", "oracle", "db2"})


def dpc_namespace(namespace: str) -> str:
    """A dataset namespace of DPC's lineage events as this provider and Airflow's hooks name the same
    store: ``postgresql://`` is ``postgres://`` and ``sqlserver://`` is ``mssql://``, database hosts
    are lower-cased, a Snowflake account is normalised as :func:`snowflake_account_identifier` does."""
    scheme, separator, rest = namespace.strip().partition("://")
    if not separator:
        return namespace
    scheme = _DPC_SCHEMES.get(scheme.lower(), scheme.lower())
    authority, slash, path = rest.partition("/")
    if scheme in _HOST_SCHEMES:
        authority = authority.lower()
    elif scheme == "snowflake" and authority:
        authority = snowflake_account_identifier(authority)
    return f"{scheme}://{authority}{slash}{path}"


@dataclass(frozen=True)
class RunLineage:
    """What DPC's lineage events say of one execution: its job, run, datasets and how it ended."""

    job_namespace: str
    job_name: str
    run_id: str
    started: str | None  # eventTime of the first event
    ended: str | None  # eventTime of the COMPLETE, FAIL or ABORT event
    ending: str | None  # COMPLETE, FAIL or ABORT
    inputs: list[ModelDataset]
    outputs: list[ModelDataset]
    #: DPC's ``jobType`` facet of the job (``jobType`` ORCHESTRATION, ``integration``, ...), as written.
    job_type: Mapping[str, Any] = field(default_factory=dict)


_ENDINGS = frozenset({"COMPLETE", "FAIL", "ABORT"})
#: How far a run's START may lie from the execution's ``startedAt`` (both DPC's clock) to be its run.
START_TOLERANCE_SECONDS = 2.0


def _merged(datasets: Iterable[ModelDataset]) -> list[ModelDataset]:
    # The same dataset on several events of a run: one, its facets merged, the later ones winning.
    merged: dict[tuple[str, str], ModelDataset] = {}
    for dataset in datasets:
        key = (dpc_namespace(dataset.namespace), dataset.name)
        earlier = merged.get(key)
        facets = {**earlier.facets, **dataset.facets} if earlier else dict(dataset.facets)
        merged[key] = ModelDataset(namespace=key[0], name=key[1], facets=facets)
    return list(merged.values())


def run_lineage(
    events: Iterable[LineageEvent],
    *,
    execution_id: str,
    pipeline_name: str,
    project_id: str,
    started: datetime,
    tolerance: float = START_TOLERANCE_SECONDS,
) -> RunLineage | None:
    """The run among ``events`` that is the execution: the one whose ``runId`` is the execution's
    id where DPC writes it so, else the run of the pipeline (:func:`same_pipeline` on the job name,
    in the project where the job's namespace names one) whose START event came within ``tolerance``
    seconds of the execution's start (its first event, where DPC writes no START). None where no
    run is; :class:`ValueError` where more than one is, which is reported, never guessed."""
    runs: dict[str, list[LineageRunEvent]] = {}
    for item in events:
        runs.setdefault(item.event.run.run_id, []).append(item.event)
    chosen = runs.get(execution_id)
    if chosen is None:
        named = [
            run_events
            for run_events in runs.values()
            if same_pipeline(pipeline_name, run_events[0].job.name)
            and _in_project(run_events[0].job.namespace, project_id)
        ]
        # A run starts at its START event; only where DPC writes none, at its first event. An
        # earlier run whose end falls in the range read is then not taken for this one.
        any_start = any(_is_start(e) for run_events in named for e in run_events)
        candidates = []
        for run_events in named:
            first = min((e.moment for e in run_events if e.moment and (_is_start(e) or not any_start)), default=None)
            if first is not None and abs((first - started).total_seconds()) <= tolerance:
                candidates.append(run_events)
        if len(candidates) > 1:
            ids = ", ".join(run[0].run.run_id for run in candidates)
            raise ValueError(
                f"{len(candidates)} DPC runs of pipeline {pipeline_name!r} started within {tolerance:g} s of "
                f"execution {execution_id} ({ids}); cannot tell which one it is"
            )
        if not candidates:
            return None
        chosen = candidates[0]
    job = chosen[0].job
    endings = [e for e in chosen if (e.event_type or "").upper() in _ENDINGS]
    return RunLineage(
        job_namespace=job.namespace,
        job_name=job.name,
        run_id=chosen[0].run.run_id,
        started=chosen[0].event_time,
        ended=endings[-1].event_time if endings else None,
        ending=(endings[-1].event_type or "").upper() if endings else None,
        inputs=_merged(d for e in chosen for d in e.inputs),
        outputs=_merged(d for e in chosen for d in e.outputs),
        job_type=job_type if isinstance(job_type := job.facets.get("jobType"), dict) else {},
    )


def _is_start(event: LineageRunEvent) -> bool:
    return (event.event_type or "").upper() == "START"


def _in_project(job_namespace: str, project_id: str) -> bool:
    # ``matillion://<account>.<project>``: a namespace of another form is not taken to exclude it.
    scheme, _, rest = job_namespace.partition("://")
    if scheme != "matillion" or "." not in rest:
        return True
    return rest.rsplit(".", 1)[-1].lower() == project_id.lower()


# ---- OpenLineage --------------------------------------------------------------------------------


def operator_lineage(definition: StreamingPipelineDefinition) -> OperatorLineage:
    """The OpenLineage facets of a task that created or started a pipeline with ``definition``."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(
        inputs=[Dataset(namespace=d.namespace, name=d.name) for d in input_datasets(definition)],
        outputs=[Dataset(namespace=d.namespace, name=d.name) for d in output_datasets(definition)],
    )


def _openlineage_facets(dataset: ModelDataset) -> dict[str, Any]:
    """The schema and column-lineage facets DPC wrote for a dataset, as OpenLineage's classes; other
    facets are left out (their classes are not known here)."""
    from openlineage.client.facet_v2 import column_lineage_dataset, schema_dataset

    facets: dict[str, Any] = {}
    schema = dataset.facets.get("schema")
    if isinstance(schema, dict) and isinstance(schema.get("fields"), list):
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(
                    name=str(field["name"]), type=field.get("type"), description=field.get("description")
                )
                for field in schema["fields"]
                if isinstance(field, dict) and field.get("name")
            ]
        )
    lineage = dataset.facets.get("columnLineage")
    if isinstance(lineage, dict) and isinstance(lineage.get("fields"), dict):
        columns = {}
        for column, spec in lineage["fields"].items():
            spec = spec if isinstance(spec, dict) else {}
            sources = [
                column_lineage_dataset.InputField(
                    namespace=dpc_namespace(str(source["namespace"])),
                    name=str(source["name"]),
                    field=str(source["field"]),
                )
                for source in spec.get("inputFields") or []
                if isinstance(source, dict) and {"namespace", "name", "field"} <= source.keys()
            ]
            columns[str(column)] = column_lineage_dataset.Fields(
                inputFields=sources,
                transformationDescription=spec.get("transformationDescription"),
                transformationType=spec.get("transformationType"),
            )
        facets["columnLineage"] = column_lineage_dataset.ColumnLineageDatasetFacet(fields=columns)
    return facets


def run_operator_lineage(run: RunLineage) -> OperatorLineage:
    """The run task's OpenLineage facets: the tables DPC's run read and wrote, with their facets."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    def datasets(found: list[ModelDataset]) -> list[Any]:
        return [Dataset(namespace=d.namespace, name=d.name, facets=_openlineage_facets(d)) for d in found]

    return OperatorLineage(inputs=datasets(run.inputs), outputs=datasets(run.outputs))


def child_run_events(run: RunLineage, parent_run_id: str, parent_job_namespace: str, parent_job_name: str) -> list[Any]:
    """DPC's run as OpenLineage events of its own job, parented to the Airflow task's run: its start
    and, where it has ended, its end, at the times DPC recorded."""
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import job_type_job, parent_run

    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=parent_run_id),
        job=parent_run.Job(namespace=parent_job_namespace, name=parent_job_name),
    )
    # DPC's own values where it wrote them (its jobType is ORCHESTRATION), else a Matillion batch job.
    written = {key: value for key, value in run.job_type.items() if isinstance(value, str) and value}
    job_type = job_type_job.JobTypeJobFacet(
        processingType=written.get("processingType", "BATCH"),
        integration=written.get("integration", "MATILLION"),
        jobType=written.get("jobType"),
    )
    job = Job(namespace=run.job_namespace, name=run.job_name, facets={"jobType": job_type})
    inputs = [InputDataset(namespace=d.namespace, name=d.name, facets=_openlineage_facets(d)) for d in run.inputs]
    outputs = [OutputDataset(namespace=d.namespace, name=d.name, facets=_openlineage_facets(d)) for d in run.outputs]
    moments = [(RunState.START, run.started)]
    if run.ending and run.ended:
        moments.append((RunState(run.ending), run.ended))
    return [
        RunEvent(
            eventType=state,
            eventTime=moment,
            run=Run(runId=_uuid_run_id(run.run_id), facets={"parent": parent}),
            job=job,
            inputs=inputs,
            outputs=outputs,
            producer=DPC_PRODUCER,
        )
        for state, moment in moments
        if moment
    ]


def _uuid_run_id(run_id: str) -> str:
    # OpenLineage run ids are UUIDs: DPC's where it writes one, else one derived from it, stable.
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"matillion-run:{run_id}"))
