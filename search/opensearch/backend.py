"""The OpenSearch `SearchBackend`: the same contract as the embedded store, on the search alias."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from opensearchpy import NotFoundError, OpenSearch

from eventlog.model import format_time
from search.backend import EventQuery, Page, Position, Scope, TenantScopeMissing
from search.opensearch.template import alias
from search.text import query_phrases

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(us: int) -> str:
    return format_time(_EPOCH + timedelta(microseconds=us))


def scoped(scope: Scope, conditions: list[dict[str, Any]]) -> dict[str, Any]:
    """The tenant filter first, then the user's conditions; never the other way round."""
    return {"bool": {"filter": [{"term": {"tenant": scope.tenant}}, *conditions]}}


def checked(scope: Scope, body: dict[str, Any], params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The failsafe: no search leaves without the tenant filter and routing of its scope."""
    try:
        first = body["query"]["bool"]["filter"][0]
    except (KeyError, IndexError, TypeError):
        first = None
    if first != {"term": {"tenant": scope.tenant}} or params.get("routing") != scope.tenant:
        raise TenantScopeMissing("refusing an OpenSearch request without the tenant filter and routing")
    return body, params


def conditions(query: EventQuery) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if query.since_us is not None or query.until_us is not None:
        bounds: dict[str, str] = {}
        if query.since_us is not None:
            bounds["gte"] = _time(query.since_us)
        if query.until_us is not None:
            bounds["lt"] = _time(query.until_us)
        found.append({"range": {"time": bounds}})
    for field, value in (
        ("action", query.action),
        ("actor.id", query.actor),
        ("outcome", query.outcome),
        ("source", query.source),
    ):
        if value is not None:
            found.append({"term": {field: value}})
    for phrase in query_phrases(query.text or ""):
        found.append({"match_phrase": {"fulltext": {"query": " ".join(phrase), "analyzer": "whitespace"}}})
    return found


def search_body(scope: Scope, query: EventQuery) -> dict[str, Any]:
    order = query.order
    body: dict[str, Any] = {
        "query": scoped(scope, conditions(query)),
        "sort": [{"time": {"order": order}}, {"id": {"order": order}}],
        "size": query.limit + 1,
        "track_total_hits": False,
    }
    if query.after is not None:
        body["search_after"] = [query.after.time_us * 1000, query.after.id]
    return body


class OpenSearchBackend:
    name = "opensearch"

    def __init__(self, client: OpenSearch, prefix: str) -> None:
        self._client = client
        self._alias = alias(prefix)

    def _search(self, scope: Scope, body: dict[str, Any]) -> list[dict[str, Any]]:
        params = {"routing": scope.tenant, "ignore_unavailable": "true", "allow_no_indices": "true"}
        body, params = checked(scope, body, params)
        try:
            answer = self._client.search(index=self._alias, body=body, params=params)
        except NotFoundError:
            return []  # no daily index exists yet
        hits: list[dict[str, Any]] = answer["hits"]["hits"]
        return hits

    async def search(self, scope: Scope, query: EventQuery) -> Page:
        hits = await asyncio.to_thread(self._search, scope, search_body(scope, query))
        more = len(hits) > query.limit
        hits = hits[: query.limit]
        last = None
        if hits:
            time_ns, event_id = hits[-1]["sort"]
            last = Position(int(time_ns) // 1000, str(event_id))
        return Page([orjson.dumps(h["_source"]) for h in hits], last, more)

    async def get(self, scope: Scope, event_id: str) -> bytes | None:
        body = {"query": scoped(scope, [{"term": {"id": event_id}}]), "size": 1}
        hits = await asyncio.to_thread(self._search, scope, body)
        return orjson.dumps(hits[0]["_source"]) if hits else None
