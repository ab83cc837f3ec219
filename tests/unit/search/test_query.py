"""The query language: one row per construct (query → AST → OpenSearch DSL → SQL) and per error.

`DOCUMENTS` and `QUERIES` are plain data so that the three-way check against a real OpenSearch can
reuse them; `test_sqlite_agrees_with_the_evaluator` is the cheap two-way check on SQLite.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog.model import parse_time, time_to_us
from search.opensearch.query import to_opensearch
from search.query import (
    ALIASES,
    KNOWN_FIELDS,
    All,
    And,
    AnyOf,
    Cidr,
    Exists,
    Node,
    Not,
    Or,
    Prefix,
    QueryError,
    Range,
    Term,
    Text,
    cidr_match,
    matches,
    parse,
    time_span,
)
from search.sqlite.query import ip_key, to_sqlite
from search.sqlite.store import SCHEMA, insert_details_leaves
from search.text import searchable_text


def us(value: str) -> int:
    return time_to_us(parse_time(value))


def text(*words: str, prefix: bool = False) -> Text:
    return Text(words, prefix)


def phrase(query: str) -> dict[str, Any]:
    return {"match_phrase": {"fulltext": {"query": query, "analyzer": "whitespace"}}}


FTS = "rowid IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)"
STATUS = "status"
IP = "json_extract(document, '$.actor.ip')"
IP_IS = "actor_ip IS ?"
IP_IN = "(actor_ip IS NOT NULL AND actor_ip BETWEEN ? AND ?)"


def key(ip: str) -> bytes:
    """ip_key() computed independently: the 16-byte IPv6 form, IPv4 mapped (OpenSearch's order)."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(f"::ffff:{address}").packed
    return address.packed


def span(network: str) -> list[object]:
    parsed = ipaddress.ip_network(network)
    if isinstance(parsed, ipaddress.IPv4Network):
        parsed = ipaddress.IPv6Network(f"::ffff:{parsed.network_address}/{parsed.prefixlen + 96}")
    return [parsed.network_address.packed, parsed.broadcast_address.packed]


# Spelled out here on purpose: a change of the SQL shows up as a change of this test.
NUL_FREE = (
    "replace(replace(replace(replace(document, "
    "'\\\\', '\\u005c'), '\\\"', '\\u0022'), '\\u0001', '\\u0001\\u0002'), '\\u0000', '\\u0001\\u0001')"
)
INDEX = "rowid IN (SELECT event FROM details_leaves WHERE tenant = ?1 AND {})"


def details(condition: str) -> str:
    return INDEX.format(condition)


def leaf(text: str) -> bytes:
    return text.encode()


def leaf_range(text: str) -> list[object]:
    return [text.encode(), text.encode() + b"\xff"]


def row(query: str, ast: Node, dsl: dict[str, Any], sql: str, params: list[object]) -> Any:
    return pytest.param(query, ast, dsl, sql, params, id=query or '""')


QUERIES = [
    # -- the empty query and dropped words
    row("", All(), {"match_all": {}}, "1", []),
    row("   ", All(), {"match_all": {}}, "1", []),
    row("*", All(), {"match_all": {}}, "1", []),
    row('"..."', All(), {"match_all": {}}, "1", []),
    row("NOT *", All(), {"match_all": {}}, "1", []),
    row("sales OR *", text("sales"), phrase("sales"), FTS, ['"sales"']),
    row(
        "sales -> table",
        And((text("sales"), text("table"))),
        {"bool": {"filter": [phrase("sales"), phrase("table")]}},
        f"({FTS} AND {FTS})",
        ['"sales"', '"table"'],
    ),
    # -- full text
    row("sales", text("sales"), phrase("sales"), FTS, ['"sales"']),
    row("SALES", text("sales"), phrase("sales"), FTS, ['"sales"']),
    row("café", text("cafe"), phrase("cafe"), FTS, ['"cafe"']),
    row("job-42", text("job", "42"), phrase("job 42"), FTS, ['"job 42"']),
    row('"Job 42"', text("job", "42"), phrase("job 42"), FTS, ['"job 42"']),
    row(r'"say \"hi\" \\ there"', text("say", "hi", "there"), phrase("say hi there"), FTS, ['"say hi there"']),
    row('"a:b (c)"', text("a", "b", "c"), phrase("a b c"), FTS, ['"a b c"']),
    row("sal*", text("sal", prefix=True), {"prefix": {"fulltext": "sal"}}, FTS, ['"sal"*']),
    row("Zo*", text("zo", prefix=True), {"prefix": {"fulltext": "zo"}}, FTS, ['"zo"*']),
    row("日本語テキスト", text("日本語テキスト"), phrase("日本語テキスト"), FTS, ['"日本語テキスト"']),
    row(
        "and or not",
        And((text("and"), text("or"), text("not"))),
        {"bool": {"filter": [phrase("and"), phrase("or"), phrase("not")]}},
        f"({FTS} AND {FTS} AND {FTS})",
        ['"and"', '"or"', '"not"'],
    ),
    # -- boolean structure
    row(
        "created sales",
        And((text("created"), text("sales"))),
        {"bool": {"filter": [phrase("created"), phrase("sales")]}},
        f"({FTS} AND {FTS})",
        ['"created"', '"sales"'],
    ),
    row(
        "created AND sales",
        And((text("created"), text("sales"))),
        {"bool": {"filter": [phrase("created"), phrase("sales")]}},
        f"({FTS} AND {FTS})",
        ['"created"', '"sales"'],
    ),
    row(
        "created OR deleted",
        Or((text("created"), text("deleted"))),
        {"bool": {"should": [phrase("created"), phrase("deleted")], "minimum_should_match": 1}},
        f"({FTS} OR {FTS})",
        ['"created"', '"deleted"'],
    ),
    row(
        "table sales OR login",
        Or((And((text("table"), text("sales"))), text("login"))),
        {
            "bool": {
                "should": [{"bool": {"filter": [phrase("table"), phrase("sales")]}}, phrase("login")],
                "minimum_should_match": 1,
            }
        },
        f"(({FTS} AND {FTS}) OR {FTS})",
        ['"table"', '"sales"', '"login"'],
    ),
    row(
        "table (sales OR job)",
        And((text("table"), Or((text("sales"), text("job"))))),
        {
            "bool": {
                "filter": [
                    phrase("table"),
                    {"bool": {"should": [phrase("sales"), phrase("job")], "minimum_should_match": 1}},
                ]
            }
        },
        f"({FTS} AND ({FTS} OR {FTS}))",
        ['"table"', '"sales"', '"job"'],
    ),
    row(
        "a OR (b OR c)",
        Or((text("a"), text("b"), text("c"))),
        {"bool": {"should": [phrase("a"), phrase("b"), phrase("c")], "minimum_should_match": 1}},
        f"({FTS} OR {FTS} OR {FTS})",
        ['"a"', '"b"', '"c"'],
    ),
    row("((sales))", text("sales"), phrase("sales"), FTS, ['"sales"']),
    row("NOT sales", Not(text("sales")), {"bool": {"must_not": [phrase("sales")]}}, f"NOT ({FTS})", ['"sales"']),
    row("-sales", Not(text("sales")), {"bool": {"must_not": [phrase("sales")]}}, f"NOT ({FTS})", ['"sales"']),
    row('-"job 42"', Not(text("job", "42")), {"bool": {"must_not": [phrase("job 42")]}}, f"NOT ({FTS})", ['"job 42"']),
    row(
        "table -(sales OR job)",
        And((text("table"), Not(Or((text("sales"), text("job")))))),
        {
            "bool": {
                "filter": [
                    phrase("table"),
                    {
                        "bool": {
                            "must_not": [
                                {"bool": {"should": [phrase("sales"), phrase("job")], "minimum_should_match": 1}}
                            ]
                        }
                    },
                ]
            }
        },
        f"({FTS} AND NOT (({FTS} OR {FTS})))",
        ['"table"', '"sales"', '"job"'],
    ),
    row(
        "NOT NOT sales",
        Not(Not(text("sales"))),
        {"bool": {"must_not": [{"bool": {"must_not": [phrase("sales")]}}]}},
        f"NOT (NOT ({FTS}))",
        ['"sales"'],
    ),
    row(
        "sales - table",
        And((text("sales"), text("table"))),
        {"bool": {"filter": [phrase("sales"), phrase("table")]}},
        f"({FTS} AND {FTS})",
        ['"sales"', '"table"'],
    ),
    # -- keyword fields: exact, case-sensitive, prefix, exists, any-of
    row(
        "action:storage.tables.create",
        Term("action", "storage.tables.create"),
        {"term": {"action": "storage.tables.create"}},
        "action = ?",
        ["storage.tables.create"],
    ),
    row(
        "action:Storage.*",
        Prefix("action", "Storage."),
        {"prefix": {"action": "Storage."}},
        "substr(action, 1, ?) = ?",
        [8, "Storage."],
    ),
    row("action:*", Exists("action"), {"exists": {"field": "action"}}, "action IS NOT NULL", []),
    row('action:"a*"', Term("action", "a*"), {"term": {"action": "a*"}}, "action = ?", ["a*"]),
    row(
        "action:(auth.login OR auth.logout)",
        AnyOf("action", ("auth.login", "auth.logout")),
        {"terms": {"action": ["auth.login", "auth.logout"]}},
        "action IN (?, ?)",
        ["auth.login", "auth.logout"],
    ),
    row(
        "action:(auth.login)",
        Term("action", "auth.login"),
        {"term": {"action": "auth.login"}},
        "action = ?",
        ["auth.login"],
    ),
    row(
        "action:(auth.* OR http.GET OR noop OR http.GET)",
        Or((AnyOf("action", ("http.GET", "noop")), Prefix("action", "auth."))),
        {
            "bool": {
                "should": [{"terms": {"action": ["http.GET", "noop"]}}, {"prefix": {"action": "auth."}}],
                "minimum_should_match": 1,
            }
        },
        "(action IN (?, ?) OR substr(action, 1, ?) = ?)",
        ["http.GET", "noop", 5, "auth."],
    ),
    row("id:ev-3", Term("id", "ev-3"), {"term": {"id": "ev-3"}}, "id = ?", ["ev-3"]),
    row("outcome:failure", Term("outcome", "failure"), {"term": {"outcome": "failure"}}, "outcome = ?", ["failure"]),
    row(
        "source:cloudtrail",
        Term("source", "cloudtrail"),
        {"term": {"source": "cloudtrail"}},
        "source = ?",
        ["cloudtrail"],
    ),
    row("actor:u-42", Term("actor.id", "u-42"), {"term": {"actor.id": "u-42"}}, "actor_id IS ?", ["u-42"]),
    row(
        "actor.id:u-*",
        Prefix("actor.id", "u-"),
        {"prefix": {"actor.id": "u-"}},
        "substr(actor_id, 1, ?) IS ?",
        [2, "u-"],
    ),
    row(
        "actor.id:(u-7 OR U-42)",
        AnyOf("actor.id", ("u-7", "U-42")),
        {"terms": {"actor.id": ["u-7", "U-42"]}},
        "COALESCE(actor_id IN (?, ?), 0)",
        ["u-7", "U-42"],
    ),
    row(
        "actor.type:aws.IAMUser",
        Term("actor.type", "aws.IAMUser"),
        {"term": {"actor.type": "aws.IAMUser"}},
        "json_extract(document, '$.actor.type') IS ?",
        ["aws.IAMUser"],
    ),
    row(
        'actor.name:"Zoë Faß"',
        Term("actor.name", "Zoë Faß"),
        {"term": {"actor.name.keyword": "Zoë Faß"}},
        "json_extract(document, '$.actor.name') IS ?",
        ["Zoë Faß"],
    ),
    row(
        "actor.name:*",
        Exists("actor.name"),
        {"exists": {"field": "actor.name.keyword"}},
        "json_extract(document, '$.actor.name') IS NOT NULL",
        [],
    ),
    row(
        "actor.user_agent:curl/*",
        Prefix("actor.user_agent", "curl/"),
        {"prefix": {"actor.user_agent.keyword": "curl/"}},
        f"substr(json_extract({NUL_FREE}, '$.actor.user_agent'), 1, ?) IS ?",
        [5, "curl/"],
    ),
    row(
        "target:in.c-main.sales",
        Term("target.id", "in.c-main.sales"),
        {"term": {"target.id": "in.c-main.sales"}},
        "json_extract(document, '$.target.id') IS ?",
        ["in.c-main.sales"],
    ),
    row(
        "target.type:table",
        Term("target.type", "table"),
        {"term": {"target.type": "table"}},
        "json_extract(document, '$.target.type') IS ?",
        ["table"],
    ),
    row(
        "target.name:Sales",
        Term("target.name", "Sales"),
        {"term": {"target.name.keyword": "Sales"}},
        "json_extract(document, '$.target.name') IS ?",
        ["Sales"],
    ),
    row(
        "method:POST",
        Term("request.method", "POST"),
        {"term": {"request.method": "POST"}},
        "json_extract(document, '$.request.method') IS ?",
        ["POST"],
    ),
    row(
        'path:"/a*b"',
        Term("request.path", "/a*b"),
        {"term": {"request.path": "/a*b"}},
        "json_extract(document, '$.request.path') IS ?",
        ["/a*b"],
    ),
    row(
        "route:/v2/*",
        Prefix("request.route", "/v2/"),
        {"prefix": {"request.route": "/v2/"}},
        "substr(json_extract(document, '$.request.route'), 1, ?) IS ?",
        [4, "/v2/"],
    ),
    row(
        "request.request_id:req-1",
        Term("request.request_id", "req-1"),
        {"term": {"request.request_id": "req-1"}},
        "json_extract(document, '$.request.request_id') IS ?",
        ["req-1"],
    ),
    row('action:""', Term("action", ""), {"term": {"action": ""}}, "action = ?", [""]),
    # -- numbers
    row("status:500", Term("request.status", 500), {"term": {"request.status": 500}}, f"{STATUS} IS ?", [500]),
    row('status:"401"', Term("request.status", 401), {"term": {"request.status": 401}}, f"{STATUS} IS ?", [401]),
    row(
        "status:>=400",
        Range("request.status", ">=", 400),
        {"range": {"request.status": {"gte": 400}}},
        f"({STATUS} IS NOT NULL AND {STATUS} >= ?)",
        [400],
    ),
    row(
        "status:<300",
        Range("request.status", "<", 300),
        {"range": {"request.status": {"lt": 300}}},
        f"({STATUS} IS NOT NULL AND {STATUS} < ?)",
        [300],
    ),
    row(
        "status:(200 OR 201)",
        AnyOf("request.status", (200, 201)),
        {"terms": {"request.status": [200, 201]}},
        f"COALESCE({STATUS} IN (?, ?), 0)",
        [200, 201],
    ),
    row("status:*", Exists("request.status"), {"exists": {"field": "request.status"}}, f"{STATUS} IS NOT NULL", []),
    row(
        "-status:*",
        Not(Exists("request.status")),
        {"bool": {"must_not": [{"exists": {"field": "request.status"}}]}},
        f"NOT ({STATUS} IS NOT NULL)",
        [],
    ),
    row(
        "request.duration_ms:12.5",
        Term("request.duration_ms", 12.5),
        {"term": {"request.duration_ms": 12.5}},
        "duration_ms IS ?",
        [12.5],
    ),
    row(
        "request.duration_ms:3",
        Term("request.duration_ms", 3.0),
        {"term": {"request.duration_ms": 3.0}},
        "duration_ms IS ?",
        [3.0],
    ),
    row(
        "request.duration_ms:>1e3",
        Range("request.duration_ms", ">", 1000.0),
        {"range": {"request.duration_ms": {"gt": 1000.0}}},
        "(duration_ms IS NOT NULL AND duration_ms > ?)",
        [1000.0],
    ),
    row(
        "request.duration_ms:<=.5",
        Range("request.duration_ms", "<=", 0.5),
        {"range": {"request.duration_ms": {"lte": 0.5}}},
        "(duration_ms IS NOT NULL AND duration_ms <= ?)",
        [0.5],
    ),
    row(
        "request.bytes_in:>0",
        Range("request.bytes_in", ">", 0),
        {"range": {"request.bytes_in": {"gt": 0}}},
        "(json_extract(document, '$.request.bytes_in') IS NOT NULL AND json_extract(document, '$.request.bytes_in') > ?)",
        [0],
    ),
    row(
        "request.bytes_out:0",
        Term("request.bytes_out", 0),
        {"term": {"request.bytes_out": 0}},
        "json_extract(document, '$.request.bytes_out') IS ?",
        [0],
    ),
    # -- times (AST in µs; DSL in RFC 3339 with µs; a date is its whole UTC day)
    row(
        "time:>=2026-11-27T10:00:00Z",
        Range("time", ">=", us("2026-11-27T10:00:00Z")),
        {"range": {"time": {"gte": "2026-11-27T10:00:00.000000Z"}}},
        "time_us >= ?",
        [us("2026-11-27T10:00:00Z")],
    ),
    row(
        "time:<2026-11-27t11:30+01:00",
        Range("time", "<", us("2026-11-27T10:30:00Z")),
        {"range": {"time": {"lt": "2026-11-27T10:30:00.000000Z"}}},
        "time_us < ?",
        [us("2026-11-27T10:30:00Z")],
    ),
    row(
        "time:2026-11-27T23:59:59.999999Z",
        Term("time", us("2026-11-27T23:59:59.999999Z")),
        {"term": {"time": "2026-11-27T23:59:59.999999Z"}},
        "time_us = ?",
        [us("2026-11-27T23:59:59.999999Z")],
    ),
    row(
        "time:2026-11-27",
        And((Range("time", ">=", us("2026-11-27T00:00:00Z")), Range("time", "<", us("2026-11-28T00:00:00Z")))),
        {
            "bool": {
                "filter": [
                    {"range": {"time": {"gte": "2026-11-27T00:00:00.000000Z"}}},
                    {"range": {"time": {"lt": "2026-11-28T00:00:00.000000Z"}}},
                ]
            }
        },
        "(time_us >= ? AND time_us < ?)",
        [us("2026-11-27T00:00:00Z"), us("2026-11-28T00:00:00Z")],
    ),
    row(
        "time:>=2026-11-27",
        Range("time", ">=", us("2026-11-27T00:00:00Z")),
        {"range": {"time": {"gte": "2026-11-27T00:00:00.000000Z"}}},
        "time_us >= ?",
        [us("2026-11-27T00:00:00Z")],
    ),
    row(
        "time:>2026-11-27",
        Range("time", ">=", us("2026-11-28T00:00:00Z")),
        {"range": {"time": {"gte": "2026-11-28T00:00:00.000000Z"}}},
        "time_us >= ?",
        [us("2026-11-28T00:00:00Z")],
    ),
    row(
        "time:<2026-11-27",
        Range("time", "<", us("2026-11-27T00:00:00Z")),
        {"range": {"time": {"lt": "2026-11-27T00:00:00.000000Z"}}},
        "time_us < ?",
        [us("2026-11-27T00:00:00Z")],
    ),
    row(
        "time:<=2026-11-27",
        Range("time", "<", us("2026-11-28T00:00:00Z")),
        {"range": {"time": {"lt": "2026-11-28T00:00:00.000000Z"}}},
        "time_us < ?",
        [us("2026-11-28T00:00:00Z")],
    ),
    row(
        "time:(2026-11-26 OR 2026-11-28)",
        Or(
            (
                And((Range("time", ">=", us("2026-11-26T00:00:00Z")), Range("time", "<", us("2026-11-27T00:00:00Z")))),
                And((Range("time", ">=", us("2026-11-28T00:00:00Z")), Range("time", "<", us("2026-11-29T00:00:00Z")))),
            )
        ),
        {
            "bool": {
                "should": [
                    {
                        "bool": {
                            "filter": [
                                {"range": {"time": {"gte": "2026-11-26T00:00:00.000000Z"}}},
                                {"range": {"time": {"lt": "2026-11-27T00:00:00.000000Z"}}},
                            ]
                        }
                    },
                    {
                        "bool": {
                            "filter": [
                                {"range": {"time": {"gte": "2026-11-28T00:00:00.000000Z"}}},
                                {"range": {"time": {"lt": "2026-11-29T00:00:00.000000Z"}}},
                            ]
                        }
                    },
                ],
                "minimum_should_match": 1,
            }
        },
        "((time_us >= ? AND time_us < ?) OR (time_us >= ? AND time_us < ?))",
        [
            us("2026-11-26T00:00:00Z"),
            us("2026-11-27T00:00:00Z"),
            us("2026-11-28T00:00:00Z"),
            us("2026-11-29T00:00:00Z"),
        ],
    ),
    row(
        "time:(2026-11-27T10:00:00Z OR 2026-11-26T08:00:00Z)",
        AnyOf("time", (us("2026-11-27T10:00:00Z"), us("2026-11-26T08:00:00Z"))),
        {"terms": {"time": ["2026-11-27T10:00:00.000000Z", "2026-11-26T08:00:00.000000Z"]}},
        "time_us IN (?, ?)",
        [us("2026-11-27T10:00:00Z"), us("2026-11-26T08:00:00Z")],
    ),
    row(
        "received_at:>=2026-11-28",
        Range("received_at", ">=", us("2026-11-28T00:00:00Z")),
        {"range": {"received_at": {"gte": "2026-11-28T00:00:00.000000Z"}}},
        "(json_extract(document, '$.received_at') IS NOT NULL AND json_extract(document, '$.received_at') >= ?)",
        ["2026-11-28T00:00:00.000000Z"],
    ),
    row(
        "received_at:2026-11-27T10:00:01Z",
        Term("received_at", us("2026-11-27T10:00:01Z")),
        {"term": {"received_at": "2026-11-27T10:00:01.000000Z"}},
        "json_extract(document, '$.received_at') IS ?",
        ["2026-11-27T10:00:01.000000Z"],
    ),
    # -- addresses: exact, CIDR, IPv6, IPv4-mapped IPv6
    row(
        "ip:10.0.0.7",
        Term("actor.ip", "10.0.0.7"),
        {"term": {"actor.ip": "10.0.0.7"}},
        IP_IS,
        [key("10.0.0.7")],
    ),
    row(
        "ip:10.0.0.0/8",
        Cidr("actor.ip", "10.0.0.0/8"),
        {"term": {"actor.ip": "10.0.0.0/8"}},
        IP_IN,
        span("10.0.0.0/8"),
    ),
    row(
        "actor.ip:10.1.2.3/8",
        Cidr("actor.ip", "10.0.0.0/8"),
        {"term": {"actor.ip": "10.0.0.0/8"}},
        IP_IN,
        span("10.0.0.0/8"),
    ),
    row(
        "ip:2001:DB8::1",
        Term("actor.ip", "2001:db8::1"),
        {"term": {"actor.ip": "2001:db8::1"}},
        IP_IS,
        [key("2001:db8::1")],
    ),
    row(
        "ip:2001:db8::/32",
        Cidr("actor.ip", "2001:db8::/32"),
        {"term": {"actor.ip": "2001:db8::/32"}},
        IP_IN,
        span("2001:db8::/32"),
    ),
    row(
        "ip:::ffff:10.1.2.3",
        Term("actor.ip", "10.1.2.3"),
        {"term": {"actor.ip": "10.1.2.3"}},
        IP_IS,
        [key("10.1.2.3")],
    ),
    row(
        "ip:::ffff:0:0/96",
        Cidr("actor.ip", "0.0.0.0/0"),
        {"term": {"actor.ip": "0.0.0.0/0"}},
        IP_IN,
        span("0.0.0.0/0"),
    ),
    row(
        "ip:::ffff:10.0.0.0/104",
        Cidr("actor.ip", "10.0.0.0/8"),
        {"term": {"actor.ip": "10.0.0.0/8"}},
        IP_IN,
        span("10.0.0.0/8"),
    ),
    row(
        "ip:(10.0.0.7 OR 2001:db8::1)",
        AnyOf("actor.ip", ("10.0.0.7", "2001:db8::1")),
        {"terms": {"actor.ip": ["10.0.0.7", "2001:db8::1"]}},
        "(actor_ip IS NOT NULL AND actor_ip IN (?, ?))",
        [key("10.0.0.7"), key("2001:db8::1")],
    ),
    row(
        "ip:(10.0.0.0/8 OR fe80::/10)",
        Or((Cidr("actor.ip", "10.0.0.0/8"), Cidr("actor.ip", "fe80::/10"))),
        {
            "bool": {
                "should": [{"term": {"actor.ip": "10.0.0.0/8"}}, {"term": {"actor.ip": "fe80::/10"}}],
                "minimum_should_match": 1,
            }
        },
        f"({IP_IN} OR {IP_IN})",
        [*span("10.0.0.0/8"), *span("fe80::/10")],
    ),
    row("ip:*", Exists("actor.ip"), {"exists": {"field": "actor.ip"}}, f"{IP} IS NOT NULL", []),
    row(
        "-ip:10.0.0.0/8",
        Not(Cidr("actor.ip", "10.0.0.0/8")),
        {"bool": {"must_not": [{"term": {"actor.ip": "10.0.0.0/8"}}]}},
        f"NOT ({IP_IN})",
        span("10.0.0.0/8"),
    ),
    # -- details: JSON text of scalars at a dotted path, through lists
    row(
        "details.rows:5",
        Term("details.rows", "5"),
        {"term": {"details.rows": "5"}},
        details("leaf = ?"),
        [leaf(".rows=5")],
    ),
    row(
        "details.rows:5.0",
        Term("details.rows", "5.0"),
        {"term": {"details.rows": "5.0"}},
        details("leaf = ?"),
        [leaf(".rows=5.0")],
    ),
    row(
        "details.ok:true",
        Term("details.ok", "true"),
        {"term": {"details.ok": "true"}},
        details("leaf = ?"),
        [leaf(".ok=true")],
    ),
    row(
        "details.tags:prod",
        Term("details.tags", "prod"),
        {"term": {"details.tags": "prod"}},
        details("leaf = ?"),
        [leaf(".tags=prod")],
    ),
    row(
        "details.job.id:42",
        Term("details.job.id", "42"),
        {"term": {"details.job.id": "42"}},
        details("leaf = ?"),
        [leaf(".job.id=42")],
    ),
    row(
        "details.a.b:nested",
        Term("details.a.b", "nested"),
        {"term": {"details.a.b": "nested"}},
        details("leaf = ?"),
        [leaf(".a.b=nested")],
    ),
    row(
        "details.a.b:dotted",
        Term("details.a.b", "dotted"),
        {"term": {"details.a.b": "dotted"}},
        details("leaf = ?"),
        [leaf(".a.b=dotted")],
    ),
    row(
        "details.list.k:v2",
        Term("details.list.k", "v2"),
        {"term": {"details.list.k": "v2"}},
        details("leaf = ?"),
        [leaf(".list.k=v2")],
    ),
    row(
        "details.nested.list:3",
        Term("details.nested.list", "3"),
        {"term": {"details.nested.list": "3"}},
        details("leaf = ?"),
        [leaf(".nested.list=3")],
    ),
    row(
        "details.deep:a",
        Term("details.deep", "a"),
        {"term": {"details.deep": "a"}},
        details("leaf = ?"),
        [leaf(".deep=a")],
    ),
    row(
        "details.big:1e+20",
        Term("details.big", "1e+20"),
        {"term": {"details.big": "1e+20"}},
        details("leaf = ?"),
        [leaf(".big=1e+20")],
    ),
    row(
        "details.b\\s:-0.0",
        Term("details.b\\s", "-0.0"),
        {"term": {"details.b\\s": "-0.0"}},
        details("leaf = ?"),
        [leaf(".b\\s=-0.0")],
    ),
    row(
        "details.eq:x=y",
        Term("details.eq", "x=y"),
        {"term": {"details.eq": "x=y"}},
        details("leaf = ?"),
        [leaf(".eq=x=y")],
    ),
    row(
        "details.x:y=z", Term("details.x", "y=z"), {"term": {"details.x": "y=z"}}, details("leaf = ?"), [leaf(".x=y=z")]
    ),
    row(
        'details.emptystr:""',
        Term("details.emptystr", ""),
        {"term": {"details.emptystr": ""}},
        details("leaf = ?"),
        [leaf(".emptystr=")],
    ),
    row(
        'details.reason:"bad password"',
        Term("details.reason", "bad password"),
        {"term": {"details.reason": "bad password"}},
        details("leaf = ?"),
        [leaf(".reason=bad password")],
    ),
    row(
        "details.ключ:значение",
        Term("details.ключ", "значение"),
        {"term": {"details.ключ": "значение"}},
        details("leaf = ?"),
        [leaf(".ключ=значение")],
    ),
    row(
        "details.n:null",
        Term("details.n", "null"),
        {"term": {"details.n": "null"}},
        details("leaf = ?"),
        [leaf(".n=null")],
    ),
    row(
        "details.reason:bad*",
        Prefix("details.reason", "bad"),
        {"prefix": {"details.reason": "bad"}},
        details("leaf >= ? AND leaf < ?"),
        leaf_range(".reason=bad"),
    ),
    row(
        "details.scopes:events:*",
        Prefix("details.scopes", "events:"),
        {"prefix": {"details.scopes": "events:"}},
        details("leaf >= ? AND leaf < ?"),
        leaf_range(".scopes=events:"),
    ),
    row(
        "details.rows:*",
        Exists("details.rows"),
        {"prefix": {"details.rows": ""}},
        details("leaf >= ? AND leaf < ?"),
        leaf_range(".rows="),
    ),
    row(
        "details.n:*",
        Exists("details.n"),
        {"prefix": {"details.n": ""}},
        details("leaf >= ? AND leaf < ?"),
        leaf_range(".n="),
    ),
    row(
        "details.rows:(5 OR 10)",
        AnyOf("details.rows", ("5", "10")),
        {"terms": {"details.rows": ["5", "10"]}},
        details("leaf IN (?, ?)"),
        [leaf(".rows=5"), leaf(".rows=10")],
    ),
    row(
        "-details.rows:5",
        Not(Term("details.rows", "5")),
        {"bool": {"must_not": [{"term": {"details.rows": "5"}}]}},
        f"NOT ({details('leaf = ?')})",
        [leaf(".rows=5")],
    ),
    # -- everything together
    row(
        "status:>=400 (login OR outcome:failure) -ip:10.0.0.0/8",
        And(
            (
                Range("request.status", ">=", 400),
                Or((text("login"), Term("outcome", "failure"))),
                Not(Cidr("actor.ip", "10.0.0.0/8")),
            )
        ),
        {
            "bool": {
                "filter": [
                    {"range": {"request.status": {"gte": 400}}},
                    {
                        "bool": {
                            "should": [phrase("login"), {"term": {"outcome": "failure"}}],
                            "minimum_should_match": 1,
                        }
                    },
                    {"bool": {"must_not": [{"term": {"actor.ip": "10.0.0.0/8"}}]}},
                ]
            }
        },
        f"(({STATUS} IS NOT NULL AND {STATUS} >= ?) AND ({FTS} OR outcome = ?) AND NOT ({IP_IN}))",
        [400, '"login"', "failure", *span("10.0.0.0/8")],
    ),
]


@pytest.mark.parametrize(("query", "ast", "dsl", "sql", "params"), QUERIES)
def test_query(query: str, ast: Node, dsl: dict[str, Any], sql: str, params: list[object]) -> None:
    node = parse(query)
    assert node == ast
    assert to_opensearch(node) == dsl
    assert to_sqlite(node) == (sql, params)


KNOWN = (
    "a known field: id, time, received_at, action, outcome, source, actor.type, actor.id, actor.name, actor.ip, "
    "actor.user_agent, target.type, target.id, target.name, request.method, request.path, request.route, "
    "request.request_id, request.status, request.duration_ms, request.bytes_in, request.bytes_out, details.<key> "
    "(aliases: actor = actor.id, ip = actor.ip, status = request.status, method = request.method, path = request.path, "
    "route = request.route, target = target.id); to search a word with a colon as text, quote it"
)
RANGED = "ranges work on time, received_at, request.status, request.duration_ms, request.bytes_in, request.bytes_out"
TIME = "an RFC 3339 time with offset (2026-11-27T10:00:00Z) or a date (2026-11-27)"
ADDRESS = "an IP address (10.1.2.3, 2001:db8::1) or a CIDR network (10.0.0.0/8)"
STAR = "'*' only at the end of a value (quote the value to match a literal '*')"
END = "end of query"


DETAILS_LIMIT = "at most 20 terms on details fields"
DETAILS_20 = " OR ".join(f"details.k{i}:v" for i in range(20))
DETAILS_21 = " OR ".join(f"details.k{i}:v" for i in range(21))
DETAILS_21_VALUES = "details.k:(" + " OR ".join(["v"] * 21) + ")"


def error(query: str, position: int, found: str, expected: str, name: str | None = None) -> Any:
    return pytest.param(query, position, found, expected, id=name or query)


ERRORS = [
    # -- structure
    error("sales AND", 9, END, "a search term"),
    error("AND sales", 0, "AND", "a search term"),
    error("sales OR OR table", 9, "OR", "a search term"),
    error("sales OR", 8, END, "a search term"),
    error("NOT", 3, END, "a search term"),
    error("sales NOT )", 10, ")", "a search term"),
    error("-OR sales", 1, "OR", "a search term"),
    error("(sales", 6, END, "')' to close the '(' at position 0"),
    error("(sales (table)", 14, END, "')' to close the '(' at position 0"),
    error("sales)", 5, ")", "end of query (this ')' closes no '(')"),
    error("()", 1, ")", "a search term"),
    error('"sales', 6, END, "'\"' to close the phrase opened at position 0"),
    error('ok "sales\\"', 11, END, "'\"' to close the phrase opened at position 3"),
    error("job-4*", 0, "job-4*", "a single word before '*' (a prefix must be one word)"),
    # -- fields
    error("foo:bar", 0, "foo", KNOWN),
    error("http://example.com", 0, "http", KNOWN),
    error("Action:x", 0, "Action", KNOWN),
    error("tenant:acme", 0, "tenant", "a field other than tenant (the tenant comes from your token); " + KNOWN),
    error("-tenant:acme", 1, "tenant", "a field other than tenant (the tenant comes from your token); " + KNOWN),
    error(":foo", 0, ":foo", "a field name before ':'"),
    error("details:x", 0, "details", "a key path after details (details.some.key)"),
    error("details..x:1", 0, "details..x", "a key between every two dots of a details path (details.some.key)"),
    error("details.x.:1", 0, "details.x.", "a key between every two dots of a details path (details.some.key)"),
    error("status:", 7, END, "a value right after 'status:'"),
    error("status: 500", 7, " ", "a value right after 'status:'"),
    error("status:>= 500", 9, " ", "a value right after 'status:>='"),
    error("status:>(1 OR 2)", 8, "(", "a value right after 'status:>'"),
    error("action:)", 7, ")", "a value right after 'action:'"),
    error("action:a*b", 7, "a*b", STAR),
    error("action:*.create", 7, "*.create", STAR),
    error("action:**", 7, "**", STAR),
    error("action:>a", 7, ">a", f"a value without '>' ({RANGED})"),
    error("details.rows:>5", 13, ">5", f"a value without '>' ({RANGED})"),
    error("ip:>=10.0.0.1", 3, ">=10.0.0.1", f"a value without '>=' ({RANGED})"),
    # -- any-of groups
    error("action:(a AND b)", 10, "AND", "OR or ')' to close the '(' at position 7"),
    error("action:(a b)", 10, "b", "OR or ')' to close the '(' at position 7"),
    error("action:(a OR)", 12, ")", "a value"),
    error("action:(a", 9, END, "OR or ')' to close the '(' at position 7"),
    error("action:()", 8, ")", "a value"),
    error("action:((a))", 8, "(", "a value"),
    error("status:(200 OR 2xx)", 15, "2xx", "a whole number between -32768 and 32767 for request.status"),
    # -- numbers
    error("status:abc", 7, "abc", "a whole number between -32768 and 32767 for request.status"),
    error('status:"abc"', 7, '"abc"', "a whole number between -32768 and 32767 for request.status"),
    error("status:500.0", 7, "500.0", "a whole number between -32768 and 32767 for request.status"),
    error("status:99999", 7, "99999", "a whole number between -32768 and 32767 for request.status"),
    error("status:>=4xx", 9, "4xx", "a whole number between -32768 and 32767 for request.status"),
    error("status:5*", 7, "5*", "a value without '*' (request.status has no prefixes)"),
    error("status:>5*", 8, "5*", "a value without '*' (request.status has no prefixes)"),
    error(
        "request.bytes_in:1e3",
        17,
        "1e3",
        "a whole number between -9007199254740991 and 9007199254740991 for request.bytes_in",
    ),
    error(
        "request.bytes_out:9007199254740992",
        18,
        "9007199254740992",
        "a whole number between -9007199254740991 and 9007199254740991 for request.bytes_out",
    ),
    error("request.duration_ms:fast", 20, "fast", "a number for request.duration_ms"),
    error("request.duration_ms:nan", 20, "nan", "a number for request.duration_ms"),
    error("request.duration_ms:1e999", 20, "1e999", "a number for request.duration_ms"),
    # -- times
    error("time:yesterday", 5, "yesterday", TIME),
    error("time:2026-13-01", 5, "2026-13-01", TIME),
    error("time:2026-11-27T10:00:00", 5, "2026-11-27T10:00:00", TIME),
    error("time:2026-11-27T10:00:00.1234567Z", 5, "2026-11-27T10:00:00.1234567Z", TIME),
    error("time:2026-11-27T25:00:00Z", 5, "2026-11-27T25:00:00Z", TIME),
    error("time:2026-11-27T10*", 5, "2026-11-27T10*", "a value without '*' (time has no prefixes)"),
    error("time:<1969-12-31", 6, "1969-12-31", "a time between 1970-01-01 and 2262-04-11"),
    error("received_at:2262-04-12", 12, "2262-04-12", "a time between 1970-01-01 and 2262-04-11"),
    # An offset that carries the time past year 9999 or before year 1 in UTC is out of range, not a crash.
    error("time:9999-12-31T23:00:00-05:00", 5, "9999-12-31T23:00:00-05:00", "a time between 1970-01-01 and 2262-04-11"),
    error(
        "time:<0001-01-01T00:00:00+01:00", 6, "0001-01-01T00:00:00+01:00", "a time between 1970-01-01 and 2262-04-11"
    ),
    error("received_at:>=9999-12-31", 14, "9999-12-31", "a time between 1970-01-01 and 2262-04-11"),
    error("time:0000-01-01", 5, "0000-01-01", TIME),
    error("time:2026-11-27T10:00:00+24:00", 5, "2026-11-27T10:00:00+24:00", TIME),
    error("time:2026-11-27T10:00:00+05:60", 5, "2026-11-27T10:00:00+05:60", TIME),
    error("time:\u0661\u0669\u0667\u0660-01-01", 5, "\u0661\u0669\u0667\u0660-01-01", TIME, "non-ASCII digits"),
    # -- addresses
    error("ip:10.0.0.300", 3, "10.0.0.300", ADDRESS),
    error("ip:10.0.0.0/33", 3, "10.0.0.0/33", ADDRESS),
    error("ip:fe80::1%eth0", 3, "fe80::1%eth0", ADDRESS),
    error("ip:10.*", 3, "10.*", "a value without '*' (actor.ip has no prefixes)"),
    # -- limits
    error("(" * 21 + "a" + ")" * 21, 20, "(", "at most 20 levels of nesting", "21 parentheses"),
    error("NOT " * 21 + "a", 80, "NOT", "at most 20 levels of nesting", "21 NOTs"),
    error("-" * 21 + "a", 20, "-a", "at most 20 levels of nesting", "21 minus signs"),
    error(" ".join(["a"] * 101), 200, "a", "at most 100 terms", "101 words"),
    error("action:(" + " OR ".join(["a"] * 101) + ")", 8 + 100 * 5, "a", "at most 100 terms", "101 values"),
    error("a " * 1001, 2000, "a ", "at most 2000 characters (the query has 2002)", "2002 characters"),
    # -- cost: each details term reads an index range, so their number is bounded
    error(DETAILS_21, len(DETAILS_21) - 1, "v", DETAILS_LIMIT, "21 details terms"),
    error(DETAILS_21_VALUES, len(DETAILS_21_VALUES) - 2, "v", DETAILS_LIMIT, "21 details values"),
    error(DETAILS_20 + " details.d:*", len(DETAILS_20) + 11, "*", DETAILS_LIMIT, "21st details term an exists"),
    error(DETAILS_20 + " -details.d:v*", len(DETAILS_20) + 12, "v*", DETAILS_LIMIT, "21st details term a prefix"),
    error(DETAILS_20 + ' details.d:"v w"', len(DETAILS_20) + 11, '"v w"', DETAILS_LIMIT, "21st details term a phrase"),
]


@pytest.mark.parametrize(("query", "position", "found", "expected"), ERRORS)
def test_error(query: str, position: int, found: str, expected: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(query)
    assert (caught.value.position, caught.value.found, caught.value.expected) == (position, found, expected)


@pytest.mark.parametrize(
    "query",
    [
        "(" * 20 + "a" + ")" * 20,
        "NOT " * 20 + "a",
        "-" * 20 + "a",
        " ".join(["a"] * 100),
        "a" * 2000,
        DETAILS_20 + " status:500 action:(a OR b) sales",
        "details.k:(" + " OR ".join(["v"] * 20) + ")",
    ],
    ids=[
        "20 parentheses",
        "20 NOTs",
        "20 minus signs",
        "100 words",
        "2000 characters",
        "20 details terms and others",
        "20 details values",
    ],
)
def test_limits_are_inclusive(query: str) -> None:
    parse(query)


def test_query_error_is_a_value_error_whose_message_names_position_found_and_expected() -> None:
    with pytest.raises(ValueError, match="position 9") as caught:
        parse("sales AND")
    assert str(caught.value) == "query error at position 9: expected a search term, found end of query"
    with pytest.raises(QueryError) as unknown:
        parse("sales foo:bar")
    assert str(unknown.value).startswith("query error at position 6: expected a known field: id, time,")
    assert str(unknown.value).endswith(", found 'foo'")
    for field in (*KNOWN_FIELDS, *ALIASES):
        assert field in unknown.value.expected


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("2026-11-27T10:30:00Z", (us("2026-11-27T10:30:00Z"), us("2026-11-27T10:30:00Z"))),
        ("2026-11-27t11:30+01:00", (us("2026-11-27T10:30:00Z"), us("2026-11-27T10:30:00Z"))),
        ("2026-11-27T10:30:00.5-00:00", (us("2026-11-27T10:30:00.5Z"), us("2026-11-27T10:30:00.5Z"))),
        ("2026-11-27", (us("2026-11-27T00:00:00Z"), us("2026-11-28T00:00:00Z"))),
        # Beyond what datetime holds in UTC: still exact, in integers.
        ("9999-12-31T23:00:00-05:00", (us("9999-12-31T00:00:00Z") + 28 * 3_600_000_000,) * 2),
        ("0001-01-01T00:00:00+01:00", (us("0001-01-01T00:00:00Z") - 3_600_000_000,) * 2),
    ],
)
def test_time_span(text: str, span: tuple[int, int]) -> None:
    assert time_span(text) == span


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)),
    st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
    st.sampled_from(["time:", "time:<", "received_at:>="]),
)
def test_any_time_with_any_offset_parses_cleanly(wall: datetime, offset_minutes: int, prefix: str) -> None:
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    value = f"{wall.isoformat(timespec='microseconds')}{sign}{hours:02d}:{minutes:02d}"
    start, _ = time_span(value)
    assert start == time_to_us(wall.replace(tzinfo=UTC)) - offset_minutes * 60_000_000
    node = parse_or_error(prefix + value)
    if isinstance(node, QueryError):
        assert node.expected == "a time between 1970-01-01 and 2262-04-11"
        assert not 0 <= start <= (2**63 - 1) // 1000
    else:
        to_opensearch(node)
        to_sqlite(node)


