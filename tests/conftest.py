"""Fixtures shared by every test: the in-process app, and real services behind markers.

Each real service (OpenSearch, the S3 server, the syslog receivers) is started once per
session and handed only to tests that carry its marker; one that cannot be started fails
those tests with the reason and how to get it, never skips them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from eventlog.app.service import create_app
from tests.app import Service, make_settings
from tests.opensearch_node import start_opensearch
from tests.s3_server import start_s3
from tests.syslog_receivers import (
    Receiver,
    ReceiverKind,
    ReceiverUnavailable,
    TlsFiles,
    make_tls_files,
    start_receiver,
)


def _require_marker(request: pytest.FixtureRequest, marker: str, service: str) -> None:
    if request.node.get_closest_marker(marker) is None:
        pytest.fail(f"a test that talks to {service} must be marked @pytest.mark.{marker}", pytrace=False)


def _session_service(start: Callable[[], tuple[str, Callable[[], None]]], marker: str) -> Iterator[str]:
    """Start a service for the session, yield its URL, stop it at the end."""
    try:
        url, stop = start()
    except RuntimeError as exc:
        pytest.fail(f"no server for the `{marker}` tests: {exc}", pytrace=False)
    try:
        yield url
    finally:
        stop()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    settings = make_settings(tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        yield Service(client, settings)


# -- OpenSearch, for tests marked `opensearch` ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def _opensearch_node() -> Iterator[str]:
    yield from _session_service(start_opensearch, "opensearch")


@pytest.fixture
def opensearch_url(request: pytest.FixtureRequest, _opensearch_node: str) -> str:
    """The node's URL, for tests that carry the `opensearch` marker (and only those)."""
    _require_marker(request, "opensearch", "OpenSearch")
    return _opensearch_node


@pytest.fixture
def index_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh index prefix, so tests on the shared node never see each other's events.

    Its indices and templates are deleted after the test: every prefix brings a few shards (the daily
    indices and the cluster's own, tokens and the like), and a node opens at most 1000.
    """
    prefix = f"t{uuid.uuid4().hex[:12]}"
    yield prefix
    callspec = getattr(request.node, "callspec", None)
    on_opensearch = callspec is not None and callspec.params.get("any_service") == "opensearch"
    if on_opensearch or "opensearch_url" in request.fixturenames:
        url = request.getfixturevalue("_opensearch_node")
        with contextlib.suppress(httpx.HTTPError):
            httpx.delete(f"{url}/{prefix}-*", params={"expand_wildcards": "all", "ignore_unavailable": "true"})
            httpx.delete(f"{url}/_index_template/{prefix}-*")


@pytest.fixture(params=["sqlite", pytest.param("opensearch", marks=pytest.mark.opensearch)])
def any_service(request: pytest.FixtureRequest, tmp_path: Path, index_prefix: str) -> Iterator[Service]:
    """The same service on each backend, for the conformance suite."""
    overrides: dict[str, object] = {}
    if request.param == "opensearch":
        overrides = {
            "opensearch_url": request.getfixturevalue("opensearch_url"),
            "opensearch_index_prefix": index_prefix,
        }
    settings = make_settings(tmp_path / "data", **overrides)
    with TestClient(create_app(settings)) as client:
        yield Service(client, settings)


# -- syslog receivers (rsyslog, syslog-ng), for tests marked `syslog` ----------------------------------------------


@pytest.fixture(scope="session")
def syslog_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA with server certificates for localhost / 127.0.0.1 and for wrong.example."""
    return make_tls_files(tmp_path_factory.mktemp("syslog-tls"))


@pytest.fixture
def start_syslog_receiver(
    request: pytest.FixtureRequest, tmp_path: Path, syslog_tls: TlsFiles
) -> Iterator[Callable[..., Receiver]]:
    """Start rsyslog or syslog-ng for a test marked `syslog`, stopped after it; one that cannot start fails the test."""
    _require_marker(request, "syslog", "a syslog receiver")
    started: list[Receiver] = []

    def start(kind: ReceiverKind, *, wrong_host: bool = False) -> Receiver:
        problem = ""
        try:
            receiver = start_receiver(kind, tmp_path / f"{kind}-{len(started)}", syslog_tls, wrong_host=wrong_host)
        except ReceiverUnavailable as exc:
            problem = str(exc)
        if problem:
            pytest.fail(f"no {kind} for the `syslog` tests: {problem}", pytrace=False)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture(params=["rsyslog", "syslog-ng"])
def syslog_receiver(request: pytest.FixtureRequest, start_syslog_receiver: Callable[..., Receiver]) -> Receiver:
    """Each real receiver in turn, serving the localhost certificate on its TLS port."""
    receiver: Receiver = start_syslog_receiver(request.param)
    return receiver


# -- an S3-compatible server (moto's standalone server), for tests marked `s3` -------------------------------------


@pytest.fixture(scope="session")
def _s3_server() -> Iterator[str]:
    yield from _session_service(start_s3, "s3")


@pytest.fixture
def s3_endpoint_url(request: pytest.FixtureRequest, _s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The server's endpoint URL, for tests marked `s3`; boto3 gets dummy credentials and a region."""
    _require_marker(request, "s3", "the S3 server")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return _s3_server
