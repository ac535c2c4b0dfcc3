"""OpenLineage: dataset naming for every source and target, and the create and start operators' facets.

The naming functions need no OpenLineage and are always tested. Where the OpenLineage packages are
installed (the ``openlineage`` extra, part of ``dev``), the names are also compared with
OpenLineage's own naming helpers, the operators' facets are read through the OpenLineage provider's
extractor, and a DAG run under ``airflow dags test`` is checked to emit them.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_dpc.hooks.dpc import DpcHook
from airflow_provider_dpc.lineage import (
    LineageDataset,
    _snowflake_account_identifier,
    input_datasets,
    output_datasets,
    snowflake_account_identifier,
    snowflake_table_name,
)
from airflow_provider_dpc.models import StreamingPipelineDefinition, validate_definition
from airflow_provider_dpc.operators.streaming_pipeline import (
    DpcCreateStreamingPipelineOperator,
    DpcStartStreamingPipelineOperator,
)
from tests.guide import PROJECT_ID, guide_body
from tests.task_runner import RecordingTI, TaskDeferred, first_event

pytestmark = pytest.mark.every_line

ROOT = Path(__file__).parent.parent
SECRET = {"secretType": "AWS_SECRETS_MANAGER", "secretName": "db-password"}


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


HAS_OPENLINEAGE_PROVIDER = _installed("airflow.providers.openlineage.extractors")
HAS_OPENLINEAGE_CLIENT = _installed("openlineage.client.naming.dataset")
needs_provider = pytest.mark.skipif(
    not HAS_OPENLINEAGE_PROVIDER,
    reason="apache-airflow-providers-openlineage is not installed (pip install 'airflow-provider-dpc[openlineage]')",
)
needs_client = pytest.mark.skipif(
    not HAS_OPENLINEAGE_CLIENT,
    reason="openlineage-python's naming helpers are not installed (pip install 'airflow-provider-dpc[openlineage]')",
)


def with_source(source: dict[str, Any], target: dict[str, Any] | None = None) -> StreamingPipelineDefinition:
    body = guide_body()
    body["streamingSource"] = source
    if target is not None:
        body["streamingTarget"] = target
    return validate_definition(body)


def connection(**fields: Any) -> dict[str, Any]:
    return {"host": "db.example.com", "port": 5432, "username": "cdc", "password": SECRET, **fields}


TABLES = [{"schema": "sales", "table": "orders"}, {"schema": "sales", "table": "order_lines"}]
SOURCES = {
    "postgres": (
        {"type": "postgres", "connection": connection(database="shop"), "tables": TABLES},
        "postgres://db.example.com:5432",
        ["shop.sales.orders", "shop.sales.order_lines"],
    ),
    "sqlserver": (
        {"type": "sqlserver", "connection": connection(port=1433, database="shop"), "tables": TABLES},
        "mssql://db.example.com:1433",
        ["shop.sales.orders", "shop.sales.order_lines"],
    ),
    "mysql": (
        {"type": "mysql", "connection": connection(port=3306), "tables": TABLES},
        "mysql://db.example.com:3306",
        ["sales.orders", "sales.order_lines"],
    ),
    "oracle": (
        {"type": "oracle", "connection": connection(port=1521, database="ORCLCDB"), "tables": TABLES},
        "oracle://db.example.com:1521",
        ["ORCLCDB.sales.orders", "ORCLCDB.sales.order_lines"],
    ),
    "oracle-pdb": (
        {"type": "oracle", "connection": connection(port=1521, database="ORCLCDB", pdb="ORCLPDB1"), "tables": TABLES},
        "oracle://db.example.com:1521",
        ["ORCLPDB1.sales.orders", "ORCLPDB1.sales.order_lines"],
    ),
    "db2ibmi": (
        {"type": "db2ibmi", "connection": connection(port=446), "tables": TABLES},
        "db2://db.example.com:446",
        ["sales.orders", "sales.order_lines"],
    ),
    "db2ibmi-iasp": (
        {
            "type": "db2ibmi",
            "connection": connection(port=446, jdbcProperties={"database name": "IASP1"}),
            "tables": TABLES,
        },
        "db2://db.example.com:446",
        ["IASP1.sales.orders", "IASP1.sales.order_lines"],
    ),
}


@pytest.mark.parametrize("kind", SOURCES)
def test_inputs_are_the_source_tables(kind: str) -> None:
    source, namespace, names = SOURCES[kind]
    assert input_datasets(with_source(source)) == [LineageDataset(namespace, name) for name in names]


def test_hosts_are_lower_cased_and_ipv6_bracketed() -> None:
    source = {"type": "postgres", "connection": connection(host=" DB.Example.COM ", database="shop"), "tables": TABLES}
    assert input_datasets(with_source(source))[0].namespace == "postgres://db.example.com:5432"
    source["connection"] = connection(host="fd00::5", database="shop")
    assert input_datasets(with_source(source))[0].namespace == "postgres://[fd00::5]:5432"


def test_the_guides_pipeline() -> None:
    definition = validate_definition(guide_body())
    assert [d.uri for d in input_datasets(definition)] == [
        "mssql://sqlserver.my-org.com:1433/my_database.my_schema.my_first_table",
        "mssql://sqlserver.my-org.com:1433/my_database.my_schema.my_second_table",
    ]
    # The account part follows the installed OpenLineage helper (older ones keep the region).
    account = snowflake_account_identifier(definition.streaming_target.connection.account_name)  # type: ignore[union-attr]
    assert account in ("my-snowflake-account", "my-snowflake-account.eu-central-1.aws")
    assert [d.uri for d in output_datasets(definition)] == [
        f"snowflake://{account}/STREAMING_DB.STREAMING_SCHEMA.MY_DATABASE_MY_SCHEMA_MY_FIRST_TABLE",
        f"snowflake://{account}/STREAMING_DB.STREAMING_SCHEMA.MY_DATABASE_MY_SCHEMA_MY_SECOND_TABLE",
    ]


@pytest.mark.parametrize(
    ("prefix_type", "source_kind", "table"),
    [
        ("PREFIX", "postgres", "RAW.CDC.SHOP_SALES_ORDERS"),
        ("SOURCE_DATABASE_AND_SCHEMA", "postgres", "RAW.CDC.SHOP_SALES_ORDERS"),
        ("none", "postgres", "RAW.CDC.ORDERS"),
        ("PREFIX", "mysql", "RAW.CDC.SALES_ORDERS"),
        ("PREFIX", "oracle-pdb", "RAW.CDC.ORCLPDB1_SALES_ORDERS"),
    ],
)
def test_snowflake_replica_table_names(prefix_type: str, source_kind: str, table: str) -> None:
    target = {
        **guide_body()["streamingTarget"],
        "database": "raw",
        "tableSchema": "cdc",
        "tablePrefixType": prefix_type,
    }
    definition = with_source(SOURCES[source_kind][0], target)
    assert snowflake_table_name(definition, definition.streaming_source.tables[0]) == table
    assert output_datasets(definition)[0].name == table
    assert len(output_datasets(definition)) == len(TABLES)


@pytest.mark.parametrize(
    ("account", "identifier"),
    [
        ("myorg-myaccount", "myorg-myaccount"),
        ("MyOrg-MyAccount", "MyOrg-MyAccount"),
        ("xy12345", "xy12345.us-west-1.aws"),
        ("xy12345.eu-central-1", "xy12345.eu-central-1.aws"),
        ("xy12345.east-us-2.azure", "xy12345.east-us-2.azure"),
        ("xy12345.us-central1.gcp", "xy12345.us-central1.gcp"),
        ("my-snowflake-account.eu-central-1", "my-snowflake-account"),
        ("https://myorg-myaccount.snowflakecomputing.com", "myorg-myaccount"),
        ("xy12345.eu-central-1.snowflakecomputing.com", "xy12345.eu-central-1.aws"),
    ],
)
def test_snowflake_account_identifier_without_openlineage(account: str, identifier: str) -> None:
    assert _snowflake_account_identifier(account) == identifier


@needs_client
@pytest.mark.parametrize(
    "account",
    ["myorg-myaccount", "xy12345", "xy12345.eu-central-1", "xy12345.east-us-2.azure", "my-snowflake-account.eu-west-1"],
)
def test_snowflake_account_identifier_is_the_installed_openlineage_helpers(account: str) -> None:
    # Older helpers keep the region of an organization-account name; the datasets must follow them.
    from openlineage.common.provider.snowflake import fix_account_name

    assert snowflake_account_identifier(account) == fix_account_name(account)


def test_object_store_targets() -> None:
    s3 = {"type": "s3", "bucket": "my-cdc-bucket", "prefix": "/cdc/orders/"}
    assert output_datasets(with_source(SOURCES["postgres"][0], s3)) == [
        LineageDataset("s3://my-cdc-bucket", "cdc/orders")
    ]
    abs_target = {
        "type": "abs",
        "container": "cdc",
        "prefix": "orders",
        "accountName": "MyStorage",
        "accountKey": {"secretType": "AZURE_KEY_VAULT", "secretName": "storage-key"},
    }
    assert output_datasets(with_source(SOURCES["postgres"][0], abs_target)) == [
        LineageDataset("wasbs://cdc@mystorage.blob.core.windows.net", "orders")
    ]


@needs_client
def test_names_match_openlineage_naming_helpers() -> None:
    """The names agree with openlineage-python's reference implementation of the naming spec."""
    from openlineage.client.naming import dataset as naming

    def check(dataset: LineageDataset, helper: Any) -> None:
        assert (dataset.namespace, dataset.name) == (helper.get_namespace(), helper.get_name())

    def first(kind: str) -> LineageDataset:
        return input_datasets(with_source(SOURCES[kind][0]))[0]

    host = "db.example.com"
    check(first("postgres"), naming.Postgres(host, "5432", "shop", "sales", "orders"))
    check(first("mysql"), naming.MySQL(host, "3306", "sales", "orders"))
    check(first("oracle-pdb"), naming.Oracle(host, "1521", "ORCLPDB1", "sales", "orders"))
    check(first("db2ibmi-iasp"), naming.DB2(host, "446", "IASP1", "sales", "orders"))
    body = guide_body()
    body["streamingTarget"]["connection"]["accountName"] = "myorg-myaccount"
    snowflake = output_datasets(validate_definition(body))[0]
    table = "MY_DATABASE_MY_SCHEMA_MY_FIRST_TABLE"
    check(snowflake, naming.Snowflake("myorg", "myaccount", "STREAMING_DB", "STREAMING_SCHEMA", table))
    s3 = output_datasets(with_source(SOURCES["postgres"][0], {"type": "s3", "bucket": "b", "prefix": "cdc/orders"}))
    check(s3[0], naming.S3("b", "cdc/orders"))


