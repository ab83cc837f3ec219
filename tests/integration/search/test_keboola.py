"""The Keboola Storage API events facade, on every backend: the embedded store and a real OpenSearch node."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from eventlog.tokens import PREFIX
from tests.app import Service, bearer

EVENTS = "/v2/storage/events"
CREATED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\+0000")
UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")


def kbc(token: str) -> dict[str, str]:
    return {"X-StorageApi-Token": token}


def token_id(secret: str) -> str:
    return secret[len(PREFIX) :].split("_")[0]


def _create(service: Service, token: str, **fields: Any) -> dict[str, Any]:
    answer = service.client.post(EVENTS, json=fields, headers=kbc(token))
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _list(service: Service, token: str, **params: Any) -> list[dict[str, Any]]:
    answer = service.client.get(EVENTS, params=params, headers=kbc(token))
    assert answer.status_code == 200, answer.text
    body: list[dict[str, Any]] = answer.json()
    return body


def _get(service: Service, token: str, key: str) -> dict[str, Any]:
    answer = service.client.get(f"{EVENTS}/{key}", headers=kbc(token))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_post_then_get_by_id_and_by_uuid(any_service: Service) -> None:
    service = any_service
    token = service.token("acme")
    created = _create(
        service,
        token,
        component="ex-sfdc",
        configurationId="sys.c-sfdc.account-01",
        duration=200,
        type="info",
        runId="ddddssss",
        message="Table Opportunity fetched.",
        description="Some longer description of event",
        params={"accountName": "Keboola", "configuration": "sys.c-sfdc.sfdc-01"},
        results={"rows": 42},
    )
    assert created["id"].isdigit()
    assert UUID7.fullmatch(created["uuid"])
    assert CREATED.fullmatch(created["created"])
    assert created == {
        "id": created["id"],
        "uuid": created["uuid"],
        "event": "ext.ex-sfdc.",
        "component": "ex-sfdc",
        "message": "Table Opportunity fetched.",
        "description": "Some longer description of event",
        "type": "info",
        "runId": "ddddssss",
        "created": created["created"],
        "configurationId": "sys.c-sfdc.account-01",
        "objectId": None,
        "objectName": None,
        "objectType": None,
        "context": {"httpUserAgent": "testclient"},
        "params": {"accountName": "Keboola", "configuration": "sys.c-sfdc.sfdc-01"},
        "results": {"rows": 42},
        "performance": {"duration": 200},
        "token": {"id": token_id(token), "name": None},
    }
    # Acknowledged means readable, from the journal until the store has it.
    assert _get(service, token, created["id"]) == created
    service.settle()
    assert _get(service, token, created["id"]) == created
    assert _get(service, token, created["uuid"]) == created

    native = service.client.get(f"/v1/events/{created['uuid']}", headers=bearer(token)).json()
    assert native["action"] == "ext.ex-sfdc."
    assert native["outcome"] == "unknown"
    assert native["source"] == "api"
    assert native["actor"] == {"type": "token", "id": token_id(token), "user_agent": "testclient"}
    assert native["chain"]["seq"] == int(created["id"])
    assert native["details"] == {
        "keboola": {
            "component": "ex-sfdc",
            "type": "info",
            "description": "Some longer description of event",
            "runId": "ddddssss",
            "configurationId": "sys.c-sfdc.account-01",
            "duration": 200,
            "params": {"accountName": "Keboola", "configuration": "sys.c-sfdc.sfdc-01"},
            "results": {"rows": 42},
        }
    }


def test_form_encoded_post_like_the_php_client(any_service: Service) -> None:
    """createEventWithFormData: urlencoded fields, params and results as JSON text, empty ones left blank."""
    service = any_service
    token = service.token("acme")
    answer = service.client.post(
        EVENTS,
        content="component=keboola.ex-db&message=Imported%20%C5%BEluou%C4%8Dk%C3%BD&type=success"
        "&params=%7B%22table%22%3A%22in.c-main.sales%22%7D&results=%5B%5D&duration=1.5&runId=&description=",
        headers={**kbc(token), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert (created["component"], created["message"], created["type"]) == (
        "keboola.ex-db",
        "Imported žluoučký",
        "success",
    )
    assert (created["params"], created["results"], created["performance"]) == (
        {"table": "in.c-main.sales"},
        {},
        {"duration": 1.5},
    )
    assert (created["runId"], created["description"]) == (None, "")
    service.settle()
    assert _get(service, token, created["id"]) == created
    native = service.client.get(f"/v1/events/{created['uuid']}", headers=bearer(token)).json()
    assert native["outcome"] == "success"


def test_type_event_and_object_fields_map_to_eventlog(any_service: Service) -> None:
    service = any_service
    token = service.token("acme", "events:write,events:read", name="orchestrator")
    outcomes = {"info": "unknown", "warn": "unknown", "success": "success", "error": "failure"}
    made = {
        kind: _create(
            service,
            token,
            component="storage",
            message=f"a {kind}",
            type=kind,
            event="storage.tableImportDone",
            objectType="table",
            objectId="in.c-main.sales",
            objectName="sales",
        )
        for kind in outcomes
    }
    service.settle()
    for kind, outcome in outcomes.items():
        created = made[kind]
        assert _get(service, token, created["id"]) == created
        assert created["type"] == kind
        assert created["event"] == "storage.tableImportDone"
        assert (created["objectType"], created["objectId"], created["objectName"]) == (
            "table",
            "in.c-main.sales",
            "sales",
        )
        assert created["token"] == {"id": token_id(token), "name": "orchestrator"}
        native = service.client.get(f"/v1/events/{created['uuid']}", headers=bearer(token)).json()
        assert native["outcome"] == outcome
        assert native["target"] == {"type": "table", "id": "in.c-main.sales", "name": "sales"}
        assert native["details"]["keboola"]["type"] == kind
    # The eventlog side finds them by its own fields.
    found = service.client.get(
        "/v1/events", params={"q": "target:in.c-main.sales outcome:failure"}, headers=bearer(token)
    ).json()["events"]
    assert [e["id"] for e in found] == [made["error"]["uuid"]]


@pytest.fixture
def loaded(any_service: Service) -> tuple[Service, str, list[dict[str, Any]]]:
    service = any_service
    token = service.token("acme")
    made = [
        _create(
            service,
            token,
            component="ex-sfdc",
            runId="run-1",
            configurationId="cfg-1",
            message="Table Opportunity fetched",
        ),
        _create(service, token, component="ex-sfdc", runId="run-1", type="success", message="Table Account fetched"),
        _create(
            service,
            token,
            component="transformation",
            runId=2024,
            type="error",
            message="Transformation failed",
            description="division by zero",
        ),
        _create(service, token, component="ex-fb", runId="2024", type="warn", message="Facebook quota close"),
    ]
    service.settle()
    return service, token, made


Params = Callable[[list[dict[str, Any]]], dict[str, Any]]
API = {"q": "source:api"}  # leaves out eventlog's own audit events of the calls


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (lambda m: API, [3, 2, 1, 0]),
        (lambda m: {**API, "sortOrder": "asc"}, [0, 1, 2, 3]),
        (lambda m: {**API, "sortOrder": "desc"}, [3, 2, 1, 0]),
        (lambda m: {**API, "limit": 2}, [3, 2]),
        (lambda m: {**API, "limit": 2, "offset": 1}, [2, 1]),
        (lambda m: {**API, "offset": 3}, [0]),
        (lambda m: {**API, "offset": 4}, []),
        (lambda m: {**API, "limit": 2, "offset": 1, "sortOrder": "asc"}, [1, 2]),
        (lambda m: {**API, "sinceId": m[0]["id"]}, [3, 2, 1]),
        (lambda m: {**API, "maxId": m[3]["id"]}, [2, 1, 0]),
        (lambda m: {**API, "sinceId": m[0]["id"], "maxId": m[3]["id"]}, [2, 1]),
        (lambda m: {**API, "sinceId": m[0]["uuid"], "maxId": m[3]["uuid"]}, [2, 1]),
        (lambda m: {**API, "sinceId": m[3]["id"]}, []),
        (lambda m: {**API, "sinceId": m[0]["id"], "limit": 1, "sortOrder": "asc"}, [1]),
        (lambda m: {"component": "ex-sfdc"}, [1, 0]),
        (lambda m: {"component": "transformation"}, [2]),
        (lambda m: {"component": "nothing"}, []),
        (lambda m: {"runId": "run-1"}, [1, 0]),
        (lambda m: {"runId": "2024"}, [3, 2]),
        (lambda m: {"configurationId": "cfg-1"}, [0]),
        (lambda m: {"runId": "run-1", "component": "ex-sfdc", "sinceId": m[0]["id"]}, [1]),
        (lambda m: {"q": "fetched"}, [1, 0]),
        (lambda m: {"q": "OPPORTUNITY"}, [0]),
        (lambda m: {"q": "division"}, [2]),
        (lambda m: {"q": "details.keboola.type:(error OR warn)"}, [3, 2]),
        (lambda m: {"q": "action:ext.ex-* -quota"}, [1, 0]),
    ],
)
def test_list_filters_and_pages(
    loaded: tuple[Service, str, list[dict[str, Any]]], params: Params, expected: list[int]
) -> None:
    service, token, made = loaded
    assert [e["uuid"] for e in _list(service, token, **params(made))] == [made[i]["uuid"] for i in expected]


def test_listed_events_are_the_created_ones(loaded: tuple[Service, str, list[dict[str, Any]]]) -> None:
    service, token, made = loaded
    assert _list(service, token, **API, sortOrder="asc") == made
    assert made[2]["runId"] == "2024"  # a numeric run id is kept as Keboola's string
    assert made[2]["description"] == "division by zero"


def test_eventlogs_own_events_show_as_component_eventlog(loaded: tuple[Service, str, list[dict[str, Any]]]) -> None:
    service, token, made = loaded
    audit = _list(service, token, component="eventlog", sortOrder="asc")
    assert [e["event"] for e in audit] == ["eventlog.keboola.create"] * 4
    assert all(e["type"] == "success" and e["token"]["id"] == token_id(token) for e in audit)
    service.settle()
    assert [e["event"] for e in _list(service, token, component="eventlog", limit=1)] == ["eventlog.keboola.list"]
    service.client.get(f"{EVENTS}/{made[0]['id']}", headers=kbc(token))
    service.client.get(f"{EVENTS}/999999999", headers=kbc(token))
    service.settle()
    native = service.client.get(
        "/v1/events", params={"source": "eventlog", "q": "action:eventlog.keboola.get"}, headers=bearer(token)
    ).json()["events"]
    assert sorted((e["outcome"], e["request"]["status"]) for e in native) == [("failure", 404), ("success", 200)]


def test_offset_walks_pages_of_the_store(any_service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("search.keboola._PAGE", 3)
    service = any_service
    token = service.token("acme")
    made = [_create(service, token, component="c", message=f"m{i}") for i in range(10)]
    service.settle()
    newest = [e["uuid"] for e in reversed(made)]
    assert [e["uuid"] for e in _list(service, token, component="c", limit=10)] == newest
    assert [e["uuid"] for e in _list(service, token, component="c", offset=4, limit=5)] == newest[4:9]
    assert [e["uuid"] for e in _list(service, token, component="c", offset=8, limit=5)] == newest[8:]


def test_events_written_through_v1_appear_mapped(any_service: Service) -> None:
    service = any_service
    token = service.token("acme")
    answer = service.client.post(
        "/v1/events",
        json={
            "events": [
                {
                    "action": "storage.tables.create",
                    "outcome": "failure",
                    "actor": {"type": "token", "id": "t-1", "name": "ci", "ip": "10.0.0.7", "user_agent": "curl/8"},
                    "target": {"type": "table", "id": "in.c-main.sales", "name": "sales"},
                    "message": "Could not create table sales",
                    "details": {"reason": "locked", "rows": 5},
                },
                {"action": "http.GET", "outcome": "success", "source": "middleware", "actor": {"type": "user"}},
                {"action": "noted", "message": "nothing else"},
            ]
        },
        headers=bearer(token),
    )
    assert answer.status_code == 201, answer.text
    first, second, third = (r["id"] for r in answer.json()["receipts"])
    service.settle()
    api = _list(service, token, component="api", sortOrder="asc")
    assert [e["uuid"] for e in api] == [first, third]
    event = api[0]
    seq = service.client.get(f"/v1/events/{first}", headers=bearer(token)).json()["chain"]["seq"]
    assert event == {
        "id": str(seq),
        "uuid": first,
        "event": "storage.tables.create",
        "component": "api",
        "message": "Could not create table sales",
        "description": "",
        "type": "error",
        "runId": None,
        "created": event["created"],
        "configurationId": None,
        "objectId": "in.c-main.sales",
        "objectName": "sales",
        "objectType": "table",
        "context": {"remoteAddr": "10.0.0.7", "httpUserAgent": "curl/8"},
        "params": {"reason": "locked", "rows": 5},
        "results": {},
        "performance": {},
        "token": {"id": "t-1", "name": "ci"},
    }
    assert CREATED.fullmatch(event["created"])
    assert _get(service, token, str(seq)) == event
    assert api[1]["type"] == "info"
    middleware = _list(service, token, component="middleware")
    assert [(e["uuid"], e["type"], e["token"], e["event"]) for e in middleware] == [
        (second, "success", None, "http.GET")
    ]
    assert [e["uuid"] for e in _list(service, token, q="locked")] == [first]


def test_keboola_fields_keep_their_documented_types_whatever_details_hold(any_service: Service) -> None:
    """An event written through /v1 may hold anything under details.keboola; the facade shows Keboola's types."""
    service = any_service
    token = service.token("acme")
    odd = {"description": 5, "runId": 7, "configurationId": ["x"], "duration": "slow", "params": [1], "type": 3}
    answer = service.client.post(
        "/v1/events", json={"action": "odd", "details": {"keboola": odd}}, headers=bearer(token)
    )
    assert answer.status_code == 201, answer.text
    (receipt,) = answer.json()["receipts"]
    service.settle()
    event = _get(service, token, receipt["id"])
    assert (event["description"], event["runId"], event["configurationId"]) == ("", None, None)
    assert (event["performance"], event["params"], event["type"]) == ({}, {}, "info")
    assert _list(service, token, component="api") == [event]


