"""The live tail's stream: it ends soon after its token stops being valid, idle or busy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import pytest

from eventlog.canonical import canonical_json
from eventlog.journal import Journal, Prepared
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
