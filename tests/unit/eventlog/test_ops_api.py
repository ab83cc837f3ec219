"""/healthz, /readyz, /metrics and /docs."""

from __future__ import annotations

from tests.app import Service, bearer


def test_health_ready_and_docs(service: Service) -> None:
    assert service.client.get("/healthz").json() == {"status": "ok"}
    ready = service.client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["journal"]["writable"] is True
    assert set(ready["sinks"]) == {"sqlite"}
    assert service.client.get("/docs").status_code == 200
    paths = service.client.get("/openapi.json").json()["paths"]
    assert {"/v1/events", "/v1/events/{event_id}", "/v1/tokens", "/readyz"} <= set(paths)


def test_readyz_shows_sink_catching_up(service: Service) -> None:
    token = service.token("acme")
    service.client.post("/v1/events", json={"events": [{"action": "a"}] * 10}, headers=bearer(token))
    service.settle()
    sink = service.client.get("/readyz").json()["sinks"]["sqlite"]
    assert sink["lag_events"] == 0
    detail = service.readiness()
    assert detail["sinks"]["sqlite"]["cursor"] == detail["journal"]["last_seq"] >= 10
    metrics = service.client.get("/metrics").text
    assert 'eventlog_sink_lag_events{sink="sqlite"} 0.0' in metrics
    assert 'eventlog_sink_delivered_events_total{sink="sqlite"}' in metrics


def test_public_readyz_answers_state_and_counts_only(service: Service) -> None:
    answer = service.client.get("/readyz")
    assert answer.status_code == 200
    body = answer.json()
    assert body == {
        "status": "ready",
        "journal": {"writable": True},
        "sinks": {"sqlite": {"state": body["sinks"]["sqlite"]["state"], "lag_events": 0, "lag_seconds": 0.0}},
        "retention": {"state": "not_run", "removed_events": 0, "failure_count": 0},
    }


def test_readyz_with_an_admin_token_shows_the_detail(service: Service) -> None:
    detail = service.readiness()
    assert set(detail["journal"]) == {"writable", "stream", "last_seq"}
    assert set(detail["sinks"]["sqlite"]) == {"state", "cursor", "lag_events", "lag_seconds", "last_error"}
    assert set(detail["retention"]) == {"last_finished_at", "last_error", "last"}
    description = service.client.get("/openapi.json").json()["paths"]["/readyz"]["get"]["description"]
    assert "admin" in description


def test_readyz_refuses_a_token_that_is_not_admin(service: Service) -> None:
    refused = service.client.get("/readyz", headers=bearer(service.token("acme", "events:read")))
    assert refused.status_code == 403
    assert "no Authorization header" in refused.json()["message"]
    assert service.client.get("/readyz", headers=bearer("evl_nope")).status_code == 401


def test_responses_carry_a_request_id(service: Service) -> None:
    echoed = service.client.get("/healthz", headers={"X-Request-ID": "req-123"})
    assert echoed.headers["x-request-id"] == "req-123"
    generated = service.client.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"})
    assert generated.headers["x-request-id"] != "bad id\twith tab"
    assert len(generated.headers["x-request-id"]) == 36


def test_unknown_path_is_404_json(service: Service) -> None:
    answer = service.client.get("/v9/nothing")
    assert answer.status_code == 404
    assert "/docs" in answer.json()["message"]
