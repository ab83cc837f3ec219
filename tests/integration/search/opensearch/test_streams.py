"""Each node's stream, claimed in the cluster: one live writer per stream, its public key published."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opensearchpy import OpenSearch

from eventlog.app.service import create_app
from eventlog.settings import Settings
from eventlog.tokens import TokenStore, parse_scopes
from search.opensearch.client import build_client
from search.opensearch.streams import Claimant, StreamRegistry, StreamTaken
from tests.app import bearer, make_settings

pytestmark = pytest.mark.opensearch


def _client(url: str) -> OpenSearch:
    return build_client(make_settings(Path("unused"), opensearch_url=url).opensearch)


def test_a_stream_has_one_key_and_one_live_writer(opensearch_url: str, index_prefix: str) -> None:
    registry = StreamRegistry(_client(opensearch_url), index_prefix)
    node = Claimant(stream="zone-a", public_key="KEY-A", data_dir="/srv/a", host="host-a", pid=10)
    registry.claim(node)
    registry.claim(node)  # renewing is claiming again

    stranger = Claimant(stream="zone-a", public_key="KEY-B", data_dir="/srv/b", host="host-b", pid=20)
    with pytest.raises(StreamTaken, match="another node's signing key") as taken:
        registry.claim(stranger)
    assert "EVENTLOG_STREAM" in str(taken.value)

    copy = Claimant(stream="zone-a", public_key="KEY-A", data_dir="/srv/a", host="host-c", pid=30)
    with pytest.raises(StreamTaken, match="is live on host host-a") as live:
        registry.claim(copy)
    assert "two copies of one data dir" in str(live.value)

    # The same data dir on the same host after a crash: its lock says the old process is gone.
    restarted = Claimant(stream="zone-a", public_key="KEY-A", data_dir="/srv/a", host="host-a", pid=11)
    registry.claim(restarted)
    registry.release(restarted)
    registry.claim(copy)  # released: a copy may take over (same key)
    with pytest.raises(StreamTaken):
        registry.claim(stranger)  # never another key
    assert registry.public_keys() == {"zone-a": "KEY-A"}


def test_a_lapsed_claim_can_be_taken_by_the_same_key(opensearch_url: str, index_prefix: str) -> None:
    registry = StreamRegistry(_client(opensearch_url), index_prefix)
    first = Claimant(stream="s", public_key="K", data_dir="/d", host="h1")
    registry.claim(first, lease_seconds=0.01)
    time.sleep(0.05)
    second = Claimant(stream="s", public_key="K", data_dir="/d", host="h2")
    registry.claim(second)  # the first lapsed without a release (a crash on another machine)
    with pytest.raises(StreamTaken):
        registry.claim(first)


def test_two_nodes_with_one_stream_name_do_not_both_start(
    tmp_path: Path, opensearch_url: str, index_prefix: str
) -> None:
    def settings(name: str, stream: str) -> Settings:
        return make_settings(
            tmp_path / name, opensearch_url=opensearch_url, opensearch_index_prefix=index_prefix, stream=stream
        )

    with TestClient(create_app(settings("a", "zone-a"))) as a:
        ready = a.get("/readyz", headers=bearer(_admin(a)))
        assert ready.status_code == 200, ready.text
        assert ready.json()["cluster"] == {
            "state": "ok",
            "stream": "zone-a",
            "problem": None,
            "renewed_seconds_ago": ready.json()["cluster"]["renewed_seconds_ago"],
        }
        with pytest.raises(StreamTaken, match="zone-a"), TestClient(create_app(settings("b", "zone-a"))):
            pass
        with TestClient(create_app(settings("c", "zone-c"))) as c:
            assert c.get("/readyz").status_code == 200
    keys = StreamRegistry(_client(opensearch_url), index_prefix).public_keys()
    assert set(keys) == {"zone-a", "zone-c"}
    assert keys["zone-a"] == (tmp_path / "a" / "signing.pub").read_text()


def test_a_node_that_cannot_reach_opensearch_is_not_ready(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(tmp_path, opensearch_url=f"http://127.0.0.1:{port}", opensearch_timeout_seconds=1.0)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["cluster"] == {"state": "unavailable"}


def _admin(client: TestClient) -> str:
    store: TokenStore = client.app.state.ctx.tokens  # type: ignore[attr-defined]
    return store.create(tenant="ops", scopes=parse_scopes("admin")).secret
