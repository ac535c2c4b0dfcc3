"""A minimal, fast stand-in for the DPC API, for the triggerer benchmark: ``python -m benchmarks.server``.

The emulator (Starlette and uvicorn) answers a status read in about a millisecond of its own CPU,
so a burst of 1,000 polls would queue for a second and blur the detection delay being measured.
This server is raw asyncio (uvloop when installed) and answers only what the benchmark sends:

* ``POST /oauth/dpc/token``: a client-credentials grant (any credentials), counted;
* ``GET /dpc/v1/projects/{p}/streaming-pipelines/{id}/status``: ``NOT_RUNNING`` until the
  pipeline is sent START (or marked started), then ``SNAPSHOTTING`` until its flip moment and
  ``STREAMING`` from then on. A request carrying ``x-bench-not-ready: 404`` gets a 404 before the
  flip instead, which is what ``HttpSensorTrigger`` waits through;
* ``POST .../commands``: ``START`` marks the pipeline started;
* ``GET /dpc/v1/pipeline-executions?pipelineName=NAME``: one execution of that published pipeline,
  flat as the service lists it, started a minute before its flip moment: ``RUNNING`` until then,
  ``SUCCESS`` from then on (what ``DpcPipelineExecutionEventTrigger`` watchers wait for; the flip
  moments are keyed by the pipeline's name), and the pipeline's runs put by ``PUT /_bench/runs``;
* ``GET /dpc/v1/pipeline-executions`` without ``pipelineName``: the project's whole list, what
  Airflow 3.3's shared stream of those watchers reads: every ``bench-run-*`` flip's execution and
  every run put, newest start first. Both forms keep only executions started after ``startedAfter``
  (and, for runs, already started) and answer in pages of ``limit`` (100 unless given), each but
  the last with a ``more`` token that ``paginationToken`` sends back;
* ``GET /_bench/stats``, ``POST /_bench/reset`` (counters, flips and runs; tokens and started
  pipelines stay), ``PUT /_bench/schedule`` (``{"default": epoch, "at": {pipeline_id: epoch}}``),
  ``PUT /_bench/runs`` (``[{"pipelineName": NAME, "startedAt": epoch, "finishedAt": epoch}]``: each
  listed from its start, ``RUNNING`` until its end, ``SUCCESS`` from then on),
  ``PUT /_bench/started`` (a list of pipeline ids) and ``PUT /_bench/rate_limit``
  (``{"limit": N, "window": seconds}``) to steer and observe it.

The stats count every executions list request (``GET executions``) and, among them, those of the
project's whole list (``GET executions, project-wide``) and those asking for a page after the first
(``GET executions, next page``), so a benchmark can tell reads from pages.

With a rate limit set, API requests beyond it get the emulator's answer, 429 with ``Retry-After``,
from the emulator's own limiter (``airflow_provider_dpc.emulator.ratelimit``), whose counters the
stats carry.

API routes need a bearer token it issued. It prints ``listening on http://HOST:PORT`` once it
accepts connections and exits when its parent process does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import time
import urllib.parse
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any, NamedTuple

from airflow_provider_dpc.emulator.ratelimit import RateLimiter

READY_LINE = "listening on"
API_PREFIX = b"/dpc/v1/projects/"
EXECUTIONS = "/dpc/v1/pipeline-executions"
REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    404: b"Not Found",
    405: b"Method Not Allowed",
    429: b"Too Many Requests",
}
_JSON = b"application/json"
_MAX_HEAD = 64 * 1024
#: A page of the executions list when the request names no ``limit`` (the hook always names 100).
PAGE_SIZE = 100
#: Flips keyed by such a name are a published pipeline's execution; the others, streaming pipelines'
#: ids, are no execution, so the project's whole list leaves them out.
RUN_PREFIX = "bench-run-"


class Run(NamedTuple):
    """One execution of a published pipeline: listed from ``start``, RUNNING until ``end``, SUCCESS
    from then on (epoch seconds)."""

    name: str
    start: float
    end: float
    execution_id: str


class State:
    """Tokens, counters, the moment each pipeline turns STREAMING (epoch seconds) and the runs of
    published pipelines the executions list shows."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.started: set[str] = set()
        self.limiter = RateLimiter()
        self.reset()

    def reset(self) -> None:
        self.token_grants = 0
        self.requests: Counter[str] = Counter()
        self.default_flip = math.inf
        self.flips: dict[str, float] = {}
        self.runs: list[Run] = []
        self.connections_opened = 0
        self.connections_closed = 0
        self.limiter = RateLimiter(self.limiter.limit, self.limiter.window, started=time.monotonic())

    def stats(self) -> dict[str, Any]:
        return {
            "token_grants": self.token_grants,
            "requests": dict(self.requests),
            "status_reads": self.requests["GET status"],
            "commands": self.requests["POST commands"],
            "connections_opened": self.connections_opened,
            "connections_closed": self.connections_closed,
            "rate_limit": self.limiter.stats(),
        }

    def flip_at(self, pipeline_id: str) -> float:
        return self.flips.get(pipeline_id, self.default_flip)


STATE = State()