@pytest.mark.parametrize(
    ("ip", "network", "expected"),
    [
        ("10.0.0.7", "10.0.0.0/8", 1),
        ("11.0.0.7", "10.0.0.0/8", 0),
        ("10.0.0.7", "10.0.0.7", 1),
        ("10.0.0.8", "10.0.0.7", 0),
        ("2001:db8::1", "2001:db8::/32", 1),
        ("2001:db9::1", "2001:db8::/32", 0),
        ("2001:DB8:0::1", "2001:db8::1", 1),
        ("::ffff:a01:203", "10.0.0.0/8", 1),
        ("::ffff:10.1.2.3", "10.1.2.3", 1),
        ("10.1.2.3", "::ffff:0:0/96", 1),
        ("10.1.2.3", "::/0", 1),
        ("2001:db8::1", "0.0.0.0/0", 0),
        ("::a01:203", "10.0.0.0/8", 0),
        (None, "10.0.0.0/8", 0),
        ("not an ip", "10.0.0.0/8", 0),
        ("10.0.0.7", "not a network", 0),
    ],
)
def test_cidr_match(ip: str | None, network: str, expected: int) -> None:
    assert cidr_match(ip, network) == expected


# -- the agreement of SQLite with the reference evaluator --------------------------------------

TENANT = "acme"


