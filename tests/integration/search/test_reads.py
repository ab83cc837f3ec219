"""Reads under a costly query: the deadline stops it, other tenants still read, a client that leaves stops its work.

The costly query is one a user can send: prefixes of `actor.user_agent`, a field the embedded store
reads out of each document once per term; on 300 events as big as an event may be, seconds of work.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import string
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Message

from eventlog.app.service import create_app
from search.api import SearchParts
from search.reads import Reads
from tests.app import Service, bearer, make_settings

HEAVY_QUERY = " OR ".join(f"actor.user_agent:x{n}*" for n in range(80))
HOG = "hog"
OTHER = "other"


def until(condition: Callable[[], bool], timeout_seconds: float, message: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.005)


def _post(service: Service, token: str, events: list[dict[str, Any]]) -> None:
    answer = service.client.post("/v1/events", json={"events": events}, headers=bearer(token))
    assert answer.status_code == 201, answer.text


@pytest.fixture(scope="module")
def heavy_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A data dir with 300 big events of the hog and one of the other tenant, and a token of each."""
    data = tmp_path_factory.mktemp("heavy") / "data"
    settings = make_settings(data)
    with TestClient(create_app(settings)) as client:
        service = Service(client, settings)
        tokens = {HOG: service.token(HOG), OTHER: service.token(OTHER)}
        blob = ["y" * 4000] * 14
        for start in range(0, 300, 75):
            events = [
                {"id": f"e{n}", "action": "a", "actor": {"id": "u", "user_agent": "agent"}, "details": {"blob": blob}}
                for n in range(start, start + 75)
            ]
            _post(service, tokens[HOG], events)
        _post(service, tokens[OTHER], [{"id": "o1", "action": "a", "message": "the other tenant's event"}])
        service.settle(60)
    return data, tokens


def _service(heavy_data: tuple[Path, dict[str, str]], tmp_path: Path, **settings: object) -> tuple[TestClient, FastAPI]:
    data = tmp_path / "data"
    shutil.copytree(heavy_data[0], data)
    app = create_app(make_settings(data, **settings))
    return TestClient(app), app


def _reads(app: FastAPI) -> Reads:
    reads: Reads = app.state.ctx.part(SearchParts).reads
    return reads


def test_a_costly_query_is_stopped_at_the_deadline_while_another_tenant_reads(
    heavy_data: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    tokens = heavy_data[1]
    client, app = _service(
        heavy_data,
        tmp_path,
        read_deadline_seconds=1.0,
        read_threads=3,
        read_tenant_concurrent_reads=1,
        read_tenant_queued_reads=0,
    )
    with client, ThreadPoolExecutor(2) as pool:
        reads = _reads(app)
        heavy = {"q": HEAVY_QUERY, "limit": "1"}
        costly = pool.submit(client.get, "/v1/events", params=heavy, headers=bearer(tokens[HOG]))
        until(lambda: reads.running(HOG) == 1, 10, "the costly read did not start")

        over_share = client.get("/v1/events", params=heavy, headers=bearer(tokens[HOG]))
        assert over_share.status_code == 429, over_share.text
        assert over_share.json()["error"] == "too_many_reads"
        assert over_share.headers["Retry-After"] == "1"

        other = client.get("/v1/events", params={"limit": 1}, headers=bearer(tokens[OTHER]))
        assert other.status_code == 200, other.text
        assert [e["id"] for e in other.json()["events"]] == ["o1"]
        assert reads.running(HOG) == 1, "the other tenant's read should not have waited for the costly one"

        stopped = costly.result(timeout=30)
        assert stopped.status_code == 400, stopped.text
        body = stopped.json()
        assert body["error"] == "read_deadline_exceeded"
        assert "narrow the query" in body["message"]
        assert "time range" in body["message"]
        until(lambda: reads.running(HOG) == 0, 5, "the costly read's thread is still busy")
        again = client.get("/v1/events", params={"limit": 1}, headers=bearer(tokens[HOG]))
        assert again.status_code == 200, again.text


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/events/histogram", {}),
        ("/v1/events/facets", {"field": "action"}),
        ("/v1/events/export", {}),
        ("/v2/storage/events", {}),
    ],
)
def test_every_read_route_answers_the_deadline_with_400(
    heavy_data: tuple[Path, dict[str, str]], tmp_path: Path, path: str, params: dict[str, str]
) -> None:
    client, _ = _service(heavy_data, tmp_path, read_deadline_seconds=0.5)
    headers = bearer(heavy_data[1][HOG])
    if path.startswith("/v2/"):
        headers = {"X-StorageApi-Token": heavy_data[1][HOG]}
    with client:
        answer = client.get(path, params={"q": HEAVY_QUERY, **params}, headers=headers)
    assert answer.status_code == 400, answer.text[:300]
    assert answer.json()["error"] == "read_deadline_exceeded"


