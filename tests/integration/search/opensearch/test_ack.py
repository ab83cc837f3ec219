"""EVENTLOG_ACK=replicated: a 201 only once OpenSearch holds the events with every copy active."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from eventlog.app.service import create_app
from search.opensearch.sink import document_id
from search.opensearch.template import index_for
from tests.app import Service, bearer, make_settings

pytestmark = pytest.mark.opensearch


def test_a_replicated_201_means_the_store_holds_the_event(
    tmp_path: Path, opensearch_url: str, index_prefix: str
) -> None:
    settings = make_settings(
        tmp_path, opensearch_url=opensearch_url, opensearch_index_prefix=index_prefix, ack="replicated"
    )
    with TestClient(create_app(settings)) as client:
        token = Service(client, settings).token("acme")
        for _ in range(5):
            answer = client.post("/v1/events", json={"action": "orders.create"}, headers=bearer(token))
            assert answer.status_code == 201, answer.text
            event_id = answer.json()["receipts"][0]["id"]
            stored = client.get(f"/v1/events/{event_id}", headers=bearer(token)).json()
            # No settle, no refresh: a realtime GET of the document finds it the moment the 201 is sent.
            found = httpx.get(
                f"{opensearch_url}/{index_for(index_prefix, stored['time'])}/_doc/"
                + urllib.parse.quote(document_id("acme", event_id), safe="")
            )
            assert found.status_code == 200, found.text
            assert found.json()["_source"]["chain"]["hash"] == answer.json()["receipts"][0]["hash"]


def test_a_copy_that_cannot_be_made_is_a_503_and_the_event_stays_committed(
    tmp_path: Path, opensearch_url: str, index_prefix: str
) -> None:
    """One replica asked of a one-node cluster: the copy cannot be active, so nothing may be acknowledged."""
    settings = make_settings(
        tmp_path,
        opensearch_url=opensearch_url,
        opensearch_index_prefix=index_prefix,
        opensearch_replicas=1,
        ack="replicated",
        ack_timeout_seconds=1.0,
    )
    with TestClient(create_app(settings)) as client:
        token = Service(client, settings).token("acme")
        journal = client.app.state.ctx.journal  # type: ignore[attr-defined]
        before = journal.last_seq
        answer = client.post("/v1/events", json={"id": "o-1", "action": "orders.create"}, headers=bearer(token))
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "not_replicated"
        assert answer.headers["retry-after"] == "1"
        assert journal.last_seq == before + 1  # committed on the node: it reaches OpenSearch once it can


def test_replicated_needs_opensearch(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="EVENTLOG_OPENSEARCH_URL"):
        make_settings(tmp_path, ack="replicated")