def test_authentication_uses_the_storage_api_token_header(any_service: Service) -> None:
    service = any_service
    token = service.token("acme")
    missing = service.client.get(EVENTS)
    assert missing.status_code == 401
    assert missing.json() == {
        "error": "missing_token",
        "message": missing.json()["message"],
        "code": "storage.tokenInvalid",
        "status": "error",
    }
    # The facade reads only X-StorageApi-Token, as Keboola does.
    assert service.client.get(EVENTS, headers=bearer(token)).status_code == 401
    wrong = service.client.post(EVENTS, json={"component": "c", "message": "m"}, headers=kbc(token + "x"))
    assert (wrong.status_code, wrong.json()["error"], wrong.json()["code"]) == (
        401,
        "invalid_token",
        "storage.tokenInvalid",
    )


def test_scopes(any_service: Service) -> None:
    service = any_service
    reader = service.token("acme", "events:read")
    writer = service.token("acme", "events:write")
    denied = service.client.post(EVENTS, json={"component": "c", "message": "m"}, headers=kbc(reader))
    assert (denied.status_code, denied.json()["error"], denied.json()["code"]) == (403, "missing_scope", "accessDenied")
    created = _create(service, writer, component="c", message="m")
    assert service.client.get(EVENTS, headers=kbc(writer)).status_code == 403
    assert service.client.get(f"{EVENTS}/{created['id']}", headers=kbc(writer)).status_code == 403
    service.settle()
    assert _get(service, reader, created["id"])["message"] == "m"
    admin = service.token("acme", "admin")
    assert _get(service, admin, created["uuid"])["message"] == "m"


