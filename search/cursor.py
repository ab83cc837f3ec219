"""Opaque page cursors: the keyset position plus a fingerprint of the query, signed by the service.

A cursor comes back from the client, so it is input like any other: it is signed with
HMAC-SHA256 (a forged or altered one is refused before its values are used), and its
values are range-checked so that nothing a store cannot take reaches it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Protocol

import orjson

from search.backend import EventQuery, Position

_VERSION = 2
_MIN_SECRET_BYTES = 32
# The time of a stored event, in µs: OpenSearch keeps it as date_nanos (int64 ns, up to 2262-04-11).
_MAX_TIME_US = (2**63 - 1) // 1000
_MAX_ID_CHARS = 128  # the longest event id the model accepts
_RESTART = "restart the listing without `cursor`"


class CursorError(ValueError):
    pass


class CursorKey(Protocol):
    """Where the cursor-signing secret comes from; every node behind one load balancer needs the same."""

    def secret(self) -> bytes: ...


class FileCursorKey:
    """The secret in a file: the data dir's own (created on first use, mode 0600) or one shared by a cluster."""

    def __init__(self, path: Path, *, create: bool) -> None:
        self._path = path
        self._create = create
        self._secret: bytes | None = None

    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = self._load()
        return self._secret

    def _load(self) -> bytes:
        if self._create and not self._path.exists():
            self._path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process made it first: use theirs
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(_MIN_SECRET_BYTES) + "\n")
        try:
            secret = self._path.read_bytes().strip()
        except FileNotFoundError:
            raise ValueError(
                f"no cursor key at {self._path}; create it with `openssl rand -hex 32 > {self._path}` "
                "and give every node the same file"
            ) from None
        if len(secret) < _MIN_SECRET_BYTES:
            raise ValueError(
                f"the cursor key in {self._path} is {len(secret)} bytes; it needs {_MIN_SECRET_BYTES} or more "
                "(e.g. `openssl rand -hex 32`)"
            )
        return secret


def fingerprint(tenant: str, query: EventQuery) -> str:
    """Ties a cursor to its tenant, conditions and order (not to the page size)."""
    raw = orjson.dumps([tenant, repr(query.where), query.order])
    return hashlib.sha256(raw).hexdigest()[:16]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Cursors:
    """Makes and reads the cursors of one service (or of every node that shares its key)."""

    def __init__(self, key: CursorKey) -> None:
        self._key = key.secret()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def encode(self, position: Position, print_: str) -> str:
        payload = orjson.dumps([_VERSION, position.time_us, position.id, print_])
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(self, cursor: str, print_: str) -> Position:
        malformed = CursorError(
            f"cursor is malformed; use the `next_cursor` of a previous page as it is, or {_RESTART}"
        )
        body, dot, mac = cursor.partition(".")
        try:
            if not dot or not cursor.isascii():
                raise ValueError("no signature")
            payload, signature = _unb64(body), _unb64(mac)
        except ValueError:
            raise malformed from None
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise CursorError(f"cursor was not issued by this service or was altered; {_RESTART}")
        try:
            version, time_us, event_id, their_print = orjson.loads(payload)
        except (ValueError, TypeError):
            raise malformed from None
        if (
            version != _VERSION
            or type(time_us) is not int
            or not 0 <= time_us <= _MAX_TIME_US
            or not isinstance(event_id, str)
            or not 0 < len(event_id) <= _MAX_ID_CHARS
            or not isinstance(their_print, str)
        ):
            raise malformed
        if their_print != print_:
            raise CursorError(f"cursor belongs to a different query; repeat the same filters, or {_RESTART}")
        return Position(time_us, event_id)
