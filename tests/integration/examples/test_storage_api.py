"""The Storage API example and eventlog as two real processes: one event per call, across outages and restarts.

eventlog runs as `eventlog serve` (ServerProcess) on one port for all its
starts, so that the example's STORAGE_API_EVENTLOG_URL stays valid; the
example runs under uvicorn with a remote HttpEmitter and a disk spool.

1. eventlog up: a mix of calls (2xx, 4xx, 5xx, a streamed export) gives
   exactly one event per call, with the right fields, found through
   `GET /v1/events?q=source:middleware`.
2. eventlog stopped: more calls; their events reach the spool on disk.
3. The example restarts while eventlog is still down (the spool must
   survive the host's restart), and serves more calls.
4. eventlog starts again on the same data dir and port: every event of
   2 and 3 arrives, once, and the spool empties.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import tests.integration.server as server_module
from tests.integration.examples.example_process import ExampleProcess
from tests.integration.server import CLEAN_EXIT_CODES, ServerProcess, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TENANT = "storage-example"
MASTER = "example-master-token-0123456789"
LEAKED = "leaked-query-secret"
ARRIVAL_TIMEOUT_S = 30.0


@dataclass
class Sent:
    """One call to the example and what its event must say."""

    request_id: str
    method: str
    path: str
    route: str | None
    status: int
    action: str
    query: str | None = None
    authenticated: bool = True
    target: dict[str, str] = field(default_factory=dict)
    bytes_in: int = 0  # known after the call
    bytes_out: int = 0


async def send_mix(http: httpx.AsyncClient, phase: str) -> list[Sent]:
    """A dozen calls of every kind; each carries its own X-Request-ID."""
    bucket = f"in.c-{phase}"
    table = f"{bucket}.sales"
    rows = {"rows": [[str(i), f"customer {i}", f"{i * 1.5:.2f}"] for i in range(100)]}
    plan: list[tuple[Sent, dict[str, Any]]] = [
        (Sent("", "GET", "/v2/storage/tokens/verify", "/v2/storage/tokens/verify", 200, "storage.tokens.verify"), {}),
        (
            Sent(
                "",
                "POST",
                "/v2/storage/buckets",
                "/v2/storage/buckets",
                201,
                "storage.buckets.create",
                target={"type": "bucket", "id": bucket, "name": phase},
            ),
            {"json": {"name": phase, "stage": "in"}},
        ),
        (
            Sent("", "POST", "/v2/storage/buckets", "/v2/storage/buckets", 409, "storage.buckets.create"),
            {"json": {"name": phase, "stage": "in"}},
        ),
        (
            Sent("", "POST", "/v2/storage/buckets", "/v2/storage/buckets", 422, "storage.buckets.create"),
            {"json": {"name": "bad name!"}},
        ),
        (
            Sent(
                "",
                "POST",
                f"/v2/storage/buckets/{bucket}/tables",
                "/v2/storage/buckets/{bucket_id}/tables",
                201,
                "storage.tables.create",
                target={"type": "bucket", "id": bucket},
            ),
            {"json": {"name": "sales", "columns": ["id", "name", "amount"]}},
        ),
        (
            Sent(
                "",
                "POST",
                f"/v2/storage/tables/{table}/rows",
                "/v2/storage/tables/{table_id}/rows",
                200,
                "storage.tables.import",
                target={"type": "table", "id": table},
            ),
            {"content": orjson.dumps(rows), "headers": {"Content-Type": "application/json"}},
        ),
        (
            Sent(
                "",
                "GET",
                f"/v2/storage/tables/{table}/export",
                "/v2/storage/tables/{table_id}/export",
                200,
                "storage.tables.export",
                query="repeat=40",
                target={"type": "table", "id": table},
            ),
            {"params": {"repeat": "40"}},
        ),
        (
            Sent(
                "",
                "GET",
                "/v2/storage/tables/in.c-nothing.x",
                "/v2/storage/tables/{table_id}",
                404,
                "storage.tables.detail",
                target={"type": "table", "id": "in.c-nothing.x"},
            ),
            {},
        ),
        (
            Sent(
                "",
                "GET",
                "/v2/storage/buckets",
                "/v2/storage/buckets",
                401,
                "storage.buckets.list",
                authenticated=False,
            ),
            {"headers": {"X-StorageApi-Token": "wrong-token"}},
        ),
        (
            Sent(
                "",
                "POST",
                f"/v2/storage/tables/{table}/snapshots",
                "/v2/storage/tables/{table_id}/snapshots",
                500,
                "storage.tables.snapshot",
                target={"type": "table", "id": table},
            ),
            # uvicorn closes the connection after an app exception: keep it off the pooled ones.
            {"headers": {"Connection": "close"}},
        ),
        (
            Sent(
                "",
                "GET",
                "/v2/storage/tables",
                "/v2/storage/tables",
                200,
                "storage.tables.list",
                query="token=[REDACTED]&limit=5",
            ),
            {"params": {"token": LEAKED, "limit": "5"}},
        ),
        (
            # No route ran, so no dependency named the token.
            Sent("", "GET", "/v2/nothing/here", None, 404, "http.GET", authenticated=False),
            {},
        ),
        (
            Sent(
                "",
                "DELETE",
                f"/v2/storage/tables/{table}",
                "/v2/storage/tables/{table_id}",
                204,
                "storage.tables.delete",
                target={"type": "table", "id": table},
            ),
            {},
        ),
    ]
    sent: list[Sent] = []
    for number, (call, options) in enumerate(plan):
        call.request_id = f"{phase}-{number:02d}"
        headers = {"X-StorageApi-Token": MASTER, "X-Request-ID": call.request_id, "User-Agent": "kbc-test/1.0"}
        headers.update(options.pop("headers", {}))
        response = await http.request(call.method, call.path, headers=headers, **options)
        assert response.status_code == call.status, f"{call.method} {call.path}: {response.status_code} {response.text}"
        assert response.headers["x-request-id"] == call.request_id
        call.bytes_in = len(response.request.content)
        call.bytes_out = len(response.content)
        sent.append(call)
    return sent


async def middleware_events(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"q": "source:middleware", "limit": 1000, "order": "asc"}
        if cursor:
            params["cursor"] = cursor
        response = await http.get("/v1/events", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        events.extend(page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            return events


async def wait_for(http: httpx.AsyncClient, sent: list[Sent]) -> list[dict[str, Any]]:
    wanted = {s.request_id for s in sent}
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
    while True:
        events = await middleware_events(http)
        if wanted <= {e["request"]["request_id"] for e in events}:
            return events
        if time.monotonic() > deadline:
            missing = sorted(wanted - {e["request"]["request_id"] for e in events})
            raise AssertionError(f"{len(missing)} calls have no event after {ARRIVAL_TIMEOUT_S} s: {missing}")
        await asyncio.sleep(0.2)


def check(events: list[dict[str, Any]], sent: list[Sent]) -> None:
    """Exactly one event per call, and nothing else; every field as the call was."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_id.setdefault(event["request"]["request_id"], []).append(event)
    doubled = {k: len(v) for k, v in by_id.items() if len(v) != 1}
    assert not doubled, f"calls with more than one event: {doubled}"
    assert set(by_id) == {s.request_id for s in sent}, f"unexpected events: {set(by_id) - {s.request_id for s in sent}}"
    wrong: list[str] = []
    for call in sent:
        (event,) = by_id[call.request_id]
        request = event["request"]
        expected = {
            "tenant": TENANT,
            "source": "middleware",
            "action": call.action,
            "outcome": "success" if call.status < 400 else "failure",
            "method": call.method,
            "path": call.path,
            "route": call.route,
            "status": call.status,
            "query": call.query,
            "ip": "127.0.0.1",
            "user_agent": "kbc-test/1.0",
            "actor.id": "1" if call.authenticated else None,
            "target": call.target,
            "token header": "[REDACTED]",
        }
        actual = {
            "tenant": event["tenant"],
            "source": event["source"],
            "action": event["action"],
            "outcome": event["outcome"],
            "method": request["method"],
            "path": request["path"],
            "route": request.get("route"),
            "status": request["status"],
            "query": request.get("query"),
            "ip": event["actor"].get("ip"),
            "user_agent": event["actor"].get("user_agent"),
            "actor.id": event["actor"].get("id"),
            "target": event["target"],
            "token header": event["details"]["headers"]["x-storageapi-token"],
        }
        if expected != actual:
            wrong.append(f"{call.request_id}: {[(k, actual[k], v) for k, v in expected.items() if actual[k] != v]}")
        if (request["bytes_in"], request["bytes_out"]) != (call.bytes_in, call.bytes_out):
            wrong.append(
                f"{call.request_id}: bytes {request['bytes_in']}/{request['bytes_out']}, sent {call.bytes_in}/{call.bytes_out}"
            )
        if not request["duration_ms"] >= 0:
            wrong.append(f"{call.request_id}: duration_ms {request['duration_ms']}")
        if call.status == 500 and event["details"].get("error") != "RuntimeError":
            wrong.append(f"{call.request_id}: details {event['details']}")
    assert not wrong, "events differ from their calls:\n" + "\n".join(wrong)
    text = orjson.dumps(events).decode()
    assert MASTER not in text, "the Storage API token leaked into an event"
    assert LEAKED not in text, "a secret query value leaked into an event"


