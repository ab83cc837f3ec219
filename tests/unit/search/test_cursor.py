"""Cursors are opaque, signed, tied to their query, range-checked, and refuse tampering."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import orjson
import pytest

from eventlog.app.service import create_app
from eventlog.settings import Settings
from search import cursor
from search.backend import EventQuery, Position
from search.query import Range, Term, Text
from tests.app import Service

SECRET = b"k" * 32


class _Key:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def secret(self) -> bytes:
        return self._secret


CODEC = cursor.Cursors(_Key(SECRET))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _signed(values: object, secret: bytes = SECRET) -> str:
    """A cursor as the service would sign it, whatever it holds."""
    payload = orjson.dumps(values)
    return f"{_b64(payload)}.{_b64(hmac.new(secret, payload, hashlib.sha256).digest())}"


def test_round_trip() -> None:
    mark = cursor.fingerprint("acme", EventQuery(where=Term("actor.id", "bob")))
    assert CODEC.decode(CODEC.encode(Position(123, "id-1"), mark), mark) == Position(123, "id-1")


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
    token = CODEC.encode(Position(1, "x"), cursor.fingerprint("a", EventQuery()))
    with pytest.raises(cursor.CursorError, match=r"different query.*restart the listing without `cursor`"):
        CODEC.decode(token, cursor.fingerprint(*other))


@pytest.mark.parametrize("token", ["", "!!!", "bm90IGpzb24", "WzEsMl0", "a.b.c", "é.é"])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(cursor.CursorError, match="restart the listing without `cursor`"):
        CODEC.decode(token, "x")


def test_a_re_encoded_position_is_refused() -> None:
    """Changing the position (here to 2^63 µs, which no store can take) breaks the signature."""
    token = CODEC.encode(Position(1, "x"), "p")
    _, _, mac = token.partition(".")
    forged = _b64(orjson.dumps([2, 2**63, "x", "p"]))
    with pytest.raises(cursor.CursorError, match="not issued by this service or was altered"):
        CODEC.decode(f"{forged}.{mac}", "p")


def test_an_unsigned_cursor_of_the_earlier_form_is_refused() -> None:
    old = _b64(orjson.dumps([1, 2**63, "x", "p"]))
    with pytest.raises(cursor.CursorError, match="restart the listing without `cursor`"):
        CODEC.decode(old, "p")


def test_a_cursor_signed_with_another_key_is_refused() -> None:
    with pytest.raises(cursor.CursorError, match="not issued by this service"):
        CODEC.decode(_signed([2, 1, "x", "p"], b"o" * 32), "p")


@pytest.mark.parametrize(
    "values",
    [
        [2, 2**63, "x", "p"],
        [2, (2**63 - 1) // 1000 + 1, "x", "p"],
        [2, -1, "x", "p"],
        [2, True, "x", "p"],
        [2, 1.5, "x", "p"],
        [2, 1, "", "p"],
        [2, 1, "x" * 129, "p"],
        [2, 1, 7, "p"],
        [2, 1, "x", None],
        [3, 1, "x", "p"],
        [2, 1, "x"],
        {"time": 1},
    ],
)
def test_values_out_of_range_are_refused_even_when_signed(values: object) -> None:
    with pytest.raises(cursor.CursorError, match=r"malformed.*restart the listing without `cursor`"):
        CODEC.decode(_signed(values), "p")


def test_the_largest_storable_time_is_accepted() -> None:
    top = (2**63 - 1) // 1000
    assert CODEC.decode(_signed([2, top, "x" * 128, "p"]), "p") == Position(top, "x" * 128)


def test_the_data_dir_key_is_created_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cursor.key"
    first = cursor.FileCursorKey(path, create=True).secret()
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(first) >= 32
    assert cursor.FileCursorKey(path, create=True).secret() == first


def test_nodes_sharing_a_key_file_accept_each_others_cursors(tmp_path: Path) -> None:
    shared = tmp_path / "shared.key"
    shared.write_text("0123456789abcdef0123456789abcdef\n")
    node_a = cursor.Cursors(cursor.FileCursorKey(shared, create=False))
    node_b = cursor.Cursors(cursor.FileCursorKey(shared, create=False))
    assert node_b.decode(node_a.encode(Position(5, "e"), "p"), "p") == Position(5, "e")
    own = cursor.Cursors(cursor.FileCursorKey(tmp_path / "own.key", create=True))
    with pytest.raises(cursor.CursorError, match="not issued by this service"):
        own.decode(node_a.encode(Position(5, "e"), "p"), "p")


def test_a_configured_key_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no cursor key at .*openssl rand -hex 32"):
        cursor.FileCursorKey(tmp_path / "missing.key", create=False).secret()
    assert not (tmp_path / "missing.key").exists()


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "short.key").write_text("abc\n")
    with pytest.raises(ValueError, match="3 bytes; it needs 32 or more"):
        cursor.FileCursorKey(tmp_path / "short.key", create=False).secret()


def test_the_service_creates_its_key_in_the_data_dir(service: Service) -> None:
    path = service.settings.data_dir / "cursor.key"
    assert service.settings.cursor_key_path == path
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_service_refuses_to_start_without_its_configured_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no cursor key"):
        create_app(Settings(data_dir=tmp_path, cursor_key_file=tmp_path / "cluster.key"))
