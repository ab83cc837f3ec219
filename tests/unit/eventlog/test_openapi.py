"""The OpenAPI document itself: security, statuses, error schemas, request bodies, content types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from eventlog.openapi import error_responses, inline_refs
from eventlog.tokens import SCOPES
from tests.app import Service, bearer

PUBLIC = {"/healthz", "/readyz", "/metrics"}
ERROR_SCHEMAS = {"#/components/schemas/ErrorBody", "#/components/schemas/KeboolaErrorBody"}
BODIES = {
    ("post", "/v1/events"): {"application/json"},
    ("post", "/v2/storage/events"): {"application/json", "application/x-www-form-urlencoded"},
    ("post", "/v1/tokens"): {"application/json"},
    ("post", "/v1/holds"): {"application/json"},
}


@pytest.fixture
def document(service: Service) -> dict[str, Any]:
    answer = service.client.get("/openapi.json")
    assert answer.status_code == 200
    found: dict[str, Any] = answer.json()
    return found


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        assert isinstance(node, dict), f"{ref} does not resolve"
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def body_schema(document: dict[str, Any], method: str, path: str, media: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["paths"][path][method]["requestBody"]["content"][media]["schema"]
    if "$ref" in schema:
        schema = resolve(document, schema["$ref"])
    return schema


def validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator for a schema of the document, its `#/components/...` references included."""
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def test_every_operation_but_the_public_ones_needs_a_token(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "evl_…",
        "description": schemes["bearer"]["description"],
    }
    assert schemes["X-StorageApi-Token"]["type"] == "apiKey"
    assert schemes["X-StorageApi-Token"]["in"] == "header"
    for method, path, operation in operations(document):
        if path in PUBLIC:
            assert "security" not in operation, f"{method} {path} is public"
            continue
        expected = "X-StorageApi-Token" if path.startswith("/v2/storage/") else "bearer"
        assert operation.get("security") == [{expected: []}], f"{method} {path}"
    # The UI and the docs are served but are not operations of the API.
    assert not {"/", "/docs", "/openapi.json"} & set(document["paths"])