def spooled(spool_dir: Path) -> int:
    path = spool_dir / "spool.db"
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM spool").fetchone()[0])
    finally:
        conn.close()


def dead_letters(spool_dir: Path) -> int:
    conn = sqlite3.connect(f"file:{spool_dir / 'spool.db'}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])
    finally:
        conn.close()


async def until(condition: Any, what: str, timeout: float = ARRIVAL_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.1)


async def test_one_event_per_call_across_eventlog_outage_and_host_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One port for every start of eventlog: the example is configured once, like a real deployment.
    eventlog_port = free_port()
    monkeypatch.setattr(server_module, "free_port", lambda host="127.0.0.1": eventlog_port)
    spool_dir = tmp_path / "spool"
    with ServerProcess(tmp_path / "data") as eventlog:
        writer = eventlog.create_token(TENANT, ["events:write"])
        reader = eventlog.create_token(TENANT, ["events:read"])
        env = {
            "STORAGE_API_MASTER_TOKEN": MASTER,
            "STORAGE_API_EVENTLOG_URL": eventlog.url,
            "STORAGE_API_EVENTLOG_TOKEN": writer,
            "STORAGE_API_SPOOL_DIR": str(spool_dir),
            "STORAGE_API_FLUSH_INTERVAL_SECONDS": "0.05",
            "STORAGE_API_MAX_BACKOFF_SECONDS": "0.5",
            "STORAGE_API_REQUEST_TIMEOUT_SECONDS": "5",
        }
        with ExampleProcess(tmp_path / "example", env) as example:
            async with (
                httpx.AsyncClient(base_url=example.url, timeout=10.0, trust_env=False) as api,
                httpx.AsyncClient(
                    base_url=eventlog.url, headers={"Authorization": f"Bearer {reader}"}, timeout=10.0, trust_env=False
                ) as log_api,
            ):
                # 1. eventlog up.
                up = await send_mix(api, "up")
                check(await wait_for(log_api, up), up)
                streamed = next(s for s in up if s.action == "storage.tables.export")
                assert streamed.bytes_out > 40 * 100 * 10, "the export should be large enough to stream in chunks"

                # 2. eventlog down: the events go to the disk spool.
                assert eventlog.stop() in CLEAN_EXIT_CODES, eventlog.log_tail()
                down = await send_mix(api, "down")
                await until(lambda: spooled(spool_dir) >= len(down), "spooling while eventlog is down")

            # 3. The host restarts while eventlog is still down; the spool stays on disk.
            assert example.stop() in (0, -15), example.log_tail()
            assert spooled(spool_dir) == len(down)
            example.start()
            async with httpx.AsyncClient(base_url=example.url, timeout=10.0, trust_env=False) as api:
                restarted = await send_mix(api, "restarted")
                await until(lambda: spooled(spool_dir) >= len(down) + len(restarted), "spooling after the host restart")

            # 4. eventlog back on the same data dir and port: everything arrives, once.
            eventlog.start()
            assert eventlog.url == env["STORAGE_API_EVENTLOG_URL"]
            async with httpx.AsyncClient(
                base_url=eventlog.url, headers={"Authorization": f"Bearer {reader}"}, timeout=10.0, trust_env=False
            ) as log_api:
                every = up + down + restarted
                check(await wait_for(log_api, every), every)
            await until(lambda: spooled(spool_dir) == 0, "the spool to empty")
            assert dead_letters(spool_dir) == 0
            log = example.log_text()
            # The only tracebacks are the snapshot endpoint's own 500s, one per phase; the emitter never failed.
            assert log.count("Traceback") == log.count("RuntimeError: the snapshot backend is not configured") == 3
            assert "emitter loop stopped" not in log
        assert eventlog.verify().returncode == 0
