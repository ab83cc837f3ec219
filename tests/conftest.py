"""Fixtures shared by every test: the in-process app, and real services behind markers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from eventlog.service import create_app
from tests.app import Service, make_settings
from tests.opensearch_node import start_opensearch


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    settings = make_settings(tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        yield Service(client, settings)


@pytest.fixture(scope="session")
def _opensearch_node() -> Iterator[str]:
    """One real OpenSearch node for the whole session; failing to get one fails the tests that need it."""
    try:
        url, stop = start_opensearch()
    except RuntimeError as exc:
        pytest.fail(f"no OpenSearch for the `opensearch` tests: {exc}", pytrace=False)
    try:
        yield url
    finally:
        stop()


@pytest.fixture
def opensearch_url(request: pytest.FixtureRequest, _opensearch_node: str) -> str:
    """The node's URL, for tests that carry the `opensearch` marker (and only those)."""
    if request.node.get_closest_marker("opensearch") is None:
        pytest.fail("a test that talks to OpenSearch must be marked @pytest.mark.opensearch", pytrace=False)
    return _opensearch_node


@pytest.fixture
def index_prefix() -> str:
    """A fresh index prefix, so tests on the shared node never see each other's events."""
    return f"t{uuid.uuid4().hex[:12]}"


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
