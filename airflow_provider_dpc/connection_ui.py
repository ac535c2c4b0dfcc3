"""The ``matillion_dpc`` connection form, declared once.

Airflow 3.2+ reads it from ``get_provider_info`` without importing the hook; Airflow 2.11 asks the
hook's ``get_connection_form_widgets`` / ``get_ui_field_behaviour``, which build from the same data.
"""

from __future__ import annotations

from typing import Any

DEFAULT_REGION = "eu1"
DEFAULT_TOKEN_URL = "https://id.core.matillion.com/oauth/dpc/token"
DEFAULT_AUDIENCE = "https://api.matillion.com"
DEFAULT_APP_URL = "https://app.matillion.com"

HIDDEN_FIELDS = ["schema", "port", "extra"]
RELABELING = {"host": "API base URL", "login": "Client ID", "password": "Client secret"}
PLACEHOLDERS = {
    "host": "https://eu1.api.matillion.com/dpc (leave empty to use the region)",
    "login": "OAuth client id of a DPC API credential",
    "password": "its client secret",
}

# Extra fields: name -> (label, description, JSON schema).
EXTRA_FIELDS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "region": (
        "Region",
        "DPC region of the account (eu1, us1, au1), used when the API base URL is empty.",
        {"type": ["string", "null"], "default": DEFAULT_REGION},
    ),
    "account_id": (
        "Account ID",
        "Optional; sent as the account-id header on every call.",
        {"type": ["string", "null"]},
    ),
    "token": (
        "Bearer token",
        "A ready access token, used instead of client id and secret.",
        {"type": ["string", "null"], "format": "password"},
    ),
    "token_url": (
        "Token URL",
        f"OAuth2 token endpoint; default {DEFAULT_TOKEN_URL}.",
        {"type": ["string", "null"]},
    ),
    "audience": (
        "Audience",
        f"OAuth2 audience; default {DEFAULT_AUDIENCE}.",
        {"type": ["string", "null"]},
    ),
    "app_url": (
        "Web app URL",
        f"Base of the DPC web app, for the tasks' links to their pipeline; default {DEFAULT_APP_URL}.",
        {"type": ["string", "null"]},
    ),
    "timeout": (
        "Timeout (seconds)",
        "Per-request timeout; default 30.",
        {"type": ["number", "null"], "minimum": 1},
    ),
    "verify": (
        "Verify TLS",
        "Verify the API's TLS certificate (false, or a CA bundle path, only for testing).",
        {"type": ["boolean", "null"], "default": True},
    ),
}


def provider_connection_type() -> dict[str, Any]:
    """The connection type entry of ``get_provider_info`` (provider.yaml's declarative form)."""
    return {
        "connection-type": "matillion_dpc",
        "hook-class-name": "airflow_provider_dpc.hooks.dpc.DpcHook",
        "hook-name": "Matillion DPC",
        "ui-field-behaviour": {
            "hidden-fields": HIDDEN_FIELDS,
            "relabeling": RELABELING,
            "placeholders": PLACEHOLDERS,
        },
        "conn-fields": {
            name: {"label": label, "description": description, "schema": schema}
            for name, (label, description, schema) in EXTRA_FIELDS.items()
        },
    }


def form_widgets() -> dict[str, Any]:
    """wtforms widgets for Airflow 2.11's connection form."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, PasswordField, StringField

    widgets: dict[str, Any] = {}
    for name, (label, description, schema) in EXTRA_FIELDS.items():
        kinds = schema["type"]
        if "boolean" in kinds:
            field: Any = BooleanField(lazy_gettext(label), description=description, default=True)
        elif schema.get("format") == "password":
            field = PasswordField(lazy_gettext(label), widget=BS3PasswordFieldWidget(), description=description)
        else:
            field = StringField(lazy_gettext(label), widget=BS3TextFieldWidget(), description=description)
        widgets[name] = field
    return widgets


def ui_field_behaviour() -> dict[str, Any]:
    return {"hidden_fields": HIDDEN_FIELDS, "relabeling": RELABELING, "placeholders": PLACEHOLDERS}