@pytest.mark.skipif(
    not _installed("airflow.providers.common.sql.hooks.sql"),
    reason="apache-airflow-providers-common-sql is not installed (the OpenLineage provider brings it)",
)
def test_sql_server_namespace_is_the_one_airflows_mssql_hook_reports() -> None:
    """MsSqlHook names SQL Server ``mssql://`` + DbApiHook's authority (default port 1433)."""
    from airflow.models.connection import Connection
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    definition = validate_definition(guide_body())
    host = definition.streaming_source.connection.host
    authority = DbApiHook.get_openlineage_authority_part(
        Connection(conn_id="guide_mssql", conn_type="mssql", host=host, port=1433), default_port=1433
    )
    assert authority == "sqlserver.my-org.com:1433"
    assert {d.namespace for d in input_datasets(definition)} == {f"mssql://{authority}"}


@pytest.mark.slow
def test_importing_the_operators_imports_no_openlineage() -> None:
    """No cost when OpenLineage is installed but unused: importing the operators imports none of it."""
    code = (
        "import sys\n"
        "import airflow\n"  # Airflow 3 reads every provider's metadata on import, OpenLineage's too
        "def lineage(): return {m for m in sys.modules if 'openlineage' in m}\n"
        "before = lineage()\n"
        "import airflow_provider_dpc.operators.streaming_pipeline\n"
        "import airflow_provider_dpc.sensors.streaming_pipeline\n"
        "assert lineage() == before, sorted(lineage() - before)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=os.environ.copy(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


# ---- the operators ------------------------------------------------------------------------------


@pytest.fixture
def hook(conn_env: Any, fresh_emulator: Any) -> DpcHook:
    conn_env("matillion_dpc_default")
    return DpcHook()


def s3_pipeline(name: str) -> dict[str, Any]:
    body = guide_body()
    body["name"] = name
    body["streamingSource"] = copy.deepcopy(SOURCES["postgres"][0])
    body["streamingTarget"] = {"type": "s3", "bucket": "my-cdc-bucket", "prefix": "orders"}
    return body


def as_pairs(datasets: Any) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


@needs_provider
def test_create_reports_its_definition_without_calling_the_api(hook: DpcHook, fresh_emulator: Any) -> None:
    op = DpcCreateStreamingPipelineOperator(task_id="create", project_id=PROJECT_ID, definition=guide_body())
    before = fresh_emulator.stats()["requests"]
    lineage = op.get_openlineage_facets_on_complete(None)
    assert fresh_emulator.stats()["requests"] == before
    definition = validate_definition(guide_body())
    assert as_pairs(lineage.inputs) == as_pairs(input_datasets(definition))
    assert as_pairs(lineage.outputs) == as_pairs(output_datasets(definition))


@needs_provider
def test_create_reads_a_json_definition_file(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(s3_pipeline("orders")))
    op = DpcCreateStreamingPipelineOperator(task_id="create", project_id=PROJECT_ID, definition=str(path))
    lineage = op.get_openlineage_facets_on_complete(None)
    assert as_pairs(lineage.outputs) == [("s3://my-cdc-bucket", "orders")]


@needs_provider
@pytest.mark.parametrize("by", ["id", "name"])
def test_start_reports_the_pipeline_it_fetches(hook: DpcHook, by: str) -> None:
    pipeline_id = hook.create_streaming_pipeline(PROJECT_ID, s3_pipeline("orders")).streaming_pipeline_id
    where = {"pipeline_id": pipeline_id} if by == "id" else {"pipeline_name": "orders"}
    op = DpcStartStreamingPipelineOperator(task_id="start", project_id=PROJECT_ID, **where)
    lineage = op.get_openlineage_facets_on_complete(None)
    assert as_pairs(lineage.inputs) == [
        ("postgres://db.example.com:5432", "shop.sales.orders"),
        ("postgres://db.example.com:5432", "shop.sales.order_lines"),
    ]
    assert as_pairs(lineage.outputs) == [("s3://my-cdc-bucket", "orders")]


def _requests_added(emulator: Any, before: dict[str, int]) -> dict[str, int]:
    after = emulator.stats()["requests"]
    return {route: n - before.get(route, 0) for route, n in after.items() if n != before.get(route, 0)}


@needs_provider
@pytest.mark.parametrize("deferrable", [False, True])
def test_start_by_name_reports_lineage_without_looking_it_up_again(
    hook: DpcHook, fresh_emulator: Any, deferrable: bool
) -> None:
    hook.create_streaming_pipeline(PROJECT_ID, s3_pipeline("orders"))
    where = {"project_id": PROJECT_ID, "pipeline_name": "orders", "poll_interval": 0.1, "deferrable": deferrable}
    op = DpcStartStreamingPipelineOperator(task_id="start", **where)
    context = {"ti": RecordingTI()}
    if deferrable:  # the task resumes in a new process: a new operator gets the trigger's event
        with pytest.raises(TaskDeferred) as deferral:
            op.execute(context)
        event = asyncio.run(first_event(deferral.value.trigger)).payload
        op = DpcStartStreamingPipelineOperator(task_id="start", **where)
        op.execute_complete(context, event)
    else:
        op.execute(context)
    before = fresh_emulator.stats()["requests"]
    lineage = op.get_openlineage_facets_on_complete(None)
    assert as_pairs(lineage.outputs) == [("s3://my-cdc-bucket", "orders")]
    assert _requests_added(fresh_emulator, before) == {
        "GET /dpc/v1/projects/{projectId}/streaming-pipelines/{pipelineId}": 1
    }


def test_a_lineage_error_is_logged_never_raised(hook: DpcHook, caplog: pytest.LogCaptureFixture) -> None:
    op = DpcStartStreamingPipelineOperator(task_id="start", project_id=PROJECT_ID, pipeline_name="missing")
    with caplog.at_level(logging.WARNING, logger="airflow_provider_dpc.lineage"):
        assert op.get_openlineage_facets_on_complete(None) is None
    assert "start: no OpenLineage inputs and outputs for this task (DpcNotFoundError: no streaming pipeline" in (
        caplog.text
    )


def test_without_openlineage_the_method_returns_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)
    op = DpcCreateStreamingPipelineOperator(task_id="create", project_id=PROJECT_ID, definition=guide_body())
    assert op.get_openlineage_facets_on_complete(None) is None


