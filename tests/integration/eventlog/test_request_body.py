"""A body over the limit, sent by a plain client to a real server: the client reads the 413, not a reset."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.server import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

LIMIT = 5 * 1024 * 1024  # EVENTLOG_MAX_REQUEST_BYTES by default
ENDPOINTS = [("/v1/events", "Authorization", "Bearer "), ("/v2/storage/events", "X-StorageApi-Token", "")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    with ServerProcess(Path(tmp_path_factory.mktemp("body")) / "data") as process:
        yield process, process.create_token("acme", ["events:write"])


def _headers(server: tuple[ServerProcess, str], header: str, prefix: str) -> dict[str, str]:
    return {header: prefix + server[1], "Content-Type": "application/json"}


@pytest.mark.parametrize(("path", "header", "prefix"), ENDPOINTS)
@pytest.mark.parametrize("close", [False, True])
def test_a_plain_upload_of_twice_the_limit_reads_the_413(
    server: tuple[ServerProcess, str], path: str, header: str, prefix: str, close: bool
) -> None:
    headers = _headers(server, header, prefix)
    if close:
        headers["Connection"] = "close"
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", server[0].port, timeout=60)) as connection:
        connection.request("POST", path, body=b" " * (2 * LIMIT), headers=headers)
        answer = connection.getresponse()
        body = json.loads(answer.read())
        assert answer.status == 413
        assert body["error"] == "body_too_large"
        assert str(LIMIT) in body["message"]
        if not close:
            # The body was read to its end: the same connection carries the next request.
            connection.request(
                "POST", path, body=b'{"component": "c", "message": "m", "action": "a.b"}', headers=headers
            )
            assert connection.getresponse().status in (201, 422)


@pytest.mark.parametrize(("path", "header", "prefix"), ENDPOINTS)
def test_a_chunked_upload_over_the_limit_reads_the_413(
    server: tuple[ServerProcess, str], path: str, header: str, prefix: str
) -> None:
    chunks = (b" " * 65_536 for _ in range(2 * LIMIT // 65_536))
    headers = {**_headers(server, header, prefix), "Connection": "close"}
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", server[0].port, timeout=60)) as connection:
        connection.request("POST", path, body=chunks, headers=headers, encode_chunked=True)
        answer = connection.getresponse()
        assert answer.status == 413
        assert json.loads(answer.read())["error"] == "body_too_large"


@pytest.mark.parametrize(("path", "header", "prefix"), ENDPOINTS)
def test_a_client_that_waits_for_100_continue_is_answered_before_it_sends(
    server: tuple[ServerProcess, str], path: str, header: str, prefix: str
) -> None:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: eventlog\r\n{header}: {prefix}{server[1]}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {2 * LIMIT}\r\nExpect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server[0].port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(65_536)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
