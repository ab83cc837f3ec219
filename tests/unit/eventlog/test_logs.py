"""The service's own logs are JSON lines with request id, tenant, status, duration, and no secret."""

from __future__ import annotations

import logging

import orjson
import pytest

from eventlog import logs
from tests.app import Service, bearer


def test_access_log_is_json_with_context_and_without_the_token(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("INFO")
    try:
        token = service.token("acme")
        service.client.post("/v1/events", json={"action": "a.b"}, headers={**bearer(token), "X-Request-ID": "r-1"})
        err = capsys.readouterr().err
    finally:
        logging.getLogger().handlers.clear()
    lines = [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = next(line for line in lines if line.get("request_id") == "r-1")
    assert access["tenant"] == "acme"
    assert access["status"] == 201
    assert access["method"] == "POST"
    assert access["duration_ms"] > 0
    assert token not in err
    assert token.split("_", 2)[2] not in err
