"""The OpenSearch sink against a real node: idempotent creates, dead letters, redrive."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from opensearchpy import OpenSearch

from eventlog.app.service import create_app
from eventlog.journal import Entry
from search.opensearch import template
from search.opensearch.sink import OpenSearchSink
from tests.app import Service, bearer, make_settings

pytestmark = pytest.mark.opensearch


def _entry(seq: int, tenant: str = "acme", event_id: str | None = None) -> Entry:
    event_id = event_id or f"e{seq}"
    document = {
        "id": event_id,
        "tenant": tenant,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "action": "a.b",
        "message": f"event {seq}",
    }
    return Entry(seq, event_id, tenant, orjson.dumps(document), 0.0)


async def test_redelivery_is_success_and_stores_once(opensearch_url: str, index_prefix: str) -> None:
    client = OpenSearch(hosts=[opensearch_url])
    sink = OpenSearchSink(client, index_prefix, max_bytes=65_536)
    entries = [_entry(i) for i in range(1, 51)] + [_entry(51, tenant="globex", event_id="e1")]
    assert await sink.deliver(entries) == []
    assert await sink.deliver(entries[10:]) == []
    client.indices.refresh(index=template.alias(index_prefix))
    assert client.count(index=template.alias(index_prefix))["count"] == 51
    await sink.close()


async def test_strict_mapping_refusal_is_a_rejection(opensearch_url: str, index_prefix: str) -> None:
    client = OpenSearch(hosts=[opensearch_url])
    sink = OpenSearchSink(client, index_prefix, max_bytes=65_536)
    bad = Entry(2, "bad", "acme", orjson.dumps({**orjson.loads(_entry(2).document), "surprise": 1}), 0.0)
    rejected = await sink.deliver([_entry(1), bad, _entry(3)])
    assert [r.seq for r in rejected] == [2]
    assert "strict_dynamic_mapping_exception" in rejected[0].reason
    await sink.close()


def test_refused_events_go_to_dead_letters_and_redrive_delivers_them(
    tmp_path: Path, opensearch_url: str, index_prefix: str
) -> None:
    settings = make_settings(tmp_path / "data", opensearch_url=opensearch_url, opensearch_index_prefix=index_prefix)
    client = OpenSearch(hosts=[opensearch_url])
    template.install(client, index_prefix, shards=1, replicas=0)
    today = template.index_for(index_prefix, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    client.indices.create(index=today)
    client.indices.close(index=today)  # every create into it is refused for good
    with TestClient(create_app(settings)) as http:
        service = Service(http, settings)
        admin = service.token("ops", "admin")
        writer = service.token("acme")
        ids = [
            r["id"]
            for r in http.post("/v1/events", json={"events": [{"action": "a"}] * 3}, headers=bearer(writer)).json()[
                "receipts"
            ]
        ]
        service.settle()
        letters = http.get("/v1/admin/deadletters", headers=bearer(admin)).json()
        assert {letter["event_id"] for letter in letters} >= set(ids)
        assert all("closed" in letter["reason"] for letter in letters)
        assert "eventlog_sink_dead_letters_total" in http.get("/metrics").text
        assert http.get("/v1/admin/deadletters", headers=bearer(writer)).status_code == 403

        client.indices.open(index=today, params={"wait_for_active_shards": "1"})
        redriven = http.post("/v1/admin/deadletters/redrive", headers=bearer(admin)).json()
        # The audit events of the admin's own reads were refused too, so there may be more by now.
        assert redriven["failed_again"] == 0
        assert redriven["delivered"] >= len(letters)
        service.settle()
        assert http.get("/v1/admin/deadletters", headers=bearer(admin)).json() == []
        httpx.post(f"{opensearch_url}/{template.alias(index_prefix)}/_refresh")
        found = http.get("/v1/events", params={"source": "api"}, headers=bearer(writer)).json()["events"]
        assert sorted(e["id"] for e in found) == sorted(ids)
    client.close()


async def test_a_cluster_that_lost_the_template_gets_it_back_before_the_next_bulk(
    opensearch_url: str, index_prefix: str
) -> None:
    client = OpenSearch(hosts=[opensearch_url])
    sink = OpenSearchSink(client, index_prefix, max_bytes=65_536)
    assert await sink.deliver([_entry(1)]) == []
    # As after a wiped cluster: no template, no indices.
    client.indices.delete(index=f"{index_prefix}-events-*")
    client.indices.delete_index_template(name=template.template_name(index_prefix))
    # A wiped cluster answers the next bulk with an error or not at all, and the sink checks the
    # template again after any failure or every TEMPLATE_CHECK_SECONDS; here the check is due.
    sink._template_checked_at = None
    assert await sink.deliver([_entry(2)]) == []
    index = template.index_for(index_prefix, orjson.loads(_entry(2).document)["time"])
    mapping = client.indices.get_mapping(index=index)[index]["mappings"]
    assert mapping["properties"]["details"]["type"] == "flat_object"
    assert index in client.indices.get_alias(name=template.alias(index_prefix))
    await sink.close()
