"""A request body read within a size limit, and a too-large one answered so the client can read the 413."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from starlette.requests import ClientDisconnect

from eventlog.errors import ApiError


def _too_large(limit: int, advice: str) -> ApiError:
    return ApiError(413, "body_too_large", f"the body exceeds {limit} bytes{advice}")


async def read_body(request: Request, limit: int, *, discard_bytes: int, advice: str = "") -> bytes:
    """The whole body, or ApiError 413 past `limit` bytes (400 when the client leaves mid-body).

    A client that sends its body without waiting for `100 Continue` reads the
    answer only once it has sent everything; a server that answers and closes
    before then resets the connection, and the client sees that instead of the
    413. So up to `discard_bytes` more are read and thrown away first. A client
    that did ask for `100 Continue` is answered at once and sends nothing.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        waits = request.headers.get("expect", "").lower() == "100-continue"
        if not waits and int(declared) <= limit + discard_bytes:
            await _discard(request.stream(), limit + discard_bytes)
        raise _too_large(limit, advice)
    chunks: list[bytes] = []
    size = 0
    stream = request.stream()
    try:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                await _discard(stream, limit + discard_bytes - size)
                raise _too_large(limit, advice)
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody is left to read the answer; nothing was stored.
        raise ApiError(400, "client_disconnected", "the client went away before the body was complete") from None
    return b"".join(chunks)


async def _discard(chunks: AsyncIterator[bytes], budget: int) -> None:
    """Read and drop the rest of the body, at most `budget` bytes; stop quietly when the client leaves."""
    try:
        async for chunk in chunks:
            budget -= len(chunk)
            if budget < 0:
                return
    except ClientDisconnect:
        return
