"""The ``matillion-dpc`` asset URI scheme: one streaming pipeline of one project.

``matillion-dpc://<project>/streaming-pipelines/<pipeline>``, each part an id or a name, e.g.
``Asset("matillion-dpc://3dda0acf-e646-4f4b-b4f6-e00449b69427/streaming-pipelines/orders-cdc")``.
Registered in the provider's metadata (``asset-uris``), so Airflow checks every such URI with
:func:`sanitize_uri` when a DAG declares it: a malformed one fails the DAG's parse, naming what is
wrong. A pipeline is not a dataset, so there is no OpenLineage conversion.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from urllib.parse import SplitResult

__all__ = ["SCHEME", "pipeline_uri", "sanitize_uri"]

SCHEME = "matillion-dpc"
_RESOURCE = "streaming-pipelines"


def pipeline_uri(project: str, pipeline: str) -> str:
    """The asset URI naming a streaming pipeline (ids or names)."""
    return f"{SCHEME}://{project}/{_RESOURCE}/{pipeline}"


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Check a ``matillion-dpc`` URI and write its ids in canonical form; ValueError says what is wrong."""
    shown = uri.geturl()
    if not uri.netloc:
        raise ValueError(f"{shown}: a {SCHEME} URI names the project first: {pipeline_uri('<project>', '<pipeline>')}")
    parts = uri.path.strip("/").split("/")
    if len(parts) != 2 or parts[0] != _RESOURCE or not parts[1]:
        raise ValueError(f"{shown}: the path must be /{_RESOURCE}/<pipeline id or name>, got {uri.path!r}")
    if uri.query:
        raise ValueError(f"{shown}: a {SCHEME} URI takes no query")
    return uri._replace(netloc=_canonical(uri.netloc), path=f"/{_RESOURCE}/{_canonical(parts[1])}")


def _canonical(part: str) -> str:
    try:
        return str(uuid.UUID(part))
    except ValueError:
        return part