def test_a_read_whose_client_disconnects_stops_its_work(
    heavy_data: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    client, app = _service(heavy_data, tmp_path, read_deadline_seconds=600.0)
    query = urlencode({"q": HEAVY_QUERY, "limit": 1}).encode()
    token = heavy_data[1][HOG]

    async def leave_during_the_read() -> list[Message]:
        reads = _reads(app)
        sent: list[Message] = []
        requested = False
        leave = asyncio.Event()

        async def receive() -> Message:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await leave.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/v1/events",
            "raw_path": b"/v1/events",
            "root_path": "",
            "query_string": query,
            "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "state": {},
        }
        call = asyncio.ensure_future(app(scope, receive, send))
        started = time.monotonic()
        while reads.running(HOG) == 0:
            assert time.monotonic() - started < 10, "the read did not start"
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the statement is under way
        leave.set()
        await asyncio.wait_for(call, 5)  # without the watch, the app answers only when the statement ends
        return sent

    with client:
        assert client.portal is not None
        sent = client.portal.call(leave_during_the_read)
        assert sent[0]["status"] == 499
        until(lambda: _reads(app).running(HOG) == 0, 2, "the statement ran on after its client left")


def test_too_many_details_terms_are_refused_with_the_limit_named(service: Service) -> None:
    token = service.token("acme")
    q = " OR ".join(f"details.k{n}:v" for n in range(21))
    answer = service.client.get("/v1/events", params={"q": q}, headers=bearer(token))
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "invalid_query"
    assert body["errors"][0]["expected"] == "at most 20 terms on details fields"


# -- OpenSearch ---------------------------------------------------------------------------------------------------------

# Every word of the text starts with one of these: each prefix expands to thousands of terms.
TEXT_PREFIXES = " OR ".join(f"{chr(97 + n % 26)}*" for n in range(100))


def _search_tasks(url: str, prefix: str) -> list[str]:
    listed = httpx.get(f"{url}/_tasks", params={"actions": "indices:data/read/search*", "detailed": "true"}).json()
    descriptions = [task.get("description", "") for node in listed["nodes"].values() for task in node["tasks"].values()]
    return [d for d in descriptions if prefix in d]


@pytest.mark.opensearch
def test_opensearch_stops_a_search_at_the_deadline(tmp_path: Path, opensearch_url: str, index_prefix: str) -> None:
    settings = make_settings(tmp_path / "data", opensearch_url=opensearch_url, opensearch_index_prefix=index_prefix)
    chance = random.Random(7)
    words = ["".join(chance.choices(string.ascii_lowercase, k=6)) for _ in range(40_000)]
    with TestClient(create_app(settings)) as client:
        service = Service(client, settings)
        token = service.token(HOG)
        for start in range(0, 1000, 250):
            events = [
                {"id": f"e{n}", "action": "a", "message": " ".join(chance.choices(words, k=200))}
                for n in range(start, start + 250)
            ]
            _post(service, token, events)
        service.settle(60)
        fine = client.get("/v1/events", params={"q": TEXT_PREFIXES, "limit": 1}, headers=bearer(token))
        assert fine.status_code == 200, fine.text
    # The same node and data, with a deadline no search of these 100 prefixes can meet.
    fast = make_settings(
        tmp_path / "data",
        opensearch_url=opensearch_url,
        opensearch_index_prefix=index_prefix,
        read_deadline_seconds=0.001,
    )
    with TestClient(create_app(fast)) as client:
        for path in ("/v1/events", "/v1/events/histogram", "/v1/events/export"):
            answer = client.get(path, params={"q": TEXT_PREFIXES}, headers=bearer(token))
            assert answer.status_code == 400, answer.text[:300]
            assert answer.json()["error"] == "read_deadline_exceeded"
    until(lambda: not _search_tasks(opensearch_url, index_prefix), 10, "a search ran on past its deadline")
