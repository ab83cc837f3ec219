"""/v1/tokens: admin-only, secrets shown once, every call audited."""

from __future__ import annotations

from tests.app import Service, bearer


def test_admin_creates_lists_and_revokes_tokens(service: Service) -> None:
    admin = service.token("ops", "admin")
    created = service.client.post(
        "/v1/tokens", json={"tenant": "acme", "scopes": ["events:write"], "name": "ci"}, headers=bearer(admin)
    )
    assert created.status_code == 201
    token = created.json()
    assert token["secret"].startswith("evl_")
    ingest = service.client.post("/v1/events", json={"action": "a.b"}, headers=bearer(token["secret"]))
    assert ingest.status_code == 201

    listed = service.client.get("/v1/tokens", headers=bearer(admin)).json()
    assert {t["id"] for t in listed} >= {token["id"]}
    assert all("secret" not in t for t in listed)

    revoked = service.client.delete(f"/v1/tokens/{token['id']}", headers=bearer(admin))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert service.client.post("/v1/events", json={"action": "a.b"}, headers=bearer(token["secret"])).status_code == 401
    assert service.client.delete("/v1/tokens/unknown", headers=bearer(admin)).status_code == 404


def test_token_endpoints_need_admin(service: Service) -> None:
    user = service.token("acme", "events:read,events:write")
    assert service.client.get("/v1/tokens", headers=bearer(user)).status_code == 403
    answer = service.client.post("/v1/tokens", json={"tenant": "x", "scopes": ["admin"]}, headers=bearer(user))
    assert answer.status_code == 403


def test_bad_scope_is_422(service: Service) -> None:
    admin = service.token("ops", "admin")
    answer = service.client.post("/v1/tokens", json={"tenant": "x", "scopes": ["root"]}, headers=bearer(admin))
    assert answer.status_code == 422
    assert "root" in answer.json()["message"]


def test_token_calls_are_audited_without_secrets(service: Service) -> None:
    admin = service.token("ops", "admin")
    created = service.client.post(
        "/v1/tokens", json={"tenant": "acme", "scopes": ["events:read"]}, headers=bearer(admin)
    )
    secret = created.json()["secret"]
    service.client.get("/v1/tokens", headers=bearer(admin))
    service.settle()
    events = service.client.get("/v1/events", params={"source": "eventlog", "order": "asc"}, headers=bearer(admin))
    audit = events.json()["events"]
    create = next(e for e in audit if e["action"] == "eventlog.tokens.create")
    assert create["target"] == {"type": "token", "id": created.json()["id"]}
    assert any(e["action"] == "eventlog.tokens.list" for e in audit)
    assert secret not in events.text


def test_a_tenant_outside_the_tenant_rule_is_400_and_creates_nothing(service: Service) -> None:
    admin = service.token("ops", "admin")
    before = service.client.get("/v1/tokens", headers=bearer(admin)).json()
    for tenant in ("a\nb", " acme", "bidi\u202e", ""):
        answer = service.client.post(
            "/v1/tokens", json={"tenant": tenant, "scopes": ["events:read"]}, headers=bearer(admin)
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["errors"][0]["parameter"] == "tenant"
    named = service.client.post(
        "/v1/tokens", json={"tenant": "acme", "scopes": ["events:read"], "name": "ci\n"}, headers=bearer(admin)
    )
    assert named.status_code == 422
    assert service.client.get("/v1/tokens", headers=bearer(admin)).json() == before


def test_the_audit_event_keeps_its_target_whatever_the_path_holds(service: Service) -> None:
    admin = service.token("ops", "admin")
    answer = service.client.delete("/v1/tokens/a%0Ab%00c", headers=bearer(admin))
    assert answer.status_code == 404
    service.settle()
    events = service.client.get(
        "/v1/events", params={"q": "action:eventlog.tokens.revoke"}, headers=bearer(admin)
    ).json()["events"]
    (event,) = events
    assert event["target"] == {"type": "token", "id": "a\ufffdb\ufffdc"}
    assert event["outcome"] == "failure"
