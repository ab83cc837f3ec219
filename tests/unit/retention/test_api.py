"""/v1/holds and /v1/retention/run on the embedded store: scopes, validation, self-audit."""

from __future__ import annotations

from retention.api import RetentionParts
from tests.app import Service, bearer


def test_holds_need_admin_and_valid_ranges(service: Service) -> None:
    admin = bearer(service.token("ops", "admin"))
    reader = bearer(service.token("acme", "events:read,events:write"))
    assert service.client.post("/v1/holds", json={"tenant": "acme", "reason": "x"}, headers=reader).status_code == 403
    assert service.client.get("/v1/holds", headers=reader).status_code == 403
    bad = service.client.post(
        "/v1/holds",
        json={"tenant": "acme", "reason": "x", "since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
        headers=admin,
    )
    assert bad.status_code == 400
    assert bad.json()["errors"] == [{"parameter": "since", "message": "must lie before `until`"}]
    naive = service.client.post(
        "/v1/holds", json={"tenant": "acme", "reason": "x", "since": "2026-11-02T00:00:00"}, headers=admin
    )
    assert naive.status_code == 400  # a time without offset is ambiguous
    assert naive.json()["errors"][0]["parameter"] == "since"
    for seconds in (1_700_000_000, "1700000000"):
        number = service.client.post(
            "/v1/holds", json={"tenant": "acme", "reason": "x", "until": seconds}, headers=admin
        )
        assert number.status_code == 400  # documented as RFC 3339 text; Unix seconds are refused
        assert number.json()["errors"][0]["parameter"] == "until"
    for field, text in (("until", "9999-12-31T23:00:00-05:00"), ("since", "0001-01-01T00:00:00+01:00")):
        beyond = service.client.post("/v1/holds", json={"tenant": "acme", "reason": "x", field: text}, headers=admin)
        assert beyond.status_code == 400, beyond.text  # past the calendar once in UTC
        assert beyond.json()["errors"][0]["parameter"] == field
    missing = service.client.post("/v1/holds", json={"tenant": "acme"}, headers=admin)
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["parameter"] == "reason"
    assert service.client.delete("/v1/holds/nope", headers=admin).status_code == 404

    placed = service.client.post("/v1/holds", json={"tenant": "acme", "reason": "case 9"}, headers=admin)
    assert placed.status_code == 201
    (listed,) = service.client.get("/v1/holds", headers=admin).json()
    assert listed == placed.json()
    assert listed["placed_by"]
    assert listed["released_at"] is None
    # The hold is an event of the admin's tenant, with the hold as its target.
    service.settle()
    events = service.client.get(
        "/v1/events", params={"q": "action:eventlog.holds.place outcome:success"}, headers=admin
    ).json()
    (event,) = events["events"]
    assert event["target"] == {"type": "hold", "id": listed["id"], "name": "acme"}


def test_a_run_while_one_is_in_progress_answers_409(service: Service) -> None:
    admin = bearer(service.token("ops", "admin"))
    scheduler = service.client.app.state.ctx.part(RetentionParts).scheduler  # type: ignore[attr-defined]
    assert (
        service.client.post("/v1/retention/run", headers=bearer(service.token("x", "events:read"))).status_code == 403
    )

    async def hold_lock() -> None:
        await scheduler._running.acquire()

    service.client.portal.call(hold_lock)  # type: ignore[union-attr]
    try:
        busy = service.client.post("/v1/retention/run", headers=admin)
        assert busy.status_code == 409
        assert "try later" in busy.json()["message"]
        # A dry run only reads, so it does not wait for the lock.
        assert service.client.post("/v1/retention/run", params={"dry_run": "true"}, headers=admin).status_code == 200
    finally:
        scheduler._running.release()
    done = service.client.post("/v1/retention/run", headers=admin)
    assert done.status_code == 200
    assert done.json()["failures"] == []


def test_a_hold_takes_only_a_tenant_a_token_could_have(service: Service) -> None:
    admin = bearer(service.token("ops", "admin"))
    for tenant in ("a\nb", "bidi\u202e", " acme", "x" * 129):
        answer = service.client.post("/v1/holds", json={"tenant": tenant, "reason": "case 9"}, headers=admin)
        assert answer.status_code == 400, answer.text
        assert answer.json()["errors"][0]["parameter"] == "tenant"
    assert service.client.get("/v1/holds", headers=admin).json() == []


def test_the_audit_event_of_a_release_keeps_its_target_whatever_the_path_holds(service: Service) -> None:
    admin = bearer(service.token("ops", "admin"))
    assert service.client.delete("/v1/holds/x%0Ay", headers=admin).status_code == 404
    service.settle()
    (event,) = service.client.get("/v1/events", params={"q": "action:eventlog.holds.release"}, headers=admin).json()[
        "events"
    ]
    assert event["target"] == {"type": "hold", "id": "x\ufffdy"}