def event(n: int, **fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": f"ev-{n}",
        "tenant": TENANT,
        "time": "2026-11-27T10:00:00.000000Z",
        "received_at": "2026-11-27T10:00:01.000000Z",
        "action": "noop",
        "outcome": "unknown",
        "actor": {},
        "target": {},
        "request": {},
        "source": "api",
        "message": "",
        "details": {},
    }
    document.update(fields)
    document["chain"] = {"stream": "node-1", "seq": n, "prev": "0" * 64, "hash": f"{n:064x}"}
    return document


DOCUMENTS = [
    event(
        1,
        action="storage.tables.create",
        outcome="success",
        actor={"type": "user", "id": "u-42", "name": "Jane Doe", "ip": "10.0.0.7", "user_agent": "curl/8.5.0"},
        target={"type": "table", "id": "in.c-main.sales", "name": "Sales"},
        request={
            "method": "POST",
            "path": "/v2/storage/tables",
            "route": "/v2/storage/tables",
            "status": 201,
            "duration_ms": 12.5,
            "request_id": "req-1",
            "bytes_in": 100,
            "bytes_out": 2000,
        },
        message="Created table sales",
        details={"rows": 5, "ok": True, "tags": ["prod", "eu"], "job": {"id": 42, "name": "nightly"}},
    ),
    event(
        2,
        time="2026-11-27T23:59:59.999999Z",
        received_at="2026-11-28T00:00:00.100000Z",
        action="auth.login",
        outcome="failure",
        actor={"type": "user", "id": "u-7", "name": "Zoë Faß", "ip": "2001:db8::1"},
        request={"method": "POST", "path": "/v1/login", "route": "/v1/login", "status": 401, "duration_ms": 0.25},
        message="Login failed: bad password",
        details={"reason": "bad password", "attempt": 3.0, "ok": False},
    ),
    event(
        3,
        time="2026-11-26T08:00:00.000000Z",
        action="cloudtrail.s3.PutObject",
        source="cloudtrail",
        actor={"type": "aws.IAMUser", "id": "AIDA1", "ip": "192.168.1.5"},
        target={"type": "s3.object", "id": "s3://bucket/key"},
        message="Straße café 日本語テキスト",
        details={"a.b": "dotted", "a": {"b": "nested"}, "list": [{"k": "v1"}, {"k": "v2"}], "n": None, "big": 1e20},
    ),
    event(
        4,
        time="2026-11-28T00:00:00.000000Z",
        action="http.GET",
        outcome="success",
        source="middleware",
        request={"method": "GET", "path": "/health", "route": "/health", "status": 200, "duration_ms": 0.5},
    ),
    event(
        5,
        action="storage.tables.delete",
        outcome="success",
        actor={"id": "u-7", "name": "Zoë Faß", "ip": "::ffff:a01:203"},
        target={"type": "table", "id": "in.c-main.sales-archive", "name": "sales-archive"},
        request={"status": 204, "duration_ms": 3.0},
        message="Deleted table sales-archive for job-42",
        details={"rows": 5.0, "eq": "x=y", "x=y": "z", 'q"k': 1.5, "b\\s": -0.0, "deep": [[["a"]]]},
    ),
    event(
        6,
        action="Storage.Tables.Create",
        outcome="failure",
        actor={"id": "U-42"},
        request={"status": 500, "duration_ms": 1500.0, "bytes_out": 0},
        message="JOB 42 done",
        details={"rows": "5", "tags": "prod"},
    ),
    event(
        7,
        action="auth.logout",
        outcome="success",
        actor={"id": "u-42", "ip": "fe80::1"},
        request={"path": "/a*b", "status": 302},
        message="Logged out",
        details={"nested": {"list": [1, 2, 3]}, "emptystr": "", "rows": 10},
    ),
    event(
        8,
        action="storage.files.upload",
        actor={"id": "u-9", "name": "日本"},
        request={"status": 404},
        message="Ελληνικά ΣΟΦΙΑ upload",
        details={"unicode": "é", "ключ": "значение", "list": []},
    ),
    event(
        9,
        action="eventlog.tokens.create",
        outcome="success",
        source="eventlog",
        actor={"type": "token", "id": "tok-1"},
        message="token created",
        details={"scopes": ["events:read", "events:write"]},
    ),
    event(10),
    event(
        11,
        action="http.POST",
        source="middleware",
        actor={"id": "svc-\u00011", "user_agent": "bot\x00v1 \u0001x"},
        message="control characters",
        details={"nul": "a\x00b", "soh": ["\x01", "\x01\x01"], "k\x00": 7, "ctl": "\t\n"},
    ),
]

