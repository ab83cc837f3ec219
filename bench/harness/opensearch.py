"""The OpenSearch node a benchmark runs against: starting or finding it, its CPU time, dropping indices."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from opensearchpy import NotFoundError, OpenSearch

from bench.harness.report import say
from bench.harness.run import Teardown
from search.opensearch.template import template_name
from tests.opensearch_node import start_opensearch


@dataclass(frozen=True)
class OpenSearchNode:
    url: str
    client: OpenSearch
    given: bool  # OPENSEARCH_URL named it: it outlives the run, so the run's indices must be dropped


def start_opensearch_node(teardown: Teardown, timeout_seconds: float) -> OpenSearchNode:
    """OPENSEARCH_URL's cluster, or a node tests/opensearch_node.py starts (and teardown stops)."""
    given = os.environ.get("OPENSEARCH_URL")
    say("node", f"using OPENSEARCH_URL={given}" if given else "starting a node with scripts/opensearch.sh ...")
    url, stop_node = start_opensearch()
    teardown.add(stop_node)
    client = OpenSearch(hosts=[url], timeout=timeout_seconds, max_retries=0)
    teardown.add(client.close)
    say("node", f"OpenSearch {client.info()['version']['number']} at {url}")
    return OpenSearchNode(url, client, bool(given))


def drop_indices(client: OpenSearch, prefix: str) -> None:
    """Delete a prefix's daily indices and its template."""
    with contextlib.suppress(NotFoundError):
        client.indices.delete(index=f"{prefix}-events-*", params={"expand_wildcards": "all"})
    with contextlib.suppress(NotFoundError):
        client.indices.delete_index_template(name=template_name(prefix))


def opensearch_cpu_seconds(client: OpenSearch) -> float:
    """CPU time of the OpenSearch node(s) so far, from the nodes stats API."""
    stats = client.nodes.stats(metric="process")
    return sum(float(node["process"]["cpu"]["total_in_millis"]) for node in stats["nodes"].values()) / 1000
