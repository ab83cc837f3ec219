"""GET /v1/events/tail on a real server: matching events arrive within 2 s of their 201."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.integration.server import ServerProcess

pytestmark = pytest.mark.slow


def _read_events(
    url: str,
    token: str,
    params: dict[str, str],
    out: queue.Queue[tuple[float, dict[str, object]]],
    headers: dict[str, str] | None = None,
    stop_after: int = 3,
) -> threading.Thread:
    def run() -> None:
        with httpx.stream(
            "GET",
            f"{url}/v1/events/tail",
            params=params,
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
            timeout=30,
        ) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            frame: dict[str, str] = {}
            for line in answer.iter_lines():
                if line.startswith("data: "):
                    frame["data"] = line[6:]
                elif line.startswith("id: "):
                    frame["id"] = line[4:]
                elif line == "" and "data" in frame:
                    out.put((time.monotonic(), {**orjson.loads(frame["data"]), "_sse_id": frame.get("id")}))
                    frame = {}
                    if out.qsize() >= stop_after:
                        return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_tail_delivers_matching_events_of_the_tenant_within_two_seconds(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data") as server:
        token = server.create_token("acme", "events:read,events:write")
        other = server.create_token("globex", "events:read,events:write")
        seen: queue.Queue[tuple[float, dict[str, object]]] = queue.Queue()
        reader = _read_events(server.url, token, {"q": "action:deploy.*"}, seen, stop_after=3)
        time.sleep(0.5)  # let the stream subscribe
        acked: dict[str, float] = {}
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as client:
            for action in ("deploy.start", "login", "deploy.finish", "deploy.rollback"):
                answer = client.post("/v1/events", json={"action": action})
                assert answer.status_code == 201
                acked[answer.json()["receipts"][0]["id"]] = time.monotonic()
            stranger = httpx.post(
                f"{server.url}/v1/events",
                json={"action": "deploy.secret"},
                headers={"Authorization": f"Bearer {other}"},
            )
            assert stranger.status_code == 201
        reader.join(timeout=10)
        got = [seen.get_nowait() for _ in range(seen.qsize())]
        assert [event["action"] for _, event in got] == ["deploy.start", "deploy.finish", "deploy.rollback"]
        delays = [arrived - acked[str(event["id"])] for arrived, event in got]
        assert max(delays) < 2.0, delays

        # A reconnecting client resumes after the last id it saw.
        first_id = str(got[0][1]["_sse_id"])
        resumed: queue.Queue[tuple[float, dict[str, object]]] = queue.Queue()
        _read_events(
            server.url, token, {"q": "action:deploy.*"}, resumed, {"Last-Event-ID": first_id}, stop_after=2
        ).join(timeout=10)
        assert [event["action"] for _, event in (resumed.get_nowait() for _ in range(resumed.qsize()))] == [
            "deploy.finish",
            "deploy.rollback",
        ]
