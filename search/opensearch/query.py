"""The query AST (search/query.py) as OpenSearch query DSL."""

from __future__ import annotations

from typing import Any, assert_never

from eventlog.model import format_time_us
from search.query import (
    DETAILS_PREFIX,
    FIELD_KINDS,
    All,
    And,
    AnyOf,
    Cidr,
    Exists,
    Node,
    Not,
    Or,
    Prefix,
    Range,
    Term,
    Text,
    Value,
)

# Names are `text` with a `keyword` subfield; exact matches go to the subfield.
_OS_FIELD = {
    "actor.name": "actor.name.keyword",
    "target.name": "target.name.keyword",
    "actor.user_agent": "actor.user_agent.keyword",
}
_OS_RANGE = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def _os_value(field: str, value: Value) -> Value:
    if FIELD_KINDS.get(field) == "time":
        return format_time_us(int(value))
    return value


def to_opensearch(node: Node) -> dict[str, Any]:
    """The OpenSearch query DSL of a node (the tenant filter is the backend's business)."""
    match node:
        case All():
            return {"match_all": {}}
        case Text(found, prefix):
            if prefix:
                return {"prefix": {"fulltext": found[0]}}
            return {"match_phrase": {"fulltext": {"query": " ".join(found), "analyzer": "whitespace"}}}
        case Term(field, value):
            return {"term": {_OS_FIELD.get(field, field): _os_value(field, value)}}
        case AnyOf(field, values):
            return {"terms": {_OS_FIELD.get(field, field): [_os_value(field, v) for v in values]}}
        case Prefix(field, value):
            return {"prefix": {_OS_FIELD.get(field, field): value}}
        case Exists(field):
            if field.startswith(DETAILS_PREFIX):
                # flat_object: "<path>=<text>" starts with "<path>=" for every scalar at the path.
                return {"prefix": {field: ""}}
            return {"exists": {"field": _OS_FIELD.get(field, field)}}
        case Range(field, op, value):
            return {"range": {field: {_OS_RANGE[op]: _os_value(field, value)}}}
        case Cidr(field, network):
            return {"term": {field: network}}
        case Not(item):
            return {"bool": {"must_not": [to_opensearch(item)]}}
        case And(items):
            return {"bool": {"filter": [to_opensearch(item) for item in items]}}
        case Or(items):
            return {"bool": {"should": [to_opensearch(item) for item in items], "minimum_should_match": 1}}
        case _:
            assert_never(node)
