"""The query language of `GET /v1/events?q=`: parse → AST, and the Python evaluator of the AST.

The stores compile the AST: search/opensearch/query.py to the DSL, search/sqlite/query.py to SQL.

Pure: no I/O. The grammar (docs/api.md, "Query language"):

    query    := or
    or       := and ("OR" and)*
    and      := unary (["AND"] unary)*          # juxtaposition is AND
    unary    := ("NOT" | "-") unary | primary
    primary  := "(" or ")" | field ":" fvalue | value
    fvalue   := value | ("<" | "<=" | ">" | ">=") value | "(" value ("OR" value)* ")"
    value    := WORD | WORD* | "quoted phrase"

Lexical rules
- Words are separated by whitespace; `(`, `)` and `"` end a word. `AND`, `OR`, `NOT` are
  operators only in capitals; `and`/`or`/`not` are plain words (quote `"AND"` to search the word).
- A quoted phrase may hold `\\"` and `\\\\`; a backslash before any other character keeps that character.
- An unquoted word with a colon is always `field:value`, split at its first colon (the value may hold
  colons: `ip:2001:db8::1`, `time:>2026-11-27T10:00:00Z`). Quote a word to search it as text (`"10:30"`).
  The value is glued to the colon: `status:500`, `status:>=500`, `actor.name:"Jane Doe"`, `action:(a OR b)`.
- `-` negates only when glued to its operand (`-foo`, `-status:500`, `-(a b)`, `-"a b"`); a lone `-`
  is punctuation, and `-` inside a word (`job-42`, `details.delta:-5`) is part of the word.
- `*` at the end of an unquoted word makes a prefix; inside a field value `*` is allowed only there
  (quote the value to match a literal `*`); `field:*` means "the field has a value".

Semantics
- A bare word or quoted phrase is the phrase of its search/text.py tokens, matched against
  `searchable_text()` (message, actor/target names, details values): case- and diacritics-insensitive.
  A word without any token (`*`, `--`, `->`, `"..."`) is dropped: removed as if it was not written,
  with the NOT or `-` in front of it (`a OR *` is `a`, `foo -> bar` is `foo bar`, `NOT *` is nothing).
  A query left empty (`""`, `*`) is `All()`, every event of the tenant; `All` is only ever the
  whole query, never inside another node.
- `WORD*` on text is a prefix of one token; a word that tokenizes to more than one token with a `*`
  (`job-4*`) is an error ("a prefix must be one word").
- Keyword fields are exact and case-sensitive; `field:abc*` is a case-sensitive prefix.
- Numbers (`request.status`, `request.bytes_in`, `request.bytes_out`: whole numbers; `request.duration_ms`:
  any number) and times (`time`, `received_at`) take `:v`, `:<v`, `:<=v`, `:>v`, `:>=v`.
  Times are RFC 3339 with an offset (seconds and fraction optional, at most microseconds) or a date;
  a date stands for the whole UTC day: `time:2026-11-27` is that day, `<=2026-11-27` ends with it,
  `>2026-11-27` starts the day after. Time values in the AST are integer microseconds since the epoch.
- `actor.ip` takes an address (exact) or a CIDR network; IPv4 and IPv4-mapped IPv6 addresses are the
  same address, as in OpenSearch's `ip` type.
- `details.some.key:value` compares the JSON text of every scalar found at that dotted path: strings
  as they are, numbers as stored (`details.rows:5` does not match 5.0), `true`/`false`; `null` never
  matches. Lists add no path segment (any element may match, lists of objects included), and a key
  holding dots is reached like nested keys (`details.a.b` finds `{"a": {"b": 1}}` and `{"a.b": 1}`),
  which is exactly OpenSearch's `flat_object`: each scalar is the string "<path>=<text>" and a term or
  prefix is compared with that string (so `details.a:b=c` also finds `{"a=b": "c"}`). A path is written
  as one word without empty keys; keys holding whitespace, `(`, `)`, `"`, `:` or nothing are reachable
  only by building the AST.
- `field:(a OR b)` is any of the values; each value may itself be a prefix (`action:(auth.* OR x)`).

An AST built by code (not by `parse`) may also name other stored fields, e.g. `Term("chain.seq", 7)`:
they compare as their plain JSON values (`json_extract` in SQLite, the field as mapped in OpenSearch).

Limits: 2000 characters, 20 levels of nesting (parentheses and negations), 100 terms (every value
written counts, dropped ones too), at most 20 of them on details fields (each value of a
`details.<key>:(a OR b)` counts): every details term is a lookup in the store's index of details values,
a prefix or `:*` a range of it, so their number bounds what a query costs. Every error is a
`QueryError` with position, found and expected.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, assert_never

import orjson

from eventlog.model import parse_time, time_to_us
from search.text import searchable_text, tokens

__all__ = [
    "ALIASES",
    "DETAILS_PREFIX",
    "FIELD_KINDS",
    "INSTANT_EXPECTED",
    "KNOWN_FIELDS",
    "MAX_DEPTH",
    "MAX_DETAILS_TERMS",
    "MAX_LENGTH",
    "MAX_TERMS",
    "MAX_TIME_US",
    "MIN_TIME_US",
    "TIME_EXPECTED",
    "TIME_RANGE",
    "All",
    "And",
    "AnyOf",
    "Cidr",
    "Exists",
    "Node",
    "Not",
    "Op",
    "Or",
    "Prefix",
    "QueryError",
    "Range",
    "Term",
    "Text",
    "Value",
    "cidr_match",
    "details_leaf",
    "details_leaves",
    "ip_network_bits",
    "ip_number",
    "matches",
    "parse",
    "time_span",
]

MAX_LENGTH = 2000
MAX_DEPTH = 20
MAX_TERMS = 100
MAX_DETAILS_TERMS = 20

END = "end of query"

# -- fields ----------------------------------------------------------------

Kind = Literal["keyword", "int", "float", "time", "ip"]

FIELD_KINDS: dict[str, Kind] = {
    "id": "keyword",
    "time": "time",
    "received_at": "time",
    "action": "keyword",
    "outcome": "keyword",
    "source": "keyword",
    "actor.type": "keyword",
    "actor.id": "keyword",
    "actor.name": "keyword",
    "actor.ip": "ip",
    "actor.user_agent": "keyword",
    "target.type": "keyword",
    "target.id": "keyword",
    "target.name": "keyword",
    "request.method": "keyword",
    "request.path": "keyword",
    "request.route": "keyword",
    "request.request_id": "keyword",
    "request.status": "int",
    "request.duration_ms": "float",
    "request.bytes_in": "int",
    "request.bytes_out": "int",
}

KNOWN_FIELDS: tuple[str, ...] = (*FIELD_KINDS, "details.<key>")
"""Every queryable field (canonical names); `details.<key>` stands for any dotted path into details."""

ALIASES: Mapping[str, str] = {
    "actor": "actor.id",
    "ip": "actor.ip",
    "status": "request.status",
    "method": "request.method",
    "path": "request.path",
    "route": "request.route",
    "target": "target.id",
}

DETAILS_PREFIX = "details."

# Whole numbers within what each mapping holds: `short` for the status, I-JSON safe integers otherwise.
_INT_BOUNDS = {"request.status": (-32768, 32767)}
_SAFE_INT = 2**53 - 1

# date_nanos holds 1970-01-01 .. 2262-04-11T23:47:16.854775807Z: the times any store can hold.
MIN_TIME_US = 0
MAX_TIME_US = (2**63 - 1) // 1000

_DAY_US = 86_400_000_000

# -- AST -------------------------------------------------------------------

Value = str | int | float
Op = Literal["<", "<=", ">", ">="]


@dataclass(frozen=True, slots=True)
class All:
    """Every event (the empty query)."""


@dataclass(frozen=True, slots=True)
class Text:
    """Full text: the phrase of `tokens`, or with `prefix` a prefix of one token."""

    tokens: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Term:
    """Exact value: str for keyword, ip and details fields; int/float for numbers; int µs for times."""

    field: str
    value: Value


@dataclass(frozen=True, slots=True)
class Prefix:
    """Case-sensitive prefix of a keyword or details value (never empty: that is `Exists`)."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class Exists:
    """The field has a value (`field:*`); for details: a non-null scalar at the path."""

    field: str