# More queries for the agreement check only (their AST and compiled forms follow from the rows above).
MORE_QUERIES = [
    "sales -archive",
    "zoe",
    "fass",
    "ελληνικα",
    "σοφια",
    "job 42",
    '"42 done"',
    '"sales archive"',
    "created OR login OR upload",
    "NOT (sales OR job)",
    "-actor:*",
    "-actor.name:*",
    "-target:*",
    "-details.rows:*",
    "-status:>=400",
    "-time:2026-11-27",
    "request.duration_ms:>=1",
    "request.duration_ms:(0.5 OR 3)",
    "request.bytes_out:<1",
    "received_at:<2026-11-28",
    "ip:::/0",
    "ip:0.0.0.0/0",
    "ip:::ffff:0:0/96",
    "ip:10.1.2.3",
    "ip:fe80::/10",
    "ip:192.168.0.0/16 OR ip:2001:db8::/32",
    "details.rows:(5 OR 5.0 OR 10)",
    "details.attempt:3.0",
    "details.ok:false",
    "details.deep:*",
    "details.list:*",
    "details.list.k:*",
    "details.x=y:z",
    "details.x:y=*",
    "details.unicode:é",
    "details.scopes:events:write",
    "details.a:*",
    "details.job:*",
    "details.job.name:night*",
    "action:storage.* -action:storage.files.*",
    "outcome:(success OR failure) source:api",
    "u-42",
    "actor:u-42 OR actor.id:U-42",
    "actor.user_agent:bot*",
    "actor.user_agent:bot\x00*",
    "actor.user_agent:bot\x00v1*",
    "actor.user_agent:bot\x01*",
    'actor.user_agent:"bot\x00v1 \x01x"',
    'actor.user_agent:"bot\x00v1 \x01"',
    "details.nul:a\x00b",
    "details.nul:a\x00*",
    "details.nul:a\x01*",
    "details.nul:a",
    "details.soh:\x01",
    "details.soh:\x01\x01",
    "details.soh:\x01*",
    "details.k\x00:7",
    "details.k:*",
]
AGREEMENT_QUERIES = [param.values[0] for param in QUERIES] + MORE_QUERIES


