"""The OpenSearch sink: `_bulk` create by event id, daily index by event time, routed by tenant."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from opensearchpy import OpenSearch

from eventlog.journal import Entry
from eventlog.sink import Rejection
from search.opensearch.template import index_for, install
from search.text import searchable_text

TEMPLATE_CHECK_SECONDS = 30.0

# Statuses worth another try later; everything else an item answers is final.
_TRANSIENT = {408, 429, 500, 502, 503, 504}


class BulkRetry(RuntimeError):
    """Some items met a transient refusal; the whole batch is sent again (creates are idempotent)."""


def document_id(tenant: str, event_id: str) -> str:
    """Event ids are unique per tenant, so the store's _id carries both.

    Client ids cannot hold '/', server ids are UUIDs: the last '/' separates them.
    """
    return f"{tenant}/{event_id}"


def bulk_lines(entry: Entry, prefix: str) -> bytes:
    document = orjson.loads(entry.document)
    action = {
        "create": {
            "_index": index_for(prefix, document["time"]),
            "_id": document_id(entry.tenant, entry.id),
            "routing": entry.tenant,
        }
    }
    # Append the tokens to the stored bytes instead of re-serializing the event.
    source = entry.document[:-1] + b',"fulltext":' + orjson.dumps(searchable_text(document)) + b"}"
    return orjson.dumps(action) + b"\n" + source + b"\n"


def chunks(entries: Sequence[Entry], prefix: str, max_bytes: int) -> Iterator[tuple[list[Entry], bytes]]:
    """Split a batch into `_bulk` bodies of at most `max_bytes` (one oversize event goes alone)."""
    batch: list[Entry] = []
    body: list[bytes] = []
    size = 0
    for entry in entries:
        lines = bulk_lines(entry, prefix)
        if batch and size + len(lines) > max_bytes:
            yield batch, b"".join(body)
            batch, body, size = [], [], 0
        batch.append(entry)
        body.append(lines)
        size += len(lines)
    if batch:
        yield batch, b"".join(body)


def rejections(entries: Sequence[Entry], answer: dict[str, Any]) -> list[Rejection]:
    """Item errors: 409 means already there (success); transient ones raise; the rest are final."""
    if not answer.get("errors"):
        return []
    rejected: list[Rejection] = []
    transient: list[str] = []
    for entry, item in zip(entries, answer["items"], strict=True):
        result = item.get("create") or next(iter(item.values()))
        status = int(result.get("status", 500))
        if status < 300 or status == 409:
            continue
        error = result.get("error", {})
        reason = f"{status} {error.get('type', 'error')}: {error.get('reason', '')}"[:1000]
        if status in _TRANSIENT:
            transient.append(reason)
        else:
            rejected.append(Rejection(entry.seq, reason))
    if transient:
        raise BulkRetry(f"{len(transient)} items refused for now, e.g. {transient[0]}")
    return rejected


class OpenSearchSink:
    name = "opensearch"

    def __init__(
        self,
        client: OpenSearch,
        prefix: str,
        *,
        max_bytes: int,
        shards: int = 1,
        replicas: int = 0,
        every_copy: bool = False,
    ) -> None:
        """`every_copy`: a bulk succeeds only with every configured copy of its shards active
        (`wait_for_active_shards=all`), for the replicated acknowledgement."""
        self._client = client
        self._prefix = prefix
        self._max_bytes = max_bytes
        self._shards = shards
        self._replicas = replicas
        self._params = {"filter_path": "errors,items.*.status,items.*.error"}
        if every_copy:
            self._params["wait_for_active_shards"] = "all"
        self._template_checked_at: float | None = None

    async def deliver(self, entries: Sequence[Entry]) -> Sequence[Rejection]:
        return await asyncio.to_thread(self._deliver, entries)

    def _deliver(self, entries: Sequence[Entry]) -> list[Rejection]:
        try:
            return self._deliver_checked(entries)
        except Exception:
            self._template_checked_at = None
            raise

    def _deliver_checked(self, entries: Sequence[Entry]) -> list[Rejection]:
        # Checked at the first delivery, after any failure and every TEMPLATE_CHECK_SECONDS, not
        # once at start: ingest must work while OpenSearch is down, and a cluster that comes back
        # empty must get the template again before a bulk creates a daily index with dynamic mappings.
        now = time.monotonic()
        if self._template_checked_at is None or now - self._template_checked_at > TEMPLATE_CHECK_SECONDS:
            install(self._client, self._prefix, shards=self._shards, replicas=self._replicas)
            self._template_checked_at = now
        rejected: list[Rejection] = []
        for batch, body in chunks(entries, self._prefix, self._max_bytes):
            answer = self._client.bulk(body=body, params=self._params)
            rejected.extend(rejections(batch, answer))
        return rejected

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
