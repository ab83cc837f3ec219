"""JSON nested too deep: where, found without recursion.

orjson parses at most 1024 levels and writes at most 254; pydantic, canonical JSON
and the details checks would recurse in Python. A request nested deeper than
eventlog accepts is located here first, so that it is answered 422 with a pointer
instead of failing inside one of them.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

JsonPath = tuple[str | int, ...]

# A JSON string (escapes included) or one structural character; numbers, literals and blanks fall between.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def parse_too_deep(exc: orjson.JSONDecodeError) -> bool:
    """Whether orjson refused the text for its nesting (beyond 1024 levels) rather than its syntax."""
    return exc.msg == "depth limit exceeded"


def too_deep(value: Any, limit: int) -> JsonPath | None:
    """The path to the first container of `value` deeper than `limit` levels (`value` is level 1), or None."""
    if not isinstance(value, dict | list):
        return None
    pending: list[tuple[dict[str, Any] | list[Any], JsonPath]] = [(value, ())]
    while pending:
        container, path = pending.pop()
        if len(path) >= limit:
            return path
        items = container.items() if isinstance(container, dict) else enumerate(container)
        nested = [(item, (*path, key)) for key, item in items if isinstance(item, dict | list)]
        pending.extend(reversed(nested))
    return None


def _key(token: bytes) -> str:
    try:
        key = orjson.loads(token)
    except orjson.JSONDecodeError:
        return token[1:-1].decode("utf-8", "replace")
    return key if isinstance(key, str) else str(key)


def too_deep_in_text(text: bytes, limit: int) -> JsonPath | None:
    """`too_deep` of JSON text, for text too deep to parse: reads tokens up to the first container beyond `limit`."""
    # One [is_object, member] per open container; member is the current key or index.
    open_: list[list[Any]] = []
    expect_key = False
    for match in _TOKEN.finditer(text):
        token = match.group()
        first = token[:1]
        if first in (b"{", b"["):
            if len(open_) >= limit:
                return tuple(member for _, member in open_)
            is_object = first == b"{"
            open_.append([is_object, "" if is_object else 0])
            expect_key = is_object
        elif first in (b"}", b"]"):
            if open_:
                open_.pop()
            expect_key = False
        elif first == b",":
            if open_:
                if open_[-1][0]:
                    expect_key = True
                else:
                    open_[-1][1] += 1
        elif expect_key and open_ and open_[-1][0]:
            open_[-1][1] = _key(token)
            expect_key = False
    return None
