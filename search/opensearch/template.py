"""The OpenSearch index: composable template, daily index names, the search alias."""

from __future__ import annotations

import logging
from typing import Any

from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

# Bump when the template body changes; a node with a newer version replaces it.
TEMPLATE_VERSION = 2

# ignore_above at least the model's longest value, so exact and prefix queries find everything.
_KEYWORD = {"type": "keyword", "ignore_above": 4096}
_NAME = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}}}
_DATE = {"type": "date_nanos", "format": "strict_date_optional_time_nanos"}


def alias(prefix: str) -> str:
    """The search alias every daily index joins."""
    return f"{prefix}-events"


def template_name(prefix: str) -> str:
    return f"{prefix}-events"


def index_for(prefix: str, time: str) -> str:
    """Daily index by event time (UTC): `<prefix>-events-YYYY.MM.DD` from an RFC 3339 UTC time."""
    return f"{prefix}-events-{time[0:4]}.{time[5:7]}.{time[8:10]}"


MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    # The pre-tokenized full text is for matching only; returned events are exactly the journal's.
    "_source": {"excludes": ["fulltext"]},
    "properties": {
        "id": _KEYWORD,
        "tenant": _KEYWORD,
        "time": _DATE,
        "received_at": _DATE,
        "action": _KEYWORD,
        "outcome": _KEYWORD,
        "source": _KEYWORD,
        "actor": {
            "properties": {
                "type": _KEYWORD,
                "id": _KEYWORD,
                "name": _NAME,
                "ip": {"type": "ip"},
                "user_agent": _NAME,
            }
        },
        "target": {"properties": {"type": _KEYWORD, "id": _KEYWORD, "name": _NAME}},
        "request": {
            "properties": {
                "method": _KEYWORD,
                "path": _KEYWORD,
                "route": _KEYWORD,
                "query": _KEYWORD,
                "status": {"type": "short"},
                "duration_ms": {"type": "double"},
                "request_id": _KEYWORD,
                "bytes_in": {"type": "long"},
                "bytes_out": {"type": "long"},
            }
        },
        "message": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}}},
        "details": {"type": "flat_object"},
        "chain": {
            "properties": {
                "stream": _KEYWORD,
                "seq": {"type": "long"},
                "prev": {"type": "keyword", "index": False},
                "hash": _KEYWORD,
            }
        },
        # search/text.py tokenizes; the store only splits on spaces, so both backends match alike.
        "fulltext": {"type": "text", "analyzer": "whitespace", "norms": False, "index_options": "positions"},
    },
}


def template_body(prefix: str, *, shards: int, replicas: int) -> dict[str, Any]:
    return {
        "index_patterns": [f"{prefix}-events-*"],
        "priority": 100,
        "version": TEMPLATE_VERSION,
        "_meta": {"owner": "eventlog", "description": "eventlog audit events, one index per UTC day"},
        "template": {
            "settings": {
                "index": {
                    "number_of_shards": shards,
                    "number_of_replicas": replicas,
                    "refresh_interval": "1s",
                }
            },
            "mappings": MAPPINGS,
            "aliases": {alias(prefix): {}},
        },
    }


def install(client: OpenSearch, prefix: str, *, shards: int, replicas: int) -> str:
    """Install or update the template idempotently; answers "created", "updated" or "unchanged"."""
    name = template_name(prefix)
    wanted = template_body(prefix, shards=shards, replicas=replicas)
    answer = client.indices.get_index_template(name=name, ignore=[404])
    templates = answer.get("index_templates") or []
    found = templates[0]["index_template"] if templates else None
    if found is not None and found.get("version") == TEMPLATE_VERSION and _same(found, wanted):
        return "unchanged"
    client.indices.put_index_template(name=name, body=wanted)
    state = "created" if found is None else "updated"
    log.info("index template installed", extra={"template": name, "state": state, "version": TEMPLATE_VERSION})
    return state


def _same(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    settings = found.get("template", {}).get("settings", {}).get("index", {})
    want = wanted["template"]["settings"]["index"]
    return (
        found.get("index_patterns") == wanted["index_patterns"]
        and str(settings.get("number_of_shards")) == str(want["number_of_shards"])
        and str(settings.get("number_of_replicas")) == str(want["number_of_replicas"])
        and set(found.get("template", {}).get("aliases", {})) == set(wanted["template"]["aliases"])
    )
