"""Live tail: new matching events as server-sent events, straight from the journal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson

from eventlog.journal import Journal
from search.query import Node, matches

_BATCH = 500


def _next_batch(journal: Journal, tenant: str, where: Node, cursor: int) -> tuple[int, bytes] | None:
    """The journal's entries after `cursor`: the last one's sequence and the SSE frames of those that match.

    Run on a worker thread: matching a costly query against big events must not hold up the event loop."""
    entries = journal.read_after(cursor, _BATCH)
    if not entries:
        return None
    frames = b"".join(
        b"id: %d\nevent: event\ndata: %s\n\n" % (entry.seq, entry.document)
        for entry in entries
        if entry.tenant == tenant and matches(where, orjson.loads(entry.document))
    )
    return entries[-1].seq, frames


async def tail(
    journal: Journal, tenant: str, where: Node, *, after_seq: int | None = None, heartbeat_seconds: float = 15.0
) -> AsyncIterator[bytes]:
    """SSE frames of the tenant's events committed after `after_seq` (default: now) that match `where`.

    The journal wakes the stream at each commit, so an event shows within
    milliseconds of its acknowledgement. The SSE id is the journal sequence:
    a reconnecting client's Last-Event-ID resumes where it stopped.
    """
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()

    def wake_up(_seq: int) -> None:
        loop.call_soon_threadsafe(wake.set)

    unsubscribe = journal.subscribe(wake_up)
    cursor = journal.last_seq if after_seq is None else after_seq
    try:
        yield b"retry: 2000\n: tail started\n\n"
        while True:
            batch = await asyncio.to_thread(_next_batch, journal, tenant, where, cursor)
            if batch is not None:
                cursor, frames = batch
                if frames:
                    yield frames
                continue
            wake.clear()
            if journal.last_seq > cursor:
                continue
            try:
                await asyncio.wait_for(wake.wait(), heartbeat_seconds)
            except TimeoutError:
                yield b": keep-alive\n\n"
    finally:
        with contextlib.suppress(ValueError):
            unsubscribe()
