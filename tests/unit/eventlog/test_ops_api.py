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
    assert sink["cursor"] == service.client.get("/readyz").json()["journal"]["last_seq"]
    metrics = service.client.get("/metrics").text
    assert 'eventlog_sink_lag_events{sink="sqlite"} 0.0' in metrics
    assert 'eventlog_sink_delivered_events_total{sink="sqlite"}' in metrics


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
