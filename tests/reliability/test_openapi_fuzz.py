"""Schema-driven fuzzing of the emulator's OpenAPI document (``GET /dpc/openapi.json``): no 5xx.

schemathesis generates requests from the document the emulator serves, valid ones (positive) and
ones that break the schema (negative), for every operation including the token endpoint, with path
ids left to the generator and with the ids of a real project and pipeline so requests get past the
look-ups into the handlers. They go over real sockets to an emulator process of its own. Every
answer must be below 500; a 5xx, or no answer at all, fails the test with the request that caused
it (never its headers: they carry the token).

The default run sends a few hundred requests; the ``reliability_heavy`` run several thousand.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

import requests  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from airflow_provider_dpc.emulator import EmulatorProcess  # noqa: E402
from tests.guide import PROJECT_ID  # noqa: E402
from tests.reliability.figures import figures  # noqa: E402

pytestmark = pytest.mark.slow

GUIDE_AGENT_ID = "2734aa6f-0c64-4d2b-9406-f44dc8f1f3b6"
DEFAULT, HEAVY = 8, 120


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(client_secret="fuzz-" + secrets.token_urlsafe(24)) as process:
        yield process


class Fuzzer:
    def __init__(self, emulator: EmulatorProcess, config: pytest.Config) -> None:
        self.emulator = emulator
        self.config = config
        self.schema = schemathesis.openapi.from_url(emulator.origin + "/dpc/openapi.json")
        self.operations = [result.ok() for result in self.schema.get_all_operations()]
        self.session = requests.Session()
        self.failures: list[str] = []
        self.sent = 0
        self.token = emulator.token()

    def known_ids(self) -> dict[str, str]:
        """The guide's project and a pipeline that exists now (the fuzzer may have deleted the last one)."""
        body: dict[str, Any] = {
            "name": "fuzz-" + secrets.token_hex(4),
            "agentId": GUIDE_AGENT_ID,
            "streamingSource": {
                "type": "postgres",
                "connection": {
                    "host": "db",
                    "port": 5432,
                    "username": "u",
                    "database": "d",
                    "password": {"secretType": "AWS_SECRETS_MANAGER", "secretName": "s"},
                },
                "tables": [{"schema": "public", "table": "t"}],
            },
            "streamingTarget": {"type": "s3", "bucket": "b", "prefix": "p"},
        }
        response = self.session.post(
            f"{self.emulator.base_url}/v1/projects/{PROJECT_ID}/streaming-pipelines",
            json=body,
            headers=self.auth(),
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return {"projectId": PROJECT_ID, "pipelineId": response.json()["streamingPipelineId"]}

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def fuzz(self, mode: GenerationMode, examples: int, *, known: bool, authenticated: bool = True) -> None:
        for operation in self.operations:
            names = {parameter.name for parameter in operation.path_parameters}
            if known and not names:
                continue  # nothing to pin: the run with generated ids covers it
            fixed = {k: v for k, v in self.known_ids().items() if k in names} if known else None
            self._run(operation, mode, examples, fixed, authenticated)

    def _run(
        self, operation: Any, mode: GenerationMode, examples: int, fixed: dict[str, str] | None, authenticated: bool
    ) -> None:
        fuzzer = self

        @given(case=operation.as_strategy(mode, path_parameters=fixed))
        @settings(
            max_examples=examples,
            phases=[Phase.explicit, Phase.reuse, Phase.generate],  # report, do not shrink
            suppress_health_check=list(HealthCheck),
        )
        def send(case: Any) -> None:
            fuzzer.call(case, authenticated)

        send()

    def call(self, case: Any, authenticated: bool) -> None:
        self.sent += 1
        figures(self.config).inputs["API fuzzing"] += 1
        what = f"{case.method} {case.formatted_path} query={case.query!r} body={_short(case.body)}"
        headers = self.auth() if authenticated and case.operation.path.startswith("/dpc/") else None
        try:
            response = case.call(session=self.session, headers=headers, timeout=10)
        except requests.exceptions.InvalidHeader:
            return  # refused by the client library before sending: nothing reached the emulator
        except requests.RequestException as exc:
            self.failures.append(f"no answer to {what}: {type(exc).__name__}")
            return
        if response.status_code >= 500:
            self.failures.append(f"{response.status_code} for {what}: {_short(response.text)}")

    def verdict(self) -> None:
        assert self.sent > 0
        assert not self.failures, f"{len(self.failures)} of {self.sent} requests met a 5xx or no answer:\n" + "\n".join(
            self.failures[:20]
        )


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


@pytest.fixture
def fuzzer(fuzz_target: EmulatorProcess, pytestconfig: pytest.Config) -> Fuzzer:
    return Fuzzer(fuzz_target, pytestconfig)


def _examples(heavy: bool) -> int:
    return HEAVY if heavy else DEFAULT


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
@pytest.mark.parametrize("known", [False, True], ids=["generated-ids", "known-ids"])
def test_no_server_error(fuzzer: Fuzzer, mode: GenerationMode, known: bool) -> None:
    fuzzer.fuzz(mode, _examples(False), known=known)
    fuzzer.verdict()


def test_no_server_error_without_a_token(fuzzer: Fuzzer) -> None:
    fuzzer.fuzz(GenerationMode.POSITIVE, _examples(False), known=True, authenticated=False)
    fuzzer.verdict()


@pytest.mark.reliability_heavy
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
@pytest.mark.parametrize("known", [False, True], ids=["generated-ids", "known-ids"])
def test_no_server_error_heavy(fuzzer: Fuzzer, mode: GenerationMode, known: bool) -> None:
    fuzzer.fuzz(mode, _examples(True), known=known)
    fuzzer.verdict()
