"""The index template on a real node: installed once, updated when changed, applied to daily indices."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opensearchpy import OpenSearch

from search.opensearch import template

pytestmark = pytest.mark.opensearch


@pytest.fixture
def client(opensearch_url: str, index_prefix: str) -> Iterator[OpenSearch]:
    client = OpenSearch(hosts=[opensearch_url])
    yield client
    client.indices.delete(index=f"{index_prefix}-events-*", params={"ignore_unavailable": "true"})
    client.indices.delete_index_template(name=template.template_name(index_prefix), ignore=[404])
    client.close()


def test_install_is_idempotent_and_updates_a_changed_template(client: OpenSearch, index_prefix: str) -> None:
    assert template.install(client, index_prefix, shards=1, replicas=0) == "created"
    assert template.install(client, index_prefix, shards=1, replicas=0) == "unchanged"
    assert template.install(client, index_prefix, shards=2, replicas=0) == "updated"
    found = client.indices.get_index_template(name=f"{index_prefix}-events*")["index_templates"]
    assert [t["name"] for t in found] == [f"{index_prefix}-events"]
    assert found[0]["index_template"]["template"]["settings"]["index"]["number_of_shards"] == "2"


def test_daily_index_gets_mappings_alias_and_refresh(client: OpenSearch, index_prefix: str) -> None:
    template.install(client, index_prefix, shards=1, replicas=0)
    index = template.index_for(index_prefix, "2026-11-27T10:00:00.000000Z")
    client.indices.create(index=index)
    mapping = client.indices.get_mapping(index=index)[index]["mappings"]
    properties = mapping["properties"]
    assert mapping["dynamic"] == "strict"
    assert properties["details"]["type"] == "flat_object"
    assert properties["actor"]["properties"]["ip"]["type"] == "ip"
    assert properties["time"]["type"] == "date_nanos"
    assert properties["message"]["fields"]["keyword"]["type"] == "keyword"
    assert properties["actor"]["properties"]["name"]["type"] == "text"
    assert properties["tenant"]["type"] == "keyword"
    settings = client.indices.get_settings(index=index)[index]["settings"]["index"]
    assert settings["refresh_interval"] == "1s"
    assert index in client.indices.get_alias(name=template.alias(index_prefix))


def test_microseconds_and_cidr_survive_the_store(client: OpenSearch, index_prefix: str) -> None:
    template.install(client, index_prefix, shards=1, replicas=0)
    index = template.index_for(index_prefix, "2026-11-27T10:00:00.000000Z")
    for n, ip in enumerate(["10.1.2.3", "192.168.0.1", "2001:db8::1"]):
        client.index(
            index=index,
            id=str(n),
            routing="acme",
            body={"id": str(n), "tenant": "acme", "time": f"2026-11-27T10:00:00.00000{n}Z", "actor": {"ip": ip}},
            refresh=True,
        )
    hits = client.search(
        index=template.alias(index_prefix),
        body={"query": {"term": {"actor.ip": "10.0.0.0/8"}}, "sort": [{"time": "asc"}]},
    )["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["0"]
    later = client.search(
        index=template.alias(index_prefix),
        body={"query": {"range": {"time": {"gt": "2026-11-27T10:00:00.000001Z"}}}, "sort": [{"time": "asc"}]},
    )["hits"]["hits"]
    assert [h["_id"] for h in later] == ["2"]