def test_every_operation_declares_the_statuses_it_can_answer(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        statuses = set(operation["responses"])
        label = f"{method.upper()} {path}"
        assert statuses & {"200", "201"}, label
        if path not in PUBLIC:
            assert {"401", "403", "429"} <= statuses, label
        if operation.get("parameters") or operation.get("requestBody"):
            assert "400" in statuses, label
        if "{" in path:
            assert "404" in statuses, label
        for status, answer in operation["responses"].items():
            for media, content in answer.get("content", {}).items():
                assert content.get("schema"), f"{label} {status} {media} has no schema"
    writes = {("post", "/v1/events"), ("post", "/v2/storage/events")}
    for method, path in writes:
        assert {"413", "422", "503"} <= set(document["paths"][path][method]["responses"])
    assert "409" in document["paths"]["/v1/retention/run"]["post"]["responses"]
    assert "415" in document["paths"]["/v2/storage/events"]["post"]["responses"]


def test_error_answers_use_the_error_body_and_it_resolves(service: Service, document: dict[str, Any]) -> None:
    # FastAPI's own 422 (HTTPValidationError) would be a lie: a bad parameter is answered 400.
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, operation in operations(document):
        for status, answer in operation["responses"].items():
            if not status.startswith(("4", "5")) or path == "/readyz":
                continue
            schema = answer["content"]["application/json"]["schema"]
            assert schema.get("$ref") in ERROR_SCHEMAS, f"{method} {path} {status}: {schema}"
            if status in {"401", "429", "503"}:
                assert answer["headers"], f"{method} {path} {status} names no header"
    for ref in set(refs(document)):
        resolve(document, ref)
    check = validator(document, resolve(document, "#/components/schemas/ErrorBody"))
    assert not check.is_valid({"message": "no code"})
    token = service.token("acme")
    answers = [
        service.client.get("/v1/events", params={"q": "body:x"}, headers=bearer(token)),
        service.client.get("/v1/events", params={"limit": 0, "since": "1"}, headers=bearer(token)),
        service.client.post("/v1/events", json={"events": [{"action": "a"}, {"tenant": "x"}]}, headers=bearer(token)),
        service.client.post("/v1/events", content=b"{", headers=bearer(token)),
        service.client.get("/v1/events/nope", headers=bearer(token)),
        service.client.get("/v1/tokens", headers=bearer(token)),
        service.client.get("/v1/events"),
    ]
    for answer in answers:
        assert answer.status_code in {400, 401, 403, 404, 422}, answer.text
        check.validate(answer.json())
    keboola = validator(document, resolve(document, "#/components/schemas/KeboolaErrorBody"))
    assert not keboola.is_valid({"error": "invalid_event", "message": "fix"})
    for answer in (
        service.client.post("/v2/storage/events", json={"component": "c"}, headers={"X-StorageApi-Token": token}),
        service.client.get("/v2/storage/events", params={"limit": 0}, headers={"X-StorageApi-Token": token}),
        service.client.get("/v2/storage/events"),
    ):
        assert answer.status_code in {400, 401, 422}, answer.text
        keboola.validate(answer.json())


def test_request_bodies_are_declared_from_the_models(document: dict[str, Any]) -> None:
    declared = {
        (method, path): set(operation["requestBody"]["content"])
        for method, path, operation in operations(document)
        if "requestBody" in operation
    }
    assert declared == BODIES
    events = validator(document, body_schema(document, "post", "/v1/events", "application/json"))
    event: dict[str, Any] = {
        "action": "storage.tables.create",
        "time": "2026-11-27T14:00:00Z",
        "actor": {"ip": "10.0.0.1"},
    }
    events.validate(event)
    events.validate({"events": [event, {"action": "a"}]})
    bad_events: list[dict[str, Any]] = [
        {},
        {"events": []},
        {**event, "tenant": "x"},
        {"events": [event], "more": 1},
        {**event, "time": 1},
    ]
    for bad in bad_events:
        assert not events.is_valid(bad), bad

    keboola = validator(document, body_schema(document, "post", "/v2/storage/events", "application/json"))
    keboola.validate({"component": "keboola.ex-db", "message": "done", "type": "success", "runId": 7, "params": []})
    bad_keboola: list[dict[str, Any]] = [
        {"message": "no component"},
        {"component": "c", "message": "m", "id": "1"},
        {"component": "c"},
    ]
    for bad in bad_keboola:
        assert not keboola.is_valid(bad), bad
    form = validator(document, body_schema(document, "post", "/v2/storage/events", "application/x-www-form-urlencoded"))
    form.validate({"component": "c", "message": "m", "params": '{"a": 1}'})
    assert not form.is_valid({"component": "c", "message": "m", "params[a]": "1"})


def test_scopes_and_times_are_constrained_in_the_document(document: dict[str, Any]) -> None:
    token = resolve(document, "#/components/schemas/TokenRequest")
    assert token["properties"]["scopes"]["items"]["enum"] == sorted(SCOPES)
    hold = resolve(document, "#/components/schemas/HoldRequest")
    assert {"type": "string", "format": "date-time"} in hold["properties"]["since"]["anyOf"]
    since = next(p for p in document["paths"]["/v1/events"]["get"]["parameters"] if p["name"] == "since")
    assert {"type": "string", "format": "date-time", "maxLength": 64} in since["schema"]["anyOf"]


def test_responses_declare_their_real_content_types(service: Service, document: dict[str, Any]) -> None:
    def media(path: str) -> set[str]:
        return set(document["paths"][path]["get"]["responses"]["200"]["content"])

    assert media("/v1/events/export") == {"application/x-ndjson", "text/csv"}
    assert media("/v1/events/tail") == {"text/event-stream"}
    (metrics,) = media("/metrics")
    assert service.client.get("/metrics").headers["content-type"] == metrics
    for path in ("/v1/events", "/v1/events/{event_id}", "/v2/storage/events", "/v1/events/histogram"):
        assert media(path) == {"application/json"}
        assert document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"], path


def test_error_responses_adds_the_answers_of_authentication() -> None:
    answers = error_responses(404, notes={404: "No such thing."})
    assert set(answers) == {401, 403, 404, 429, 503}  # 503: a cluster's token index does not answer
    assert answers[404]["description"] == "No such thing."
    assert set(error_responses(authenticated=False)) == set()
    with pytest.raises(ValueError, match="418"):
        error_responses(418)


class Leaf(BaseModel):
    value: int


class Branch(BaseModel):
    left: Leaf
    right: Leaf | None = None


class Loop(BaseModel):
    again: Loop | None = None


def test_inline_refs_makes_a_schema_self_contained() -> None:
    schema = inline_refs(Branch.model_json_schema())
    assert "$defs" not in schema
    assert not list(refs(schema))
    assert schema["properties"]["left"]["properties"]["value"]["type"] == "integer"
    jsonschema.Draft202012Validator(schema).validate({"left": {"value": 1}, "right": None})
    with pytest.raises(ValueError, match="Loop refers to itself"):
        inline_refs(Loop.model_json_schema())