@dataclass(frozen=True, slots=True)
class Range:
    """One bound on a number or a time (int µs)."""

    field: str
    op: Op
    value: int | float


@dataclass(frozen=True, slots=True)
class Cidr:
    """`actor.ip` inside a network, normalized like `10.0.0.0/8`."""

    field: str
    network: str


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Any of at least two exact values of one field (the values as in `Term`)."""

    field: str
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


Node = All | Text | Term | Prefix | Exists | Range | Cidr | AnyOf | Not | And | Or


class QueryError(ValueError):
    """A query that cannot be parsed: answer 400 with the message."""

    def __init__(self, position: int, found: str, expected: str) -> None:
        self.position = position
        self.found = found
        self.expected = expected
        shown = found if found == END else "'" + (found if len(found) <= 40 else found[:40] + "…") + "'"
        super().__init__(f"query error at position {position}: expected {expected}, found {shown}")


# -- lexer -----------------------------------------------------------------

TokenKind = Literal["word", "phrase", "(", ")"]


@dataclass(slots=True)
class _Token:
    kind: TokenKind
    text: str  # the word, or the phrase without quotes and escapes
    pos: int
    end: int
    glued: bool  # no whitespace between this token and the one before

    def raw(self, query: str) -> str:
        return query[self.pos : self.end]


def _lex(text: str) -> list[_Token]:
    found: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        glued = i > 0 and not text[i - 1].isspace()
        if ch in "()":
            kind: TokenKind = "(" if ch == "(" else ")"
            found.append(_Token(kind, ch, i, i + 1, glued))
            i += 1
        elif ch == '"':
            j, chars = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                chars.append(text[j])
                j += 1
            if j >= n:
                raise QueryError(n, END, f"'\"' to close the phrase opened at position {i}")
            found.append(_Token("phrase", "".join(chars), i, j + 1, glued))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '()"':
                j += 1
            found.append(_Token("word", text[i:j], i, j, glued))
            i = j
    return found


# -- parser ----------------------------------------------------------------

_OPERATORS = ("AND", "OR", "NOT")
_RANGE_OPS: tuple[Op, ...] = ("<=", ">=", "<", ">")
_SEARCH_TERM = "a search term"


def _known_fields_phrase() -> str:
    aliases = ", ".join(f"{short} = {full}" for short, full in ALIASES.items())
    return (
        f"a known field: {', '.join(KNOWN_FIELDS)} (aliases: {aliases}); "
        "to search a word with a colon as text, quote it"
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _lex(text)
        self.i = 0
        self.terms = 0
        self.details_terms = 0

    # token access

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def fail(self, token: _Token | None, expected: str) -> QueryError:
        if token is None:
            return QueryError(len(self.text), END, expected)
        return QueryError(token.pos, token.raw(self.text), expected)

    def is_operator(self, token: _Token | None, name: str) -> bool:
        return token is not None and token.kind == "word" and token.text == name

    def count_term(self, pos: int, found: str, field: str | None = None) -> None:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise QueryError(pos, found, f"at most {MAX_TERMS} terms")
        if field is not None and field.startswith(DETAILS_PREFIX):
            self.details_terms += 1
            if self.details_terms > MAX_DETAILS_TERMS:
                raise QueryError(pos, found, f"at most {MAX_DETAILS_TERMS} terms on details fields")

    # grammar

    def query(self) -> Node:
        if not self.tokens:
            return All()
        node = self.or_(0)
        token = self.peek()
        if token is not None:  # only an unmatched ')' can stop the loops above
            raise self.fail(token, f"{END} (this ')' closes no '(')")
        return node

    def or_(self, depth: int) -> Node:
        items = [self.and_(depth)]
        while self.is_operator(self.peek(), "OR"):
            self.take()
            items.append(self.and_(depth))
        return _or(items)

    def and_(self, depth: int) -> Node:
        items = [self.unary(depth)]
        while True:
            token = self.peek()
            if token is None or token.kind == ")" or self.is_operator(token, "OR"):
                break
            if self.is_operator(token, "AND"):
                self.take()
            items.append(self.unary(depth))
        return _and(items)

    def unary(self, depth: int) -> Node:
        token = self.peek()
        if token is not None and token.kind == "word":
            negated = False
            if token.text == "NOT":
                self.take()
                negated = True
            elif token.text.startswith("-") and len(token.text) > 1:
                # `-foo`: negate the rest of the word, which is parsed as a word of its own.
                self.tokens[self.i] = _Token("word", token.text[1:], token.pos + 1, token.end, True)
                negated = True
            elif token.text == "-":
                after = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
                if after is not None and after.glued and after.kind in ("(", "phrase"):
                    self.take()
                    negated = True
            if negated:
                if depth + 1 > MAX_DEPTH:
                    raise QueryError(token.pos, token.raw(self.text), f"at most {MAX_DEPTH} levels of nesting")
                return _not(self.unary(depth + 1))
        return self.primary(depth)

    def primary(self, depth: int) -> Node:
        token = self.peek()
        if token is None or token.kind == ")" or (token.kind == "word" and token.text in _OPERATORS):
            raise self.fail(token, _SEARCH_TERM)
        self.take()
        if token.kind == "(":
            if depth + 1 > MAX_DEPTH:
                raise QueryError(token.pos, "(", f"at most {MAX_DEPTH} levels of nesting")
            node = self.or_(depth + 1)
            close = self.peek()
            if close is None or close.kind != ")":
                raise self.fail(close, f"')' to close the '(' at position {token.pos}")
            self.take()
            return node
        if token.kind == "phrase":
            self.count_term(token.pos, token.raw(self.text))
            return _text(tokens(token.text), prefix=False)
        colon = token.text.find(":")
        if colon >= 0:
            return self.field_clause(token, colon)
        self.count_term(token.pos, token.text)
        word = token.text
        if word.endswith("*"):
            found = tokens(word[:-1])
            if len(found) > 1:
                raise QueryError(token.pos, word, "a single word before '*' (a prefix must be one word)")
            return _text(found, prefix=True)
        return _text(tokens(word), prefix=False)

    def field_clause(self, token: _Token, colon: int) -> Node:
        name = token.text[:colon]
        if not name:
            raise QueryError(token.pos, token.text, "a field name before ':'")
        field = _resolve(name, token.pos)
        rest = token.text[colon + 1 :]
        rest_pos = token.pos + colon + 1
        op: Op | None = None
        for candidate in _RANGE_OPS:
            if rest.startswith(candidate):
                op = candidate
                rest = rest[len(candidate) :]
                rest_pos += len(candidate)
                break
        if rest:
            self.count_term(rest_pos, rest, field)
            return _field_value(field, op, rest, quoted=False, pos=rest_pos, source=rest)
        after = self.peek()
        expected = f"a value right after '{token.text}'"
        if after is None:
            raise QueryError(len(self.text), END, expected)
        if not after.glued:
            raise QueryError(token.end, self.text[token.end], expected)
        if after.kind == "phrase":
            self.take()
            self.count_term(after.pos, after.raw(self.text), field)
            return _field_value(field, op, after.text, quoted=True, pos=after.pos, source=after.raw(self.text))
        if after.kind == "(" and op is None:
            self.take()
            return self.any_of(field, after)
        raise self.fail(after, expected)

    def any_of(self, field: str, open_: _Token) -> Node:
        nodes = [self.group_value(field)]
        while self.is_operator(self.peek(), "OR"):
            self.take()
            nodes.append(self.group_value(field))
        close = self.peek()
        if close is None or close.kind != ")":
            raise self.fail(close, f"OR or ')' to close the '(' at position {open_.pos}")
        self.take()
        return _any_of(field, nodes)

    def group_value(self, field: str) -> Node:
        token = self.peek()
        if token is None or token.kind in ("(", ")") or (token.kind == "word" and token.text in _OPERATORS):
            raise self.fail(token, "a value")
        self.take()
        self.count_term(token.pos, token.raw(self.text), field)
        quoted = token.kind == "phrase"
        return _field_value(field, None, token.text, quoted=quoted, pos=token.pos, source=token.raw(self.text))


def _resolve(name: str, pos: int) -> str:
    name = ALIASES.get(name, name)
    if name in FIELD_KINDS:
        return name
    if name.startswith(DETAILS_PREFIX):
        if any(not key for key in name[len(DETAILS_PREFIX) :].split(".")):
            raise QueryError(pos, name, "a key between every two dots of a details path (details.some.key)")
        return name
    if name == "details":
        raise QueryError(pos, name, "a key path after details (details.some.key)")
    if name == "tenant":
        raise QueryError(
            pos, name, "a field other than tenant (the tenant comes from your token); " + _known_fields_phrase()
        )
    raise QueryError(pos, name, _known_fields_phrase())


def _field_value(field: str, op: Op | None, text: str, *, quoted: bool, pos: int, source: str) -> Node:
    """One `field:value` (or `field:<op>value`) as a node; `source` is the value as written, for errors."""
    kind: Kind | Literal["details"] = "details" if field.startswith(DETAILS_PREFIX) else FIELD_KINDS[field]
    star = not quoted and text.endswith("*")
    value = text[:-1] if star else text
    if not quoted and "*" in value:
        raise QueryError(pos, source, "'*' only at the end of a value (quote the value to match a literal '*')")
    if op is not None and kind not in ("int", "float", "time"):
        ranged = ", ".join(f for f, k in FIELD_KINDS.items() if k in ("int", "float", "time"))
        raise QueryError(pos - len(op), op + source, f"a value without '{op}' (ranges work on {ranged})")
    if star and not value and op is None:
        return Exists(field)
    if kind in ("keyword", "details"):
        return Prefix(field, value) if star else Term(field, value)
    if star:
        raise QueryError(pos, source, f"a value without '*' ({field} has no prefixes)")
    if kind == "ip":
        return _ip(field, value, pos, source)
    if kind == "time":
        return _time(field, op, value, pos, source)
    number = _number(field, kind == "int", value, pos, source)
    return Term(field, number) if op is None else Range(field, op, number)


_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _number(field: str, whole: bool, value: str, pos: int, raw: str) -> int | float:
    if whole:
        low, high = _INT_BOUNDS.get(field, (-_SAFE_INT, _SAFE_INT))
        if _INT.fullmatch(value) and low <= int(value) <= high:
            return int(value)
        raise QueryError(pos, raw, f"a whole number between {low} and {high} for {field}")
    if _FLOAT.fullmatch(value):
        number = float(value)
        if math.isfinite(number):
            return number
    raise QueryError(pos, raw, f"a number for {field}")


_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATETIME = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]{1,6}))?)?"
    r"(?:[Zz]|(?P<sign>[+-])(?P<offset_hours>[0-9]{2}):(?P<offset_minutes>[0-9]{2}))"
)
INSTANT_EXPECTED = "an RFC 3339 time with offset (2026-11-27T10:00:00Z)"
TIME_EXPECTED = f"{INSTANT_EXPECTED} or a date (2026-11-27)"
TIME_RANGE = "a time between 1970-01-01 and 2262-04-11"


def time_span(text: str) -> tuple[int, int]:
    """[start, end) in µs of a time as the language writes it: an instant (end == start) or a date (its UTC day).

    The one reading of times for every route. Any year 0001..9999 with any offset is read without
    overflow, so the span may lie outside MIN_TIME_US..MAX_TIME_US: callers refuse or clamp it.
    Raises ValueError saying TIME_EXPECTED for anything else.
    """
    try:
        if date := _DATE.fullmatch(text):
            start = time_to_us(datetime(int(date[1]), int(date[2]), int(date[3]), tzinfo=UTC))
            return start, start + _DAY_US
        found = _DATETIME.fullmatch(text)
        if found is None:
            raise ValueError(text)
        part = found.groupdict("0")
        # The wall clock read as UTC, then the offset applied in integers: an offset that crosses
        # year 1 or 9999 cannot overflow a datetime that way.
        year, month, day, hour, minute, second = (
            int(part[name]) for name in ("year", "month", "day", "hour", "minute", "second")
        )
        wall = datetime(year, month, day, hour, minute, second, int(part["fraction"].ljust(6, "0")), tzinfo=UTC)
        hours, minutes = int(part["offset_hours"]), int(part["offset_minutes"])
        if hours > 23 or minutes > 59:
            raise ValueError(text)
    except ValueError:
        raise ValueError(f"expected {TIME_EXPECTED}") from None
    offset_us = (hours * 60 + minutes) * 60_000_000
    start = time_to_us(wall) + (offset_us if part["sign"] == "-" else -offset_us)
    return start, start


def _time(field: str, op: Op | None, value: str, pos: int, raw: str) -> Node:
    try:
        start, end = time_span(value)
    except ValueError:
        raise QueryError(pos, raw, TIME_EXPECTED) from None
    day = end != start
    if start < MIN_TIME_US or end > MAX_TIME_US:
        raise QueryError(pos, raw, TIME_RANGE)
    if not day:
        return Term(field, start) if op is None else Range(field, op, start)
    # A date is its whole UTC day.
    if op is None:
        return And((Range(field, ">=", start), Range(field, "<", end)))
    if op == ">=":
        return Range(field, ">=", start)
    if op == ">":
        return Range(field, ">=", end)
    if op == "<":
        return Range(field, "<", start)
    return Range(field, "<", end)


def _ip(field: str, value: str, pos: int, raw: str) -> Node:
    try:
        if "/" in value:
            network = ipaddress.ip_network(value, strict=False)
            if "%" in value:
                raise ValueError(value)
            mapped = network.network_address.ipv4_mapped if isinstance(network, ipaddress.IPv6Network) else None
            if mapped is not None and network.prefixlen >= 96:  # an IPv4 network written as IPv6
                return Cidr(field, str(ipaddress.IPv4Network((mapped, network.prefixlen - 96))))
            return Cidr(field, str(network))
        address = ipaddress.ip_address(value)
        if "%" in value:
            raise ValueError(value)
    except ValueError:
        raise QueryError(pos, raw, "an IP address (10.1.2.3, 2001:db8::1) or a CIDR network (10.0.0.0/8)") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return Term(field, str(address.ipv4_mapped))
    return Term(field, str(address))


# -- normalization ---------------------------------------------------------


def _text(found: list[str], *, prefix: bool) -> Node:
    return Text(tuple(found), prefix) if found else All()


def _and(items: list[Node]) -> Node:
    flat: list[Node] = []
    for item in items:
        if not isinstance(item, All):  # a dropped word
            flat.extend(item.items if isinstance(item, And) else (item,))
    if not flat:
        return All()
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _or(items: list[Node]) -> Node:
    flat: list[Node] = []
    for item in items:
        if not isinstance(item, All):  # a dropped word: removed, not "everything"
            flat.extend(item.items if isinstance(item, Or) else (item,))
    if not flat:
        return All()
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def _not(item: Node) -> Node:
    return item if isinstance(item, All) else Not(item)  # negating a dropped word drops the negation


def _any_of(field: str, nodes: list[Node]) -> Node:
    values: list[Value] = []
    others: list[Node] = []
    for node in nodes:
        if isinstance(node, Term):
            if node.value not in values:
                values.append(node.value)
        elif node not in others:
            others.append(node)
    exact: list[Node] = []
    if len(values) == 1:
        exact = [Term(field, values[0])]
    elif values:
        exact = [AnyOf(field, tuple(values))]
    return _or(exact + others)


def parse(text: str) -> Node:
    """The AST of a query; raises `QueryError` (a ValueError) naming position, found and expected."""
    if len(text) > MAX_LENGTH:
        raise QueryError(
            MAX_LENGTH,
            text[MAX_LENGTH : MAX_LENGTH + 20],
            f"at most {MAX_LENGTH} characters (the query has {len(text)})",
        )
    return _Parser(text).query()


# -- addresses -----------------------------------------------------------


@functools.lru_cache(maxsize=256)
def ip_network_bits(network: str) -> tuple[int, int] | None:
    """A network as (128-bit base, prefix length), IPv4 mapped into IPv6 like OpenSearch does."""
    try:
        parsed = ipaddress.ip_network(network, strict=False)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv4Network):
        return (0xFFFF << 32) | int(parsed.network_address), parsed.prefixlen + 96
    return int(parsed.network_address), parsed.prefixlen


def ip_number(ip: str) -> int | None:
    """An address as the 128-bit number OpenSearch orders `ip` values by (IPv4 mapped); None if it is none."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv4Address):
        return (0xFFFF << 32) | int(address)
    return int(address)


