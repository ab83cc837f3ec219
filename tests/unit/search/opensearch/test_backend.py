"""The OpenSearch request builder and its tenant failsafe."""

from __future__ import annotations

from typing import Any

import pytest

from search.backend import EventQuery, Position, Scope, TenantScopeMissing
from search.opensearch.backend import checked, search_body
from search.query import And, Term, Text, parse

SCOPE = Scope("acme")


def test_search_body_puts_the_tenant_first_and_pages_by_time_and_id() -> None:
    query = EventQuery(
        where=And((Term("action", "a.b"), Text(("job", "42")))),
        order="asc",
        limit=10,
        after=Position(1_700_000_000_123_456, "id-9"),
    )
    assert search_body(SCOPE, query) == {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"tenant": "acme"}},
                    {
                        "bool": {
                            "filter": [
                                {"term": {"action": "a.b"}},
                                {"match_phrase": {"fulltext": {"query": "job 42", "analyzer": "whitespace"}}},
                            ]
                        }
                    },
                ]
            }
        },
        "sort": [{"time": {"order": "asc"}}, {"id": {"order": "asc"}}],
        "size": 11,
        "track_total_hits": False,
        "search_after": [1_700_000_000_123_456_000, "id-9"],
    }


def test_match_everything_is_the_tenant_filter_alone() -> None:
    assert search_body(SCOPE, EventQuery())["query"] == {"bool": {"filter": [{"term": {"tenant": "acme"}}]}}


def test_user_text_never_becomes_query_string() -> None:
    body = search_body(SCOPE, EventQuery(where=parse('"title:x OR _exists_:tenant" tenant OR _id')))
    assert "query_string" not in repr(body)
    assert "simple_query_string" not in repr(body)


@pytest.mark.parametrize(
    "body",
    [
        {"query": {"match_all": {}}},
        {"query": {"bool": {"filter": [{"term": {"tenant": "globex"}}]}}},
        {"query": {"bool": {"filter": [{"term": {"action": "x"}}, {"term": {"tenant": "acme"}}]}}},
        {"query": {"bool": {"should": [{"term": {"tenant": "acme"}}]}}},
        {},
    ],
)
def test_failsafe_refuses_unscoped_requests(body: dict[str, Any]) -> None:
    with pytest.raises(TenantScopeMissing):
        checked(SCOPE, body)


def test_failsafe_passes_scoped_requests() -> None:
    body = search_body(SCOPE, EventQuery())
    assert checked(SCOPE, body) == body
