"""A local emulator of the Matillion Data Productivity Cloud API for streaming pipelines.

It serves the DPC guide's requests and answers, an OAuth2 token endpoint, admin routes to inspect
and steer it, and injectable faults, so the provider can be developed and tested without a DPC
account. Run it with ``python -m airflow_provider_dpc.emulator``; tests use :class:`EmulatorProcess`.
It needs only FastAPI, uvicorn, httpx and pydantic, never Airflow.
"""

from airflow_provider_dpc.emulator.app import create_app
from airflow_provider_dpc.emulator.config import EmulatorConfig
from airflow_provider_dpc.emulator.process import EmulatorProcess

__all__ = ["EmulatorConfig", "EmulatorProcess", "create_app"]
