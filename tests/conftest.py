"""Fixtures shared by every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from eventlog.service import create_app
from tests.app import Service, make_settings


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    settings = make_settings(tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        yield Service(client, settings)