def _response(status: int, body: bytes = b"", content_type: bytes = _JSON, close: bool = False) -> bytes:
    head = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n" % (
        status,
        REASONS.get(status, b"Error"),
        content_type,
        len(body),
    )
    if status == 429:
        head += b"retry-after: %s\r\n" % json.loads(body)["retryAfter"].encode()
    if close:
        head += b"connection: close\r\n"
    return head + b"\r\n" + body


def _problem(status: int, detail: str) -> bytes:
    return json.dumps({"status": status, "title": REASONS.get(status, b"Error").decode(), "detail": detail}).encode()


def handle(method: str, path: str, headers: dict[bytes, bytes], body: bytes) -> tuple[int, bytes]:
    """Answer one request: ``(status, JSON body)``."""
    path, _, query = path.partition("?")
    if path == "/oauth/dpc/token":
        if method != "POST":
            return 405, _problem(405, "POST only")
        STATE.token_grants += 1
        STATE.requests["POST token"] += 1
        token = f"bench-token-{STATE.token_grants}-{os.urandom(6).hex()}"
        STATE.tokens.add(token)
        return 200, json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 1800}).encode()
    if path.startswith("/_bench/"):
        return _admin(method, path, body)
    if not path.startswith(API_PREFIX.decode()) and path != EXECUTIONS:
        return 404, _problem(404, f"No route matches {path}")
    wait = STATE.limiter.admit(time.monotonic())
    if wait is not None:
        STATE.requests["throttled"] += 1
        retry_after = STATE.limiter.retry_after(wait)
        body = {"status": 429, "title": "Too Many Requests", "detail": "Rate limit exceeded", "retryAfter": retry_after}
        return 429, json.dumps(body).encode()
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or token.strip() not in STATE.tokens:
        STATE.requests["unauthorized"] += 1
        return 401, _problem(401, "A valid bearer token is required")
    if path == EXECUTIONS and method == "GET":
        return _executions(urllib.parse.parse_qs(query))
    parts = path.split("/")  # '', dpc, v1, projects, {p}, streaming-pipelines, {id}, status|commands
    if len(parts) != 8 or parts[5] != "streaming-pipelines":
        return 404, _problem(404, f"No route matches {path}")
    pipeline_id, leaf = parts[6], parts[7]
    if leaf == "status" and method == "GET":
        STATE.requests["GET status"] += 1
        if time.time() >= STATE.flip_at(pipeline_id):
            return 200, b'{"status":"STREAMING"}'
        if headers.get(b"x-bench-not-ready") == b"404":
            return 404, _problem(404, f"Streaming pipeline {pipeline_id} is not streaming yet")
        if pipeline_id in STATE.started:
            return 200, b'{"status":"SNAPSHOTTING"}'
        return 200, b'{"status":"NOT_RUNNING"}'
    if leaf == "commands" and method == "POST":
        STATE.requests["POST commands"] += 1
        try:
            command = json.loads(body or b"{}").get("command")
        except (ValueError, AttributeError):
            command = None
        if command == "START":
            STATE.started.add(pipeline_id)
        elif command == "STOP":
            STATE.started.discard(pipeline_id)
        else:
            return 400, _problem(400, "command must be START or STOP")
        return 200, b""
    return 405, _problem(405, f"{method} is not allowed on {path}")


def _executions(query: dict[str, list[str]]) -> tuple[int, bytes]:
    """A page of the executions list: one pipeline's (``pipelineName``) or, without it, the project's."""
    name, token = _first(query, "pipelineName"), _first(query, "paginationToken")
    STATE.requests["GET executions"] += 1
    if not name:
        STATE.requests["GET executions, project-wide"] += 1
    if token:
        STATE.requests["GET executions, next page"] += 1
    try:
        after = _epoch(_first(query, "startedAfter"))
        limit = int(_first(query, "limit") or PAGE_SIZE)
        cursor = _cursor(token)
    except ValueError as exc:
        return 400, _problem(400, f"bad executions query: {exc}")
    if limit < 1:
        return 400, _problem(400, "limit must be at least 1")
    now = time.time()
    rest = [
        run
        for run in _listed(name, now)
        if (after is None or run.start > after) and (cursor is None or _order(run) > cursor)
    ]
    page = rest[:limit]
    body: dict[str, Any] = {"results": [_execution(run, now) for run in page]}
    if len(rest) > limit:
        body["more"] = _token(page[-1])
    return 200, json.dumps(body).encode()


def _listed(name: str | None, now: float) -> list[Run]:
    """The executions of pipeline ``name`` (every ``bench-run-*`` one when None), newest start first.

    A flip's execution is listed whatever its start, as the server always answered it; a run put
    only from its start, as the service lists an execution once it has begun.
    """
    runs = [run for run in STATE.runs if run.start <= now and (not name or run.name == name)]
    flips = {name: STATE.flip_at(name)} if name else {k: v for k, v in STATE.flips.items() if k.startswith(RUN_PREFIX)}
    runs += [
        Run(key, at - 60, at, str(uuid.uuid5(uuid.NAMESPACE_URL, key)))
        for key, at in flips.items()
        if not math.isinf(at)
    ]
    return sorted(runs, key=_order)


