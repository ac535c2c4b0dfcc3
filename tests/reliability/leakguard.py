"""The suite-wide secret check: no client secret or access token in anything a test leaves behind.

``tests/conftest.py`` runs :func:`guard_test` around every test of the suite. It learns the secrets
as they appear:

* the client secret and any ready token of every connection the hook reads
  (``ConnectionSettings.from_connection``), and of every emulator the test uses;
* every access token the provider caches (``TOKENS.put``), every token ``EmulatorProcess.token()``
  fetches, and every token the test's emulators issued to anyone (``GET /_emulator/tokens``, read
  before each reset, restart or stop and at the end of the test).

It records what could carry them out of the task: log records of every logger (the provider's at
DEBUG), the test's captured stdout, stderr and log sections, every XCom value the provider's
operators push or return, every trigger's serialized kwargs and event payload, every provider
exception's message, and every operator's rendered template fields. At the end of the test a
secret found in any of them, raw, URL-encoded or JSON-escaped, fails the test (its message shows
where, never the secret) and is counted in the run's figures.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import re
import threading
import traceback
import unittest.mock
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest

from tests.reliability.figures import figures

MIN_SECRET_LENGTH = 8  # shorter values would match ordinary words
PROVIDER_LOGGER = "airflow_provider_dpc"
# Airflow's dag.test() harness logs, at debug level, every request a task sends its in-process
# supervisor (3.0 prints them), the request to mask a secret included: that line echoes the masking
# itself, in a harness no deployment runs, and is not searched.
_MASK_REQUEST = re.compile(r"MaskSecret\(value=(?:'[^']*'|\"[^\"]*\")")


@dataclass(frozen=True)
class Leak:
    where: str
    kind: str
    excerpt: str  # the text around the secret, with the secret replaced by ``<kind>``

    def __str__(self) -> str:
        return f"{self.kind} in {self.where}: ...{self.excerpt}..."


class LeakGuard:
    """The secrets known so far and the artifacts to search for them."""

    def __init__(self) -> None:
        self._secrets: dict[str, str] = {}
        self._artifacts: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def add_secret(self, value: object, kind: str) -> None:
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
            with self._lock:
                self._secrets.setdefault(value, kind)

    @property
    def secrets(self) -> dict[str, str]:
        with self._lock:
            return dict(self._secrets)

    @property
    def artifacts(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._artifacts)

    def record(self, where: str, value: object) -> None:
        text = _MASK_REQUEST.sub("MaskSecret(value=<being masked>", _text(value))
        if text:
            with self._lock:
                self._artifacts.append((where, text))

    def forgive(self, *secrets: str) -> None:
        """Drop what was recorded so far, and forget ``secrets`` (for tests of the guard itself)."""
        with self._lock:
            self._artifacts.clear()
            for secret in secrets:
                self._secrets.pop(secret, None)

    def scan(self) -> list[Leak]:
        leaks: list[Leak] = []
        secrets = self.secrets
        for where, text in self.artifacts:
            for secret, kind in secrets.items():
                for form in _forms(secret):
                    at = text.find(form)
                    if at >= 0:
                        before = text[max(0, at - 40) : at]
                        after = text[at + len(form) : at + len(form) + 40]
                        excerpt = _redact(f"{before}<{kind}>{after}", secrets)
                        leaks.append(Leak(where, kind, excerpt.replace("\n", " ")))
                        break
        return leaks


def _forms(secret: str) -> set[str]:
    """The secret as it would appear raw, in a URL or form body, or inside a JSON string."""
    return {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}


def _redact(text: str, secrets: dict[str, str]) -> str:
    for secret, kind in secrets.items():
        for form in _forms(secret):
            text = text.replace(form, f"<{kind}>")
    return text


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    parts = [repr(value)]
    with contextlib.suppress(Exception):
        parts.append(json.dumps(value, default=repr, ensure_ascii=False))
    return "\n".join(parts)


class _LogRecorder(logging.Handler):
    def __init__(self, guard: LeakGuard) -> None:
        super().__init__(logging.NOTSET)
        self.guard = guard

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.guard.record(f"log record of {record.name}", text)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


# ---- instrumentation ----------------------------------------------------------------------------


class _Instruments:
    """Wrappers installed for one test and undone after it."""

    def __init__(self, guard: LeakGuard, mp: pytest.MonkeyPatch) -> None:
        self.guard = guard
        self.mp = mp
        self.emulators: list[Any] = []
        self._ti_classes: set[type] = set()

    def install(self) -> None:
        self._protocol()
        self._exceptions()
        self._emulator()
        if importlib.util.find_spec("airflow") is not None:
            self._airflow_side()

    # secrets the hook sees

    def _protocol(self) -> None:
        from airflow_provider_dpc.hooks import _protocol

        guard = self.guard
        from_connection = _protocol.ConnectionSettings.from_connection

        def from_connection_recorded(cls: type, conn: Any, extra: Any = None) -> Any:
            guard.add_secret(getattr(conn, "password", None), "client secret")
            with contextlib.suppress(Exception):
                for key in ("token", "extra__matillion_dpc__token"):
                    guard.add_secret((extra if extra is not None else conn.extra_dejson or {}).get(key), "access token")
            settings = from_connection(conn, extra)
            guard.add_secret(settings.client_secret, "client secret")
            guard.add_secret(settings.static_token, "access token")
            return settings

        self.mp.setattr(_protocol.ConnectionSettings, "from_connection", classmethod(from_connection_recorded))

        put = _protocol.TOKENS.put

        def put_recorded(key: Any, value: str, expires_in: float) -> None:
            guard.add_secret(value, "access token")
            put(key, value, expires_in)

        self.mp.setattr(_protocol.TOKENS, "put", put_recorded)

    def _exceptions(self) -> None:
        from airflow_provider_dpc import exceptions

        guard = self.guard

        base: Any = exceptions.DpcError

        def init(error: Any, *args: Any, **kwargs: Any) -> None:
            super(base, error).__init__(*args, **kwargs)
            guard.record(f"message of a {type(error).__name__}", error)

        self.mp.setattr(exceptions.DpcError, "__init__", init)

    def _emulator(self) -> None:
        from airflow_provider_dpc.emulator import process

        cls = process.EmulatorProcess
        token, start = cls.token, cls.start

        def token_recorded(emulator: Any) -> str:
            value: str = token(emulator)
            self.guard.add_secret(value, "access token")
            return value

        def start_recorded(emulator: Any) -> Any:
            result = start(emulator)
            self.emulators.append(emulator)
            self.harvest(emulator)
            return result

        self.mp.setattr(cls, "token", token_recorded)
        self.mp.setattr(cls, "start", start_recorded)
        for name in ("reset", "restart", "stop"):
            self.mp.setattr(cls, name, self._harvest_first(getattr(cls, name)))

    def _harvest_first(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(emulator: Any, *args: Any, **kwargs: Any) -> Any:
            self.harvest(emulator)
            return method(emulator, *args, **kwargs)

        return wrapper

    def harvest(self, emulator: Any) -> None:
        """Learn an emulator's client secret and every token it has issued."""
        self.guard.add_secret(getattr(emulator, "client_secret", None), "client secret")
        if not getattr(emulator, "running", False):
            return
        try:
            response = httpx.get(f"{emulator.admin_url}/tokens", timeout=5.0)
            tokens = response.json().get("tokens", []) if response.status_code == 200 else []
        except (httpx.HTTPError, ValueError, AttributeError):
            return
        for value in tokens:
            self.guard.add_secret(value, "access token")

    # what the tasks hand to Airflow

    def _airflow_side(self) -> None:
        from airflow_provider_dpc.operators import streaming_pipeline as operators
        from airflow_provider_dpc.sensors import streaming_pipeline as sensors
        from airflow_provider_dpc.triggers import streaming_pipeline as triggers

        guard = self.guard
        trigger_cls = triggers.DpcStreamingPipelineTrigger
        serialize = trigger_cls.serialize

        def serialize_recorded(trigger: Any) -> Any:
            result = serialize(trigger)
            guard.record("serialized trigger kwargs", result)
            return result

        self.mp.setattr(trigger_cls, "serialize", serialize_recorded)
        trigger_init = trigger_cls.__init__

        def trigger_init_recorded(trigger: Any, *args: Any, **kwargs: Any) -> None:
            trigger_init(trigger, *args, **kwargs)
            guard.record("trigger kwargs", serialize(trigger))

        self.mp.setattr(trigger_cls, "__init__", trigger_init_recorded)
        event_cls = getattr(triggers, "TriggerEvent", None)
        if event_cls is not None:

            def event_recorded(payload: Any, *args: Any, **kwargs: Any) -> Any:
                guard.record("trigger event payload", payload)
                return event_cls(payload, *args, **kwargs)

            self.mp.setattr(triggers, "TriggerEvent", event_recorded)

        tasks = [
            value
            for module in (operators, sensors)
            for value in vars(module).values()
            if isinstance(value, type) and value.__module__ == module.__name__ and hasattr(value, "execute")
        ]
        owners: dict[tuple[type, str], None] = {}
        for task in tasks:
            for owner in task.__mro__:
                if owner.__module__.startswith("airflow_provider_dpc"):
                    for name in ("execute", "execute_complete", "poke"):
                        if name in owner.__dict__:
                            owners[(owner, name)] = None
        for owner, name in owners:
            self.mp.setattr(owner, name, self._task_method(owner.__dict__[name], name))

    def _task_method(self, method: Callable[..., Any], name: str) -> Callable[..., Any]:
        guard = self.guard

        def wrapper(task: Any, *args: Any, **kwargs: Any) -> Any:
            context = args[0] if args else kwargs.get("context")
            self._watch_xcom(context)
            for field in getattr(task, "template_fields", ()):
                guard.record(f"rendered template field {field} of {task.task_id}", getattr(task, field, None))
            result = method(task, *args, **kwargs)
            guard.record(f"XCom return value of {task.task_id}.{name}", result)
            return result

        wrapper.__name__ = getattr(method, "__name__", name)
        wrapper.__doc__ = method.__doc__
        return wrapper

    def _watch_xcom(self, context: Any) -> None:
        try:
            ti = context["ti"]
        except Exception:
            return
        cls = type(ti)
        if ti is None or isinstance(ti, unittest.mock.NonCallableMock) or cls in self._ti_classes:
            return
        push = getattr(cls, "xcom_push", None)
        if push is None:
            return
        guard = self.guard

        def xcom_push(instance: Any, *args: Any, **kwargs: Any) -> Any:
            guard.record("XCom pushed", {"args": args, "kwargs": kwargs})
            return push(instance, *args, **kwargs)

        try:
            self.mp.setattr(cls, "xcom_push", xcom_push)
        except (AttributeError, TypeError):
            return
        self._ti_classes.add(cls)


