"""One import site for what moved between Airflow 2.11 and Airflow 3 (the Task SDK)."""

from __future__ import annotations

# ruff: noqa: F401
try:
    from airflow.sdk import BaseHook, BaseOperator, BaseOperatorLink, BaseSensorOperator, Context, conf
    from airflow.sdk.log import mask_secret

    AIRFLOW_V3 = True
except ImportError:  # Airflow 2.11
    from airflow.configuration import conf  # type: ignore
    from airflow.hooks.base import BaseHook  # type: ignore
    from airflow.models import BaseOperator, BaseOperatorLink  # type: ignore
    from airflow.sensors.base import BaseSensorOperator  # type: ignore
    from airflow.utils.context import Context  # type: ignore
    from airflow.utils.log.secrets_masker import mask_secret  # type: ignore

    AIRFLOW_V3 = False

try:
    from airflow.sdk.exceptions import AirflowSkipException
except ImportError:  # Airflow 2.11
    from airflow.exceptions import AirflowSkipException  # type: ignore


async def aget_connection(conn_id: str) -> object:
    """Read a connection without blocking the triggerer's event loop."""
    if AIRFLOW_V3:
        return await BaseHook.aget_connection(conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(BaseHook.get_connection)(conn_id)