@pytest.fixture(scope="module")
def store() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    for document in DOCUMENTS:
        cur = conn.execute(
            "INSERT INTO events (tenant, id, time_us, action, outcome, actor_id, source, document, actor_ip, status, "
            "duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                TENANT,
                document["id"],
                us(document["time"]),
                document["action"],
                document["outcome"],
                document["actor"].get("id"),
                document["source"],
                orjson.dumps(document),
                ip_key(document["actor"].get("ip")),
                document["request"].get("status"),
                document["request"].get("duration_ms"),
            ),
        )
        conn.execute("INSERT INTO events_fts (rowid, body) VALUES (?, ?)", (cur.lastrowid, searchable_text(document)))
        insert_details_leaves(conn, TENANT, cur.lastrowid, orjson.dumps(document), document)
    yield conn
    conn.close()


def sqlite_ids(conn: sqlite3.Connection, node: Node) -> set[str]:
    sql, params = to_sqlite(node)
    rows = conn.execute(f"SELECT id FROM events WHERE tenant = ? AND {sql}", [TENANT, *params]).fetchall()
    return {r[0] for r in rows}


def evaluator_ids(node: Node) -> set[str]:
    return {d["id"] for d in DOCUMENTS if matches(node, d)}


@pytest.mark.parametrize("query", AGREEMENT_QUERIES, ids=[q or '""' for q in AGREEMENT_QUERIES])
def test_sqlite_agrees_with_the_evaluator(store: sqlite3.Connection, query: str) -> None:
    node = parse(query)
    assert sqlite_ids(store, node) == evaluator_ids(node)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {f"ev-{n}" for n in range(1, 12)}),
        ("sales", {"ev-1", "ev-5"}),
        ("job-42", {"ev-5", "ev-6"}),
        ("sal*", {"ev-1", "ev-5"}),
        ("cafe", {"ev-3"}),
        ("action:storage.tables.create", {"ev-1"}),
        ("action:Storage.*", {"ev-6"}),
        ("actor:u-42", {"ev-1", "ev-7"}),
        ("status:>=400", {"ev-2", "ev-6", "ev-8"}),
        ("time:2026-11-27", {"ev-1", "ev-2", "ev-5", "ev-6", "ev-7", "ev-8", "ev-9", "ev-10", "ev-11"}),
        ("time:>2026-11-27", {"ev-4"}),
        ("received_at:>=2026-11-28", {"ev-2"}),
        ("ip:10.0.0.0/8", {"ev-1", "ev-5"}),
        ("ip:::ffff:0:0/96", {"ev-1", "ev-3", "ev-5"}),
        ("ip:2001:db8::1", {"ev-2"}),
        ("details.rows:5", {"ev-1", "ev-6"}),
        ("details.rows:5.0", {"ev-5"}),
        ("details.a.b:nested", {"ev-3"}),
        ("details.a.b:dotted", {"ev-3"}),
        ("details.list.k:v2", {"ev-3"}),
        ("details.deep:a", {"ev-5"}),
        ("details.x:y=z", {"ev-5"}),
        ("details.eq:x=y", {"ev-5"}),
        ("details.big:1e+20", {"ev-3"}),
        ("details.b\\s:-0.0", {"ev-5"}),
        ("details.nested.list:3", {"ev-7"}),
        ("details.n:*", set()),
        ("-details.rows:*", {"ev-2", "ev-3", "ev-4", "ev-8", "ev-9", "ev-10", "ev-11"}),
        ("-ip:10.0.0.0/8 ip:*", {"ev-2", "ev-3", "ev-7"}),
        ("ελληνικα", {"ev-8"}),
        ("actor.user_agent:bot\x00*", {"ev-11"}),
        ("actor.user_agent:bot\x01*", set()),
        ("details.nul:a\x00b", {"ev-11"}),
        ("details.nul:a", set()),
        ("details.soh:\x01\x01", {"ev-11"}),
        ("details.k\x00:7", {"ev-11"}),
    ],
)
def test_matches(store: sqlite3.Connection, query: str, expected: set[str]) -> None:
    """What the queries find among the documents above, on both implementations."""
    node = parse(query)
    assert evaluator_ids(node) == expected
    assert sqlite_ids(store, node) == expected


