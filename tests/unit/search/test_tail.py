"""The live tail's stream: it ends soon after its token stops being valid, and matches off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import pytest

from eventlog.canonical import canonical_json
from eventlog.journal import Journal, JournalClosed, Prepared
from search.query import parse
from search.tail import TOKEN_ENDED, tail

RECHECK_SECONDS = 0.2


class Validity:
    """What the tail's token check answers, and how often it was asked."""

    def __init__(self) -> None:
        self.valid = True
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.valid


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal(tmp_path / "journal.db", stream="node-a")
    opened.open()
    yield opened
    opened.close()


async def _append(journal: Journal, action: str) -> None:
    body = {"id": action, "action": action, "tenant": "acme"}
    await journal.append("acme", [Prepared(action, body, canonical_json(body), False)])


async def _rest(stream: AsyncGenerator[bytes, None]) -> list[bytes]:
    return [frame async for frame in stream]


async def test_the_stream_ends_within_the_recheck_interval_once_the_token_is_not_valid(journal: Journal) -> None:
    validity = Validity()
    stream = tail(journal, "acme", parse(""), still_valid=validity, recheck_seconds=RECHECK_SECONDS)
    assert (await anext(stream)).startswith(b"retry:")
    await _append(journal, "first")
    assert b'"action":"first"' in await asyncio.wait_for(anext(stream), 2)
    validity.valid = False
    started = time.monotonic()
    rest = await asyncio.wait_for(_rest(stream), 2)
    assert time.monotonic() - started < 3 * RECHECK_SECONDS
    assert rest[-1] == TOKEN_ENDED
    assert b'"error":"token_not_valid"' in TOKEN_ENDED


async def test_a_busy_stream_ends_too(journal: Journal) -> None:
    validity = Validity()
    stream = tail(journal, "acme", parse(""), still_valid=validity, recheck_seconds=RECHECK_SECONDS)
    await anext(stream)
    validity.valid = False

    async def keep_appending() -> None:
        for n in range(10_000):
            await _append(journal, f"e{n}")

    writer = asyncio.create_task(keep_appending())
    try:
        started = time.monotonic()
        rest = await asyncio.wait_for(_rest(stream), 2)
        assert time.monotonic() - started < 3 * RECHECK_SECONDS
        assert rest[-1] == TOKEN_ENDED
    finally:
        writer.cancel()
        # Wait for the append in flight, so the journal closes with nothing pending on it.
        with contextlib.suppress(asyncio.CancelledError, JournalClosed):
            await writer


async def test_a_valid_token_keeps_the_stream_open_and_delivering(journal: Journal) -> None:
    validity = Validity()
    stream = tail(journal, "acme", parse(""), still_valid=validity, recheck_seconds=RECHECK_SECONDS / 4)
    await anext(stream)
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(RECHECK_SECONDS)  # idle: the token is checked meanwhile, and stays valid
    await _append(journal, "later")
    assert b'"action":"later"' in await asyncio.wait_for(waiting, 2)
    assert validity.asked >= 2
    await stream.aclose()


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
