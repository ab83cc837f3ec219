"""Live tail: new matching events as server-sent events, straight from the journal."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable

import orjson

from eventlog.journal import Journal
from search.query import Node, matches

_BATCH = 500

# The last frame of a stream whose token was revoked or expired: why it ends, before the client's
# reconnect is refused with 401.
TOKEN_ENDED = (
    b"event: end\ndata: "
    + orjson.dumps(
        {
            "error": "token_not_valid",
            "message": "the token of this tail was revoked or has expired; reconnect with a valid token",
        }
    )
    + b"\n\n"
)


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
    journal: Journal,
    tenant: str,
    where: Node,
    *,
    after_seq: int | None = None,
    heartbeat_seconds: float = 15.0,
    still_valid: Callable[[], bool] | None = None,
    recheck_seconds: float = 5.0,
) -> AsyncGenerator[bytes, None]:
    """SSE frames of the tenant's events committed after `after_seq` (default: now) that match `where`.

    The journal wakes the stream at each commit, so an event shows within
    milliseconds of its acknowledgement. The SSE id is the journal sequence:
    a reconnecting client's Last-Event-ID resumes where it stopped.

    `still_valid` (blocking; run in a worker thread) is asked every
    `recheck_seconds`, idle or busy: when it says no, the stream ends with an
    `end` frame, so a revoked or expired token does not keep reading.
    """
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()

    def wake_up(_seq: int) -> None:
        loop.call_soon_threadsafe(wake.set)

    unsubscribe = journal.subscribe(wake_up)
    cursor = journal.last_seq if after_seq is None else after_seq
    next_check = time.monotonic() + recheck_seconds if still_valid is not None else float("inf")
    next_beat = time.monotonic() + heartbeat_seconds
    try:
        yield b"retry: 2000\n: tail started\n\n"
        while True:
            if still_valid is not None and time.monotonic() >= next_check:
                if not await asyncio.to_thread(still_valid):
                    yield TOKEN_ENDED
                    return
                next_check = time.monotonic() + recheck_seconds
            batch = await asyncio.to_thread(_next_batch, journal, tenant, where, cursor)
            if batch is not None:
                cursor, frames = batch
                if frames:
                    yield frames
                    next_beat = time.monotonic() + heartbeat_seconds
                continue
            wake.clear()
            if journal.last_seq > cursor:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(0.0, min(next_beat, next_check) - time.monotonic()))
            if time.monotonic() >= next_beat:
                yield b": keep-alive\n\n"
                next_beat = time.monotonic() + heartbeat_seconds
    finally:
        with contextlib.suppress(ValueError):
            unsubscribe()
