"""The OpenSearch `SearchBackend`: the same contract as the embedded store, on the search alias."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from opensearchpy import NotFoundError, OpenSearch

from eventlog.model import format_time
from search.backend import Bucket, EventQuery, FacetValue, Page, Position, Scope, TenantScopeMissing
from search.opensearch.template import alias
from search.query import All, Node, to_opensearch

_EXPORT_PAGE = 1000
FACET_SHARD_SIZE = 10_000
_PIT_KEEP_ALIVE = "2m"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def scoped(scope: Scope, where: Node) -> dict[str, Any]:
    """The tenant filter first, then the user's conditions; never the other way round."""
    filters: list[dict[str, Any]] = [{"term": {"tenant": scope.tenant}}]
    if not isinstance(where, All):
        filters.append(to_opensearch(where))
    return {"bool": {"filter": filters}}


def checked(scope: Scope, body: dict[str, Any]) -> dict[str, Any]:
    """The failsafe: no search leaves unless its first filter is the caller's tenant."""
    try:
        first = body["query"]["bool"]["filter"][0]
    except (KeyError, IndexError, TypeError):
        first = None
    if first != {"term": {"tenant": scope.tenant}}:
        raise TenantScopeMissing("refusing an OpenSearch request without the tenant filter")
    return body


def search_body(scope: Scope, query: EventQuery) -> dict[str, Any]:
    order = query.order
    body: dict[str, Any] = {
        "query": scoped(scope, query.where),
        "sort": [{"time": {"order": order}}, {"id": {"order": order}}],
        "size": query.limit + 1,
        "track_total_hits": False,
    }
    if query.after is not None:
        # date_nanos sorts in nanoseconds; the cursor keeps microseconds.
        body["search_after"] = [query.after.time_us * 1000, query.after.id]
    return body


def _position(hit: dict[str, Any]) -> Position:
    time_ns, event_id = hit["sort"][:2]
    return Position(int(time_ns) // 1000, str(event_id))


class OpenSearchBackend:
    name = "opensearch"

    def __init__(self, client: OpenSearch, prefix: str) -> None:
        self._client = client
        self._alias = alias(prefix)

    def _search(self, scope: Scope, body: dict[str, Any]) -> dict[str, Any]:
        body = checked(scope, body)
        params = {
            "routing": scope.tenant,
            "ignore_unavailable": "true",
            "allow_no_indices": "true",
            # Always run the can-match phase: with one shard per daily index it skips the days outside the
            # time range and, for lists sorted by time, the days that cannot reach the page (`latest`: 34 -> 7 ms).
            "pre_filter_shard_size": "1",
        }
        try:
            answer: dict[str, Any] = self._client.search(index=self._alias, body=body, params=params)
        except NotFoundError:
            return {"hits": {"hits": []}, "aggregations": {}}  # no daily index exists yet
        return answer

    async def search(self, scope: Scope, query: EventQuery) -> Page:
        answer = await asyncio.to_thread(self._search, scope, search_body(scope, query))
        hits = answer["hits"]["hits"]
        more = len(hits) > query.limit
        hits = hits[: query.limit]
        last = _position(hits[-1]) if hits else None
        return Page([orjson.dumps(h["_source"]) for h in hits], last, more)

    async def get(self, scope: Scope, event_id: str) -> bytes | None:
        body = {
            "query": {"bool": {"filter": [{"term": {"tenant": scope.tenant}}, {"term": {"id": event_id}}]}},
            "size": 1,
        }
        hits = (await asyncio.to_thread(self._search, scope, body))["hits"]["hits"]
        return orjson.dumps(hits[0]["_source"]) if hits else None

    async def histogram(
        self, scope: Scope, where: Node, *, since_us: int, until_us: int, interval_us: int
    ) -> list[Bucket]:
        query = scoped(scope, where)
        query["bool"]["filter"].append({"range": {"time": {"gte": _rfc3339(since_us), "lt": _rfc3339(until_us)}}})
        body = {
            "query": query,
            "size": 0,
            "aggs": {
                "buckets": {
                    "date_histogram": {
                        "field": "time",
                        "fixed_interval": f"{interval_us // 1000}ms",
                        "min_doc_count": 1,
                    }
                }
            },
        }
        answer = await asyncio.to_thread(self._search, scope, body)
        buckets = answer.get("aggregations", {}).get("buckets", {}).get("buckets", [])
        return [Bucket(int(b["key"]) * 1000, int(b["doc_count"])) for b in buckets]

    async def facets(self, scope: Scope, where: Node, *, field: str, size: int) -> list[FacetValue]:
        body = {
            "query": scoped(scope, where),
            "size": 0,
            "aggs": {
                # Each daily index reports its own top values: ask every one for many, so the
                # merged top `size` is exact unless an index holds over FACET_SHARD_SIZE values.
                "values": {
                    "terms": {
                        "field": field,
                        "size": size,
                        "shard_size": FACET_SHARD_SIZE,
                        "order": [{"_count": "desc"}, {"_key": "asc"}],
                    }
                }
            },
        }
        answer = await asyncio.to_thread(self._search, scope, body)
        buckets = answer.get("aggregations", {}).get("values", {}).get("buckets", [])
        return [FacetValue(str(b["key"]), int(b["doc_count"])) for b in buckets]

    async def export(self, scope: Scope, query: EventQuery) -> AsyncIterator[Sequence[bytes]]:
        """A point in time plus search_after: a consistent view, one page in memory at a time."""
        pit = await asyncio.to_thread(self._open_pit, scope)
        if pit is None:
            return
        try:
            body = search_body(scope, query)
            body["size"] = _EXPORT_PAGE
            body.pop("search_after", None)
            while True:
                body["pit"] = {"id": pit, "keep_alive": _PIT_KEEP_ALIVE}
                answer = await asyncio.to_thread(self._pit_search, scope, body)
                pit = answer.get("pit_id", pit)
                hits = answer["hits"]["hits"]
                if hits:
                    yield [orjson.dumps(h["_source"]) for h in hits]
                if len(hits) < _EXPORT_PAGE:
                    return
                body["search_after"] = hits[-1]["sort"]
        finally:
            await asyncio.to_thread(self._close_pit, pit)

    def _open_pit(self, scope: Scope) -> str | None:
        try:
            answer = self._client.create_pit(
                index=self._alias, params={"keep_alive": _PIT_KEEP_ALIVE, "routing": scope.tenant}
            )
        except NotFoundError:
            return None
        pit: str = answer["pit_id"]
        return pit

    def _pit_search(self, scope: Scope, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self._client.search(body=checked(scope, body))
        return answer

    def _close_pit(self, pit: str) -> None:
        self._client.delete_pit(body={"pit_id": [pit]}, ignore=[404])


def _rfc3339(time_us: int) -> str:
    return format_time(_EPOCH + timedelta(microseconds=time_us))
