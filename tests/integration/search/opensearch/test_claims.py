"""A retry with a client id on another node of the cluster stores nothing new."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from eventlog.app.service import create_app
from search.opensearch.claims import CLAIMS, STALE_SECONDS, OpenSearchClaims
from search.opensearch.client import build_client
from search.opensearch.expiry import forget_claims
from search.retention import TenantDay
from tests.app import Service, bearer, make_settings

pytestmark = pytest.mark.opensearch


@pytest.fixture
def nodes(tmp_path: Path, opensearch_url: str, index_prefix: str) -> Iterator[tuple[Service, Service]]:
    started: list[TestClient] = []
    services = []
    for name in ("a", "b"):
        settings = make_settings(
            tmp_path / name, opensearch_url=opensearch_url, opensearch_index_prefix=index_prefix, stream=f"node-{name}"
        )
        client = TestClient(create_app(settings))
        client.__enter__()
        started.append(client)
        services.append(Service(client, settings))
    try:
        yield services[0], services[1]
    finally:
        for client in started:
            client.__exit__(None, None, None)


def _post(node: Service, token: str, *events: dict[str, object]) -> tuple[int, Any]:
    """POST as a client does: a 409 `in_progress` (another node still records its receipt) is retried."""
    deadline = time.monotonic() + 10
    while True:
        answer = node.client.post("/v1/events", json={"events": list(events)}, headers=bearer(token))
        if answer.status_code != 409 or time.monotonic() > deadline:
            return answer.status_code, answer.json()
        time.sleep(float(answer.headers["retry-after"]) / 10)


def _claims(node: Service) -> OpenSearchClaims:
    return OpenSearchClaims(build_client(node.settings.opensearch), node.settings.opensearch_index_prefix)


def test_a_retry_on_the_other_node_answers_the_first_receipt(nodes: tuple[Service, Service]) -> None:
    a, b = nodes
    token = a.token("acme")
    status, first = _post(a, token, {"id": "order-1", "action": "orders.create"}, {"action": "orders.note"})
    assert status == 201, first
    status, again = _post(b, token, {"id": "order-1", "action": "orders.create"}, {"id": "order-2", "action": "x.y"})
    assert status == 201, again  # order-2 is new
    receipts = again["receipts"]
    assert receipts[0] == {**first["receipts"][0], "duplicate": True}
    assert receipts[1]["duplicate"] is False
    status, third = _post(a, token, {"id": "order-2", "action": "x.y"})
    assert (status, third["receipts"]) == (200, [{**receipts[1], "duplicate": True}])
    a.settle()
    b.settle()
    found = a.client.get("/v1/events", params={"q": "id:order-1 OR id:order-2"}, headers=bearer(token)).json()
    assert sorted(e["id"] for e in found["events"]) == ["order-1", "order-2"]
    # The same id in another tenant is another event.
    other = a.token("globex")
    status, theirs = _post(b, other, {"id": "order-1", "action": "orders.create"})
    assert status == 201
    assert theirs["receipts"][0]["duplicate"] is False


def test_an_id_another_node_is_still_committing_is_a_409(nodes: tuple[Service, Service]) -> None:
    a, _ = nodes
    token = a.token("acme")
    assert _claims(a).claim("acme", ["busy-1"], "node-elsewhere") == {}  # that node claimed it, then
    answer = a.client.post(
        "/v1/events",
        json={"events": [{"id": "fresh", "action": "a.b"}, {"id": "busy-1", "action": "a.b"}]},
        headers=bearer(token),
    )
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"] == "in_progress"
    assert "busy-1" in answer.json()["message"]
    assert answer.headers["retry-after"] == "1"
    a.settle()
    listed = a.client.get("/v1/events", params={"q": "id:fresh"}, headers=bearer(token)).json()
    assert listed["events"] == []  # nothing of the refused request was stored


def test_a_claim_left_by_a_dead_node_is_taken_over(nodes: tuple[Service, Service]) -> None:
    a, _ = nodes
    token = a.token("acme")
    long_ago = OpenSearchClaims(
        build_client(a.settings.opensearch),
        a.settings.opensearch_index_prefix,
        clock=lambda: time.time() - STALE_SECONDS - 5,
    )
    assert long_ago.claim("acme", ["orphan"], "node-dead") == {}  # it died before committing
    status, body = _post(a, token, {"id": "orphan", "action": "a.b"})
    assert status == 201, body
    assert body["receipts"][0]["duplicate"] is False


def test_the_claims_of_removed_days_go_with_them(opensearch_url: str, index_prefix: str) -> None:
    client = build_client(make_settings(Path("unused"), opensearch_url=opensearch_url).opensearch)
    day = date(2026, 10, 1)
    noon = datetime(2026, 10, 1, 12, tzinfo=UTC).timestamp()
    old = OpenSearchClaims(client, index_prefix, clock=lambda: noon)
    assert old.claim("acme", ["old-1"], "s") == {}
    assert old.claim("globex", ["old-2"], "s") == {}
    assert OpenSearchClaims(client, index_prefix).claim("acme", ["new-1"], "s") == {}
    client.indices.refresh(index=CLAIMS.name(index_prefix))
    forget_claims(client, index_prefix, [TenantDay("acme", day, 1, "unused")])
    client.indices.refresh(index=CLAIMS.name(index_prefix))
    ids = {hit["_source"]["id"] for hit in client.search(index=CLAIMS.name(index_prefix))["hits"]["hits"]}
    assert ids == {"old-2", "new-1"}  # acme's day went; globex keeps its own, acme its newer claim
