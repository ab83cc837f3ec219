"""The OpenSearch `SearchBackend`: the same contract as the embedded store, on the search alias."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from opensearchpy import NotFoundError, OpenSearch, TransportError

from eventlog.errors import ApiError
from eventlog.model import format_time
from search.backend import Bucket, EventQuery, FacetValue, Page, Position, Scope, TenantScopeMissing
from search.opensearch.query import to_opensearch
from search.opensearch.template import alias
from search.query import All, Node
from search.reads import Reads, Ticket

log = logging.getLogger(__name__)

_EXPORT_PAGE = 1000
FACET_SHARD_SIZE = 10_000
_PIT_KEEP_ALIVE = "2m"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The node stops a search at the read's deadline itself; the client waits this much longer for that
# answer before it gives up on the connection (which also makes the node cancel the search).
_ANSWER_GRACE_SECONDS = 2.0
_SEARCH_ACTION = "indices:data/read/search"


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


def _millis(seconds: float) -> str:
    return f"{max(1, int(seconds * 1000))}ms"


class OpenSearchBackend:
    name = "opensearch"

    def __init__(self, client: OpenSearch, prefix: str, reads: Reads) -> None:
        self._client = client
        self._alias = alias(prefix)
        self._reads = reads

    def _search(self, ticket: Ticket, scope: Scope, body: dict[str, Any], *, pit: bool = False) -> dict[str, Any]:
        """One search within the read's deadline; cancelled on the node when the caller leaves."""
        body = checked(scope, body)
        seconds = ticket.remaining_seconds()
        if seconds <= 0 or ticket.stopped():
            raise ticket.stop_error()
        # `timeout` alone would answer what the shards found by then as if it were everything.
        body = {**body, "timeout": _millis(seconds)}
        params: dict[str, Any] = {
            "cancel_after_time_interval": _millis(seconds),
            "allow_partial_search_results": "false",
            "request_timeout": seconds + _ANSWER_GRACE_SECONDS,
        }
        if not pit:  # a point in time names its indices and routing already
            params |= {
                "routing": scope.tenant,
                "ignore_unavailable": "true",
                "allow_no_indices": "true",
                # Always run the can-match phase: with one shard per daily index it skips the days outside the
                # time range and, for lists sorted by time, the days that cannot reach the page (`latest`: 34 -> 7 ms).
                "pre_filter_shard_size": "1",
            }
        opaque_id = uuid.uuid4().hex
        ticket.on_cancel(lambda: self._cancel_soon(opaque_id))
        for attempt in range(2):
            try:
                answer: dict[str, Any] = self._client.search(
                    index=None if pit else self._alias, body=body, params=params, headers={"x-opaque-id": opaque_id}
                )
                break
            except NotFoundError:
                if pit:
                    raise
                return {"hits": {"hits": []}, "aggregations": {}}  # no daily index exists yet
            except TransportError as exc:  # ConnectionTimeout included
                if ticket.stopped():
                    raise ticket.stop_error() from None
                # A daily index created a moment ago may not have its shard started: all shards fail, once.
                if attempt == 0 and exc.status_code == 503 and not ticket.stopped():
                    time.sleep(0.2)
                    continue
                raise ApiError(
                    503,
                    "search_unavailable",
                    f"OpenSearch could not answer this search ({exc.status_code}: {exc.error}); nothing is lost,"
                    " retry after Retry-After seconds",
                    headers={"Retry-After": "1"},
                ) from None
        if answer.get("timed_out"):
            raise ticket.stop_error()
        return answer

    def _cancel_soon(self, opaque_id: str) -> None:
        threading.Thread(target=self._cancel, args=(opaque_id,), name="eventlog-read-cancel", daemon=True).start()

    def _cancel(self, opaque_id: str) -> None:
        """Cancel the node's search task that carries `opaque_id` (it may have ended, or not have begun)."""
        try:
            listed = self._client.tasks.list(params={"actions": _SEARCH_ACTION, "request_timeout": 10})
            for node in listed.get("nodes", {}).values():
                for task_id, task in node.get("tasks", {}).items():
                    if task.get("headers", {}).get("X-Opaque-Id") == opaque_id:
                        self._client.tasks.cancel(task_id=task_id, params={"request_timeout": 10})
        except TransportError as exc:  # the deadline still ends the search
            log.warning("could not cancel an abandoned search", extra={"error": str(exc)})

    async def _run(self, scope: Scope, body: dict[str, Any], *, pit: bool = False) -> dict[str, Any]:
        return await self._reads.run(scope.tenant, lambda ticket: self._search(ticket, scope, body, pit=pit))

    async def search(self, scope: Scope, query: EventQuery) -> Page:
        answer = await self._run(scope, search_body(scope, query))
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
        hits = (await self._run(scope, body))["hits"]["hits"]
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
        answer = await self._run(scope, body)
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
        answer = await self._run(scope, body)
        buckets = answer.get("aggregations", {}).get("values", {}).get("buckets", [])
        return [FacetValue(str(b["key"]), int(b["doc_count"])) for b in buckets]

    async def export(self, scope: Scope, query: EventQuery) -> AsyncIterator[Sequence[bytes]]:
        """A point in time plus search_after: a consistent view, one page in memory at a time."""
        pit = await self._reads.run(scope.tenant, lambda ticket: self._open_pit(ticket, scope))
        if pit is None:
            return
        try:
            body = search_body(scope, query)
            body["size"] = _EXPORT_PAGE
            body.pop("search_after", None)
            while True:
                body["pit"] = {"id": pit, "keep_alive": _PIT_KEEP_ALIVE}
                answer = await self._run(scope, body, pit=True)
                pit = answer.get("pit_id", pit)
                hits = answer["hits"]["hits"]
                if hits:
                    yield [orjson.dumps(h["_source"]) for h in hits]
                if len(hits) < _EXPORT_PAGE:
                    return
                body["search_after"] = hits[-1]["sort"]
        finally:
            await asyncio.to_thread(self._close_pit, pit)

    def _open_pit(self, ticket: Ticket, scope: Scope) -> str | None:
        try:
            answer = self._client.create_pit(
                index=self._alias,
                params={
                    "keep_alive": _PIT_KEEP_ALIVE,
                    "routing": scope.tenant,
                    "request_timeout": max(ticket.remaining_seconds(), 0) + _ANSWER_GRACE_SECONDS,
                },
            )
        except NotFoundError:
            return None
        except TransportError:
            if ticket.stopped():
                raise ticket.stop_error() from None
            raise
        pit: str = answer["pit_id"]
        return pit

    def _close_pit(self, pit: str) -> None:
        self._client.delete_pit(body={"pit_id": [pit]}, ignore=[404])


def _rfc3339(time_us: int) -> str:
    return format_time(_EPOCH + timedelta(microseconds=time_us))
