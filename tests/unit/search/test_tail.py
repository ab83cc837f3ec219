"""Live tail: a costly query against big events is matched without holding up the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from pathlib import Path

from eventlog.canonical import canonical_json
from eventlog.journal import Journal, Prepared
from search.query import parse
from search.tail import tail

WORDS = [f"w{n}" for n in range(600)]
# 79 phrases and 20 details terms that match nothing, so every one is tried on every event, then one that does.
COSTLY = " OR ".join([f'"{w} nope"' for w in WORDS[:79]] + [f"details.k{n}:nope" for n in range(20)] + ['"w599"'])


def _prepared(n: int) -> Prepared:
    body = {
        "id": f"e{n}",
        "action": "a",
        "message": " ".join(WORDS),
        "details": {f"k{k}": f"v{k}" for k in range(50)},
    }
    return Prepared(f"e{n}", body, canonical_json(body), True)


async def test_matching_runs_off_the_event_loop_and_finds_what_matches(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db", stream="s")
    journal.open()
    try:
        await journal.append("hog", [_prepared(n) for n in range(300)])
        gaps: list[float] = []

        async def tick() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.001)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        stream = tail(journal, "hog", parse(COSTLY), after_seq=0, heartbeat_seconds=0.1)
        assert isinstance(stream, AsyncGenerator)
        try:
            assert (await anext(stream)).startswith(b"retry:")
            frames = b""
            while not frames.endswith(b": keep-alive\n\n"):  # every batch matched, the tail waits for more
                frames += await asyncio.wait_for(anext(stream), 60)
        finally:
            ticker.cancel()
            await stream.aclose()
        assert frames.count(b"event: event\n") == 300
        # Matched on the loop, these 300 events hold it for seconds; off it, the ticker hardly notices.
        assert max(gaps) < 1.0, f"the event loop stood still for {max(gaps):.2f} s"
    finally:
        journal.close()
