"""Legal holds shared by every node of a cluster, in an OpenSearch index (search/retention.py has the protocol)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from opensearchpy import NotFoundError, OpenSearch

from search.retention import Hold, HoldNotFound, hold_from_dict, new_hold, released_hold

_HOLD_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "keyword"},
        "tenant": {"type": "keyword"},
        "since": {"type": "date"},
        "until": {"type": "date"},
        "reason": {"type": "keyword", "index": False},
        "placed_at": {"type": "date"},
        "placed_by": {"type": "keyword"},
        "released_at": {"type": "date"},
        "released_by": {"type": "keyword"},
    },
}


class OpenSearchHoldStore:
    """Holds shared by every node of a cluster, in the `<prefix>-holds` index (outside the events alias)."""

    def __init__(self, client: OpenSearch, prefix: str) -> None:
        self._client = client
        self._index = f"{prefix}-holds"
        self._ready = False

    def _ensure(self) -> None:
        if self._ready:
            return
        if not self._client.indices.exists(index=self._index):
            self._client.indices.create(
                index=self._index,
                body={"settings": {"number_of_shards": 1}, "mappings": _HOLD_MAPPINGS},
                ignore=[400],  # another node created it first
            )
        self._ready = True

    def list(self) -> list[Hold]:
        self._ensure()
        try:
            answer = self._client.search(
                index=self._index, body={"size": 10_000, "sort": [{"id": "asc"}], "query": {"match_all": {}}}
            )
        except NotFoundError:
            return []
        return [hold_from_dict(hit["_source"]) for hit in answer["hits"]["hits"]]

    def place(
        self, *, tenant: str, since: datetime | None, until: datetime | None, reason: str, placed_by: str
    ) -> Hold:
        self._ensure()
        hold = new_hold(tenant, since, until, reason, placed_by)
        self._client.index(index=self._index, id=hold.id, body=hold.as_dict(), params={"refresh": "true"})
        return hold

    def release(self, hold_id: str, *, released_by: str) -> Hold:
        self._ensure()
        try:
            found = hold_from_dict(self._client.get(index=self._index, id=hold_id)["_source"])
        except NotFoundError:
            raise HoldNotFound(f"no hold {hold_id!r}; list them with GET /v1/holds") from None
        if not found.active:
            return found
        released = released_hold(found, released_by)
        self._client.index(index=self._index, id=hold_id, body=released.as_dict(), params={"refresh": "true"})
        return released

    def close(self) -> None:
        return None
