"""POST /v1/events: receipts, limits, item errors, all-or-nothing, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from eventlog.app.service import create_app
from tests.app import Service, bearer, make_settings


def _event(**fields: Any) -> dict[str, Any]:
    return {"action": "storage.tables.create", "message": "created a table", **fields}


def _stored_count(service: Service, token: str) -> int:
    service.settle()
    body = service.client.get("/v1/events", params={"source": "api", "limit": 1000}, headers=bearer(token)).json()
    return len(body["events"])


def test_single_event_answers_201_with_receipt_and_is_readable(service: Service) -> None:
    token = service.token("acme")
    answer = service.client.post("/v1/events", json=_event(actor={"id": "u1", "ip": "10.1.2.3"}), headers=bearer(token))
    assert answer.status_code == 201
    (receipt,) = answer.json()["receipts"]
    assert receipt["duplicate"] is False
    assert len(receipt["hash"]) == 64

    stored = service.client.get(f"/v1/events/{receipt['id']}", headers=bearer(token)).json()
    assert stored["tenant"] == "acme"
    assert stored["chain"]["hash"] == receipt["hash"]
    assert stored["actor"] == {"id": "u1", "ip": "10.1.2.3"}
    assert stored["source"] == "api"
    assert stored["time"] == stored["received_at"]


def test_batch_answers_one_receipt_per_event_in_order(service: Service) -> None:
    token = service.token("acme")
    events = [_event(id=f"client-{i}", message=f"event {i}") for i in range(5)]
    answer = service.client.post("/v1/events", json={"events": events}, headers=bearer(token))
    assert answer.status_code == 201
    assert [r["id"] for r in answer.json()["receipts"]] == [f"client-{i}" for i in range(5)]


def test_replay_of_client_id_answers_200_duplicate_with_original_hash(service: Service) -> None:
    token = service.token("acme")
    first = service.client.post("/v1/events", json=_event(id="retry-1"), headers=bearer(token))
    again = service.client.post("/v1/events", json=_event(id="retry-1", message="changed"), headers=bearer(token))
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["receipts"] == [
        {"id": "retry-1", "hash": first.json()["receipts"][0]["hash"], "duplicate": True}
    ]
    assert _stored_count(service, token) == 1


def test_same_client_id_in_two_tenants_is_two_events(service: Service) -> None:
    one, two = service.token("one"), service.token("two")
    assert service.client.post("/v1/events", json=_event(id="x-1"), headers=bearer(one)).status_code == 201
    assert service.client.post("/v1/events", json=_event(id="x-1"), headers=bearer(two)).status_code == 201


def test_duplicate_ids_inside_one_batch_store_once(service: Service) -> None:
    token = service.token("acme")
    answer = service.client.post("/v1/events", json={"events": [_event(id="d"), _event(id="d")]}, headers=bearer(token))
    receipts = answer.json()["receipts"]
    assert [r["duplicate"] for r in receipts] == [False, True]
    assert receipts[0]["hash"] == receipts[1]["hash"]


def test_invalid_json_is_400(service: Service) -> None:
    token = service.token("acme")
    answer = service.client.post("/v1/events", content=b"{not json", headers=bearer(token))
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_json"


@pytest.mark.parametrize(
    ("event", "pointer", "phrase"),
    [
        ({"message": "no action"}, "/events/1/action", "required"),
        (_event(outcome="maybe"), "/events/1/outcome", "success"),
        (_event(actor={"ip": "999.1.1.1"}), "/events/1/actor/ip", "IP"),
        (_event(actor={"id": "a\nb"}), "/events/1/actor/id", "control characters"),
        (_event(request={"status": 99}), "/events/1/request/status", "greater than or equal to 100"),
        (_event(time="2026-01-01T00:00:00"), "/events/1/time", "UTC offset"),
        (
            _event(details={"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}),
            "/events/1/details/a/b/c/d/e/f/g/h",
            "nested",
        ),
        (_event(details={"n": [2**53]}), "/events/1/details/n/0", "as a string"),
        (_event(details={"blob": "x" * 4097}), "/events/1/details/blob", "at most 4096"),
        (_event(unknown=1), "/events/1/unknown", "Extra inputs"),
        (_event(tenant="evil"), "/events/1/tenant", "token"),
        (_event(chain={"seq": 1}), "/events/1/chain", "server"),
        (_event(source="eventlog"), "/events/1/source", "reserved"),
        (_event(source="cloudtrail"), "/events/1/source", "reserved"),
        (_event(id="has space"), "/events/1/id", "pattern"),
        (
            _event(id="cloudtrail:5f0c3b8e-2a7d-5e41-9c3b-0d8e7f6a5b4c"),
            "/events/1/id",
            "`cloudtrail:` are the service's",
        ),
        (_event(id="CloudTrail:x"), "/events/1/id", "service's own"),
        (_event(id="eventlog:x"), "/events/1/id", "service's own"),
        ("not an object", "/events/1", "object"),
    ],
)
def test_bad_event_is_422_naming_index_and_pointer_and_stores_nothing(
    service: Service, event: Any, pointer: str, phrase: str
) -> None:
    token = service.token("acme")
    answer = service.client.post("/v1/events", json={"events": [_event(id="good"), event]}, headers=bearer(token))
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["errors"][0]["index"] == 1
    assert body["errors"][0]["pointer"] == pointer
    assert phrase.lower() in body["errors"][0]["message"].lower()
    assert _stored_count(service, token) == 0


def test_single_event_errors_point_into_the_object(service: Service) -> None:
    token = service.token("acme")
    answer = service.client.post("/v1/events", json={"action": ""}, headers=bearer(token))
    assert answer.status_code == 422
    assert answer.json()["errors"][0] == {
        "index": 0,
        "pointer": "/action",
        "message": "String should have at least 1 character",
    }


def test_time_window_is_retention_back_and_five_minutes_ahead(service: Service) -> None:
    token = service.token("acme")
    now = datetime.now(UTC)
    inside = [now - timedelta(days=13, hours=23), now + timedelta(minutes=4)]
    outside = [now - timedelta(days=14, minutes=1), now + timedelta(minutes=6)]
    for when in inside:
        answer = service.client.post("/v1/events", json=_event(time=when.isoformat()), headers=bearer(token))
        assert answer.status_code == 201, answer.text
    for when in outside:
        answer = service.client.post("/v1/events", json=_event(time=when.isoformat()), headers=bearer(token))
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["pointer"] == "/time"
    # Offsets that carry the ends of the calendar past year 9999 or before year 1 in UTC.
    for text in ("9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+01:00"):
        answer = service.client.post("/v1/events", json=_event(time=text), headers=bearer(token))
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["pointer"] == "/time"


def test_client_time_is_kept_in_utc_with_microseconds(service: Service) -> None:
    token = service.token("acme")
    when = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=123456)
    local = when.astimezone(datetime.now().astimezone().tzinfo).isoformat()
    receipt = service.client.post("/v1/events", json=_event(time=local), headers=bearer(token)).json()["receipts"][0]
    stored = service.client.get(f"/v1/events/{receipt['id']}", headers=bearer(token)).json()
    assert stored["time"] == when.strftime("%Y-%m-%dT%H:%M:%S.123456Z")


def test_too_many_events_is_413(service: Service) -> None:
    token = service.token("acme")
    events = [_event() for _ in range(service.settings.max_request_events + 1)]
    answer = service.client.post("/v1/events", json={"events": events}, headers=bearer(token))
    assert answer.status_code == 413
    assert "split the batch" in answer.json()["message"]


def test_oversized_event_is_413_naming_it(service: Service) -> None:
    token = service.token("acme")
    big = _event(details={"blob": ["x" * 4000] * 17})
    answer = service.client.post("/v1/events", json={"events": [_event(), big]}, headers=bearer(token))
    assert answer.status_code == 413
    assert answer.json()["errors"][0]["index"] == 1
    assert _stored_count(service, token) == 0


def test_oversized_body_is_413_before_parsing(service: Service) -> None:
    token = service.token("acme")
    body = b" " * (service.settings.max_request_bytes + 1)
    answer = service.client.post("/v1/events", content=body, headers=bearer(token))
    assert answer.status_code == 413
    assert answer.json()["error"] == "body_too_large"


@pytest.mark.parametrize(
    ("payload", "pointer"),
    [([_event()], ""), ({"events": {}}, "/events"), ({"events": []}, "/events"), ({"events": [], "x": 1}, "/x")],
)
def test_malformed_batches_are_422(service: Service, payload: Any, pointer: str) -> None:
    token = service.token("acme")
    answer = service.client.post("/v1/events", content=orjson.dumps(payload), headers=bearer(token))
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["pointer"] == pointer


def test_write_needs_events_write_scope(service: Service) -> None:
    reader = service.token("acme", "events:read")
    answer = service.client.post("/v1/events", json=_event(), headers=bearer(reader))
    assert answer.status_code == 403
    assert "events:write" in answer.json()["message"]


def test_accepted_and_rejected_events_are_counted_in_metrics(service: Service) -> None:
    token = service.token("acme")
    service.client.post("/v1/events", json={"events": [_event(), _event()]}, headers=bearer(token))
    service.client.post("/v1/events", json={"action": ""}, headers=bearer(token))
    metrics = service.client.get("/metrics").text
    assert 'eventlog_events_accepted_total{source="api"} 2.0' in metrics
    assert 'eventlog_events_rejected_total{reason="invalid_events"} 1.0' in metrics
    assert "eventlog_journal_commit_seconds_count" in metrics


def test_ids_that_only_resemble_a_reserved_namespace_are_a_clients(service: Service) -> None:
    token = service.token("acme")
    ids = ["cloudtrail", "cloudtrail-1", "cloudtrail.x:1", "my:cloudtrail:1", "eventlogs:1"]
    answer = service.client.post("/v1/events", json={"events": [_event(id=i) for i in ids]}, headers=bearer(token))
    assert answer.status_code == 201, answer.text
    assert [r["id"] for r in answer.json()["receipts"]] == ids


def test_every_rfc_9110_method_token_is_accepted_as_the_middleware_records_it(service: Service) -> None:
    token = service.token("acme")
    methods = ["GET", "M-SEARCH", "PRIVATE_METHOD", "BREW", "X.1~!#$%&'*+^`|"]
    events = [_event(id=f"m-{i}", request={"method": method}) for i, method in enumerate(methods)]
    answer = service.client.post("/v1/events", json={"events": events}, headers=bearer(token))
    assert answer.status_code == 201, answer.text
    stored = [service.client.get(f"/v1/events/m-{i}", headers=bearer(token)).json() for i in range(len(methods))]
    assert [event["request"]["method"] for event in stored] == methods


@pytest.mark.parametrize("method", ["G T", "A/B", "GÉT", "GET\n", "(GET)", "X" * 17])
def test_a_method_that_is_no_rfc_9110_token_is_422(service: Service, method: str) -> None:
    token = service.token("acme")
    answer = service.client.post("/v1/events", json=_event(request={"method": method}), headers=bearer(token))
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["pointer"] == "/request/method"


@pytest.mark.parametrize(
    ("event", "pointer"),
    [
        (_event(actor={"ip": False}), "/events/1/actor/ip"),
        (_event(actor={"ip": 167772167}), "/events/1/actor/ip"),
        (_event(request={"status": "201"}), "/events/1/request/status"),
        (_event(request={"bytes_out": False}), "/events/1/request/bytes_out"),
        (_event(request={"duration_ms": "12"}), "/events/1/request/duration_ms"),
        # Unix seconds of a minute ago: inside the retention window, but no RFC 3339 time.
        (_event(time=int(datetime.now(UTC).timestamp()) - 60), "/events/1/time"),
        (_event(time=str(int(datetime.now(UTC).timestamp()) - 60)), "/events/1/time"),
    ],
)
def test_a_value_of_the_wrong_json_type_is_422_not_converted(service: Service, event: Any, pointer: str) -> None:
    token = service.token("acme")
    answer = service.client.post("/v1/events", json={"events": [_event(), event]}, headers=bearer(token))
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"] == [
        {"index": 1, "pointer": pointer, "message": answer.json()["errors"][0]["message"]}
    ]
    assert _stored_count(service, token) == 0


def test_a_time_beyond_year_9999_in_utc_is_422(service: Service) -> None:
    token = service.token("acme")
    answer = service.client.post("/v1/events", json=_event(time="9999-12-31T23:59:59-01:00"), headers=bearer(token))
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["pointer"] == "/time"


def test_a_details_key_longer_than_the_limit_is_422_naming_its_path(service: Service) -> None:
    token = service.token("acme")
    key = "k" * 60_000
    answer = service.client.post(
        "/v1/events", json={"events": [_event(), _event(details={"a": [{key: 1}]})]}, headers=bearer(token)
    )
    assert answer.status_code == 422
    (error,) = answer.json()["errors"]
    assert error["index"] == 1
    assert error["pointer"] == f"/events/1/details/a/0/{key}"
    assert "60000 characters; at most 256 per key" in error["message"]
    ok = service.client.post("/v1/events", json=_event(details={"k" * 256: 1}), headers=bearer(token))
    assert ok.status_code == 201


def test_the_details_key_limit_is_a_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", max_details_key_chars=8)
    with TestClient(create_app(settings)) as client:
        token = Service(client, settings).token("acme")
        assert client.post("/v1/events", json=_event(details={"k" * 8: 1}), headers=bearer(token)).status_code == 201
        answer = client.post("/v1/events", json=_event(details={"k" * 9: 1}), headers=bearer(token))
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["pointer"] == "/details/kkkkkkkkk"


def _nested(levels: int, opening: bytes = b'{"a":', closing: bytes = b"}", leaf: bytes = b"1") -> bytes:
    return opening * levels + leaf + closing * levels


@pytest.mark.parametrize("levels", [9, 253, 300, 1023, 1100, 50_000])
@pytest.mark.parametrize("batch", [False, True])
def test_details_nested_at_any_depth_is_422_with_the_pointer(service: Service, levels: int, batch: bool) -> None:
    token = service.token("acme")
    event = b'{"action": "a.b", "details": ' + _nested(levels) + b"}"
    body = b'{"events": [{"action": "a.b"}, ' + event + b"]}" if batch else event
    answer = service.client.post("/v1/events", content=body, headers=bearer(token))
    assert answer.status_code == 422, answer.text[:500]
    (error,) = answer.json()["errors"]
    # details is level 1 of details: the container 8 levels below it is the first one too deep
    assert error["pointer"] == ("/events/1" if batch else "") + "/details" + "/a" * 8
    assert error["index"] == (1 if batch else 0)
    assert "nested deeper than 8 levels" in error["message"]


@pytest.mark.parametrize("levels", [300, 2000])
def test_other_fields_nested_deep_are_422_too(service: Service, levels: int) -> None:
    token = service.token("acme")
    body = b'{"action": "a.b", "actor": {"id": ' + _nested(levels, b"[", b"]") + b"}}"
    answer = service.client.post("/v1/events", content=body, headers=bearer(token))
    assert answer.status_code == 422, answer.text[:500]
    assert answer.json()["errors"][0]["pointer"].startswith("/actor/id/0/0")