# ---- the fixture body ---------------------------------------------------------------------------


def guard_test(request: pytest.FixtureRequest) -> Iterator[LeakGuard]:
    """Run one test under the guard; fail it if a secret leaked. Yields the guard."""
    guard = LeakGuard()
    mp = pytest.MonkeyPatch()
    instruments = _Instruments(guard, mp)
    recorder = _LogRecorder(guard)
    root, provider = logging.getLogger(), logging.getLogger(PROVIDER_LOGGER)
    provider_level = provider.level
    try:
        instruments.install()
        root.addHandler(recorder)
        provider.setLevel(logging.DEBUG)
        yield guard
    finally:
        provider.setLevel(provider_level)
        root.removeHandler(recorder)
        mp.undo()
    from airflow_provider_dpc.emulator import EmulatorProcess

    used = [value for value in request.node.funcargs.values() if isinstance(value, EmulatorProcess)]
    for emulator in dict.fromkeys([*used, *instruments.emulators]):
        instruments.harvest(emulator)
    for when, key, content in getattr(request.node, "_report_sections", []):
        guard.record(f"captured {key} ({when})", content)

    leaks = guard.scan()
    counts = figures(request.config)
    counts.tests_guarded += 1
    counts.artifacts_scanned += len(guard.artifacts)
    counts.secrets_tracked.update(_hash(secret) for secret in guard.secrets)
    if leaks:
        counts.leaks += len(leaks)
        counts.leaking_tests.append(request.node.nodeid)
        shown = "\n".join(f"  {leak}" for leak in leaks[:10])
        pytest.fail(f"{len(leaks)} secret(s) leaked:\n{shown}", pytrace=False)
