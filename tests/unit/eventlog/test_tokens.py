"""Token store: secrets shown once, hashed at rest, expiry and revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eventlog.tokens import SqliteTokenStore, TokenError, parse_scopes


@pytest.fixture
def store(tmp_path: Path) -> SqliteTokenStore:
    return SqliteTokenStore(tmp_path / "tokens.db")


def test_secret_is_random_and_only_its_hash_is_stored(store: SqliteTokenStore, tmp_path: Path) -> None:
    one = store.create(tenant="acme", scopes=frozenset({"events:write"}))
    two = store.create(tenant="acme", scopes=frozenset({"events:write"}))
    store.close()
    assert one.secret != two.secret
    secret_part = one.secret.split("_", 2)[2]
    assert len(secret_part) >= 43  # 32 random bytes, base64url
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret_part.encode() not in raw


def test_authenticate_checks_secret_expiry_and_revocation(store: SqliteTokenStore) -> None:
    now = datetime.now(UTC)
    issued = store.create(tenant="acme", scopes=frozenset({"events:read"}), expires_days=1, now=now)
    assert store.authenticate(issued.secret, now=now) == issued.token
    assert store.authenticate(issued.secret[:-1] + "x", now=now) is None
    assert store.authenticate(issued.secret, now=now + timedelta(days=1, seconds=1)) is None
    store.revoke(issued.token.id)
    assert store.authenticate(issued.secret, now=now) is None
    store.close()


@pytest.mark.parametrize("scopes", ["", "events:write,root", "admin, nope"])
def test_unknown_scopes_are_refused(scopes: str) -> None:
    with pytest.raises(TokenError, match="choose from"):
        parse_scopes(scopes)


def test_revoking_unknown_id_says_how_to_find_ids(store: SqliteTokenStore) -> None:
    with pytest.raises(TokenError, match="tokens list"):
        store.revoke("nope")
    store.close()


def test_known_answers_from_memory_for_tokens_seen_live(store: SqliteTokenStore, tmp_path: Path) -> None:
    created = store.create(tenant="acme", scopes=frozenset({"events:read"}))
    assert store.known(created.secret)
    assert not store.known(created.secret[:-1] + "x")
    assert not store.known("evl_0000000000000000_x")
    assert not store.known("garbage")
    elsewhere = SqliteTokenStore(tmp_path / "tokens.db")
    later = elsewhere.create(tenant="acme", scopes=frozenset({"events:read"}))
    expired = elsewhere.create(
        tenant="acme", scopes=frozenset({"events:read"}), expires_days=1, now=datetime.now(UTC) - timedelta(days=2)
    )
    assert store.known(later.secret)  # created by another process: read again since the table changed
    reopened = SqliteTokenStore(tmp_path / "tokens.db")
    assert reopened.known(created.secret)
    assert reopened.known(later.secret)
    assert not reopened.known(expired.secret)
    reopened.revoke(created.token.id)
    assert not reopened.known(created.secret)
    assert store.known(created.secret)  # revoked elsewhere: stale until the lookup it still allows
    assert store.authenticate(created.secret) is None
    assert not store.known(created.secret)
    for opened in (elsewhere, reopened):
        opened.close()
    store.close()


def test_is_live_follows_revocation_and_expiry(store: SqliteTokenStore) -> None:
    now = datetime.now(UTC)
    issued = store.create(tenant="acme", scopes=frozenset({"events:read"}), expires_days=1, now=now)
    assert store.is_live(issued.token.id, now=now)
    assert not store.is_live(issued.token.id, now=now + timedelta(days=1))
    assert not store.is_live("0000000000000000")
    store.revoke(issued.token.id)
    assert not store.is_live(issued.token.id, now=now)
    store.close()


@pytest.mark.parametrize("tenant", ["", "a\nb", "tab\there", "bidi\u202e", " acme", "acme ", "x" * 129])
def test_a_tenant_outside_the_tenant_rule_is_refused_not_altered(store: SqliteTokenStore, tenant: str) -> None:
    with pytest.raises(TokenError, match="tenant"):
        store.create(tenant=tenant, scopes=frozenset({"events:write"}))
    assert store.list() == []


@pytest.mark.parametrize("name", ["ci\nrunner", "esc\x1b[31m", "x" * 257])
def test_a_token_name_must_be_printable_and_short(store: SqliteTokenStore, name: str) -> None:
    with pytest.raises(TokenError, match="name"):
        store.create(tenant="acme", scopes=frozenset({"events:write"}), name=name)
    assert (
        store.create(tenant="acme", scopes=frozenset({"events:write"}), name="CI runner 1").token.name == "CI runner 1"
    )
