"""The OpenAPI document against a real `eventlog serve`: schemathesis drives every operation.

Each operation is fuzzed under three tokens (admin, read/write, read-only) with a fixed
seed and a bounded number of examples. Any 5xx, an answer that does not match its
documented schema, content type or headers, an undocumented status, a request outside
the schema that is accepted, or a 405 without `Allow` fails. Afterwards the hash chain
the fuzzed writes produced must still verify.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import CheckFunction
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi import checks as openapi_checks

from tests.integration.server import CLEAN_EXIT_CODES, ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TENANT = "fuzz"
ROLES = {"admin": "admin", "read-write": "events:write,events:read", "read-only": "events:read"}
SEED = 20261127
MAX_EXAMPLES = 40
TAIL_MAX_EXAMPLES = 15
# The live tail never ends: schemathesis reads a stream until its first event or this many seconds.
REQUEST_TIMEOUT_S = 10.0
TAIL_TIMEOUT_S = 0.25

# `positive_data_acceptance` is left out: a schema cannot say that `time` lies in the retention window,
# that `q` parses or that `since` lies before `until`, so valid-looking requests may rightly be a 400/422.
CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.missing_required_header,
    openapi_checks.unsupported_method,
    openapi_checks.allow_header_conformance,
    openapi_checks.ignored_auth,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Fuzzing sends many bad tokens on purpose; the failure limiter would soon answer everything with 429.
    env = {"EVENTLOG_AUTH_FAILURE_LIMIT": "1000000", "EVENTLOG_FANOUT_POLL_SECONDS": "0.05"}
    with ServerProcess(tmp_path_factory.mktemp("fuzz") / "data", env=env) as process:
        yield process
        assert process.stop() in CLEAN_EXIT_CODES
        verified = process.verify()
        assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.fixture(scope="module")
def secrets(server: ServerProcess) -> dict[str, str]:
    tokens = {role: server.create_token(TENANT, scopes) for role, scopes in ROLES.items()}
    # Something to find: reads of an empty tenant only ever answer empty pages and 404s.
    events = [{"action": f"fuzz.seed.{n}", "actor": {"id": f"user-{n % 3}"}, "message": f"seed {n}"} for n in range(20)]
    answer = httpx.post(
        f"{server.url}/v1/events", json={"events": events}, headers={"Authorization": f"Bearer {tokens['admin']}"}
    )
    assert answer.status_code == 201, answer.text
    return tokens


@pytest.fixture(scope="module", params=list(ROLES))
def role(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def api(server: ServerProcess, secrets: dict[str, str], role: str) -> Any:
    secret = secrets[role]
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            # Per security scheme of the document, so schemathesis knows the credentials are supplied.
            "auth": {"openapi": {"bearer": {"bearer": secret}, "X-StorageApi-Token": {"api_key": secret}}},
            "cache": {"enabled": False},
            "request-timeout": REQUEST_TIMEOUT_S,
            "max-stream-events": 1,
            "generation": {"max-examples": MAX_EXAMPLES},
            "operations": [
                {
                    "include-path": "/v1/events/tail",
                    "request-timeout": TAIL_TIMEOUT_S,
                    "generation": {"max-examples": TAIL_MAX_EXAMPLES},
                }
            ],
        }
    )
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32 names each operation's subtest through `Node._nodeid`, which pytest 9.2 no longer has.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@schema.parametrize()
@settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case: Case[Any]) -> None:
    case.call_and_validate(checks=CHECKS)
