"""Opaque page cursors: the keyset position plus a fingerprint of the query it belongs to."""

from __future__ import annotations

import base64
import hashlib

import orjson

from search.backend import EventQuery, Position

_VERSION = 1


class CursorError(ValueError):
    pass


def fingerprint(tenant: str, query: EventQuery) -> str:
    """Ties a cursor to its tenant, conditions and order (not to the page size)."""
    raw = orjson.dumps([tenant, repr(query.where), query.order])
    return hashlib.sha256(raw).hexdigest()[:16]


def encode(position: Position, print_: str) -> str:
    raw = orjson.dumps([_VERSION, position.time_us, position.id, print_])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, print_: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, time_us, event_id, their_print = orjson.loads(raw)
    except (ValueError, TypeError) as exc:
        raise CursorError("cursor is malformed; use the `next_cursor` of a previous page as it is") from exc
    if version != _VERSION or not isinstance(time_us, int) or not isinstance(event_id, str):
        raise CursorError("cursor is malformed; use the `next_cursor` of a previous page as it is")
    if their_print != print_:
        raise CursorError("cursor belongs to a different query; repeat the same filters or drop `cursor`")
    return Position(time_us, event_id)
