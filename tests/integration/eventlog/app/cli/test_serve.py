"""`eventlog serve` stops for a balancer: SIGTERM with a stream open and writes in flight ends within 10 s."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.server import CLEAN_EXIT_CODES, ServerProcess

pytestmark = pytest.mark.slow

STOP_BOUND_S = 10.0


def test_sigterm_with_a_tail_open_and_writes_in_flight_stops_within_10_s(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data") as server:
        secret = server.create_token("acme", ["events:write", "events:read"])
        headers = {"Authorization": f"Bearer {secret}"}
        acked: list[str] = []
        stop_writing = threading.Event()

        def tail() -> None:  # a live tail never ends by itself: the stop must close it
            with (
                contextlib.suppress(httpx.HTTPError),
                httpx.stream("GET", f"{server.url}/v1/events/tail", headers=headers, timeout=None) as answer,
            ):
                for _ in answer.iter_lines():
                    pass

        def write() -> None:
            with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
                while not stop_writing.is_set():
                    try:
                        answer = http.post("/v1/events", json={"events": [{"action": "a.b"}] * 50})
                    except httpx.HTTPError:
                        return  # the node went away: what it acknowledged is what counts
                    if answer.status_code == 201:
                        acked.extend(r["id"] for r in answer.json()["receipts"])

        threads = [threading.Thread(target=tail, daemon=True), threading.Thread(target=write, daemon=True)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        started = time.monotonic()
        code = server.stop(timeout=STOP_BOUND_S + 5)
        took = time.monotonic() - started
        stop_writing.set()
        for thread in threads:
            thread.join(10)
        print(f"\nstopped in {took:.2f} s after {len(acked)} acknowledged events")
        assert code in CLEAN_EXIT_CODES, server.log_tail()
        assert took <= STOP_BOUND_S, f"the stop took {took:.1f} s"
        assert acked
        log = server.log_tail(200)
        assert "eventlog stopped" in log
        verified = server.verify()  # the final checkpoint signs the end of the stream
        assert verified.returncode == 0, verified.stdout + verified.stderr
        server.start()  # every acknowledged event is still there
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            for event_id in acked[-50:]:
                assert http.get(f"/v1/events/{event_id}").status_code == 200
