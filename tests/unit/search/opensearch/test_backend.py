"""The OpenSearch request builder and its tenant failsafe."""

from __future__ import annotations

from typing import Any

import pytest

from search.backend import EventQuery, Position, Scope, TenantScopeMissing
from search.opensearch.backend import checked, search_body

SCOPE = Scope("acme")


def test_full_query_dsl() -> None:
    query = EventQuery(
        since_us=1_700_000_000_000_000,
        until_us=1_700_000_060_000_001,
        action="a.b",
        actor="alice",
        outcome="failure",
        source="api",
        text="job-42 * sales",
        order="asc",
        limit=10,
        after=Position(1_700_000_000_123_456, "id-9"),
    )
    assert search_body(SCOPE, query) == {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"tenant": "acme"}},
                    {"range": {"time": {"gte": "2023-11-14T22:13:20.000000Z", "lt": "2023-11-14T22:14:20.000001Z"}}},
                    {"term": {"action": "a.b"}},
                    {"term": {"actor.id": "alice"}},
                    {"term": {"outcome": "failure"}},
                    {"term": {"source": "api"}},
                    {"match_phrase": {"fulltext": {"query": "job 42", "analyzer": "whitespace"}}},
                    {"match_phrase": {"fulltext": {"query": "sales", "analyzer": "whitespace"}}},
                ]
            }
        },
        "sort": [{"time": {"order": "asc"}}, {"id": {"order": "asc"}}],
        "size": 11,
        "track_total_hits": False,
        "search_after": [1_700_000_000_123_456_000, "id-9"],
    }


def test_user_text_never_becomes_query_string() -> None:
    body = search_body(SCOPE, EventQuery(text='title:"x" OR _exists_:tenant'))
    assert "query_string" not in repr(body)
    assert "simple_query_string" not in repr(body)


@pytest.mark.parametrize(
    ("body", "params"),
    [
        ({"query": {"match_all": {}}}, {"routing": "acme"}),
        ({"query": {"bool": {"filter": [{"term": {"tenant": "globex"}}]}}}, {"routing": "acme"}),
        (
            {"query": {"bool": {"filter": [{"term": {"action": "x"}}, {"term": {"tenant": "acme"}}]}}},
            {"routing": "acme"},
        ),
        ({"query": {"bool": {"filter": [{"term": {"tenant": "acme"}}]}}}, {}),
        ({}, {"routing": "acme"}),
    ],
)
def test_failsafe_refuses_unscoped_requests(body: dict[str, Any], params: dict[str, Any]) -> None:
    with pytest.raises(TenantScopeMissing):
        checked(SCOPE, body, params)


def test_failsafe_passes_scoped_requests() -> None:
    body = search_body(SCOPE, EventQuery())
    assert checked(SCOPE, body, {"routing": "acme"}) == (body, {"routing": "acme"})
