"""Client ids claimed across a cluster (eventlog/claims.py): `<prefix>-idempotency`, one document per id.

A claim is a `create` of `<tenant>/<id>` naming the stream, so of two nodes claiming one id at once
exactly one wins. Once the events are committed, the document gets their receipt. A claim left
pending longer than STALE_SECONDS (its node died between the claim and the receipt) is resolved
from the events themselves: the stored event's chain gives the receipt; without one, the claim is
taken over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from opensearchpy import ConflictError, OpenSearch, OpenSearchException

from eventlog.claims import ClaimsUnavailable, Held
from eventlog.journal import Appended
from search.opensearch.sink import document_id
from search.opensearch.system import STATE_TIMEOUT_SECONDS, StateIndex, SystemIndex
from search.opensearch.template import alias

CLAIMS = SystemIndex.of(
    "idempotency",
    keyword=("tenant", "id", "stream"),
    stored=("hash",),
    long=("seq",),
    double=("claimed_at", "committed_at"),
)

# A claim without a receipt for this long belongs to a node that died (or could not record the receipt):
# a commit takes milliseconds and recording its receipt at most STATE_TIMEOUT_SECONDS. Longer would keep
# a client that retries after a node died waiting as long; shorter risks taking over from a node in a
# long pause, whose copy would then be a second one in its own stream (one document in the store still,
# when both carry the client's time).
STALE_SECONDS = 5.0


class OpenSearchClaims:
    def __init__(self, client: OpenSearch, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._prefix = prefix
        self._state = StateIndex(client, prefix, CLAIMS)
        self._index = self._state.name
        self._clock = clock

    def prepare(self) -> None:
        try:
            self._state.ready()
        except OpenSearchException as exc:
            raise ClaimsUnavailable(f"OpenSearch: {exc.__class__.__name__}") from exc

    def claim(self, tenant: str, ids: Sequence[str], stream: str) -> dict[str, Held]:
        try:
            self._state.ready()
            refused = self._create(tenant, ids, stream)
            return self._holders(tenant, refused, stream) if refused else {}
        except OpenSearchException as exc:
            raise ClaimsUnavailable(f"OpenSearch: {exc.__class__.__name__}") from exc

    def settle(self, tenant: str, appended: Sequence[Appended], stream: str) -> None:
        if not appended:
            return
        now = self._clock()
        lines: list[bytes] = []
        for item in appended:
            lines.append(orjson.dumps({"update": {"_index": self._index, "_id": document_id(tenant, item.id)}}))
            lines.append(
                orjson.dumps({"doc": {"stream": stream, "seq": item.seq, "hash": item.hash, "committed_at": now}})
            )
        try:
            self._client.bulk(body=b"\n".join(lines) + b"\n", request_timeout=STATE_TIMEOUT_SECONDS)
        except OpenSearchException as exc:
            raise ClaimsUnavailable(f"OpenSearch: {exc.__class__.__name__}") from exc

    def _create(self, tenant: str, ids: Sequence[str], stream: str) -> list[str]:
        """Create a claim per id; the ids that already had one."""
        now = self._clock()
        unique = list(dict.fromkeys(ids))
        lines: list[bytes] = []
        for event_id in unique:
            lines.append(orjson.dumps({"create": {"_index": self._index, "_id": document_id(tenant, event_id)}}))
            lines.append(orjson.dumps({"tenant": tenant, "id": event_id, "stream": stream, "claimed_at": now}))
        answer = self._client.bulk(body=b"\n".join(lines) + b"\n", request_timeout=STATE_TIMEOUT_SECONDS)
        refused: list[str] = []
        for event_id, item in zip(unique, answer["items"], strict=True):
            status = int(item["create"]["status"])
            if status == 409:
                refused.append(event_id)
            elif status >= 300:
                raise ClaimsUnavailable(f"a claim was refused with {status}: {item['create'].get('error')}")
        return refused

    def _holders(self, tenant: str, ids: Sequence[str], stream: str) -> dict[str, Held]:
        """Who holds each of these ids (claimed before); this stream's own are left out."""
        docs = self._client.mget(
            index=self._index,
            body={"ids": [document_id(tenant, i) for i in ids]},
            request_timeout=STATE_TIMEOUT_SECONDS,
        )["docs"]
        held: dict[str, Held] = {}
        stale: list[tuple[str, dict[str, Any]]] = []
        now = self._clock()
        for event_id, doc in zip(ids, docs, strict=True):
            if not doc.get("found"):
                continue  # gone meanwhile (expired): the journal decides
            source = doc["_source"]
            if source.get("seq") is not None and source.get("hash") is not None:
                held[event_id] = Held(str(source["stream"]), int(source["seq"]), str(source["hash"]))
            elif source.get("stream") == stream:
                continue
            elif float(source.get("claimed_at") or 0) < now - STALE_SECONDS:
                stale.append((event_id, doc))
            else:
                held[event_id] = Held(str(source["stream"]))
        if stale:
            held.update(self._resolve(tenant, stale, stream))
        return held

    def _resolve(self, tenant: str, stale: Sequence[tuple[str, dict[str, Any]]], stream: str) -> dict[str, Held]:
        """Stale claims: the stored event's receipt if it reached the store, else the claim is taken over."""
        found = self._client.search(
            index=alias(self._prefix),
            body={
                "size": len(stale),
                "query": {"ids": {"values": [document_id(tenant, event_id) for event_id, _ in stale]}},
                "_source": ["id", "chain"],
            },
            params={"ignore_unavailable": "true", "allow_no_indices": "true"},
            request_timeout=STATE_TIMEOUT_SECONDS,
        )["hits"]["hits"]
        stored = {hit["_source"]["id"]: hit["_source"]["chain"] for hit in found}
        held: dict[str, Held] = {}
        for event_id, doc in stale:
            chain = stored.get(event_id)
            if chain is not None:
                held[event_id] = Held(str(chain["stream"]), int(chain["seq"]), str(chain["hash"]))
                continue
            try:
                self._client.index(
                    index=self._index,
                    id=doc["_id"],
                    body={"tenant": tenant, "id": event_id, "stream": stream, "claimed_at": self._clock()},
                    params={"if_seq_no": doc["_seq_no"], "if_primary_term": doc["_primary_term"]},
                    request_timeout=STATE_TIMEOUT_SECONDS,
                )
            except ConflictError:
                held[event_id] = Held("another node")  # taken over by someone else just now: retry
        return held
