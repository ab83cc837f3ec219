"""Bearer auth over HTTP and the failed-authentication limiter."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from eventlog.auth import Authenticator, AuthError, FailureLimiter, client_network
from eventlog.tokens import SqliteTokenStore, Token
from tests.app import Service, bearer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_blocks_after_limit_until_window_passes() -> None:
    clock = Clock()
    limiter = FailureLimiter(3, 300, clock)
    for _ in range(2):
        limiter.fail("1.2.3.4")
    assert limiter.retry_after("1.2.3.4") is None
    clock.now += 100
    limiter.fail("1.2.3.4")
    assert limiter.retry_after("1.2.3.4") == 200
    assert limiter.retry_after("5.6.7.8") is None
    clock.now += 200
    assert limiter.retry_after("1.2.3.4") is None


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        ({"Authorization": "Bearer"}, "invalid_token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid_token"),
        ({"Authorization": "Bearer evl_0000000000000000_nope"}, "invalid_token"),
        ({"Authorization": "Bearer garbage"}, "invalid_token"),
    ],
)
def test_missing_or_bad_token_is_401(service: Service, headers: dict[str, str], code: str) -> None:
    answer = service.client.get("/v1/events", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == code
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_wrong_secret_for_a_real_token_id_is_401(service: Service) -> None:
    token = service.token("acme")
    forged = token[:21] + "A" * 43
    assert service.client.get("/v1/events", headers=bearer(forged)).status_code == 401


def test_revoked_and_expired_tokens_are_401(service: Service) -> None:
    store = SqliteTokenStore(service.settings.tokens_path)
    try:
        issued = store.create(tenant="acme", scopes=frozenset({"events:read"}))
        assert service.client.get("/v1/events", headers=bearer(issued.secret)).status_code == 200
        store.revoke(issued.token.id)
    finally:
        store.close()
    assert service.client.get("/v1/events", headers=bearer(issued.secret)).status_code == 401


def test_over_the_limit_failing_credentials_get_429_and_a_valid_token_still_passes(service: Service) -> None:
    # One client behind a shared address sends a wrong token; another one there ingests with a valid one.
    good = service.token("acme")
    assert service.client.post("/v1/events", json={"action": "a"}, headers=bearer(good)).status_code == 201
    for _ in range(service.settings.auth_failure_limit):
        assert service.client.get("/v1/events", headers=bearer("evl_bad")).status_code == 401
    blocked = service.client.get("/v1/events", headers=bearer("evl_bad"))
    assert blocked.status_code == 429
    retry = int(blocked.headers["retry-after"])
    assert 0 < retry <= service.settings.auth_failure_window_seconds
    message = blocked.json()["message"]
    assert "Check the token" in message
    assert f"retry after {retry} s" in message
    assert "Retry-After" in message
    assert "metrics" not in blocked.text
    assert service.client.get("/v1/events").status_code == 429
    assert service.client.post("/v1/events", json={"action": "b"}, headers=bearer(good)).status_code == 201
    assert service.client.get("/v1/events", headers=bearer(good)).status_code == 200
    first_use = service.token("acme")  # made by another process meanwhile, never used before
    assert service.client.post("/v1/events", json={"action": "c"}, headers=bearer(first_use)).status_code == 201
    assert 'eventlog_auth_failures_total{reason="too_many_failures"} 2.0' in service.client.get("/metrics").text


class CountingStore(SqliteTokenStore):
    """A real token store that counts its lookups."""

    lookups = 0

    def authenticate(self, bearer: str, now: datetime | None = None) -> Token | None:
        self.lookups += 1
        return super().authenticate(bearer, now)


def test_over_the_limit_an_unknown_credential_is_refused_without_a_lookup(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "tokens.db")
    known = store.create(tenant="acme", scopes=frozenset({"events:read"}))
    auth = Authenticator(store, FailureLimiter(3, 300))
    for _ in range(3):
        with pytest.raises(AuthError) as failed:
            auth.check("Bearer evl_0000000000000000_guess", "10.0.0.7")
        assert failed.value.status == 401
    lookups = store.lookups
    for guess in ("Bearer evl_0000000000000001_guess", f"Bearer {known.secret[:-1]}x", "Bearer", None):
        with pytest.raises(AuthError) as refused:
            auth.check(guess, "10.0.0.7")
        assert refused.value.status == 429
    assert store.lookups == lookups
    assert auth.check(f"Bearer {known.secret}", "10.0.0.7").token_id == known.token.id
    # A token created elsewhere (the CLI) after this server started passes as well.
    other = SqliteTokenStore(tmp_path / "tokens.db")
    created_elsewhere = other.create(tenant="acme", scopes=frozenset({"events:read"}))
    assert auth.check(f"Bearer {created_elsewhere.secret}", "10.0.0.7").token_id == created_elsewhere.token.id
    assert store.lookups == lookups + 2
    # Revoked elsewhere: the lookup it still gets finds that out, and it is refused from then on.
    other.revoke(known.token.id)
    other.close()
    with pytest.raises(AuthError) as revoked:
        auth.check(f"Bearer {known.secret}", "10.0.0.7")
    assert revoked.value.status == 429
    with pytest.raises(AuthError) as elsewhere:
        auth.check(f"Bearer {known.secret}", "10.0.0.8")
    assert elsewhere.value.status == 401
    store.close()


def test_a_token_known_at_start_passes_an_address_over_the_limit(tmp_path: Path) -> None:
    cli = SqliteTokenStore(tmp_path / "tokens.db")
    issued = cli.create(tenant="acme", scopes=frozenset({"events:write"}))
    cli.close()
    store = SqliteTokenStore(tmp_path / "tokens.db")
    auth = Authenticator(store, FailureLimiter(1, 300))
    with pytest.raises(AuthError):
        auth.check("Bearer nope", "10.0.0.7")
    assert auth.check(f"Bearer {issued.secret}", "10.0.0.7").tenant == "acme"
    store.close()


def test_ipv6_clients_count_by_64_and_mapped_ipv4_as_ipv4() -> None:
    limiter = FailureLimiter(2, 300, Clock())
    limiter.fail("2001:db8:1:2::1")
    limiter.fail("2001:db8:1:2:ffff:ffff:ffff:9")
    assert limiter.retry_after("2001:db8:1:2::abcd") == 300
    assert limiter.retry_after("2001:db8:1:3::1") is None
    limiter.fail("::ffff:192.0.2.1")
    limiter.fail("192.0.2.1")
    assert limiter.retry_after("192.0.2.1") == 300
    assert limiter.retry_after("192.0.2.2") is None
    assert client_network("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert client_network("testclient") == "testclient"


def test_the_limiter_table_is_bounded_and_forgets_the_longest_quiet_first() -> None:
    clock = Clock()
    limiter = FailureLimiter(1, 300, clock, max_networks=3)
    for n in range(1, 6):
        limiter.fail(f"10.0.0.{n}")
        clock.now += 1
    assert len(limiter) == 3
    assert [limiter.retry_after(f"10.0.0.{n}") is not None for n in range(1, 6)] == [False, False, True, True, True]
    clock.now += 300
    limiter.fail("10.0.0.9")
    assert len(limiter) == 1  # the others' failures aged out


def test_an_admin_read_of_a_tenant_outside_the_tenant_rule_is_400_naming_it(service: Service) -> None:
    admin = bearer(service.token("ops", "admin"))
    for tenant in ("a\nb", " acme", "x" * 129):
        answer = service.client.get("/v1/events", params={"tenant": tenant}, headers=admin)
        assert answer.status_code == 400, answer.text
        (error,) = answer.json()["errors"]
        assert error["parameter"] == "tenant"
    assert service.client.get("/v1/events", params={"tenant": "acme"}, headers=admin).status_code == 200
    # Not an admin: another tenant is forbidden, whatever its name.
    reader = bearer(service.token("acme", "events:read"))
    assert service.client.get("/v1/events", params={"tenant": "a\nb"}, headers=reader).status_code == 403
