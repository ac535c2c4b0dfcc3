"""What the provider remembers across a task's tries and a watcher's restarts: the one place that
keeps it, in the state stores Airflow 3.3 gives (``task_state_store``, ``asset_state_store``).

- A task remembers the id of what its try made (an execution, a pipeline): :class:`TaskMemory`. A
  retry comes back to that one, read by id, instead of searching for it.
- An asset watcher remembers how far it has fired: :class:`WatchMemory`, in the state store of the
  assets it watches, so a watcher started again (a restart, a deploy, a move to another triggerer)
  goes on where the last one stopped.

Where Airflow has no such store (2.11, 3.0-3.2, or outside Airflow's runners) nothing is kept: a
retry searches as it did before the stores, and every start of a watcher is a first start.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from airflow_provider_dpc._compat import asset_state_accessors, task_state_store
from airflow_provider_dpc.exceptions import DpcNotFoundError

T = TypeVar("T")

#: The store's keys are at most this long (Airflow's column); a longer key is shortened to a digest.
_KEY_LENGTH = 512
_UNSET = object()


class TaskMemory:
    """The id a task's try made, kept under ``key`` in the task's state store as
    ``{"project_id": ..., <id_field>: ...}``, for its retries to come back to."""

    def __init__(self, context: Mapping[str, Any], key: str, id_field: str) -> None:
        self.store = task_state_store(context)
        self.key = key
        self.id_field = id_field

    def recall(self, project_id: str, read: Callable[[str, str], T]) -> T | None:
        """What an earlier try of this task kept for ``project_id``, read again by its id with
        ``read(project_id, id)``; None where nothing was kept or DPC no longer has it."""
        saved = self.store.get(self.key) if self.store is not None else None
        if not isinstance(saved, dict) or saved.get("project_id") != project_id or not saved.get(self.id_field):
            return None
        try:
            return read(project_id, str(saved[self.id_field]))
        except DpcNotFoundError:
            return None

    def keep(self, project_id: str, resource_id: str) -> None:
        if self.store is not None:
            self.store.set(self.key, {"project_id": project_id, self.id_field: resource_id})


def memory_key(kind: str, *parts: str) -> str:
    """The store key of one watch: the kind of watch and what names it, never a timing, so a
    watcher given another poll interval keeps what it remembered."""
    key = ":".join(["matillion_dpc", kind, *parts])
    if len(key) <= _KEY_LENGTH:
        return key
    return f"matillion_dpc:{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


class WatchMemory:
    """One JSON value a watcher keeps under ``key`` in the state store of each asset it watches.

    :meth:`save` writes only what changed. A store that cannot be read or written is logged, never
    raised: a watcher that cannot remember still watches, as before Airflow had the store.
    """

    def __init__(self, trigger: Any, key: str, log: logging.Logger | Any) -> None:
        self.key = key
        self.log = log
        self._stores = asset_state_accessors(trigger)
        self._saved: Any = _UNSET

    async def load(self) -> Any:
        """What the watcher kept last, or None: a first start, or no store."""
        for store in self._stores:
            try:
                value = await store.aget(self.key)
            except Exception as exc:  # the store is Airflow's: whatever it raises, watching goes on
                self.log.warning("could not read what this watcher kept (%s): %s", self.key, exc)
                continue
            if value is not None:
                self._saved = value
                return value
        return None

    async def save(self, value: Any) -> None:
        """Keep ``value`` (JSON) in place of what was kept, where it differs."""
        if not self._stores or _same(value, self._saved):
            return
        for store in self._stores:
            try:
                await store.aset(self.key, value)
            except Exception as exc:
                self.log.warning("could not keep what this watcher has seen (%s): %s", self.key, exc)
                return
        self._saved = value


def _same(value: Any, saved: Any) -> bool:
    return saved is not _UNSET and json.dumps(value, sort_keys=True) == json.dumps(saved, sort_keys=True)
