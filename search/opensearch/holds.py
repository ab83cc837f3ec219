"""Legal holds shared by every node of a cluster, in an OpenSearch index (search/retention.py has the protocol)."""

from __future__ import annotations

from datetime import datetime

from opensearchpy import NotFoundError, OpenSearch

from search.opensearch.system import StateIndex, SystemIndex
from search.retention import Hold, HoldNotFound, hold_from_dict, new_hold, released_hold

HOLDS = SystemIndex.of(
    "holds",
    keyword=("id", "tenant", "placed_by", "released_by"),
    stored=("reason",),
    date=("since", "until", "placed_at", "released_at"),
)


class OpenSearchHoldStore:
    """Holds shared by every node of a cluster, in the `<prefix>-holds` index (outside the events alias)."""

    def __init__(self, client: OpenSearch, prefix: str) -> None:
        self._client = client
        self._state = StateIndex(client, prefix, HOLDS)
        self._index = self._state.name

    def list(self) -> list[Hold]:
        self._state.ready()
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
        self._state.ready()
        hold = new_hold(tenant, since, until, reason, placed_by)
        self._client.index(index=self._index, id=hold.id, body=hold.as_dict(), params={"refresh": "true"})
        return hold

    def release(self, hold_id: str, *, released_by: str) -> Hold:
        self._state.ready()
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