@needs_provider
def test_the_openlineage_provider_picks_the_facets_up(hook: DpcHook) -> None:
    from airflow.providers.openlineage.extractors.base import DefaultExtractor
    from airflow.providers.openlineage.extractors.manager import ExtractorManager

    op = DpcCreateStreamingPipelineOperator(task_id="create", project_id=PROJECT_ID, definition=s3_pipeline("o"))
    assert ExtractorManager().get_extractor_class(op) is DefaultExtractor
    lineage = DefaultExtractor(op).extract_on_complete(None)
    assert lineage is not None
    assert as_pairs(lineage.outputs) == [("s3://my-cdc-bucket", "orders")]
    assert len(lineage.inputs) == 2


@pytest.mark.slow
@pytest.mark.edge_lines  # the in-process facets above run on every line
@needs_provider
def test_a_dag_run_emits_the_lineage(fresh_emulator: Any, airflow_db: None, tmp_path: Path) -> None:
    """``airflow dags test`` of the quickstart with OpenLineage writing its events to a file."""
    events_file = tmp_path / "events.jsonl"
    env = os.environ.copy()
    env.update(
        {
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW_CONN_MATILLION_DPC_DEFAULT": fresh_emulator.connection_json(),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(events_file), "append": True}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "dpc-tests",
            "DPC_POLL_INTERVAL": "0.2",
            "DPC_DEFERRABLE": "true",
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "example_dpc_quickstart"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    complete = {
        e["job"]["name"].rsplit(".", 1)[-1]: e
        for e in events
        if e["eventType"] == "COMPLETE" and "." in e["job"]["name"]
    }
    expected = validate_definition(guide_body())
    for task_id in ("create_pipeline", "start_pipeline"):
        event = complete[task_id]
        assert [(d["namespace"], d["name"]) for d in event["inputs"]] == as_pairs(input_datasets(expected))
        assert [(d["namespace"], d["name"]) for d in event["outputs"]] == as_pairs(output_datasets(expected))
    for task_id in ("consume", "stop_pipeline", "delete_pipeline"):
        assert not complete[task_id]["inputs"]
        assert not complete[task_id]["outputs"]
