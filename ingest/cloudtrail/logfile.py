"""Reading one CloudTrail log file: gzip JSON with a top-level ``Records`` array.

It is read as a stream (gzip -> ijson), so memory holds one record whatever the size of the file, and the
SHA-256 of its uncompressed content is computed while it is read. A file that is not gzip, not JSON or has no
``Records`` array raises `MalformedFile`, which says which.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Protocol

import ijson

__all__ = ["LogFile", "MalformedFile", "content_sha256", "iter_records"]

# The C parser (yajl2_c) is ~8x faster than the pure-Python one but refuses numbers beyond 64 bits ("integer
# overflow") and doubles ("numeric (floating point) overflow"); a file that has one is read again with the
# Python parser from its start (the records already yielded are skipped).
_IJSON_PY = ijson.get_backend("python")
try:
    _IJSON_C: Any = ijson.get_backend("yajl2_c")
except ImportError:  # a build of ijson without its C extension
    _IJSON_C = None
_READ_BYTES = 256 * 1024
# How CloudTrail writes every log file; anything else takes the Python parser, which says what is wrong.
_LOG_HEAD = re.compile(rb'\A\s*\{\s*"Records"\s*:\s*\[')


class MalformedFile(ValueError):
    """A log file that is not gzip, not JSON, or has no `Records` array."""


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _Gunzip:
    """The uncompressed content of a gzip stream (every member), hashed with SHA-256 as it is read.

    A gzip error ends the stream and is kept (`error`), so the JSON parser fails cleanly and we say why.
    """

    def __init__(self, raw: _Readable) -> None:
        self._raw = raw
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self._pending = b""  # compressed input not inflated yet
        self._hash = hashlib.sha256()
        self._started = False
        self._ended = False
        self.error: str | None = None

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        limit = max(size, 0)  # 0: no limit for zlib
        while not self._ended:
            if not self._pending:
                self._pending = self._raw.read(_READ_BYTES)
                if not self._pending:
                    self._ended = True
                    if not self._started:
                        self.error = "the object is empty"
                    elif not self._inflater.eof:
                        self.error = "the gzip stream is truncated"
                    return b""
                self._started = True
            if self._inflater.eof:  # the next gzip member
                self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
            try:
                out = self._inflater.decompress(self._pending, limit)
            except zlib.error as exc:
                self.error = str(exc)
                self._ended = True
                return b""
            self._pending = self._inflater.unconsumed_tail or self._inflater.unused_data
            if out:
                self._hash.update(out)
                return out
        return b""

    def sha256(self) -> str | None:
        """Hex SHA-256 of the whole uncompressed content (reading what is left); None if it is not gzip."""
        while self.read(_READ_BYTES):
            pass
        return self._hash.hexdigest() if self.error is None else None


def content_sha256(raw: _Readable) -> str | None:
    """Hex SHA-256 of the uncompressed content of the gzip stream `raw`, read to its end; None if it is not gzip."""
    return _Gunzip(raw).sha256()


class _Prefixed:
    """`head`, then the rest of `stream`."""

    def __init__(self, head: bytes, stream: _Gunzip) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._stream.read(size)


class LogFile:
    """One log file's uncompressed content; it can be read again from its start, and says its SHA-256.

    `open_body` gives the gzip body from its start each time it is called (a new S3 GET, or a seek).
    """

    def __init__(self, open_body: Callable[[], IO[bytes]], *, same_body: bool = False) -> None:
        self._open_body = open_body
        self._same_body = same_body  # open_body rewinds one body: do not close it between two reads
        self._body: IO[bytes] | None = None
        self.stream: _Gunzip | None = None

    @classmethod
    def of(cls, body: IO[bytes]) -> LogFile:
        """A gzip body in memory or on disk, read again by seeking back to where it starts."""
        start = body.tell() if body.seekable() else 0

        def rewind() -> IO[bytes]:
            if body.tell() != start:
                body.seek(start)
            return body

        return cls(rewind, same_body=True)

    def open(self) -> _Gunzip:
        if self._body is not None and not self._same_body:
            self._body.close()
        self._body = self._open_body()
        self.stream = _Gunzip(self._body)
        return self.stream

    def sha256(self) -> str | None:
        return self.stream.sha256() if self.stream is not None else None

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None


def _head(stream: _Gunzip, size: int = 256) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < size:
        part = stream.read(size - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _malformed(stream: _Gunzip, exc: Exception) -> MalformedFile:
    if stream.error is not None:
        return MalformedFile(f"not a gzip file: {stream.error}")
    return MalformedFile(f"not JSON: {exc}")


def iter_records(source: IO[bytes] | LogFile) -> Iterator[Any]:
    """The records of one gzip JSON log file, streamed; MalformedFile when it is not one."""
    log = source if isinstance(source, LogFile) else LogFile.of(source)
    stream = log.open()
    head = _head(stream)
    skip = 0
    if _IJSON_C is not None and _LOG_HEAD.match(head):
        try:
            for record in _IJSON_C.items(_Prefixed(head, stream), "Records.item", use_float=True):
                skip += 1
                yield record
        except ijson.JSONError as exc:
            if stream.error is not None or "overflow" not in str(exc):
                raise _malformed(stream, exc) from None
        else:
            if stream.error is not None:
                raise MalformedFile(f"not a gzip file: {stream.error}")
            return
        stream = log.open()  # a number the C parser cannot hold: again with the Python one
        head = b""
    yield from _python_records(_Prefixed(head, stream), stream, skip)


def _python_records(reader: _Prefixed, stream: _Gunzip, skip: int) -> Iterator[Any]:
    """The slow, general way: any key order, big numbers; says when there is no `Records` array."""
    seen_records = False

    def watch(events: Iterable[tuple[str, str, Any]]) -> Iterator[tuple[str, str, Any]]:
        nonlocal seen_records
        for prefix, event, value in events:
            if prefix == "Records" and event == "start_array":
                seen_records = True
            yield prefix, event, value

    try:
        for index, record in enumerate(_IJSON_PY.items(watch(_IJSON_PY.parse(reader, use_float=True)), "Records.item")):
            if index >= skip:
                yield record
    except ijson.JSONError as exc:  # IncompleteJSONError is a JSONError; bad UTF-8 becomes one too
        raise _malformed(stream, exc) from None
    if stream.error is not None:
        raise MalformedFile(f"not a gzip file: {stream.error}")
    if not seen_records:
        raise MalformedFile("no top-level `Records` array (a digest file?)")