def test_full_text_does_not_fold_beyond_the_tokens() -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    document = event(1, message="ΣΟΦΙΑΣ")  # tokens: "σοφιας", with a final sigma
    conn.execute(
        "INSERT INTO events (rowid, tenant, id, time_us, action, outcome, source, document) VALUES (1, ?, 'ev-1', 0, 'a', 'b', 'api', ?)",
        (TENANT, orjson.dumps(document)),
    )
    conn.execute("INSERT INTO events_fts (rowid, body) VALUES (1, ?)", (searchable_text(document),))
    node = parse("σοφιασ")
    assert not matches(node, document)
    assert sqlite_ids(conn, node) == set()


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (Term('details.q"k', "1.5"), {"ev-5"}),
        (Prefix('details.q"k', "1."), {"ev-5"}),
        (Term("details.b\\s", "-0.0"), {"ev-5"}),
        (Term("details.b\\s", "0.0"), set()),
        (AnyOf("details.rows", ("5", "10")), {"ev-1", "ev-6", "ev-7"}),
    ],
    ids=str,
)
def test_details_keys_the_syntax_cannot_spell(store: sqlite3.Connection, node: Node, expected: set[str]) -> None:
    """Keys with quotes or backslashes (reachable from the AST) still agree."""
    assert evaluator_ids(node) == expected
    assert sqlite_ids(store, node) == expected


