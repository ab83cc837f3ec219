"""GET /v1/events/tail on a real server: matching events arrive within 2 s of their 201."""

from __future__ import annotations

import queue
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from eventlog.tokens import SqliteTokenStore
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


class _Watch:
    """A tail read in a thread until the server closes it: when it opened, when it ended, its last frame."""

    def __init__(self, url: str, token: str) -> None:
        self.opened = threading.Event()
        self.ended_at: float | None = None
        self.frames: list[str] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(url, token), daemon=True)
        self._thread.start()
        assert self.opened.wait(10), self.error

    def _run(self, url: str, token: str) -> None:
        try:
            # The read timeout is shorter than the keep-alive: a stream left open fails the test.
            with httpx.stream(
                "GET", f"{url}/v1/events/tail", headers={"Authorization": f"Bearer {token}"}, timeout=8
            ) as answer:
                assert answer.status_code == 200
                frame: list[str] = []
                for line in answer.iter_lines():
                    self.opened.set()
                    if line:
                        frame.append(line)
                    elif frame:
                        self.frames.append("\n".join(frame))
                        frame = []
            self.ended_at = time.monotonic()
        except BaseException as exc:  # the test thread reports it
            self.error = exc
            self.opened.set()

    def ended(self) -> float:
        self._thread.join(15)
        assert self.error is None, repr(self.error)
        assert self.ended_at is not None, "the tail is still open"
        return self.ended_at


RECHECK_S = 0.5


def test_a_tail_ends_soon_after_its_token_is_revoked_or_expires(tmp_path: Path) -> None:
    env = {"EVENTLOG_TAIL_TOKEN_RECHECK_SECONDS": str(RECHECK_S)}
    with ServerProcess(tmp_path / "data", env=env) as server:
        admin = {"Authorization": f"Bearer {server.create_token('ops', 'admin')}"}
        issued = httpx.post(
            f"{server.url}/v1/tokens", json={"tenant": "acme", "scopes": ["events:read"]}, headers=admin
        ).json()
        watch = _Watch(server.url, issued["secret"])
        time.sleep(2 * RECHECK_S)  # still valid: still open
        assert watch.ended_at is None
        revoked_at = time.monotonic()
        assert httpx.delete(f"{server.url}/v1/tokens/{issued['id']}", headers=admin).status_code == 200
        assert watch.ended() - revoked_at < RECHECK_S + 1.5
        assert watch.frames[-1].startswith("event: end\ndata: ")
        assert orjson.loads(watch.frames[-1].split("data: ", 1)[1])["error"] == "token_not_valid"
        reconnect = httpx.get(f"{server.url}/v1/events/tail", headers={"Authorization": f"Bearer {issued['secret']}"})
        assert reconnect.status_code == 401

        # A token that expires 3 s from now (the CLI and API give days, so it is written to the store directly).
        store = SqliteTokenStore(tmp_path / "data" / "tokens.db")
        expires_in = 3.0
        expiring = store.create(
            tenant="acme",
            scopes=frozenset({"events:read"}),
            expires_days=1,
            now=datetime.now(UTC) - timedelta(days=1) + timedelta(seconds=expires_in),
        )
        store.close()
        opened_at = time.monotonic()
        watch = _Watch(server.url, expiring.secret)
        ended = watch.ended() - opened_at
        assert expires_in - 0.5 < ended < expires_in + RECHECK_S + 1.5
        assert watch.frames[-1].startswith("event: end")


def test_a_last_event_id_that_is_no_sequence_is_400_and_a_sequence_resumes(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data") as server:
        token = server.create_token("acme", "events:read")

        def status(last_event_id: bytes) -> tuple[int, str]:
            headers = {b"Authorization": f"Bearer {token}".encode(), b"Last-Event-ID": last_event_id}
            with httpx.stream("GET", f"{server.url}/v1/events/tail", headers=headers, timeout=10) as answer:
                if answer.status_code != 200:
                    answer.read()
                    return answer.status_code, str(answer.json()["errors"][0]["parameter"])
                return 200, ""

        # Header bytes arrive as Latin-1: b"\xb2" is '²', which str.isdigit() takes and int() refuses.
        for refused in (b"\xb2", b"\xb9", "\u0663".encode(), b"12a", b"-1", b"1.0", b"9223372036854775808", b"9" * 20):
            assert status(refused) == (400, "Last-Event-ID"), refused
        for accepted in (b"", b"0", b"9223372036854775807"):
            assert status(accepted) == (200, ""), accepted
