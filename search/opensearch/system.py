"""The cluster's own state in OpenSearch: one small index per kind, under the events' prefix.

Every node of a cluster reads and writes these (tokens, failed logins, holds, locks); each has an
index template of its own, so a node that finds the index gone (deleted by hand, a new cluster)
creates it again with the right mapping. They are outside the `<prefix>-events` alias: no search
of events ever sees them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from opensearchpy import OpenSearch, RequestError

log = logging.getLogger(__name__)

# The deadline of a read or write of cluster state on a request's path (a token check, a failed login):
# a cluster that hangs must not hold requests for the client's whole timeout.
STATE_TIMEOUT_SECONDS = 2.0

# Bump when a system index's template body changes; a node with a newer version replaces it.
SYSTEM_TEMPLATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class SystemIndex:
    """`<prefix>-<suffix>`: one shard, a copy on a second node where there is one."""

    suffix: str
    mappings: dict[str, Any]

    @classmethod
    def of(cls, suffix: str, **kinds: Sequence[str]) -> SystemIndex:
        """A strict mapping from field names by kind: `keyword`, `stored` (a keyword never searched),
        `date`, `double`, `long`."""
        types: dict[str, dict[str, Any]] = {
            "keyword": {"type": "keyword"},
            "stored": {"type": "keyword", "index": False},
            "date": {"type": "date"},
            "double": {"type": "double"},
            "long": {"type": "long"},
        }
        properties = {name: types[kind] for kind, names in kinds.items() for name in names}
        return cls(suffix, {"dynamic": "strict", "properties": properties})

    def name(self, prefix: str) -> str:
        return f"{prefix}-{self.suffix}"

    def template(self, prefix: str) -> dict[str, Any]:
        return {
            "index_patterns": [self.name(prefix)],
            "priority": 100,
            "version": SYSTEM_TEMPLATE_VERSION,
            "_meta": {"owner": "eventlog", "description": f"eventlog cluster state: {self.suffix}"},
            "template": {
                # State a second node needs must survive the loss of one OpenSearch node.
                "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
                "mappings": self.mappings,
            },
        }

    def ensure(self, client: OpenSearch, prefix: str) -> str:
        """Install the template (when missing or older) and create the index (when missing); its name."""
        name = self.name(prefix)
        found = client.indices.get_index_template(name=name, ignore=[404]).get("index_templates") or []
        if not found or found[0]["index_template"].get("version") != SYSTEM_TEMPLATE_VERSION:
            client.indices.put_index_template(name=name, body=self.template(prefix))
            log.info("system index template installed", extra={"template": name})
        if not client.indices.exists(index=name):
            try:
                client.indices.create(index=name)
            except RequestError as exc:
                if exc.error != "resource_already_exists_exception":  # else another node created it first
                    raise
        return name


class StateIndex:
    """One system index of one prefix as a component uses it: made ready (template, index) at first use."""

    def __init__(self, client: OpenSearch, prefix: str, kind: SystemIndex) -> None:
        self.client = client
        self.prefix = prefix
        self.name = kind.name(prefix)
        self._kind = kind
        self._ready = False

    def ready(self) -> str:
        """The index's name, once it exists; OpenSearch's errors propagate (the next call tries again)."""
        if not self._ready:
            self._kind.ensure(self.client, self.prefix)
            self._ready = True
        return self.name


def delete_matching(client: OpenSearch, index: str, query: dict[str, Any], page: int = 1000) -> int:
    """Delete every document of `index` that `query` matches; how many went.

    Search and bulk deletes, page by page, rather than `_delete_by_query`: a cluster without the
    reindex module (the minimal distribution) has no such endpoint.
    """
    deleted = 0
    while True:
        hits = client.search(
            index=index,
            body={"size": page, "query": query, "_source": False},
            params={"ignore_unavailable": "true", "allow_no_indices": "true"},
        )["hits"]["hits"]
        if not hits:
            return deleted
        lines = "".join(
            orjson.dumps({"delete": {"_index": hit["_index"], "_id": hit["_id"]}}).decode() + "\n" for hit in hits
        )
        client.bulk(body=lines, params={"refresh": "true"})
        deleted += len(hits)
