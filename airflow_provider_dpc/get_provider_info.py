"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_dpc import __version__
from airflow_provider_dpc.connection_ui import provider_connection_type


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-dpc",
        "name": "Matillion Data Productivity Cloud",
        "description": (
            "Create, start, watch and stop Matillion DPC streaming (CDC) pipelines, and run DPC's published pipelines."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Matillion Data Productivity Cloud",
                "external-doc-url": "https://docs.matillion.com/data-productivity-cloud/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Matillion Data Productivity Cloud",
                "python-modules": ["airflow_provider_dpc.hooks.dpc"],
            }
        ],
        "operators": [
            {
                "integration-name": "Matillion Data Productivity Cloud",
                "python-modules": [
                    "airflow_provider_dpc.operators.streaming_pipeline",
                    "airflow_provider_dpc.operators.pipeline_execution",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Matillion Data Productivity Cloud",
                "python-modules": [
                    "airflow_provider_dpc.sensors.streaming_pipeline",
                    "airflow_provider_dpc.sensors.pipeline_execution",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "Matillion Data Productivity Cloud",
                "python-modules": [
                    "airflow_provider_dpc.triggers.streaming_pipeline",
                    "airflow_provider_dpc.triggers.pipeline_execution",
                ],
            }
        ],
        "connection-types": [provider_connection_type()],
        # Airflow 3 reads "asset-uris", Airflow 2.11 "dataset-uris": the same scheme for both.
        "asset-uris": [{"schemes": ["matillion-dpc"], "handler": "airflow_provider_dpc.assets.sanitize_uri"}],
        "dataset-uris": [{"schemes": ["matillion-dpc"], "handler": "airflow_provider_dpc.assets.sanitize_uri"}],
        "extra-links": [
            "airflow_provider_dpc.links.dpc.DpcStreamingPipelineLink",
            "airflow_provider_dpc.links.dpc.DpcPipelineExecutionLink",
        ],
    }