def _execution(run: Run, now: float) -> dict[str, Any]:
    """One execution, flat as the service lists it."""
    done = now >= run.end
    return {
        "pipelineExecutionId": run.execution_id,
        "pipelineName": run.name,
        "environmentName": "bench",
        "status": "SUCCESS" if done else "RUNNING",
        "startedAt": _timestamp(run.start),
        "finishedAt": _timestamp(run.end) if done else None,
        "message": None,
    }


def _order(run: Run) -> tuple[float, str]:
    """The list's order: newest start first, then by id, so a page's last one marks where the next begins."""
    return -run.start, run.execution_id


def _token(run: Run) -> str:
    """The ``more`` token after ``run``: where it stands in the order, not an offset, so a run that
    starts between two pages' requests shifts nothing already answered onto the next page."""
    return f"{run.start!r}/{run.execution_id}"


def _cursor(token: str | None) -> tuple[float, str] | None:
    if not token:
        return None
    start, sep, execution_id = token.partition("/")
    if not sep:
        raise ValueError(f"paginationToken {token!r} is not one of ours")
    return -float(start), execution_id


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _epoch(moment: str | None) -> float | None:
    """An ISO 8601 ``startedAfter`` as epoch seconds (UTC where it names no zone)."""
    if not moment:
        return None
    parsed = datetime.fromisoformat(moment)
    return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)).timestamp()


def _timestamp(epoch: float) -> str:
    """As the service writes them: five fractional digits and an offset."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 10:05d}+00:00"


def _admin(method: str, path: str, body: bytes) -> tuple[int, bytes]:
    if path == "/_bench/stats" and method == "GET":
        return 200, json.dumps(STATE.stats()).encode()
    if path == "/_bench/reset" and method == "POST":
        STATE.reset()
        return 200, b'{"status":"reset"}'
    if path == "/_bench/schedule" and method == "PUT":
        try:
            data = json.loads(body or b"{}")
            default = data.get("default")
            STATE.default_flip = math.inf if default is None else float(default)
            STATE.flips = {str(k): float(v) for k, v in (data.get("at") or {}).items()}
        except (ValueError, TypeError, AttributeError) as exc:
            return 400, _problem(400, f"bad schedule: {exc}")
        return 200, json.dumps({"default": default, "pipelines": len(STATE.flips)}).encode()
    if path == "/_bench/runs" and method == "PUT":
        try:
            STATE.runs = [_run(item) for item in json.loads(body or b"[]")]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return 400, _problem(400, f"bad list of runs: {exc}")
        return 200, json.dumps({"runs": len(STATE.runs)}).encode()
    if path == "/_bench/rate_limit" and method == "PUT":
        try:
            data = json.loads(body or b"{}")
            limit = None if data.get("limit") is None else int(data["limit"])
            STATE.limiter.configure(limit, float(data.get("window", 60.0)))
        except (ValueError, TypeError, AttributeError) as exc:
            return 400, _problem(400, f"bad rate limit: {exc}")
        return 200, json.dumps({"limit": limit, "window": STATE.limiter.window}).encode()
    if path == "/_bench/started" and method == "PUT":
        try:
            STATE.started.update(str(i) for i in json.loads(body or b"[]"))
        except (ValueError, TypeError) as exc:
            return 400, _problem(400, f"bad list of pipeline ids: {exc}")
        return 200, json.dumps({"started": len(STATE.started)}).encode()
    return 404, _problem(404, f"No admin route {method} {path}")


def _run(item: dict[str, Any]) -> Run:
    """A run put by ``PUT /_bench/runs``; its id is the one given, else derived from its name and start."""
    name, start, end = str(item["pipelineName"]), float(item["startedAt"]), float(item["finishedAt"])
    given = item.get("pipelineExecutionId")
    return Run(name, start, end, str(given or uuid.uuid5(uuid.NAMESPACE_URL, f"{name}@{start!r}")))


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and pipelining; just enough for the benchmark's clients."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's
        STATE.connections_opened += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEAD:
                    self._reply(_response(400, _problem(400, "header too large"), close=True), close=True)
                return
            head = bytes(self.buffer[:end]).split(b"\r\n")
            try:
                method, target, _ = head[0].decode("latin-1").split(" ", 2)
            except ValueError:
                self._reply(_response(400, _problem(400, "bad request line"), close=True), close=True)
                return
            headers: dict[bytes, bytes] = {}
            for line in head[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            status, payload = handle(method, target, headers, body)
            close = headers.get(b"connection", b"").lower() == b"close"
            self._reply(_response(status, payload, close=close), close=close)

    def _reply(self, data: bytes, close: bool) -> None:
        assert self.transport is not None
        self.transport.write(data)
        if close:
            self.transport.close()
            self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        STATE.connections_closed += 1


async def _exit_with_parent(stop: asyncio.Event) -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    stop.set()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HttpProtocol, host, port, backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"{READY_LINE} http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    watcher = asyncio.create_task(_exit_with_parent(stop))
    try:
        await stop.wait()
    finally:
        watcher.cancel()
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
