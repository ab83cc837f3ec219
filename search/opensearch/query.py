"""The query AST (search/query.py) as OpenSearch query DSL."""

from __future__ import annotations

from typing import Any, assert_never

from eventlog.model import format_time_us
from search import query as ast

# Names are `text` with a `keyword` subfield; exact matches go to the subfield.
_OS_FIELD = {
    "actor.name": "actor.name.keyword",
    "target.name": "target.name.keyword",
    "actor.user_agent": "actor.user_agent.keyword",
}
_OS_RANGE = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def _os_value(field: str, value: ast.Value) -> ast.Value:
    if ast.FIELD_KINDS.get(field) == "time":
        return format_time_us(int(value))
    return value


def to_opensearch(node: ast.Node) -> dict[str, Any]:
    """The OpenSearch query DSL of a node (the tenant filter is the backend's business)."""
    match node:
        case ast.All():
            return {"match_all": {}}
        case ast.Text(found, prefix):
            if prefix:
                return {"prefix": {"fulltext": found[0]}}
            return {"match_phrase": {"fulltext": {"query": " ".join(found), "analyzer": "whitespace"}}}
        case ast.Term(field, value):
            return {"term": {_OS_FIELD.get(field, field): _os_value(field, value)}}
        case ast.AnyOf(field, values):
            return {"terms": {_OS_FIELD.get(field, field): [_os_value(field, v) for v in values]}}
        case ast.Prefix(field, value):
            return {"prefix": {_OS_FIELD.get(field, field): value}}
        case ast.Exists(field):
            if field.startswith(ast.DETAILS_PREFIX):
                # flat_object: "<path>=<text>" starts with "<path>=" for every scalar at the path.
                return {"prefix": {field: ""}}
            return {"exists": {"field": _OS_FIELD.get(field, field)}}
        case ast.Range(field, op, value):
            return {"range": {field: {_OS_RANGE[op]: _os_value(field, value)}}}
        case ast.Cidr(field, network):
            return {"term": {field: network}}
        case ast.Not(item):
            return {"bool": {"must_not": [to_opensearch(item)]}}
        case ast.And(items):
            return {"bool": {"filter": [to_opensearch(item) for item in items]}}
        case ast.Or(items):
            return {"bool": {"should": [to_opensearch(item) for item in items], "minimum_should_match": 1}}
        case _:
            assert_never(node)
