"""Where the running Airflow keeps each name and behaviour this provider relies on.

Airflow moves names between minor releases: the Task SDK's ``airflow.sdk`` took the operator bases
in 3.0, ``BaseHook`` in 3.1, ``conf`` and the exceptions in 3.2. Each name here is looked up where the
running Airflow has it, newest place first, so no release number decides an import. The one thing a
place cannot tell, whether a worker thread may talk to the supervisor, is a fact of its own below.

Every module of the provider imports these names from here, never from Airflow directly.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # mypy reads the newest Airflow's names
    from airflow.sdk import BaseHook, BaseOperator, BaseOperatorLink, BaseSensorOperator, Context, Param, conf
    from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException
    from airflow.sdk.log import mask_secret

__all__ = [
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "Context",
    "Param",
    "aextra_dejson",
    "aget_connection",
    "amask_secret",
    "asset_state_accessors",
    "conf",
    "get_xcom_value",
    "mask_secret",
    "run_moment",
    "task_state_store",
]

# name -> the modules that may hold it, newest first.
_PLACES: dict[str, tuple[str, ...]] = {
    "BaseHook": ("airflow.sdk", "airflow.hooks.base"),
    "BaseOperator": ("airflow.sdk", "airflow.models.baseoperator"),
    "BaseOperatorLink": ("airflow.sdk", "airflow.models.baseoperatorlink"),
    "BaseSensorOperator": ("airflow.sdk", "airflow.sensors.base"),
    "Context": ("airflow.sdk", "airflow.utils.context"),
    "Param": ("airflow.sdk", "airflow.models.param"),
    "conf": ("airflow.sdk", "airflow.configuration"),
    "mask_secret": ("airflow.sdk.log", "airflow.utils.log.secrets_masker"),
    "AirflowSkipException": ("airflow.sdk.exceptions", "airflow.exceptions"),
    "AirflowSensorTimeout": ("airflow.sdk.exceptions", "airflow.exceptions"),
    "XCom": ("airflow.sdk.execution_time.xcom", "airflow.models.xcom"),
    "amask_secret": ("airflow.sdk.log",),
    # This process's own masker (Airflow 3.1, 3.0), for masking without a supervisor call.
    "_secrets_masker": ("airflow.sdk._shared.secrets_masker", "airflow.sdk.execution_time.secrets_masker"),
}


def find(name: str, *places: str) -> Any:
    """``name`` from the first of ``places`` (module paths) that has it; ImportError naming them all."""
    for place in places:
        try:
            return getattr(importlib.import_module(place), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"{name} is in none of {', '.join(places)}: is this Airflow release supported?")


if not TYPE_CHECKING:
    BaseHook = find("BaseHook", *_PLACES["BaseHook"])
    BaseOperator = find("BaseOperator", *_PLACES["BaseOperator"])
    BaseOperatorLink = find("BaseOperatorLink", *_PLACES["BaseOperatorLink"])
    BaseSensorOperator = find("BaseSensorOperator", *_PLACES["BaseSensorOperator"])
    Context = find("Context", *_PLACES["Context"])
    Param = find("Param", *_PLACES["Param"])
    conf = find("conf", *_PLACES["conf"])
    mask_secret = find("mask_secret", *_PLACES["mask_secret"])
    AirflowSkipException = find("AirflowSkipException", *_PLACES["AirflowSkipException"])
    AirflowSensorTimeout = find("AirflowSensorTimeout", *_PLACES["AirflowSensorTimeout"])


def get_xcom_value(ti_key: Any, key: str) -> Any:
    """A task instance's XCom value, where an extra link reads it (Airflow's API server or webserver)."""
    xcom = find("XCom", *_PLACES["XCom"])
    return xcom.get_value(ti_key=ti_key, key=key)


# ---- when a run was due --------------------------------------------------------------------------
# Airflow 3 gives every run ``run_after``: when it was due (a scheduled or backfill run's data
# interval end or cron time, an asset-triggered run's event, a manual run's trigger time). Airflow 2
# has no such field: there a scheduled run is due at its data interval's end, a dataset-triggered
# one at its logical date (the newest event's time; its interval is the upstream run's), a manual
# one at its logical date (the interval a cron schedule infers for it may have ended days before).


def run_moment(context: Mapping[str, Any]) -> datetime:
    """When the task's run was due, timezone-aware, by one rule on every line: what a scheduled
    window opens at and what the DPC-run sensor counts from by default.

    * a manual run: its logical date where one was given (a user who names a date means that date's
      run; Airflow 3's trigger form fills in the trigger time, so a plain trigger means now), else
      when it was triggered;
    * a scheduled, catch-up or backfill run: when it was due;
    * an asset- (dataset-) triggered run: when the event came.
    """
    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    kind = str(getattr(run_type, "value", run_type) or "")  # the Task SDK's enum prints its name
    run_after = getattr(dag_run, "run_after", None)
    logical_date = context.get("logical_date")
    if kind == "manual":
        moment = logical_date or run_after
    elif run_after is not None:
        moment = run_after
    elif kind.endswith("_triggered"):
        moment = logical_date
    else:
        moment = context.get("data_interval_end") or logical_date
    if moment is None:
        raise ValueError("the task's run has no run_after, data interval or logical date to tell when it was due")
    return _aware(moment)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# ---- reading a connection inside a trigger's event loop ---------------------------------------
# A trigger must not block its event loop, and on Airflow 3 a synchronous call to the supervisor
# from the event loop's own thread fails (3.0, 3.1: asgiref refuses; 3.3: DeadlockImminentError,
# which no ``except Exception`` catches). These three functions are the safe way on every release.


@cache
def worker_threads_may_call_the_supervisor() -> bool:
    """Whether a synchronous supervisor call may run in a worker thread beside the event loop.

    Airflow 2 has no supervisor; from 3.2 its channel serializes a worker thread's send against the
    event loop's. On 3.0 and 3.1 it does not, so a send from a worker thread could interleave with
    one in flight; nothing but the release tells this apart.
    """
    import airflow

    major, minor = (int(part) for part in airflow.__version__.split(".")[:2])
    return major < 3 or (major, minor) >= (3, 2)


async def aget_connection(conn_id: str) -> Any:
    """The connection, read without blocking the event loop.

    ``BaseHook.aget_connection`` where Airflow has it (3.1+), else ``get_connection`` in a worker
    thread (Airflow 2.11 and 3.0, where that is how async hooks read connections).
    """
    if hasattr(BaseHook, "aget_connection"):
        return await BaseHook.aget_connection(conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(BaseHook.get_connection)(conn_id)


async def aextra_dejson(conn: Any) -> dict[str, Any]:
    """The connection's extra as a dict, without a synchronous supervisor call on the event loop.

    ``Connection.aextra_dejson`` where Airflow has it (3.3.2+); else ``extra_dejson`` (which masks
    the extra's secrets through the supervisor) in a worker thread where that is safe; else (3.0,
    3.1) the extra parsed as it is: Airflow masked it when it handed out the connection.
    """
    if hasattr(conn, "aextra_dejson"):
        extra: dict[str, Any] = await conn.aextra_dejson()
        return extra
    if worker_threads_may_call_the_supervisor():
        from asgiref.sync import sync_to_async

        return await sync_to_async(lambda: dict(conn.extra_dejson or {}))()
    return dict(json.loads(conn.extra)) if conn.extra else {}


async def amask_secret(secret: str) -> None:
    """Mask ``secret`` in logs from the event loop: ``amask_secret`` where Airflow has it (3.3+),
    else ``mask_secret`` in a worker thread where that is safe, else (3.0, 3.1) in this process's
    masker only, which is what masks the trigger's own log lines."""
    amask = find_or_none("amask_secret", *_PLACES["amask_secret"])
    if amask is not None:
        await amask(secret)
    elif worker_threads_may_call_the_supervisor():
        from asgiref.sync import sync_to_async

        await sync_to_async(mask_secret)(secret)
    else:
        find("_secrets_masker", *_PLACES["_secrets_masker"])().add_mask(secret)


def find_or_none(name: str, *places: str) -> Any:
    """Like :func:`find`, None where no place has it."""
    try:
        return find(name, *places)
    except ImportError:
        return None


def task_state_store(context: Mapping[str, Any]) -> Any:
    """The task's state store, kept across its tries (``get``/``set``): Airflow 3.3+'s
    ``task_state_store``; None where Airflow has none."""
    return context.get("task_state_store")


def asset_state_accessors(trigger: Any) -> list[Any]:
    """The state stores of the assets an asset watcher's trigger watches, one per asset, each with
    ``aget``/``aset``: what Airflow's triggerer gives a watcher before ``run()`` (3.3+,
    ``asset_state_store``). None before 3.3, nor for a trigger run outside a triggerer."""
    store = getattr(trigger, "asset_state_store", None)
    if store is None:
        return []
    # One accessor per asset (a trigger two assets' watchers share watches both); the mapping
    # answers aget/aset itself only when it holds one.
    each = [*getattr(store, "_by_name", {}).values(), *getattr(store, "_by_uri", {}).values()]
    return each or [store]


def base_event_trigger() -> Any:
    """Airflow 3's base of the triggers asset watchers run; None before asset watchers (2.x).
    Looked up when a trigger module loads (by the triggerer, or by a DAG that declares a watcher),
    not whenever ``_compat`` is imported."""
    return find_or_none("BaseEventTrigger", "airflow.triggers.base")


def without_event_triggers(*names: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for where this Airflow has no :func:`base_event_trigger`: importing
    one of ``names`` then says what it needs instead of that the name does not exist."""

    def __getattr__(name: str) -> Any:
        if name in names:
            raise ImportError(f"{name} needs Airflow 3's asset watchers (BaseEventTrigger); this Airflow has none")
        raise AttributeError(name)

    return __getattr__
