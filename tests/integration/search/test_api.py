"""The events API contract, run on every backend: the embedded store and a real OpenSearch node.

Each case asserts the exact ids in the exact order, so both backends agree with
the expectation and therefore with each other.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.app import Service, bearer

NOW = datetime.now(UTC).replace(microsecond=0)


def _at(minutes_ago: int) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat()


def _post(service: Service, token: str, *events: dict[str, Any]) -> list[str]:
    answer = service.client.post("/v1/events", json={"events": list(events)}, headers=bearer(token))
    assert answer.status_code == 201, answer.text
    return [r["id"] for r in answer.json()["receipts"]]


def _list(service: Service, token: str, **params: Any) -> dict[str, Any]:
    answer = service.client.get("/v1/events", params={"source": "api", **params}, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.fixture
def loaded(any_service: Service) -> tuple[Service, str]:
    service = any_service
    token = service.token("acme")
    _post(
        service,
        token,
        {
            "id": "e1",
            "time": _at(50),
            "action": "storage.tables.create",
            "outcome": "success",
            "actor": {"id": "alice", "name": "Alice Smith"},
            "message": "Created table sales",
        },
        {
            "id": "e2",
            "time": _at(40),
            "action": "storage.tables.delete",
            "outcome": "failure",
            "actor": {"id": "bob"},
            "message": "Could not drop table sales",
            "details": {"reason": "locked by job 42"},
        },
        {
            "id": "e3",
            "time": _at(30),
            "action": "storage.buckets.create",
            "outcome": "success",
            "actor": {"id": "alice"},
            "target": {"name": "Marketing Bucket"},
            "message": "Bucket created",
        },
        {
            "id": "e4",
            "time": _at(20),
            "action": "tokens.create",
            "source": "middleware",
            "actor": {"id": "carol"},
            "message": 'Token "ci" created',
        },
    )
    service.settle()
    return service, token


def _ids(body: dict[str, Any]) -> list[str]:
    return [e["id"] for e in body["events"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["e3", "e2", "e1"]),
        ({"order": "asc"}, ["e1", "e2", "e3"]),
        ({"action": "storage.tables.create"}, ["e1"]),
        ({"actor": "alice"}, ["e3", "e1"]),
        ({"outcome": "failure"}, ["e2"]),
        ({"source": "middleware"}, ["e4"]),
        ({"q": "sales"}, ["e2", "e1"]),
        ({"q": "SALES created"}, ["e1"]),
        ({"q": "locked 42"}, ["e2"]),
        ({"q": "marketing"}, ["e3"]),
        ({"q": "smith"}, ["e1"]),
        ({"q": 'table" OR "bucket'}, []),
        ({"q": "sal*"}, ["e2", "e1"]),
        ({"q": "actor:alice -marketing"}, ["e1"]),
        ({"q": "outcome:failure OR actor.name:Alice*"}, ["e2", "e1"]),
        ({"q": "action:storage.* NOT action:(storage.tables.delete OR storage.buckets.create)"}, ["e1"]),
        ({"q": 'details.reason:"locked by job 42"'}, ["e2"]),
        ({"since": _at(45), "until": _at(30)}, ["e2"]),
        ({"since": _at(40)}, ["e3", "e2"]),
    ],
)
def test_filters(loaded: tuple[Service, str], params: dict[str, Any], expected: list[str]) -> None:
    service, token = loaded
    assert _ids(_list(service, token, **params)) == expected


ALL = ["e3", "e2", "e1", "e5"]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("*", ALL),
        ("' OR 1=1 --", []),
        ("NEAR(sales table)", []),
        ("^sales", ["e2", "e1"]),
        ("CAFÉ", ["e5"]),
        ("job-42", ["e2"]),
        ('"sales" sales*', ["e2", "e1"]),
    ],
)
def test_user_text_is_only_ever_words(loaded: tuple[Service, str], q: str, expected: list[str]) -> None:
    """Search syntax of the stores in q is matched as plain words, never interpreted."""
    service, token = loaded
    _post(service, token, {"id": "e5", "time": _at(55), "action": "x", "message": "Paid at the cafe"})
    service.settle()
    assert _ids(_list(service, token, q=q)) == expected


@pytest.mark.parametrize(
    ("q", "position", "found"),
    [
        ('"sales', 6, "end of query"),
        ("(", 1, "end of query"),
        ("sales)", 5, ")"),
        ("AND", 0, "AND"),
        ("body:sales", 0, "body"),
    ],
)
def test_bad_query_is_400_naming_position_found_and_expected(
    any_service: Service, q: str, position: int, found: str
) -> None:
    service = any_service
    token = service.token("acme")
    answer = service.client.get("/v1/events", params={"q": q}, headers=bearer(token))
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "invalid_query"
    error = body["errors"][0]
    assert (error["position"], error["found"]) == (position, found), body
    assert error["expected"]
    if q.startswith("body"):
        assert "actor.id" in error["known_fields"]


def test_cursor_pages_through_everything_once(loaded: tuple[Service, str]) -> None:
    service, token = loaded
    seen: list[str] = []
    body = _list(service, token, limit=1)
    seen += _ids(body)
    while body["next_cursor"]:
        body = _list(service, token, limit=1, cursor=body["next_cursor"])
        seen += _ids(body)
    assert seen == ["e3", "e2", "e1"]


def test_cursor_stays_correct_while_new_events_arrive(loaded: tuple[Service, str]) -> None:
    service, token = loaded
    first = _list(service, token, limit=2)
    assert _ids(first) == ["e3", "e2"]
    _post(service, token, {"id": "new", "action": "storage.tables.create", "message": "late"})
    service.settle()
    second = _list(service, token, limit=2, cursor=first["next_cursor"])
    assert _ids(second) == ["e1"]
    assert second["next_cursor"] is None
    assert _ids(_list(service, token, limit=1)) == ["new"]


def test_cursor_of_another_query_is_refused(loaded: tuple[Service, str]) -> None:
    service, token = loaded
    cursor = _list(service, token, limit=1)["next_cursor"]
    answer = service.client.get("/v1/events", params={"cursor": cursor, "actor": "bob"}, headers=bearer(token))
    assert answer.status_code == 400
    assert "different query" in answer.json()["message"]
    answer = service.client.get("/v1/events", params={"cursor": "garbage!"}, headers=bearer(token))
    assert answer.status_code == 400


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_forged_altered_or_out_of_range_cursor_is_a_400_that_says_to_restart(loaded: tuple[Service, str]) -> None:
    service, token = loaded
    issued = _list(service, token, limit=1)["next_cursor"]
    body, _, mac = issued.partition(".")
    _version, _time, event_id, fingerprint = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    far = orjson.dumps([2, 2**63, event_id, fingerprint])
    secret = service.settings.cursor_key_path.read_bytes().strip()
    signed_far = f"{_b64(far)}.{_b64(hmac.new(secret, far, hashlib.sha256).digest())}"
    for bad in (
        _b64(orjson.dumps([1, 2**63, event_id, fingerprint])),  # unsigned, as cursors once were
        f"{_b64(far)}.{mac}",  # re-encoded time, the old signature
        signed_far,  # signed, but no store can take that time
        issued[:-2],
    ):
        answer = service.client.get("/v1/events", params={"source": "api", "cursor": bad}, headers=bearer(token))
        assert answer.status_code == 400, answer.text
        error = answer.json()
        assert error["error"] == "invalid_cursor"
        assert "restart the listing without `cursor`" in error["message"]
        assert error["errors"][0]["parameter"] == "cursor"


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/histogram", "/v1/events/facets", "/v1/events/export"])
@pytest.mark.parametrize("value", ["1700000000", "1700000000.5", "-1"])
def test_times_are_rfc3339_text_never_unix_seconds(service: Service, path: str, value: str) -> None:
    token = service.token("acme")
    for name in ("since", "until"):
        answer = service.client.get(path, params={name: value}, headers=bearer(token))
        assert answer.status_code == 400, answer.text
        (error,) = answer.json()["errors"]
        assert error["parameter"] == name
        assert "RFC 3339" in error["message"]
    fine = {"since": "2026-11-27T14:00:00+01:00", "until": "2026-11-28 14:00:00.5z"}
    assert service.client.get(path, params=fine, headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"order": "up"}, "order"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-11-27T14:00:00"}, "since"),
        ({"until": "2026-11-27"}, "until"),
    ],
)
def test_bad_parameters_are_400_naming_them(any_service: Service, params: dict[str, Any], parameter: str) -> None:
    service = any_service
    token = service.token("acme")
    answer = service.client.get("/v1/events", params=params, headers=bearer(token))
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["parameter"] == parameter


def test_get_by_id_and_404(loaded: tuple[Service, str]) -> None:
    service, token = loaded
    event = service.client.get("/v1/events/e2", headers=bearer(token)).json()
    assert event["details"] == {"reason": "locked by job 42"}
    missing = service.client.get("/v1/events/nope", headers=bearer(token))
    assert missing.status_code == 404
    assert missing.json()["error"] == "event_not_found"


def test_tenants_never_see_each_other(loaded: tuple[Service, str]) -> None:
    service, _ = loaded
    other = service.token("globex")
    assert _list(service, other)["events"] == []
    assert _list(service, other, q="sales")["events"] == []
    assert service.client.get("/v1/events/e1", headers=bearer(other)).status_code == 404
    refused = service.client.get("/v1/events", params={"tenant": "acme"}, headers=bearer(other))
    assert refused.status_code == 403
    assert service.client.get("/v1/events/e1", params={"tenant": "acme"}, headers=bearer(other)).status_code == 403


def test_admin_reads_a_named_tenant(loaded: tuple[Service, str]) -> None:
    service, _ = loaded
    admin = service.token("ops", "admin")
    assert _ids(_list(service, admin, tenant="acme")) == ["e3", "e2", "e1"]
    assert _list(service, admin)["events"] == []
    assert service.client.get("/v1/events/e1", params={"tenant": "acme"}, headers=bearer(admin)).status_code == 200


def test_read_needs_events_read_scope(any_service: Service) -> None:
    service = any_service
    writer = service.token("acme", "events:write")
    assert service.client.get("/v1/events", headers=bearer(writer)).status_code == 403


def test_every_read_is_audited_in_the_callers_tenant(loaded: tuple[Service, str]) -> None:
    service, token = loaded
    service.client.get("/v1/events", params={"q": "sales"}, headers=bearer(token))
    service.client.get("/v1/events/nope", headers=bearer(token))
    service.settle()
    audit = service.client.get(
        "/v1/events", params={"source": "eventlog", "order": "asc"}, headers=bearer(token)
    ).json()["events"]
    actions = [(e["action"], e["outcome"], e["request"]["status"]) for e in audit]
    assert ("eventlog.events.list", "success", 200) in actions
    assert ("eventlog.events.get", "failure", 404) in actions
    assert all(e["tenant"] == "acme" and e["actor"]["type"] == "token" for e in audit)


def test_paging_while_events_arrive_sees_every_old_event_once(any_service: Service) -> None:
    service = any_service
    token = service.token("acme")
    old = [{"id": f"old-{i:02d}", "time": _at(100 - i), "action": "a.b", "message": f"old {i}"} for i in range(40)]
    _post(service, token, *old)
    service.settle()
    seen: list[str] = []
    body = _list(service, token, limit=7, q="old")
    pages = 1
    while True:
        seen += _ids(body)
        # New events, some even older than the page we are on: none may disturb the walk.
        _post(
            service,
            token,
            {"id": f"new-{pages}", "action": "a.b", "message": "old but new"},
            {"id": f"late-{pages}", "time": _at(200), "action": "a.b", "message": "old and late"},
        )
        service.settle()
        if not body["next_cursor"]:
            break
        body = _list(service, token, limit=7, q="old", cursor=body["next_cursor"])
        pages += 1
    expected = [e["id"] for e in reversed(old)]
    assert [i for i in seen if i.startswith("old-")] == expected
    assert len(seen) == len(set(seen))
    assert pages == 7


def test_histogram_counts_per_interval_with_empty_buckets(loaded: tuple[Service, str]) -> None:
    service, token = loaded
    since, until = NOW - timedelta(minutes=60), NOW
    answer = service.client.get(
        "/v1/events/histogram",
        params={"q": "source:api", "since": since.isoformat(), "until": until.isoformat(), "interval": "10m"},
        headers=bearer(token),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["interval"], body["interval_seconds"], body["total"]) == ("10m", 600, 3)
    counts = {b["time"]: b["count"] for b in body["buckets"]}
    assert len(body["buckets"]) in (6, 7)  # 60 minutes on 10-minute steps, the first one cut
    assert sum(counts.values()) == 3
    for minutes in (50, 40, 30):
        at = NOW - timedelta(minutes=minutes)
        start = at - timedelta(minutes=at.minute % 10, seconds=at.second)
        assert counts[start.strftime("%Y-%m-%dT%H:%M:%S.000000Z")] >= 1


def test_histogram_chooses_an_interval_from_the_range(any_service: Service) -> None:
    service = any_service
    token = service.token("acme")
    day = {"since": (NOW - timedelta(days=1)).isoformat(), "until": NOW.isoformat()}
    body = service.client.get("/v1/events/histogram", params=day, headers=bearer(token)).json()
    assert body["interval"] == "30m"
    assert len(body["buckets"]) in (48, 49)
    bad = service.client.get("/v1/events/histogram", params={**day, "interval": "1s"}, headers=bearer(token))
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"field": "actor.id"}, [("alice", 2), ("bob", 1), ("carol", 1)]),
        ({"field": "actor", "q": "source:api"}, [("alice", 2), ("bob", 1)]),
        ({"field": "outcome", "size": 1}, [("success", 2)]),
        ({"field": "action", "q": "alice"}, [("storage.tables.create", 1)]),
        ({"field": "source"}, [("api", 3), ("middleware", 1)]),
    ],
)
def test_facets(loaded: tuple[Service, str], params: dict[str, Any], expected: list[tuple[str, int]]) -> None:
    service, token = loaded
    params = {**params, "q": "-source:eventlog " + params.get("q", "")}
    answer = service.client.get("/v1/events/facets", params=params, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert [(v["value"], v["count"]) for v in answer.json()["values"]] == expected


def test_facets_of_ips(any_service: Service) -> None:
    service = any_service
    token = service.token("acme")
    ips = ["10.0.0.1", "10.0.0.1", "2001:db8::1", "192.168.1.1"]
    _post(service, token, *({"action": "a", "actor": {"ip": ip}} for ip in ips))
    service.settle()
    body = service.client.get(
        "/v1/events/facets", params={"field": "ip", "q": "ip:10.0.0.0/8 OR ip:2001:db8::/32"}, headers=bearer(token)
    ).json()
    assert body["field"] == "actor.ip"
    assert [(v["value"], v["count"]) for v in body["values"]] == [("10.0.0.1", 2), ("2001:db8::1", 1)]


def test_export_ndjson_streams_every_event_past_one_page(any_service: Service) -> None:
    service = any_service
    token = service.token("acme")
    for batch in range(3):
        _post(
            service, token, *({"id": f"x{batch}-{i:04d}", "action": "bulk.load", "message": "row"} for i in range(900))
        )
    service.settle()
    answer = service.client.get(
        "/v1/events/export", params={"q": "action:bulk.load", "order": "asc"}, headers=bearer(token)
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    assert answer.headers["content-disposition"].startswith('attachment; filename="eventlog-acme-')
    ids = [orjson.loads(line)["id"] for line in answer.content.splitlines()]
    assert len(ids) == 2700
    assert len(set(ids)) == 2700


def test_export_csv_has_a_header_and_defuses_formulas(any_service: Service) -> None:
    service = any_service
    token = service.token("acme")
    _post(
        service,
        token,
        {
            "id": "c1",
            "action": "a",
            "message": '=HYPERLINK("http://x")',
            "actor": {"id": "u1", "name": "Jane, Doe"},
            "details": {"k": [1, 2]},
        },
    )
    service.settle()
    answer = service.client.get("/v1/events/export", params={"format": "csv", "q": "id:c1"}, headers=bearer(token))
    assert answer.status_code == 200
    assert answer.headers["content-disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 1
    row = rows[0]
    assert row["message"] == '\'=HYPERLINK("http://x")'
    assert row["actor.name"] == "Jane, Doe"
    assert row["details"] == '{"k":[1,2]}'
    assert len(row["chain.hash"]) == 64
    empty = service.client.get("/v1/events/export", params={"format": "csv", "q": "id:none"}, headers=bearer(token))
    # The header is the contract spreadsheets and scripts rely on: the column order never changes.
    header = (
        "time,id,action,outcome,actor.type,actor.id,actor.name,actor.ip,target.type,target.id,target.name,"
        "source,request.method,request.path,request.status,message,details,chain.seq,chain.hash"
    )
    assert empty.text.splitlines() == [header]


def test_views_never_cross_tenants(loaded: tuple[Service, str]) -> None:
    service, _ = loaded
    other = service.token("globex")
    # The other tenant has only the audit events of its own reads.
    mine = {"q": "-source:eventlog"}
    assert service.client.get("/v1/events/histogram", params=mine, headers=bearer(other)).json()["total"] == 0
    assert service.client.get("/v1/events/facets", params=mine, headers=bearer(other)).json()["values"] == []
    assert service.client.get("/v1/events/export", params=mine, headers=bearer(other)).content == b""
    for view in ("histogram", "facets", "export", "tail"):
        assert (
            service.client.get(f"/v1/events/{view}", params={"tenant": "acme"}, headers=bearer(other)).status_code
            == 403
        )


def test_facet_ties_are_ordered_like_opensearch_orders_addresses(any_service: Service) -> None:
    service = any_service
    token = service.token("acme")
    _post(
        service,
        token,
        *({"action": "a", "actor": {"ip": ip}} for ip in ["2001:db8::1", "10.0.0.10", "9.9.9.9", "10.0.0.9"]),
    )
    service.settle()
    body = service.client.get(
        "/v1/events/facets", params={"field": "ip", "q": "action:a", "size": 3}, headers=bearer(token)
    ).json()
    assert [v["value"] for v in body["values"]] == ["9.9.9.9", "10.0.0.9", "10.0.0.10"]


READS = ("/v1/events", "/v1/events/e1", "/v1/events/facets", "/v1/events/histogram", "/v1/events/export")


@pytest.mark.parametrize("path", [*READS, "/v1/events/tail"])
def test_an_empty_tenant_is_400_on_every_read(loaded: tuple[Service, str], path: str) -> None:
    service, _ = loaded
    admin = service.token("ops", "admin")
    answer = service.client.get(path, params={"tenant": ""}, headers=bearer(admin))
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"][0]["parameter"] == "tenant"


# Ends of the calendar, also with offsets that carry them past year 1 or 9999 in UTC: no store holds
# a time before 1970 or after 2262, so such a bound reads like the nearest end of that range.
EARLY = ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "1969-12-31T23:59:59Z", "0001-01-01 00:00:00z")
LATE = ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:00:00-05:00", "2262-04-12T00:00:00Z", "9999-12-31 23:59:59Z")


@pytest.mark.parametrize(("since", "until"), list(zip(EARLY, LATE, strict=True)))
def test_times_at_the_ends_of_the_calendar_select_everything(
    loaded: tuple[Service, str], since: str, until: str
) -> None:
    service, token = loaded
    window = {"since": since, "until": until, "q": "source:api"}
    assert _ids(_list(service, token, **window)) == ["e3", "e2", "e1"]
    assert _list(service, token, since=until)["events"] == []
    assert _list(service, token, until=since)["events"] == []
    facets = service.client.get("/v1/events/facets", params=window, headers=bearer(token))
    assert facets.status_code == 200, facets.text
    assert sum(v["count"] for v in facets.json()["values"]) == 3
    export = service.client.get("/v1/events/export", params=window, headers=bearer(token))
    assert export.status_code == 200, export.text
    assert len(export.content.splitlines()) == 3
    histogram = service.client.get("/v1/events/histogram", params=window, headers=bearer(token))
    assert histogram.status_code == 200, histogram.text
    body = histogram.json()
    assert (body["since"], body["until"]) == ("1970-01-01T00:00:00.000000Z", "2262-04-11T23:47:16.854775Z")
    assert body["total"] == 3
    assert len(body["buckets"]) <= 61


TIMED = ("/v1/events", "/v1/events/facets", "/v1/events/histogram", "/v1/events/export")


@pytest.mark.parametrize("path", TIMED)
@pytest.mark.parametrize(
    "value", ["0", "1700000000", "2026-11-27T10:00:00", "2026-11-27T10:00:00+24:00", "\u0662\u0660\u0662\u0666-11-27"]
)
def test_a_time_parameter_that_is_no_time_is_400_naming_it(any_service: Service, path: str, value: str) -> None:
    service = any_service
    token = service.token("acme")
    for name in ("since", "until"):
        answer = service.client.get(path, params={name: value}, headers=bearer(token))
        assert answer.status_code == 400, answer.text
        assert answer.json()["errors"][0]["parameter"] == name


@pytest.mark.parametrize("path", [*TIMED, "/v1/events/tail"])
@pytest.mark.parametrize(
    "q", ["time:9999-12-31T23:00:00-05:00", "time:<0001-01-01T00:00:00+01:00", "received_at:>=9999-12-31"]
)
def test_a_query_time_beyond_the_calendar_is_400_on_every_route(any_service: Service, path: str, q: str) -> None:
    service = any_service
    token = service.token("acme")
    answer = service.client.get(path, params={"q": q}, headers=bearer(token))
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"][0]["expected"] == "a time between 1970-01-01 and 2262-04-11"


def test_histogram_buckets_are_capped_on_every_path(loaded: tuple[Service, str]) -> None:
    service, token = loaded
    everything = {"since": "1970-01-01T00:00:00Z", "until": "2262-04-11T00:00:00Z", "q": "source:api"}

    def histogram(**params: str) -> Any:
        return service.client.get("/v1/events/histogram", params=params, headers=bearer(token))

    chosen = histogram(**everything).json()
    assert len(chosen["buckets"]) <= 61
    assert chosen["interval_seconds"] % (7 * 86400) == 0
    assert chosen["total"] == 3
    widest = histogram(**everything, interval="999999d").json()
    assert (widest["interval_seconds"], len(widest["buckets"]), widest["total"]) == (999999 * 86400, 1, 3)
    too_many = histogram(**everything, interval="1d")
    assert too_many.status_code == 400
    assert too_many.json()["errors"][0]["parameter"] == "interval"
    assert "buckets" in too_many.json()["message"]
    # Exactly the limit passes: 2000 one-minute buckets from a whole minute on.
    start = NOW.replace(second=0) - timedelta(minutes=2000)
    exact = {"since": start.isoformat(), "until": (start + timedelta(minutes=2000)).isoformat()}
    assert len(histogram(**exact, interval="1m").json()["buckets"]) == 2000
    # One microsecond more starts a bucket more.
    later = (start + timedelta(minutes=2000, microseconds=1)).isoformat()
    assert histogram(since=exact["since"], until=later, interval="1m").status_code == 400


def test_histogram_until_the_epoch_is_a_bound_not_absent(any_service: Service) -> None:
    service = any_service
    token = service.token("acme")
    answer = service.client.get("/v1/events/histogram", params={"until": "1970-01-01T00:00:00Z"}, headers=bearer(token))
    assert answer.status_code == 400
    assert "must lie before `until` (1970-01-01T00:00:00.000000Z)" in answer.json()["message"]