def test_tenants_never_see_each_other(any_service: Service) -> None:
    service = any_service
    acme = service.token("acme")
    other = service.token("other")
    created = _create(service, acme, component="c", message="secret plan")
    service.settle()
    for key in (created["id"], created["uuid"]):
        answer = service.client.get(f"{EVENTS}/{key}", headers=kbc(other))
        assert answer.status_code == 404
        assert answer.json() == {
            "error": "event_not_found",
            "message": f"Event {key} not found",
            "code": "notFound",
            "status": "error",
        }
    assert _list(service, other, component="c") == []
    assert _list(service, other, q="secret") == []
    assert _list(service, other, **API) == []
    assert service.client.get(EVENTS, params={"sinceId": created["uuid"]}, headers=kbc(other)).status_code == 400
    assert [e["uuid"] for e in _list(service, acme, component="c")] == [created["uuid"]]


def _first_error(answer: httpx2.Response, status: int, error: str) -> dict[str, Any]:
    """The first item of a Keboola-dialect validation error, after checking its status and codes."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert (body["error"], body["code"], body["status"]) == (error, "validation.failed", "error")
    first: dict[str, Any] = body["errors"][0]
    return first


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, "/component"),
        ({"component": "c"}, "/message"),
        ({"message": "m"}, "/component"),
        ({"component": None, "message": "m"}, "/component"),
        ({"component": "c", "message": ""}, "/message"),
        ({"component": "c", "message": 5}, "/message"),
        ({"component": "c\n", "message": "m"}, "/component"),
        ({"component": ["c"], "message": "m"}, "/component"),
        ({"component": "c", "message": "m", "type": "fatal"}, "/type"),
        ({"component": "c", "message": "m", "params": [1, 2]}, "/params"),
        ({"component": "c", "message": "m", "params": "{}"}, "/params"),
        ({"component": "c", "message": "m", "results": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}, "/results"),
        ({"component": "c", "message": "m", "results": {"big": 2**60}}, "/results"),
        ({"component": "c", "message": "m", "duration": -1}, "/duration"),
        ({"component": "c", "message": "m", "duration": "soon"}, "/duration"),
        ({"component": "c", "message": "m", "runId": {"a": 1}}, "/runId"),
        ({"component": "c", "message": "m", "created": "2024-05-01T10:00:00+0200"}, "/created"),
        ({"component": "c", "message": "m", "id": "1"}, "/id"),
        ({"component": "c", "message": "m", "source": "cloudtrail"}, "/source"),
        ({"component": "c", "message": "m", "source": "eventlog"}, "/source"),
        ({"component": "c", "message": "m", "event": "bad\tname"}, "/event"),
        ({"component": "c", "message": "m", "objectId": "in\x00c"}, "/objectId"),
        ({"component": "c", "message": "x" * 9000}, "/message"),
        ([{"component": "c", "message": "m"}], ""),
        # JSON types are not converted; only the ids Keboola writes as numbers may be integers
        ({"component": 5, "message": "m"}, "/component"),
        ({"component": "c", "message": "m", "type": 1}, "/type"),
        ({"component": "c", "message": "m", "event": 7}, "/event"),
        ({"component": "c", "message": "m", "objectName": 7}, "/objectName"),
        ({"component": "c", "message": "m", "runId": True}, "/runId"),
        ({"component": "c", "message": "m", "duration": "200"}, "/duration"),
        ({"component": "c", "message": "m", "duration": True}, "/duration"),
        # details limits name the field of the body and the path inside it
        ({"component": "c", "message": "m", "params": {"k" * 300: 1}}, "/params/" + "k" * 300),
        ({"component": "c", "message": "m", "results": {"a": [{"b": "x" * 4097}]}}, "/results/a/0/b"),
        ({"component": "c", "message": "m", "description": "x" * 5000}, "/description"),
    ],
)
def test_invalid_events_are_422_with_a_pointer(any_service: Service, body: Any, pointer: str) -> None:
    service = any_service
    token = service.token("acme")
    answer = service.client.post(EVENTS, json=body, headers=kbc(token))
    assert _first_error(answer, 422, "invalid_event")["pointer"] == pointer
    service.settle()
    assert _list(service, token, **API) == []


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"component": "c", "message": ', "application/json", 400, "malformedRequest"),
        (b"component=c&message=SQLSTATE%80", "application/x-www-form-urlencoded", 400, "malformedRequest"),
        (b"component=c&message=m&params[a]=1", "application/x-www-form-urlencoded", 422, "validation.failed"),
        (b"component=c&message=m&params=%7Bnot", "application/x-www-form-urlencoded", 422, "validation.failed"),
        (b"component=c&message=m&source=cloudtrail", "application/x-www-form-urlencoded", 422, "validation.failed"),
        (b"--x\r\n\r\n--x--\r\n", "multipart/form-data; boundary=x", 415, "malformedRequest"),
    ],
)
def test_bodies_that_are_not_an_event(
    any_service: Service, content: bytes, content_type: str, status: int, code: str
) -> None:
    service = any_service
    token = service.token("acme")
    answer = service.client.post(EVENTS, content=content, headers={**kbc(token), "Content-Type": content_type})
    assert answer.status_code == status, answer.text
    assert (answer.json()["code"], answer.json()["status"]) == (code, "error")


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": 10001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 19901, "limit": 100}, "offset"),
        ({"sortOrder": "up"}, "sortOrder"),
        ({"sinceId": "no-such-event"}, "sinceId"),
        ({"maxId": "no-such-event"}, "maxId"),
    ],
)
def test_bad_list_parameters_are_400(any_service: Service, params: dict[str, Any], parameter: str) -> None:
    service = any_service
    token = service.token("acme")
    answer = service.client.get(EVENTS, params=params, headers=kbc(token))
    assert _first_error(answer, 400, "invalid_parameters")["parameter"] == parameter


def test_largest_window_and_limit_are_allowed(any_service: Service) -> None:
    service = any_service
    token = service.token("acme")
    _create(service, token, component="c", message="m")
    service.settle()
    assert len(_list(service, token, limit=10000, component="c")) == 1
    assert _list(service, token, limit=100, offset=19900) == []


def test_query_syntax_error_names_the_position(any_service: Service) -> None:
    service = any_service
    token = service.token("acme")
    answer = service.client.get(EVENTS, params={"q": '"sales'}, headers=kbc(token))
    assert answer.status_code == 400
    body = answer.json()
    assert (body["error"], body["code"]) == ("invalid_query", "validation.failed")
    assert (body["errors"][0]["parameter"], body["errors"][0]["position"]) == ("q", 6)


def test_numeric_ids_are_kept_as_keboolas_strings(any_service: Service) -> None:
    service = any_service
    token = service.token("acme")
    created = _create(service, token, component="c", message="m", runId=12, configurationId=34, objectId=56)
    assert (created["runId"], created["configurationId"], created["objectId"]) == ("12", "34", "56")


_DEEP = b'{"a":' * 2000 + b"1" + b"}" * 2000


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"component": "c", "message": "m", "params": ' + _DEEP + b"}", "application/json"),
        (b"component=c&message=m&params=" + urllib.parse.quote(_DEEP).encode(), "application/x-www-form-urlencoded"),
    ],
)
def test_params_nested_too_deep_to_parse_are_422_with_the_pointer(
    any_service: Service, content: bytes, content_type: str
) -> None:
    service = any_service
    token = service.token("acme")
    answer = service.client.post(EVENTS, content=content, headers={**kbc(token), "Content-Type": content_type})
    assert answer.status_code == 422, answer.text
    # params is details.keboola.params, level 3 of details: 6 levels below it is the 9th
    assert answer.json()["errors"][0]["pointer"] == "/params" + "/a" * 6
    assert answer.json()["code"] == "validation.failed"


@pytest.mark.parametrize("q", ["time:9999-12-31T23:00:00-05:00", "time:>=0001-01-01T00:00:00+01:00"])
def test_a_query_time_whose_offset_crosses_the_calendar_is_400(any_service: Service, q: str) -> None:
    service = any_service
    token = service.token("acme")
    answer = service.client.get(EVENTS, params={"q": q}, headers=kbc(token))
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert (body["error"], body["code"]) == ("invalid_query", "validation.failed")
    assert body["errors"][0]["expected"] == "a time between 1970-01-01 and 2262-04-11"


def test_event_above_the_size_limit_is_413(any_service: Service) -> None:
    service = any_service
    token = service.token("acme")
    answer = service.client.post(
        EVENTS, json={"component": "c", "message": "m", "params": {"blob": "x" * 70_000}}, headers=kbc(token)
    )
    assert answer.status_code == 413, answer.text
    assert (answer.json()["error"], answer.json()["code"]) == ("event_too_large", "requestTooLarge")