# -- properties ---------------------------------------------------------------------------------

# Pieces of queries, glued with or without spaces: mostly valid, often not.
FRAGMENTS = [
    *(q for q in AGREEMENT_QUERIES if q and len(q) < 40),
    "sales",
    "job",
    "42",
    "zoë",
    "*",
    "-",
    "--",
    "->",
    "NOT",
    "AND",
    "OR",
    "(",
    ")",
    '"',
    ":",
    "\\",
    "action:",
    "status:>",
    "details.",
    "ip:",
    "time:",
    "a*b",
    "x=y",
]
settings_ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def parse_or_error(query: str) -> Node | QueryError:
    try:
        return parse(query)
    except QueryError as exc:
        return exc


def check(conn: sqlite3.Connection, query: str) -> None:
    """Either a clean QueryError pointing into the query, or three compilations that agree."""
    node = parse_or_error(query)
    if isinstance(node, QueryError):
        assert 0 <= node.position <= len(query)
        assert node.found == END or query[node.position :].startswith(node.found)
        assert node.expected
        return
    orjson.dumps(to_opensearch(node))  # plain JSON
    assert sqlite_ids(conn, node) == evaluator_ids(node), query


@settings_
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=8), st.sampled_from([" ", "", " AND ", " OR "]))
def test_composed_queries_parse_cleanly_and_agree(store: sqlite3.Connection, pieces: list[str], glue: str) -> None:
    check(store, glue.join(pieces))


