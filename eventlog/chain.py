"""The hash chain: one link per event, and the walk that checks a stream."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from eventlog.canonical import canonical_json

GENESIS = "0" * 64


def link_hash(prev: str, canonical: bytes) -> str:
    """hash = SHA-256(prev_hash || canonical JSON of the event without chain)."""
    digest = hashlib.sha256(bytes.fromhex(prev))
    digest.update(canonical)
    return digest.hexdigest()


def body_of(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "chain"}


@dataclass(frozen=True, slots=True)
class StoredLink:
    """One journal row as the verifier sees it."""

    seq: int
    id: str
    tenant: str
    prev: str
    hash: str
    document: bytes


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int
    id: str
    reason: str

    def __str__(self) -> str:
        return f"event seq={self.seq} id={self.id}: {self.reason}"


def walk(links: Iterable[StoredLink], *, stream: str, start_prev: str | None = None) -> Iterator[ChainBreak]:
    """Yield every break in a stream; the first one names the first bad event."""
    expected_prev = start_prev
    expected_seq: int | None = None
    for link in links:
        if expected_seq is not None and link.seq != expected_seq:
            yield ChainBreak(link.seq, link.id, f"sequence gap: expected seq {expected_seq}")
        expected_seq = link.seq + 1
        if expected_prev is not None and link.prev != expected_prev:
            yield ChainBreak(link.seq, link.id, "prev does not match the previous event's hash")
        try:
            document = orjson.loads(link.document)
        except orjson.JSONDecodeError:
            yield ChainBreak(link.seq, link.id, "stored document is not JSON")
            expected_prev = link.hash
            continue
        chain = document.get("chain", {})
        if (
            document.get("id") != link.id
            or document.get("tenant") != link.tenant
            or chain.get("stream") != stream
            or chain.get("seq") != link.seq
            or chain.get("prev") != link.prev
            or chain.get("hash") != link.hash
        ):
            yield ChainBreak(link.seq, link.id, "document does not match its index columns")
        if link_hash(link.prev, canonical_json(body_of(document))) != link.hash:
            yield ChainBreak(link.seq, link.id, "hash does not match the event's content")
        expected_prev = link.hash
