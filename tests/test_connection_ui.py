"""The ``matillion_dpc`` connection form explains itself, as Airflow's UI receives it.

Checked through Airflow's own ``ProvidersManager`` on Airflow 3 (which reads the declarative
``conn-fields`` and ``ui-field-behaviour`` of ``get_provider_info`` without importing the hook) and
on Airflow 2.11 (which asks the hook's ``get_connection_form_widgets`` and
``get_ui_field_behaviour``); on Airflow 3 also through the API server's ``/ui/connections/hook_meta``
service, and on Airflow 2.11 through the webserver's connection form class.
"""

from __future__ import annotations

import json
import warnings
from importlib.util import find_spec
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_dpc.connection_ui import EXTRA_FIELDS, PLACEHOLDERS
from airflow_provider_dpc.hooks._protocol import ConnectionSettings

pytestmark = pytest.mark.every_line

# Which connection form the running Airflow has: the API server's React form fed by hook_meta
# (Airflow 3), or the webserver's Flask form built from the hook's methods (Airflow 2.11).
HOOK_META = find_spec("airflow.api_fastapi") is not None
FLASK_FORM = find_spec("airflow.www") is not None

CONN_TYPE = "matillion_dpc"
PREFIX = f"extra__{CONN_TYPE}__"
# What a user must be able to tell from the form alone.
LABELS = {
    "region": "Region",
    "token": "Bearer token",
    "account_id": "Account ID",
    "oauth_url": "Token URL",
    "audience": "Audience",
    "app_url": "Web app URL",
    "pipeline_url_template": "Pipeline link template",
    "timeout": "Timeout (seconds)",
    "requests_per_minute": "Requests per minute",
    "verify": "Verify TLS",
}


@pytest.fixture(scope="module")
def providers() -> Any:
    from airflow.providers_manager import ProvidersManager

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manager = ProvidersManager()
        manager.connection_form_widgets  # noqa: B018 - loads the form metadata
        manager.field_behaviours  # noqa: B018
    skip_without_a_form(manager)
    return manager


def skip_without_a_form(manager: Any) -> None:
    """Skip where this Airflow cannot build any provider's form: one that asks the hook for wtforms
    fields (2.11, 3.0) while wtforms is not installed (Airflow 3.0 has it with the FAB provider)."""
    if CONN_TYPE not in manager.field_behaviours and find_spec("wtforms") is None:
        pytest.skip(
            "this Airflow builds connection forms from the hooks' wtforms fields, and wtforms is not "
            "installed (install apache-airflow-providers-fab)"
        )