def cidr_match(ip: str | None, network: str) -> int:
    """1 when `ip` lies in `network` (an address is a one-address network), else 0.

    The reference evaluator `matches` uses it; the embedded store compares ip_key() bytes instead
    (search/sqlite/query.py)."""
    if not isinstance(ip, str):
        return 0
    net = ip_network_bits(network)
    address = ip_number(ip)
    if net is None or address is None:
        return 0
    base, length = net
    shift = 128 - length
    return int(address >> shift == base >> shift)


# -- reference evaluator ---------------------------------------------------


def _get(document: Mapping[str, Any], field: str) -> Any:
    value: Any = document
    for key in field.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _json_text(value: Any) -> str | None:
    """A details scalar as flat_object indexes it: strings as is, other scalars as their JSON text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return orjson.dumps(value).decode()
    return None


def details_leaf(field: str, value: str) -> str:
    """The flat_object string a `details.<path>` field compares with `value`: "<.path>=<value>"."""
    return field[len(DETAILS_PREFIX) - 1 :] + "=" + value


def details_leaves(value: Any, path: str = "") -> Iterator[str]:
    """Every scalar of `details` as flat_object indexes it: "<.path>=<text>", the path with a leading dot.

    Strings are their text, numbers their JSON text (parse the document with number texts kept, as
    the embedded store does, to have them as written), `true`/`false`; null is no leaf."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from details_leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from details_leaves(item, path)
    else:
        text = _json_text(value)
        if text is not None:
            yield f"{path}={text}"