@settings_
@given(st.text(alphabet=st.sampled_from('ab*:-()" <>=.\\/0123456789ANDORTé'), max_size=30))
def test_any_text_parses_cleanly_and_agrees(store: sqlite3.Connection, query: str) -> None:
    check(store, query)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_unicode_parses_cleanly(query: str) -> None:
    node = parse_or_error(query)
    if isinstance(node, QueryError):
        assert 0 <= node.position <= len(query)
    else:
        to_opensearch(node)
        to_sqlite(node)


scalars = (
    st.text(alphabet=st.characters(codec="utf-8"), max_size=6)
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.none()
)
keys = st.text(alphabet=st.sampled_from('ab.="\\[]$ \n\u2028é日'), min_size=0, max_size=4)
details_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3), max_leaves=10
)


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """The test's own flattening: (dotted path with a leading dot, JSON text) of every scalar."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item, path)
    elif value is not None:
        yield path, value if isinstance(value, str) else orjson.dumps(value).decode()


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, details_values, max_size=4), st.text(max_size=3))
def test_details_agree_on_any_json(details_value: dict[str, Any], other: str) -> None:
    """Random details with hostile keys and every kind of scalar: SQLite finds what the evaluator finds."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    document = event(1, details=details_value)
    raw = orjson.dumps(document)
    cur = conn.execute(
        "INSERT INTO events (tenant, id, time_us, action, outcome, source, document) VALUES (?, 'ev-1', 0, 'a', 'b', 'api', ?)",
        (TENANT, raw),
    )
    insert_details_leaves(conn, TENANT, cur.lastrowid, raw, document)
    found = list(leaves(details_value))
    nodes: list[Node] = [Exists("details.a"), Term("details.a", other), Prefix("details.a", other or "x")]
    for path, value in found:
        field = "details" + path
        nodes += [Term(field, value), Term(field, value + other), Exists(field)]
        if value:
            nodes.append(Prefix(field, value[: len(value) // 2 + 1]))
    for node in nodes:
        assert bool(sqlite_ids(conn, node)) == matches(node, document), node
    for path, value in found:
        assert matches(Term("details" + path, value), document)
    conn.close()


@pytest.mark.parametrize(
    ("node", "dsl", "sql", "expected"),
    [
        (Term("chain.seq", 3), {"term": {"chain.seq": 3}}, "json_extract(document, '$.chain.seq') IS ?", {"ev-3"}),
        (
            Range("chain.seq", ">=", 10),
            {"range": {"chain.seq": {"gte": 10}}},
            "(json_extract(document, '$.chain.seq') IS NOT NULL AND json_extract(document, '$.chain.seq') >= ?)",
            {"ev-10", "ev-11"},
        ),
        (
            Exists("chain.stream"),
            {"exists": {"field": "chain.stream"}},
            "json_extract(document, '$.chain.stream') IS NOT NULL",
            {f"ev-{n}" for n in range(1, 12)},
        ),
    ],
    ids=str,
)
def test_code_built_nodes_may_name_other_stored_fields(
    store: sqlite3.Connection, node: Node, dsl: dict[str, Any], sql: str, expected: set[str]
) -> None:
    assert to_opensearch(node) == dsl
    assert to_sqlite(node)[0] == sql
    assert evaluator_ids(node) == expected
    assert sqlite_ids(store, node) == expected
