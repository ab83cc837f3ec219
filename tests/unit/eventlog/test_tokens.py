"""Token store: secrets shown once, hashed at rest, expiry and revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eventlog.tokens import TokenError, TokenStore, parse_scopes


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "tokens.db")


def test_secret_is_random_and_only_its_hash_is_stored(store: TokenStore, tmp_path: Path) -> None:
    one = store.create(tenant="acme", scopes=frozenset({"events:write"}))
    two = store.create(tenant="acme", scopes=frozenset({"events:write"}))
    store.close()
    assert one.secret != two.secret
    secret_part = one.secret.split("_", 2)[2]
    assert len(secret_part) >= 43  # 32 random bytes, base64url
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret_part.encode() not in raw


def test_authenticate_checks_secret_expiry_and_revocation(store: TokenStore) -> None:
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


def test_revoking_unknown_id_says_how_to_find_ids(store: TokenStore) -> None:
    with pytest.raises(TokenError, match="tokens list"):
        store.revoke("nope")
    store.close()
