"""The ``matillion-dpc`` asset URI scheme, as Airflow applies it to every Asset a DAG declares."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from airflow_provider_dpc.assets import pipeline_uri, published_pipeline_uri
from tests.guide import PROJECT_ID

pytestmark = pytest.mark.every_line


def asset(uri: str) -> Any:
    try:
        from airflow.sdk import Asset
    except ImportError:  # Airflow 2.11
        from airflow.datasets import Dataset as Asset  # type: ignore[no-redef,attr-defined,unused-ignore]
    return Asset(uri)


def test_a_pipeline_uri_is_written_canonically() -> None:
    uri = pipeline_uri(PROJECT_ID.upper(), "orders-cdc")
    assert asset(uri).uri == f"matillion-dpc://{PROJECT_ID}/streaming-pipelines/orders-cdc"


def test_a_published_pipeline_uri_is_written_canonically_however_its_name_is_spelled() -> None:
    uri = f"matillion-dpc://{PROJECT_ID}/pipelines/orders/Load%20orders"
    assert published_pipeline_uri(PROJECT_ID.upper(), "orders/Load orders") == uri
    assert asset(f"matillion-dpc://{PROJECT_ID.upper()}/pipelines/orders/Load orders").uri == uri
    assert asset(uri).uri == uri


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("matillion-dpc:///streaming-pipelines/orders", "names the project first"),
        ("matillion-dpc://proj/jobs/orders", "the path must be /streaming-pipelines/<pipeline id or name>"),
        ("matillion-dpc://proj/pipelines/", "or /pipelines/<published pipeline name>"),
        ("matillion-dpc://proj/pipelines/orders//load", "or /pipelines/<published pipeline name>"),
        ("matillion-dpc://proj/streaming-pipelines/a/b", "the path must be /streaming-pipelines/"),
        ("matillion-dpc://proj/streaming-pipelines/orders?x=1", "takes no query"),
    ],
)
def test_airflow_refuses_a_malformed_pipeline_uri_naming_the_problem(uri: str, problem: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            asset(uri)
        except ValueError as exc:
            refused = str(exc)
        else:  # Airflow 2.11 warns unless [core] strict_dataset_uri_validation is on
            refused = " ".join(str(w.message) for w in caught)
    assert problem in refused
