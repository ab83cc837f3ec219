"""Cursors are opaque, tied to their query, and refuse tampering."""

from __future__ import annotations

import pytest

from search import cursor
from search.backend import EventQuery, Position
from search.query import Range, Term, Text


def test_round_trip() -> None:
    mark = cursor.fingerprint("acme", EventQuery(where=Term("actor.id", "bob")))
    assert cursor.decode(cursor.encode(Position(123, "id-1"), mark), mark) == Position(123, "id-1")


def test_limit_and_position_do_not_change_the_fingerprint() -> None:
    assert cursor.fingerprint("a", EventQuery(limit=5)) == cursor.fingerprint(
        "a", EventQuery(limit=50, after=Position(1, "x"))
    )


@pytest.mark.parametrize(
    "other",
    [
        ("b", EventQuery()),
        ("a", EventQuery(where=Text(("x",)))),
        ("a", EventQuery(order="asc")),
        ("a", EventQuery(where=Range("time", ">=", 1))),
    ],
)
def test_cursor_of_another_query_or_tenant_is_refused(other: tuple[str, EventQuery]) -> None:
    token = cursor.encode(Position(1, "x"), cursor.fingerprint("a", EventQuery()))
    with pytest.raises(cursor.CursorError, match="different query"):
        cursor.decode(token, cursor.fingerprint(*other))


@pytest.mark.parametrize("token", ["", "!!!", "bm90IGpzb24", "WzEsMl0"])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(cursor.CursorError, match="malformed"):
        cursor.decode(token, "x")