def _field_values(document: Mapping[str, Any], field: str) -> list[Any]:
    """The comparable values of a field: µs for times; [] when absent."""
    value = _get(document, field)
    if value is None:
        return []
    kind = FIELD_KINDS.get(field)
    if kind is None:  # a field outside the language, in an AST built by code (e.g. chain.seq)
        return [value] if isinstance(value, str | int | float) and not isinstance(value, bool) else []
    if kind == "time":
        return [time_to_us(parse_time(value))] if isinstance(value, str) else []
    if kind in ("int", "float"):
        return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []
    return [value] if isinstance(value, str) else []


def _compare(left: int | float, op: Op, right: int | float) -> bool:
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def matches(node: Node, document: Mapping[str, Any]) -> bool:
    """Whether a stored event document (as the API returns it) matches: the reference semantics."""
    return _Evaluation(document).matches(node)


class _Evaluation:
    """One document against a query: its words and details leaves are indexed once, not walked once per term."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self._words: list[str] | None = None
        self._positions: dict[str, list[int]] | None = None
        self._vocabulary: list[str] | None = None
        self._leaves: set[str] | None = None

    @property
    def words(self) -> list[str]:
        if self._words is None:
            self._words = searchable_text(dict(self.document)).split()
        return self._words

    @property
    def positions(self) -> dict[str, list[int]]:
        if self._positions is None:
            self._positions = {}
            for i, word in enumerate(self.words):
                self._positions.setdefault(word, []).append(i)
        return self._positions

    @property
    def vocabulary(self) -> list[str]:
        if self._vocabulary is None:
            self._vocabulary = sorted(self.positions)
        return self._vocabulary

    def has_phrase(self, found: tuple[str, ...]) -> bool:
        words, size = self.words, len(found)
        return any(tuple(words[i : i + size]) == found for i in self.positions.get(found[0], ()))

    def has_prefix(self, start: str) -> bool:
        vocabulary = self.vocabulary
        i = bisect.bisect_left(vocabulary, start)
        return i < len(vocabulary) and vocabulary[i].startswith(start)

    @property
    def leaves(self) -> set[str]:
        if self._leaves is None:
            self._leaves = set(details_leaves(self.document.get("details")))
        return self._leaves

    def matches(self, node: Node) -> bool:
        document = self.document
        match node:
            case All():
                return True
            case Text(found, prefix):
                return self.has_prefix(found[0]) if prefix else self.has_phrase(found)
            case Term(field, value) if field.startswith(DETAILS_PREFIX):
                return details_leaf(field, str(value)) in self.leaves
            case AnyOf(field, values) if field.startswith(DETAILS_PREFIX):
                return any(details_leaf(field, str(v)) in self.leaves for v in values)
            case Prefix(field, value) if field.startswith(DETAILS_PREFIX):
                start = details_leaf(field, value)
                return any(leaf.startswith(start) for leaf in self.leaves)
            case Exists(field) if field.startswith(DETAILS_PREFIX):
                start = details_leaf(field, "")
                return any(leaf.startswith(start) for leaf in self.leaves)
            case Term(field, value) if FIELD_KINDS.get(field) == "ip":
                return any(cidr_match(ip, str(value)) for ip in _field_values(document, field))
            case AnyOf(field, values) if FIELD_KINDS.get(field) == "ip":
                return any(cidr_match(ip, str(v)) for ip in _field_values(document, field) for v in values)
            case Cidr(field, network):
                return any(cidr_match(ip, network) for ip in _field_values(document, field))
            case Term(field, value):
                return value in _field_values(document, field)
            case AnyOf(field, values):
                return any(v in values for v in _field_values(document, field))
            case Prefix(field, value):
                return any(v.startswith(value) for v in _field_values(document, field))
            case Exists(field):
                return bool(_field_values(document, field))
            case Range(field, op, value):
                return any(_compare(v, op, value) for v in _field_values(document, field) if type(v) is not str)
            case Not(item):
                return not self.matches(item)
            case And(items):
                return all(self.matches(item) for item in items)
            case Or(items):
                return any(self.matches(item) for item in items)
            case _:
                assert_never(node)
