"""What several nodes share through OpenSearch: the retention lock and the legal holds."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from search.opensearch.client import build_client
from search.opensearch.expiry import install_ism_policy, ism_policy
from search.opensearch.holds import OpenSearchHoldStore
from search.opensearch.lock import OpenSearchLock
from search.retention import HoldNotFound
from tests.app import make_settings

pytestmark = pytest.mark.opensearch


def _client(url: str) -> OpenSearch:
    return build_client(make_settings(Path("unused"), opensearch_url=url).opensearch)


def test_only_one_node_holds_the_lock(opensearch_url: str, index_prefix: str) -> None:
    node_a = OpenSearchLock(_client(opensearch_url), index_prefix)
    node_b = OpenSearchLock(_client(opensearch_url), index_prefix)
    assert node_a.acquire("a", 60)
    assert not node_b.acquire("b", 60)
    node_a.release("a", completed=True)
    assert node_b.last_completed() is not None
    assert node_b.acquire("b", 0.01)
    time.sleep(0.05)
    assert node_a.acquire("a", 60)  # b's lock expired
    assert not node_b.acquire("b", 60)


def test_holds_are_shared_and_released(opensearch_url: str, index_prefix: str) -> None:
    node_a = OpenSearchHoldStore(_client(opensearch_url), index_prefix)
    node_b = OpenSearchHoldStore(_client(opensearch_url), index_prefix)
    since = datetime(2026, 11, 1, tzinfo=UTC)
    hold = node_a.place(tenant="acme", since=since, until=None, reason="case 1", placed_by="tok1")
    (seen,) = node_b.list()
    assert seen == hold
    assert seen.since == since
    released = node_b.release(hold.id, released_by="tok2")
    assert released.released_at is not None
    assert released.released_by == "tok2"
    assert not node_a.list()[0].active
    with pytest.raises(HoldNotFound):
        node_a.release("nope", released_by="tok")


def test_no_ism_policy_without_the_plugin_and_no_delete_state_in_it(opensearch_url: str, index_prefix: str) -> None:
    client = _client(opensearch_url)
    assert not install_ism_policy(client, index_prefix)  # the integ-test distribution has no ISM plugin
    assert client.transport.perform_request("GET", "/_cat/plugins", params={"format": "json"}) == []
    policy = ism_policy(index_prefix)["policy"]
    assert policy["ism_template"][0]["index_patterns"] == [f"{index_prefix}-events-*"]
    actions = [next(iter(a)) for state in policy["states"] for a in state["actions"]]
    assert actions == ["force_merge"]  # deletion stays with the service: it knows holds and archives
