"""Property: the reference evaluator, the embedded store and a real OpenSearch find the same events.

Hypothesis makes a small trail of events and queries over the same vocabulary;
each example gets a tenant of its own on two live services (SQLite and
OpenSearch), so examples never see each other's events.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog.app.service import create_app
from search.query import matches, parse
from tests.app import Service, bearer, make_settings

pytestmark = [pytest.mark.opensearch, pytest.mark.slow]

NOW = datetime.now(UTC)
WORDS = ["sales", "table", "deploy", "zoë", "job-42", "Created", "failed", "bucket", "ÉTÉ", "x=y"]
ACTIONS = ["storage.tables.create", "storage.tables.delete", "storage.buckets.create", "auth.login", "deploy.start"]
ACTORS = ["alice", "bob", "carol", "svc-ci"]
NAMES = ["Jane Doe", "John", "Zoë Ünal"]
IPS = ["10.0.0.1", "10.200.3.4", "192.168.1.7", "2001:db8::1", "2001:db8:ffff::2", "8.8.8.8"]
DETAILS: list[dict[str, Any]] = [
    {},
    {"rows": 5},
    {"rows": 5.5, "ok": True},
    {"tags": ["x", "y"], "nested": {"k": "v"}},
    {"nested": {"k": "w", "deep": [{"k": "v"}]}},
    {"reason": "locked by job 42"},
]

events = st.fixed_dictionaries(
    {
        "action": st.sampled_from(ACTIONS),
        "outcome": st.sampled_from(["success", "failure", "unknown"]),
        "actor": st.fixed_dictionaries(
            {"id": st.sampled_from(ACTORS), "ip": st.sampled_from(IPS)}, optional={"name": st.sampled_from(NAMES)}
        ),
        "request": st.fixed_dictionaries(
            {"status": st.sampled_from([200, 201, 404, 500, 503]), "duration_ms": st.sampled_from([1.5, 100.5, 250.0])}
        ),
        "message": st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
        "details": st.sampled_from(DETAILS),
        "minutes_ago": st.integers(min_value=0, max_value=180),
    },
    optional={"target": st.fixed_dictionaries({"id": st.sampled_from(["t1", "t2"]), "name": st.sampled_from(NAMES)})},
)

HOUR_AGO = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
atoms = st.sampled_from(
    [
        *WORDS,
        "sal*",
        "zo*",
        '"created table"',
        '"job 42"',
        *(f"action:{a}" for a in ACTIONS),
        "action:storage.*",
        "action:(auth.login OR deploy.start)",
        *(f"actor:{a}" for a in ACTORS),
        'actor.name:"Jane Doe"',
        "actor.name:Zo*",
        "outcome:success",
        "outcome:failure",
        "status:>=500",
        "status:<300",
        "status:404",
        "request.duration_ms:>100.5",
        "request.duration_ms:<=100.5",
        "ip:10.0.0.0/8",
        "ip:192.168.1.7",
        "ip:2001:db8::/32",
        "details.rows:5",
        "details.rows:5.5",
        "details.ok:true",
        "details.tags:x",
        "details.nested.k:v",
        "details.reason:*",
        "target:*",
        "target.name:John",
        f"time:>={HOUR_AGO}",
        f"time:<{HOUR_AGO}",
    ]
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, children).map(lambda p: f"{p[0]} {p[1]}"),
        st.tuples(children, children).map(lambda p: f"({p[0]} OR {p[1]})"),
        children.map(lambda c: f"NOT ({c})"),
        children.map(lambda c: f"-{c}" if not c.startswith(("-", "NOT")) else c),
    )


queries = st.recursive(atoms, _combine, max_leaves=5)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, _opensearch_node: str) -> Iterator[tuple[Service, Service]]:
    prefix = f"p{uuid.uuid4().hex[:12]}"
    embedded = make_settings(Path(tmp_path_factory.mktemp("embedded")))
    remote = make_settings(
        Path(tmp_path_factory.mktemp("opensearch")), opensearch_url=_opensearch_node, opensearch_index_prefix=prefix
    )
    with TestClient(create_app(embedded)) as one, TestClient(create_app(remote)) as two:
        yield Service(one, embedded), Service(two, remote)
    httpx.delete(f"{_opensearch_node}/{prefix}-events-*")


def _ids(service: Service, token: str, q: str) -> list[str]:
    answer = service.client.get(
        "/v1/events", params={"q": f"({q}) -source:eventlog", "limit": 1000}, headers=bearer(token)
    )
    assert answer.status_code == 200, (q, answer.text)
    return [e["id"] for e in answer.json()["events"]]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(trail=st.lists(events, min_size=5, max_size=30), asked=st.lists(queries, min_size=10, max_size=20))
def test_reference_embedded_and_opensearch_agree(
    services: tuple[Service, Service], trail: list[dict[str, Any]], asked: list[str]
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    batch = []
    for n, event in enumerate(trail):
        event = dict(event)
        minutes = event.pop("minutes_ago")
        when = NOW - timedelta(minutes=minutes, microseconds=n)
        batch.append({**event, "id": f"e{n:03d}", "time": when.isoformat()})
    tokens = []
    for service in services:
        token = service.token(tenant, "events:read,events:write")
        tokens.append(token)
        assert service.client.post("/v1/events", json={"events": batch}, headers=bearer(token)).status_code == 201
        service.settle()
    stored = (
        services[0]
        .client.get("/v1/events", params={"q": "source:api", "limit": 1000}, headers=bearer(tokens[0]))
        .json()["events"]
    )
    assert len(stored) == len(batch)
    for q in asked:
        node = parse(q)
        reference = {d["id"] for d in stored if matches(node, d)}
        embedded, remote = _ids(services[0], tokens[0], q), _ids(services[1], tokens[1], q)
        assert embedded == remote, q
        assert set(embedded) == reference, q
