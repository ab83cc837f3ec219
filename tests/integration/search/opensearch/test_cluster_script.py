"""scripts/opensearch.sh --nodes 2 through tests/opensearch_cluster.py: a real two-node cluster.

Both nodes join, an index with one replica goes green (a copy on each node), and
after the node that is not the elected cluster manager is SIGKILLed, the other
still answers: health yellow with one node, the document indexed before and one
indexed after both found. The killed node comes back on its data and the index is
green again.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.opensearch_cluster import OpenSearchCluster

pytestmark = [pytest.mark.opensearch, pytest.mark.slow, pytest.mark.timeout(900)]

INDEX = "cluster-script"
HTTP_TIMEOUT_S = 30.0


@pytest.fixture
def cluster() -> Iterator[OpenSearchCluster]:
    with OpenSearchCluster() as started:
        try:
            started.start(nodes=2)
        except RuntimeError as exc:
            pytest.fail(f"no two-node OpenSearch cluster: {exc}", pytrace=False)
        yield started


def _health(url: str, **wait: str) -> dict[str, object]:
    answer = httpx.get(f"{url}/_cluster/health/{INDEX}", params={"timeout": "30s", **wait}, timeout=HTTP_TIMEOUT_S)
    body: dict[str, object] = answer.json()
    return body


def _index(url: str, doc_id: str) -> None:
    answer = httpx.put(
        f"{url}/{INDEX}/_doc/{doc_id}", params={"refresh": "true"}, json={"step": doc_id}, timeout=HTTP_TIMEOUT_S
    )
    assert answer.status_code == 201, answer.text


def _ids(url: str) -> set[str]:
    answer = httpx.get(f"{url}/{INDEX}/_search", params={"size": "10"}, timeout=HTTP_TIMEOUT_S)
    assert answer.status_code == 200, answer.text
    return {hit["_id"] for hit in answer.json()["hits"]["hits"]}


def test_two_nodes_join_replicate_and_survive_losing_one(cluster: OpenSearchCluster) -> None:
    assert len(cluster.urls) == 2
    for url in cluster.urls:
        nodes = httpx.get(f"{url}/_cat/nodes", params={"h": "name", "format": "json"}, timeout=HTTP_TIMEOUT_S)
        assert sorted(node["name"] for node in nodes.json()) == ["eventlog-node-1", "eventlog-node-2"]

    created = httpx.put(
        f"{cluster.url}/{INDEX}",
        json={"settings": {"number_of_shards": 1, "number_of_replicas": 1}},
        timeout=HTTP_TIMEOUT_S,
    )
    assert created.status_code == 200, created.text
    health = _health(cluster.url, wait_for_status="green")
    assert (health["status"], health["active_shards"]) == ("green", 2), health
    _index(cluster.url, "before")

    manager = cluster.cluster_manager()
    lost = 1 - manager
    cluster.kill_node(lost)
    survivor = cluster.urls[manager]
    with pytest.raises(httpx.TransportError):
        httpx.get(cluster.urls[lost], timeout=5.0)
    health = _health(survivor, wait_for_nodes="1", wait_for_status="yellow")
    assert (health["status"], health["number_of_nodes"], health["timed_out"]) == ("yellow", 1, False), health
    _index(survivor, "after")
    assert _ids(survivor) == {"before", "after"}

    cluster.start_node(lost)
    health = _health(cluster.urls[lost], wait_for_status="green", wait_for_nodes="2")
    assert (health["status"], health["number_of_nodes"]) == ("green", 2), health
    assert _ids(cluster.urls[lost]) == {"before", "after"}
