"""The ``matillion-dpc`` asset URI scheme: a streaming pipeline, or a published pipeline's runs, of one project.

* ``matillion-dpc://<project>/streaming-pipelines/<pipeline>``, each part an id or a name, e.g.
  ``Asset("matillion-dpc://3dda0acf-e646-4f4b-b4f6-e00449b69427/streaming-pipelines/orders-cdc")``;
* ``matillion-dpc://<project>/pipelines/<pipeline name>``, a published (orchestration or
  transformation) pipeline as it is executed, with its folder where it has one
  (``.../pipelines/orders/Load%20orders``): what an asset watcher on its runs updates.

Registered in the provider's metadata (``asset-uris``), so Airflow checks every such URI with
:func:`sanitize_uri` when a DAG declares it: a malformed one fails the DAG's parse, naming what is
wrong. A pipeline is not a dataset, so there is no OpenLineage conversion.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from urllib.parse import SplitResult

__all__ = ["SCHEME", "pipeline_uri", "published_pipeline_uri", "sanitize_uri"]

SCHEME = "matillion-dpc"
_STREAMING = "streaming-pipelines"
_PUBLISHED = "pipelines"


def pipeline_uri(project: str, pipeline: str) -> str:
    """The asset URI naming a streaming pipeline (ids or names)."""
    return f"{SCHEME}://{project}/{_STREAMING}/{pipeline}"


def published_pipeline_uri(project: str, pipeline_name: str) -> str:
    """The asset URI naming a published pipeline by the name it is executed with (``Nightly load``,
    ``orders/load``), written as :func:`sanitize_uri` writes it."""
    return f"{SCHEME}://{_canonical(project)}/{_PUBLISHED}/{_name_path(pipeline_name)}"


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Check a ``matillion-dpc`` URI and write it in canonical form (ids as canonical UUIDs, a
    published pipeline's name percent-encoded); ValueError says what is wrong."""
    shown = uri.geturl()
    if not uri.netloc:
        raise ValueError(f"{shown}: a {SCHEME} URI names the project first: {pipeline_uri('<project>', '<pipeline>')}")
    if uri.query:
        raise ValueError(f"{shown}: a {SCHEME} URI takes no query")
    kind, _, rest = uri.path.strip("/").partition("/")
    if kind == _PUBLISHED and rest and all(unquote(part).strip() for part in rest.split("/")):
        return uri._replace(netloc=_canonical(uri.netloc), path=f"/{_PUBLISHED}/{_name_path(unquote(rest))}")
    if kind == _STREAMING and rest and "/" not in rest:
        return uri._replace(netloc=_canonical(uri.netloc), path=f"/{_STREAMING}/{_canonical(rest)}")
    raise ValueError(
        f"{shown}: the path must be /{_STREAMING}/<pipeline id or name> or /{_PUBLISHED}/<published pipeline "
        f"name>, got {uri.path!r}"
    )


def _name_path(name: str) -> str:
    """A published pipeline's name in a URI path: its folders kept, every other character encoded."""
    parts = name.strip().strip("/").split("/")
    if not all(part.strip() for part in parts):
        raise ValueError(f"a published pipeline's name must not be empty or hold an empty folder, got {name!r}")
    return "/".join(quote(part, safe="") for part in parts)


def _canonical(part: str) -> str:
    try:
        return str(uuid.UUID(part))
    except ValueError:
        return part