def test_the_connection_type_is_registered(providers: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Airflow 3 points to the Task SDK's copy of the same data
        hook = providers.hooks[CONN_TYPE]
    assert hook.hook_name == "Matillion DPC"
    assert hook.package_name == "airflow-provider-dpc"
    assert hook.connection_testable


def test_standard_fields_are_relabelled_hidden_and_explained(providers: Any) -> None:
    behaviour = providers.field_behaviours[CONN_TYPE]
    assert behaviour["hidden_fields"] == ["schema", "port", "extra"]
    assert behaviour["relabeling"] == {
        "host": "API base URL (optional)",
        "login": "Client ID",
        "password": "Client secret",
    }
    placeholders = behaviour["placeholders"]
    assert placeholders["host"] == "leave empty for https://<region>.api.matillion.com/dpc"
    assert "client ID" in placeholders["login"]
    assert "bearer token" in placeholders["login"]
    assert "client secret" in placeholders["password"]


def test_extra_fields_have_prefixed_placeholders(providers: Any) -> None:
    # Airflow keeps every extra field in one namespace, prefixed with the connection type.
    placeholders = providers.field_behaviours[CONN_TYPE]["placeholders"]
    for name in ("region", "token", "account_id", "oauth_url", "audience", "app_url", "timeout"):
        assert placeholders[PREFIX + name] == PLACEHOLDERS[name]
    assert "eu1" in placeholders[PREFIX + "region"]
    assert "us1" in placeholders[PREFIX + "region"]
    assert "instead of client ID and secret" in placeholders[PREFIX + "token"]
    assert "account-id header" in placeholders[PREFIX + "account_id"]


def _label(widget: Any) -> str:
    if isinstance(widget.field, dict):  # Airflow 3: the declarative conn-fields, in the API's form
        return str(widget.field["schema"]["title"])
    return str(widget.field.args[0])  # Airflow 2.11: a wtforms UnboundField(label, ...)


def _description(widget: Any) -> str:
    if isinstance(widget.field, dict):
        return str(widget.field["description"])
    return str(widget.field.kwargs["description"])


def test_extra_fields_are_labelled_and_described(providers: Any) -> None:
    widgets = {k.removeprefix(PREFIX): v for k, v in providers.connection_form_widgets.items() if k.startswith(PREFIX)}
    assert set(widgets) == set(EXTRA_FIELDS)
    assert {name: _label(widget) for name, widget in widgets.items()} == LABELS
    for name, widget in widgets.items():
        assert widget.package_name == "airflow-provider-dpc"
        assert widget.field_name == name
        assert _description(widget), name
    assert "eu1" in _description(widgets["region"])
    assert "used instead of client ID and secret" in _description(widgets["token"])


def should_hide_value_for_key(name: str) -> bool:
    """The running Airflow's own test of whether it masks an extra's value (by its key)."""
    from airflow_provider_dpc._compat import find

    places = ("airflow.sdk._shared.secrets_masker", "airflow.sdk.execution_time.secrets_masker")
    return bool(find("should_hide_value_for_key", *places, "airflow.utils.log.secrets_masker")(name))


def test_airflow_masks_only_the_token_extra() -> None:
    # Its list of sensitive words matches parts of keys: "token_url" was masked, showing *** in the
    # form and in every message naming the token endpoint.
    assert {name for name in EXTRA_FIELDS if should_hide_value_for_key(name)} == {"token"}
    assert should_hide_value_for_key("token_url")  # why the endpoint's key is oauth_url


def test_the_old_token_url_key_is_still_read() -> None:
    old = ConnectionSettings.from_connection(connection(token_url="https://id.example.com/old"))
    assert old.token_url == "https://id.example.com/old"
    both = connection(token_url="https://id.example.com/old", oauth_url="https://id.example.com/new")
    assert ConnectionSettings.from_connection(both).token_url == "https://id.example.com/new"


def test_no_short_text_default() -> None:
    # What the form saves when left as it is goes into the extra, whose every text value Airflow 3
    # hands to its secrets masker; one shorter than the masker's minimum logs a warning in every task.
    for name, (_, _, schema) in EXTRA_FIELDS.items():
        default = schema.get("default")
        assert not isinstance(default, str), f"{name} has a text default, {default!r}"


def test_only_the_token_is_sensitive(providers: Any) -> None:
    sensitive = {
        k.removeprefix(PREFIX)
        for k, v in providers.connection_form_widgets.items()
        if k.startswith(PREFIX) and v.is_sensitive
    }
    assert sensitive == {"token"}


@pytest.mark.skipif(not HOOK_META, reason="this Airflow has no API server, so no hook_meta service")
def test_airflow3_connection_form_metadata(providers: Any) -> None:
    """What ``GET /ui/connections/hook_meta`` sends the React connection form."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == CONN_TYPE]
    data = json.loads(meta.model_dump_json())
    assert data["hook_name"] == "Matillion DPC"
    assert data["hook_class_name"] == "airflow_provider_dpc.hooks.dpc.DpcHook"
    standard = data["standard_fields"]
    assert standard["url_schema"]["hidden"] is True
    assert standard["port"]["hidden"] is True
    assert standard["host"] == {
        "hidden": False,
        "title": "API base URL (optional)",
        "placeholder": "leave empty for https://<region>.api.matillion.com/dpc",
    }
    assert standard["login"]["title"] == "Client ID"
    assert standard["login"]["placeholder"] == PLACEHOLDERS["login"]
    assert standard["password"]["title"] == "Client secret"
    assert standard["password"]["placeholder"] == PLACEHOLDERS["password"]

    extra = data["extra_fields"]
    assert set(extra) == set(EXTRA_FIELDS)
    assert {name: field["schema"]["title"] for name, field in extra.items()} == LABELS
    # The React form offers a string field's schema examples as suggestions.
    assert extra["region"]["schema"]["examples"] == ["eu1", "us1", "au1"]
    assert extra["region"]["value"] is None  # saved empty, which is eu1: see test_no_short_text_default
    assert extra["token"]["schema"]["format"] == "password"
    assert extra["token"]["value"] is None
    assert extra["verify"]["schema"]["type"] == ["boolean", "null"]
    assert extra["timeout"]["schema"]["type"] == ["number", "null"]


@pytest.mark.skipif(not HOOK_META, reason="this Airflow's Flask form always asks the hook")
def test_airflow3_reads_the_form_without_the_hooks_deprecated_methods(recwarn: pytest.WarningsRecorder) -> None:
    from airflow.providers_manager import ProvidersManager

    provider = ProvidersManager().providers["airflow-provider-dpc"]
    ProvidersManager()._import_hook(connection_type=CONN_TYPE, provider_info=provider)  # type: ignore[attr-defined]
    assert not [w for w in recwarn if "get_connection_form_widgets" in str(w.message)]


@pytest.mark.skipif(not FLASK_FORM, reason="this Airflow has no Flask webserver, so no Flask connection form")
def test_airflow2_connection_form_class(providers: Any) -> None:
    from airflow.www.forms import create_connection_form_class
    from wtforms import BooleanField, PasswordField, StringField

    form = create_connection_form_class()
    fields = {name: getattr(form, PREFIX + name) for name in EXTRA_FIELDS}
    assert fields["token"].field_class is PasswordField
    assert fields["verify"].field_class is BooleanField
    assert fields["region"].field_class is StringField
    assert str(fields["region"].args[0]) == "Region"
    choices = dict(form.conn_type.kwargs["choices"])
    assert choices[CONN_TYPE] == "Matillion DPC"
    # The page's script applies the behaviour JSON to the fields by id.
    behaviour = json.loads(json.dumps(providers.field_behaviours))[CONN_TYPE]
    assert behaviour["placeholders"][PREFIX + "token"] == PLACEHOLDERS["token"]


# ---- every field on the form does what its label says -------------------------------------------


def connection(login: str | None = "client", password: str | None = "secret-value", **extra: Any) -> Any:
    return SimpleNamespace(conn_id="dpc", host=None, login=login, password=password, extra_dejson=extra)


def test_every_extra_field_is_read_by_the_hook() -> None:
    settings = ConnectionSettings.from_connection(
        connection(
            region="us1",
            account_id="acc-1",
            oauth_url="https://id.example.com/token",
            audience="https://aud.example.com",
            app_url="https://app.example.com",
            pipeline_url_template="{app_url}/x/{pipeline_id}",
            timeout="12",
            requests_per_minute="600",
            verify=False,
        )
    )
    assert settings.base_url == "https://us1.api.matillion.com/dpc"
    assert settings.account_id == "acc-1"
    assert settings.client_options()["headers"]["account-id"] == "acc-1"
    assert settings.token_url == "https://id.example.com/token"
    assert settings.audience == "https://aud.example.com"
    assert settings.app_url == "https://app.example.com"
    assert settings.pipeline_url_template == "{app_url}/x/{pipeline_id}"
    assert settings.timeout == 12
    assert settings.requests_per_minute == 600
    assert settings.verify is False
    token = ConnectionSettings.from_connection(connection(login=None, password=None, token="ready-token-value"))
    assert token.static_token == "ready-token-value"
    assert set(EXTRA_FIELDS) == {
        "region",
        "account_id",
        "token",
        "oauth_url",
        "audience",
        "app_url",
        "pipeline_url_template",
        "timeout",
        "requests_per_minute",
        "verify",
    }


def test_the_forms_defaults_are_the_hooks_defaults() -> None:
    defaults = ConnectionSettings.from_connection(connection())
    assert defaults.base_url == "https://eu1.api.matillion.com/dpc"
    assert "default" not in EXTRA_FIELDS["region"][2]  # an empty field is eu1 (see test_no_short_text_default)
    assert defaults.token_url == PLACEHOLDERS["oauth_url"]
    assert defaults.audience == PLACEHOLDERS["audience"]
    assert defaults.app_url == PLACEHOLDERS["app_url"]
    assert str(int(defaults.timeout)) == PLACEHOLDERS["timeout"]
    assert str(int(defaults.requests_per_minute)) == PLACEHOLDERS["requests_per_minute"]
    assert defaults.verify is True
    assert EXTRA_FIELDS["verify"][2]["default"] is True


def test_a_connection_saved_by_the_airflow2_form_is_read() -> None:
    # Airflow 2's form may save extras under their prefixed names.
    settings = ConnectionSettings.from_connection(
        connection(login=None, password=None, **{PREFIX + "region": "au1", PREFIX + "token": "form-token-value"})
    )
    assert settings.base_url == "https://au1.api.matillion.com/dpc"
    assert settings.static_token == "form-token-value"


# ---- what a task logs when it reads the connection ----------------------------------------------

TOO_SHORT = "Skipping masking for a secret as it's too short"
READ_CONNECTION = "from airflow_provider_dpc.hooks.dpc import DpcHook; print(DpcHook().list_projects()[0].id)"


def read_connection_in_a_fresh_process(emulator: Any, extra: dict[str, Any]) -> str:
    """What a fresh process (as each Airflow 3 task is) logs reading the connection and calling the API."""
    import os
    import subprocess
    import sys

    fields = emulator.connection_fields()
    fields["extra"] = {**extra, **fields["extra"]}  # the token endpoint is the emulator's
    env = {**os.environ, "AIRFLOW_CONN_MATILLION_DPC_DEFAULT": json.dumps(fields)}
    done = subprocess.run([sys.executable, "-c", READ_CONNECTION], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


@pytest.mark.slow
def test_the_forms_untouched_fields_log_no_too_short_warning(fresh_emulator: Any) -> None:
    # The extra as the form saves it when only the credentials are filled in: every field at its default.
    untouched = {name: schema.get("default") for name, (_, _, schema) in EXTRA_FIELDS.items()}
    assert TOO_SHORT not in read_connection_in_a_fresh_process(fresh_emulator, untouched)


@pytest.mark.slow
@pytest.mark.skipif(not HOOK_META, reason="Airflow 2.11's masker does not warn about short values")
def test_the_warning_is_seen_where_airflow_logs_it(fresh_emulator: Any) -> None:
    # The region saved by the form before (eu1): Airflow 3 warns, so the test above could see it.
    assert TOO_SHORT in read_connection_in_a_fresh_process(fresh_emulator, {"region": "eu1"})
