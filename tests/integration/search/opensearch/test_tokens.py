"""Tokens and failed logins shared by the nodes of a cluster: two real nodes (apps) on one OpenSearch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from eventlog.app.service import create_app
from eventlog.tokens import TokenStore, parse_scopes
from tests.app import Service, bearer, make_settings

pytestmark = pytest.mark.opensearch

# Revocation and expiry reach every node within this (the token cache is 1 s; one round trip on top).
PROPAGATION_S = 2.0


@pytest.fixture
def nodes(tmp_path: Path, opensearch_url: str, index_prefix: str) -> Iterator[tuple[Service, Service]]:
    """Two nodes with data dirs of their own on the same cluster and index prefix."""
    started: list[tuple[TestClient, Service]] = []
    for name in ("a", "b"):
        settings = make_settings(
            tmp_path / name, opensearch_url=opensearch_url, opensearch_index_prefix=index_prefix, stream=f"node-{name}"
        )
        client = TestClient(create_app(settings), client=(f"10.9.0.{len(started) + 1}", 50000))
        client.__enter__()
        started.append((client, Service(client, settings)))
    try:
        yield started[0][1], started[1][1]
    finally:
        for client, _ in started:
            client.__exit__(None, None, None)


def _until(check: Callable[[], bool], seconds: float) -> float:
    """Seconds until `check()` held; fails after `seconds`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


def _status(node: Service, secret: str) -> int:
    return node.client.get("/v1/events", headers=bearer(secret)).status_code


def test_a_token_made_on_one_node_works_on_the_other_and_its_revocation_reaches_it(
    nodes: tuple[Service, Service],
) -> None:
    a, b = nodes
    made = a.client.post("/v1/tokens", json={"tenant": "acme", "scopes": ["events:read"]}, headers=bearer(a.admin))
    assert made.status_code == 201, made.text
    secret, token_id = made.json()["secret"], made.json()["id"]
    assert _status(b, secret) == 200  # at once: no refresh, no cache to wait for
    assert _status(a, secret) == 200
    assert token_id in {t["id"] for t in b.client.get("/v1/tokens", headers=bearer(b.admin)).json()}

    revoked = b.client.delete(f"/v1/tokens/{token_id}", headers=bearer(b.admin))
    assert revoked.status_code == 200, revoked.text
    assert _status(b, secret) == 401
    waited = _until(lambda: _status(a, secret) == 401, PROPAGATION_S)
    print(f"\nrevocation reached the other node after {waited:.2f} s")


def test_expiry_takes_effect_on_every_node(nodes: tuple[Service, Service]) -> None:
    a, b = nodes
    store: TokenStore = a.client.app.state.ctx.tokens  # type: ignore[attr-defined]
    # Made as if a day ago with one day to live: it expires 3 s from now (creating waits for a refresh).
    soon = datetime.now(UTC) - timedelta(days=1) + timedelta(seconds=3)
    issued = store.create(tenant="acme", scopes=parse_scopes("events:read"), expires_days=1, now=soon)
    assert _status(b, issued.secret) == 200
    assert _status(a, issued.secret) == 200
    _until(lambda: _status(b, issued.secret) == 401 and _status(a, issued.secret) == 401, 3.0 + PROPAGATION_S)


def test_failed_authentications_count_across_nodes(nodes: tuple[Service, Service]) -> None:
    """Bad tokens from one address, spread over both nodes: the limit is reached once, wherever they land."""
    a, b = nodes
    good = a.token("acme", "events:read")
    limit = a.settings.auth_failure_limit
    address = ("203.0.113.7", 40000)
    clients = [TestClient(node.client.app, client=address) for node in (a, b)]
    answers = []
    for attempt in range(limit):
        client = clients[attempt % 2]
        answers.append(client.get("/v1/events", headers=bearer(f"evl_{attempt:016d}_wrong")).status_code)
    assert answers == [401] * limit
    for client in clients:  # the next one on either node is over the limit
        refused = client.get("/v1/events", headers=bearer("evl_ffffffffffffffff_wrong"))
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1
    # A valid token still passes from there (one bad client behind a NAT must not lock the others out).
    assert clients[1].get("/v1/events", headers=bearer(good)).status_code == 200
    # Another address is not affected.
    assert _status(b, "evl_0000000000000001_wrong") == 401


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventlog.app.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_manages_the_shared_tokens(nodes: tuple[Service, Service], tmp_path: Path) -> None:
    a, b = nodes
    env = {
        "EVENTLOG_OPENSEARCH_URL": str(a.settings.opensearch_url),
        "EVENTLOG_OPENSEARCH_INDEX_PREFIX": a.settings.opensearch_index_prefix,
        "EVENTLOG_DATA_DIR": str(tmp_path / "cli"),  # a machine that is no node: its tokens.db stays empty
    }
    made = _cli("tokens", "create", "--tenant", "acme", "--scopes", "events:read", "--json", env=env)
    assert made.returncode == 0, made.stderr
    issued = orjson.loads(made.stdout)
    assert _status(a, issued["secret"]) == 200
    assert _status(b, issued["secret"]) == 200
    listed = _cli("tokens", "list", "--json", env=env)
    assert issued["id"] in {t["id"] for t in orjson.loads(listed.stdout)}
    assert not (tmp_path / "cli" / "tokens.db").exists()
    revoked = _cli("tokens", "revoke", issued["id"], env=env)
    assert revoked.returncode == 0, revoked.stderr
    _until(lambda: _status(a, issued["secret"]) == 401 and _status(b, issued["secret"]) == 401, PROPAGATION_S)


def test_a_token_is_not_made_while_opensearch_is_down(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"EVENTLOG_OPENSEARCH_URL": f"http://127.0.0.1:{port}", "EVENTLOG_DATA_DIR": str(tmp_path)}
    made = _cli("tokens", "create", "--tenant", "acme", "--scopes", "events:read", env=env)
    assert made.returncode == 1
    assert "secret" not in made.stdout
    assert "nothing was changed" in made.stderr, made.stderr
    assert "EVENTLOG_OPENSEARCH_URL" in made.stderr, made.stderr
    assert "Traceback" not in made.stderr
    assert not (tmp_path / "tokens.db").exists()
