"""Bearer auth over HTTP and the failed-authentication limiter."""

from __future__ import annotations

import pytest

from eventlog.auth import FailureLimiter
from eventlog.tokens import TokenStore
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
    store = TokenStore(service.settings.tokens_path)
    try:
        issued = store.create(tenant="acme", scopes=frozenset({"events:read"}))
        assert service.client.get("/v1/events", headers=bearer(issued.secret)).status_code == 200
        store.revoke(issued.token.id)
    finally:
        store.close()
    assert service.client.get("/v1/events", headers=bearer(issued.secret)).status_code == 401


def test_ten_failures_from_one_address_answer_429_with_retry_after(service: Service) -> None:
    good = service.token("acme")
    for _ in range(service.settings.auth_failure_limit):
        assert service.client.get("/v1/events", headers=bearer("evl_bad")).status_code == 401
    blocked = service.client.get("/v1/events", headers=bearer(good))
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["retry-after"]) <= service.settings.auth_failure_window_seconds
    assert "metrics" not in blocked.text
    assert 'eventlog_auth_failures_total{reason="too_many_failures"} 1.0' in service.client.get("/metrics").text


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
