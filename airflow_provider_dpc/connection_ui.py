"""The ``matillion_dpc`` connection form, declared once.

Airflow 3.1+ reads it from ``get_provider_info`` without importing the hook; Airflow 2.11 and 3.0 ask the
hook's ``get_connection_form_widgets`` / ``get_ui_field_behaviour``, which build from the same data.
"""

from __future__ import annotations

from typing import Any

CONN_TYPE = "matillion_dpc"
HOOK_NAME = "Matillion DPC"
DEFAULT_CONN_NAME = f"{CONN_TYPE}_default"
DEFAULT_REGION = "eu1"
DEFAULT_TOKEN_URL = "https://id.core.matillion.com/oauth/dpc/token"
DEFAULT_AUDIENCE = "https://api.matillion.com"
DEFAULT_APP_URL = "https://app.matillion.com"

# The form shows what a DPC connection needs and hides what it never uses: schema, port and the raw
# extra JSON (every extra the hook reads has a field of its own below).
HIDDEN_FIELDS = ["schema", "port", "extra"]
RELABELING = {"host": "API base URL (optional)", "login": "Client ID", "password": "Client secret"}
PLACEHOLDERS = {
    "host": "leave empty for https://<region>.api.matillion.com/dpc",
    "login": "client ID of a DPC API credential (leave empty with a bearer token)",
    "password": "client secret of that API credential",
    "region": f"{DEFAULT_REGION}, us1 or au1 (default {DEFAULT_REGION})",
    "account_id": "optional: your DPC account ID, sent as the account-id header",
    "token": "optional: a ready bearer token, used instead of client ID and secret",
    "oauth_url": DEFAULT_TOKEN_URL,
    "audience": DEFAULT_AUDIENCE,
    "app_url": DEFAULT_APP_URL,
    "pipeline_url_template": "{app_url}/projects/{project_id}/...{pipeline_id}",
    "timeout": "30",
    "requests_per_minute": "1000",
}

# Extra fields: name -> (label, description, JSON schema). Airflow 3's form shows a schema's
# ``examples`` as suggestions; Airflow 2.11's shows the placeholders above. No field has a text
# default: the form saves a default into the extra, and Airflow 3 hands every text value of the
# extra to its secrets masker, which warns "Skipping masking for a secret as it's too short" at the
# top of every task and trigger log for one as short as a region; an empty field means the default.
EXTRA_FIELDS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "region": (
        "Region",
        f"Region of your DPC account: {DEFAULT_REGION} (Europe, the default when empty), us1 (US) or au1 "
        "(Australia). Picks the API base URL when that is empty.",
        {"type": ["string", "null"], "examples": [DEFAULT_REGION, "us1", "au1"]},
    ),
    "account_id": (
        "Account ID",
        "Optional. Your DPC account ID, sent as the account-id header on every call.",
        {"type": ["string", "null"]},
    ),
    "token": (
        "Bearer token",
        "Optional. A ready access token (like the guide's DPC_TOKEN), used instead of client ID and "
        "secret; it is not refreshed, so it fails once it expires.",
        {"type": ["string", "null"], "format": "password"},
    ),
    "oauth_url": (
        "Token URL",
        f"OAuth2 token endpoint; leave empty for {DEFAULT_TOKEN_URL}. (Its key is oauth_url, not token_url: "
        "Airflow hides the value of every extra whose key holds 'token'.)",
        {"type": ["string", "null"]},
    ),
    "audience": (
        "Audience",
        f"OAuth2 audience; leave empty for {DEFAULT_AUDIENCE}.",
        {"type": ["string", "null"]},
    ),
    "app_url": (
        "Web app URL",
        f"Base of the DPC web app, for the tasks' links; leave empty for {DEFAULT_APP_URL}.",
        {"type": ["string", "null"]},
    ),
    "pipeline_url_template": (
        "Pipeline link template",
        "Optional. Where your DPC web app shows a streaming pipeline, with {app_url}, {project_id} and "
        "{pipeline_id}; the tasks' links open the pipeline's project when this is empty.",
        {"type": ["string", "null"]},
    ),
    "timeout": (
        "Timeout (seconds)",
        "Per-request timeout; leave empty for 30.",
        {"type": ["number", "null"], "minimum": 1},
    ),
    "requests_per_minute": (
        "Requests per minute",
        "The account's API limit, which every task and trigger of a process keeps to together; leave "
        "empty for the documented 1000. Lower it when other clients share the account.",
        {"type": ["number", "null"], "minimum": 1},
    ),
    "verify": (
        "Verify TLS",
        "Verify the API's TLS certificate. Turn off only to test against a local endpoint.",
        {"type": ["boolean", "null"], "default": True},
    ),
}


def provider_connection_type() -> dict[str, Any]:
    """The connection type entry of ``get_provider_info`` (provider.yaml's declarative form)."""
    return {
        "connection-type": CONN_TYPE,
        "hook-class-name": "airflow_provider_dpc.hooks.dpc.DpcHook",
        "hook-name": HOOK_NAME,
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
