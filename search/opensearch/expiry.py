"""Expiry in OpenSearch: whole indices are dropped, never delete-by-query.

A daily index (`<prefix>-events-YYYY.MM.DD`) holds every tenant's events of that day.
When some tenants' day is due while others must stay (a legal hold, a longer
retention), the staying tenants' events are copied into a "kept" index
(`<prefix>-kept-YYYY.MM.DD-<n>`, created without the alias), and one atomic
`_aliases` call adds the kept index to the search alias and removes the old index:
searches never see both copies, nor neither.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import date, timedelta
from typing import Any

import orjson
from opensearchpy import NotFoundError, OpenSearch

from eventlog.model import format_time
from search.opensearch.claims import CLAIMS
from search.opensearch.sink import document_id
from search.opensearch.system import delete_matching
from search.opensearch.template import MAPPINGS, alias
from search.retention import TenantDay, day_start
from search.text import searchable_text

_PAGE = 1000
_MAX_TENANTS = 65_535


ISM_PLUGIN = "opensearch-index-management"


def ism_policy(prefix: str) -> dict[str, Any]:
    """Merge a daily index down to one segment once its day is two days past; no delete state.

    Deleting stays with the service's own job: only it knows legal holds and whether a
    tenant's day is archived, and an ISM delete would ignore both.
    """
    return {
        "policy": {
            "description": "eventlog: force-merge daily event indices after their day; retention deletes them",
            "default_state": "hot",
            "states": [
                {
                    "name": "hot",
                    "actions": [],
                    "transitions": [{"state_name": "warm", "conditions": {"min_index_age": "2d"}}],
                },
                {"name": "warm", "actions": [{"force_merge": {"max_num_segments": 1}}], "transitions": []},
            ],
            "ism_template": [{"index_patterns": [f"{prefix}-events-*"], "priority": 100}],
        }
    }


def install_ism_policy(client: OpenSearch, prefix: str) -> bool:
    """Install the policy where the ISM plugin runs; answers whether it did (the test node has no ISM)."""
    plugins = client.cat.plugins(params={"format": "json", "h": "component"})
    if not any(row.get("component") == ISM_PLUGIN for row in plugins):
        return False
    client.transport.perform_request(
        "PUT", f"/_plugins/_ism/policies/{prefix}-events", body=ism_policy(prefix), params={"ignore": "409"}
    )
    return True


class RetentionError(RuntimeError):
    """A store refused a retention step; nothing of that step was deleted."""


def forget_claims(client: OpenSearch, prefix: str, removed: Sequence[TenantDay]) -> None:
    """The client-id claims of removed days go with them (search/opensearch/claims.py).

    An event is claimed when it arrives, at most a few minutes before its own time and never earlier:
    the claims of a tenant made before the end of its newest removed day are of removed events.
    """
    newest: dict[str, date] = {}
    for item in removed:
        newest[item.tenant] = max(item.day, newest.get(item.tenant, item.day))
    for tenant, day in sorted(newest.items()):
        end = (day_start(day) + timedelta(days=1)).timestamp()
        query = {"bool": {"filter": [{"term": {"tenant": tenant}}, {"range": {"claimed_at": {"lt": end}}}]}}
        delete_matching(client, CLAIMS.name(prefix), query)


class OpenSearchExpiry:
    name = "opensearch"

    def __init__(self, client: OpenSearch, prefix: str, *, shards: int = 1, replicas: int = 0) -> None:
        self._client = client
        self._prefix = prefix
        self._alias = alias(prefix)
        self._shards = shards
        self._replicas = replicas
        self._ism_checked = False
        self.ism_installed = False
        self._day_index = re.compile(rf"^{re.escape(prefix)}-(?:events|kept)-(\d{{4}})\.(\d{{2}})\.(\d{{2}})(?:-\d+)?$")

    def _indices(self) -> dict[str, date]:
        answer = self._client.cat.indices(
            index=f"{self._prefix}-events-*,{self._prefix}-kept-*", params={"format": "json", "h": "index"}
        )
        found: dict[str, date] = {}
        for row in answer:
            match = self._day_index.match(row["index"])
            if match:
                found[row["index"]] = date(int(match[1]), int(match[2]), int(match[3]))
        return found

    def _tenants(self, index: str) -> dict[str, int]:
        answer = self._client.search(
            index=index,
            body={"size": 0, "aggs": {"tenants": {"terms": {"field": "tenant", "size": _MAX_TENANTS}}}},
        )
        return {b["key"]: int(b["doc_count"]) for b in answer["aggregations"]["tenants"]["buckets"]}

    def _inventory(self) -> list[TenantDay]:
        if not self._ism_checked:
            self.ism_installed = install_ism_policy(self._client, self._prefix)
            self._ism_checked = True
        items: list[TenantDay] = []
        for index, day in sorted(self._indices().items()):
            items.extend(TenantDay(t, day, n, index) for t, n in sorted(self._tenants(index).items()))
        return items

    async def inventory(self) -> list[TenantDay]:
        return await asyncio.to_thread(self._inventory)

    def _hits(self, index: str, tenant: str, day: date | None) -> Iterator[list[dict[str, Any]]]:
        """A tenant's documents in one index (or index pattern), in (time, id) order."""
        query: dict[str, Any] = {"bool": {"filter": [{"term": {"tenant": tenant}}]}}
        if day is not None:
            start = day_start(day)
            query["bool"]["filter"].append(
                {"range": {"time": {"gte": format_time(start), "lt": format_time(start + timedelta(days=1))}}}
            )
        body: dict[str, Any] = {"size": _PAGE, "query": query, "sort": [{"time": "asc"}, {"id": "asc"}]}
        while True:
            try:
                answer = self._client.search(
                    index=index, body=body, params={"routing": tenant, "ignore_unavailable": "true"}
                )
            except NotFoundError:
                return
            hits: list[dict[str, Any]] = answer["hits"]["hits"]
            if hits:
                yield hits
            if len(hits) < _PAGE:
                return
            body["search_after"] = hits[-1]["sort"]

    async def documents(self, tenant: str, day: date) -> AsyncIterator[Sequence[bytes]]:
        stamp = day.strftime("%Y.%m.%d")
        pattern = f"{self._prefix}-events-{stamp},{self._prefix}-kept-{stamp}-*"
        pages = self._hits(pattern, tenant, day)
        while True:
            hits = await asyncio.to_thread(next, pages, None)
            if hits is None:
                return
            yield [orjson.dumps(hit["_source"]) for hit in hits]

    async def remove(self, due: Sequence[TenantDay]) -> list[TenantDay]:
        return await asyncio.to_thread(self._remove, due)

    def _remove(self, due: Sequence[TenantDay]) -> list[TenantDay]:
        by_index: dict[str, list[TenantDay]] = defaultdict(list)
        for item in due:
            by_index[item.location].append(item)
        removed: list[TenantDay] = []
        for index, items in sorted(by_index.items()):
            present = self._tenants(index)
            going = {item.tenant for item in items}
            keepers = sorted(set(present) - going)
            if keepers:
                self._copy_out(index, items[0].day, {t: present[t] for t in keepers})
            else:
                self._client.indices.delete(index=index)
            removed.extend(TenantDay(t, items[0].day, present.get(t, 0), index) for t in sorted(going))
        forget_claims(self._client, self._prefix, removed)
        return removed

    def _copy_out(self, index: str, day: date, keepers: dict[str, int]) -> None:
        kept = f"{self._prefix}-kept-{day.strftime('%Y.%m.%d')}-{time.time_ns() // 1_000_000}"
        self._client.indices.create(
            index=kept,
            body={
                "settings": {"index": {"number_of_shards": self._shards, "number_of_replicas": self._replicas}},
                "mappings": MAPPINGS,
            },
        )
        try:
            for tenant in keepers:
                for hits in self._hits(index, tenant, None):
                    self._bulk(kept, tenant, hits)
            self._client.indices.refresh(index=kept)
            for tenant, expected in keepers.items():
                count = self._client.count(
                    index=kept, body={"query": {"term": {"tenant": tenant}}}, params={"routing": tenant}
                )["count"]
                if count != expected:
                    raise RetentionError(
                        f"copying tenant {tenant!r} out of {index} into {kept} gave {count} of {expected} events; "
                        "the old index stays, the next run tries again"
                    )
            # One atomic step: the copy joins the alias as the old index goes.
            self._client.indices.update_aliases(
                body={"actions": [{"add": {"index": kept, "alias": self._alias}}, {"remove_index": {"index": index}}]}
            )
        except BaseException:
            self._client.indices.delete(index=kept, ignore=[404])
            raise

    def _bulk(self, index: str, tenant: str, hits: list[dict[str, Any]]) -> None:
        lines: list[bytes] = []
        for hit in hits:
            source = hit["_source"]
            action = {"create": {"_index": index, "_id": document_id(tenant, source["id"]), "routing": tenant}}
            lines.append(orjson.dumps(action))
            lines.append(orjson.dumps({**source, "fulltext": searchable_text(source)}))
        answer = self._client.bulk(body=b"\n".join(lines) + b"\n")
        if answer.get("errors"):
            # 409: already copied by an earlier, interrupted run; anything else keeps the old index.
            failed = [
                item["create"] for item in answer["items"] if item["create"].get("status", 500) not in (200, 201, 409)
            ]
            if failed:
                raise RetentionError(f"copying into {index} failed: {failed[0].get('error')}; the old index stays")
