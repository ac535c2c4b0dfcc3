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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_dpc.models import (
    AbsTarget,
    Db2IbmiSource,
    MySqlSource,
    OracleSource,
    PostgresSource,
    S3Target,
    SnowflakeTarget,
    SourceTable,
    SqlServerSource,
    StreamingPipelineDefinition,
    TablePrefixType,
)

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

__all__ = [
    "LineageDataset",
    "input_datasets",
    "operator_lineage",
    "output_datasets",
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


# ---- OpenLineage --------------------------------------------------------------------------------


def operator_lineage(definition: StreamingPipelineDefinition) -> OperatorLineage:
    """The OpenLineage facets of a task that created or started a pipeline with ``definition``."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(
        inputs=[Dataset(namespace=d.namespace, name=d.name) for d in input_datasets(definition)],
        outputs=[Dataset(namespace=d.namespace, name=d.name) for d in output_datasets(definition)],
    )
