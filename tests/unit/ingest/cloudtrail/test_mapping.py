"""CloudTrail record -> event, on real records.

Data in tests/fixtures/cloudtrail (see SOURCES.md there; Apache-2.0): flosell/trailscraper
tests/cloudtrail/data, DataDog/stratus-red-team docs/detonation-logs, log2timeline/plaso
test_data/jsonl/aws_cloudtrail.jsonl, aws/aws-cloudtrail-processing-library src/test/resources.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from eventlog.canonical import canonical_json
from eventlog.model import MAX_DETAILS_STRING, EventIn, details_problem, reserved_id, to_document
from ingest.cloudtrail.mapping import (
    ID_PREFIX,
    NAMESPACE,
    SOURCE,
    TRUNCATED,
    Limits,
    SkipRecord,
    event_id,
    map_record,
    prepare,
    to_event,
)

DATA = Path(__file__).parents[3] / "fixtures" / "cloudtrail"
TRAILSCRAPER = DATA / "111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json"


def _records(name: str) -> list[dict[str, Any]]:
    data = json.loads((DATA / name).read_text())
    records: list[dict[str, Any]] = data["Records"] if isinstance(data, dict) else data
    return records


def _by_event_id(event_id_: str) -> dict[str, Any]:
    for path in DATA.glob("*.json"):
        for record in _records(path.name):
            if record.get("eventID") == event_id_:
                return record
    raise LookupError(event_id_)


def _validate(raw: dict[str, Any]) -> EventIn:
    """Validate with `now` just after the event, so only the mapping is judged here, not the clock.

    The importer's id and source are left out: EventIn refuses them from producers (test_ids_and_source_...).
    """
    now = datetime.fromisoformat(raw["time"]) + timedelta(minutes=1)
    fields = {k: v for k, v in raw.items() if k not in ("id", "source")}
    return EventIn.model_validate(fields, context=Limits().context(now))


def _all_records() -> list[dict[str, Any]]:
    records = [r for p in sorted(DATA.glob("*.json")) for r in _records(p.name)]
    for line in (DATA / "plaso_lookupevents_export.jsonl").read_text().splitlines():
        records.append(json.loads(json.loads(line)["CloudTrailEvent"]))
    return records


# (eventID, expected subset of the mapped event)
CASES = [
    pytest.param(
        "865d9377-9c6b-4fd7-8aad-725e95f6a140",
        {
            "time": "2024-08-02T08:53:24+00:00",
            "action": "aws.signin.ConsoleLogin",
            "outcome": "success",
            "actor": {
                "type": "aws.IAMUser",
                "id": "AIDA1ERT0661IN5R239V",
                "name": "stratus-red-team-nmfalu-jfzdtsvchl",
                "user_agent": "stratus-red-team_fccf7123-0651-41f5-b06c-460da5ee1c94",
            },
            "target": {},
            "request": {},
            "details": {
                # pseudonymised, not a valid IPv4 address: kept in details, actor.ip stays empty
                "sourceIPAddress": "225.01.00.16",
                "additionalEventData": {
                    "LoginTo": "https://console.aws.amazon.com/console/home",
                    "MFAUsed": "No",
                    "MobileVersion": "No",
                },
                "responseElements": {"ConsoleLogin": "Success"},
                "requestParameters": None,
                "eventType": "AwsConsoleSignIn",
                "readOnly": False,
                "recipientAccountId": "562283505220",
                "awsRegion": "eu-west-2r",
                "eventVersion": "1.08",
                "userIdentity": {"accountId": "562283505220"},
            },
        },
        id="console-login-iam-user",
    ),
    pytest.param(
        "16903cbd-fdff-4818-82f2-d66ad09aaf57",
        {
            "action": "aws.organizations.LeaveOrganization",
            "outcome": "failure",
            "actor": {
                "type": "aws.AssumedRole",
                "id": "AROAHKPEEQ9BHUOX4D93T:aws-go-sdk-1722587398902687000",
                "name": "aws-go-sdk-1722587398902687000",
                "ip": "252.5.222.230",
            },
            "request": {"request_id": "47bd7f8f-1cbf-49df-8503-7d60917e721a"},
            "details": {"errorCode": "AccessDenied"},
        },
        id="access-denied-assumed-role",
    ),
    pytest.param(
        "099bfd30-232c-4dff-9998-3821921063ca",
        {
            "action": "aws.sts.AssumeRole",
            "target": {
                "type": "AWS::IAM::Role",
                "id": "arn:aws:iam::307578594326:role/stratus-red-team-leave-org-role",
            },
            "details": {"requestParameters": {"durationSeconds": 900}},
        },
        id="resources-become-target",
    ),
    pytest.param(
        "91529247-c4c4-4793-afc8-d70bbcfe9d19",
        {
            "action": "aws.sts.GetCallerIdentity",
            "actor": {"type": "aws.FederatedUser", "id": "742491224508:stratus_red_team", "name": "stratus_red_team"},
            "details": {
                "sessionIssuer": {"type": "IAMUser", "userName": "stratus-red-team-user-federation-user"},
                "userIdentity": {"sessionContext": {"attributes": {"mfaAuthenticated": "false"}}},
                "sourceIPAddress": "255.090.254.5",
            },
        },
        id="federated-user-session-issuer",
    ),
    pytest.param(
        "b25ff7e3-f1cf-4b7f-883d-b09168c454d5",
        {
            "action": "aws.sts.AssumeRole",
            "outcome": "success",
            # AWSService identity: no principalId, arn or userName
            "actor": {"type": "aws.AWSService", "user_agent": "config.amazonaws.com"},
            "details": {"invokedBy": "config.amazonaws.com", "sourceIPAddress": "config.amazonaws.com"},
        },
        id="aws-service-invoked-by",
    ),
]


def _assert_subset(expected: Any, actual: Any, where: str = "") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        if not expected:
            assert actual == {}, where
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} missing"
            _assert_subset(value, actual[key], f"{where}.{key}")
    else:
        assert actual == expected, where


@pytest.mark.parametrize(("cloudtrail_id", "expected"), CASES)
def test_mapping_of_real_records(cloudtrail_id: str, expected: dict[str, Any]) -> None:
    raw = map_record(_by_event_id(cloudtrail_id))
    _assert_subset(expected, raw)
    assert raw["id"] == f"cloudtrail:{uuid.uuid5(NAMESPACE, cloudtrail_id)}"
    assert raw["source"] == "cloudtrail"
    _validate(raw)


def test_every_real_record_maps_to_a_valid_event() -> None:
    records = _all_records()
    assert len(records) >= 50
    mapped = 0
    for record in records:
        if record.get("eventTime") is None:
            with pytest.raises(SkipRecord, match="eventTime") as skip:
                map_record(record)
            assert skip.value.reason == "invalid"
            continue
        raw = map_record(record)
        event = _validate(raw)
        assert raw["id"] == event_id(record)
        assert event.actor.ip is None or str(event.actor.ip) == record["sourceIPAddress"]
        mapped += 1
    assert mapped == len(records) - 1  # the all-null record has no eventTime


def test_plaso_service_event_without_identity_type() -> None:
    lines = (DATA / "plaso_lookupevents_export.jsonl").read_text().splitlines()
    records = [json.loads(json.loads(line)["CloudTrailEvent"]) for line in lines]
    untyped = [r for r in records if isinstance(r.get("userIdentity"), dict) and "type" not in r["userIdentity"]]
    assert untyped
    raw = map_record(untyped[0])
    assert "type" not in raw["actor"]
    _validate(raw)


def test_duplicates_get_the_same_id_and_records_without_event_id_a_stable_one() -> None:
    record = _by_event_id("865d9377-9c6b-4fd7-8aad-725e95f6a140")
    assert map_record(dict(record))["id"] == map_record(dict(record))["id"]
    anonymous = {k: v for k, v in record.items() if k != "eventID"}
    assert map_record(anonymous)["id"] == map_record(dict(anonymous))["id"] != map_record(record)["id"]


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_details_are_kept_within_eventlogs_limits() -> None:
    record = dict(_by_event_id("865d9377-9c6b-4fd7-8aad-725e95f6a140"))
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(12):
        deep = {"n": deep}
    record["requestParameters"] = {"deep": deep, "long": "x" * 10_000, "big": 2**60, "neg": -(2**60), "ok": 2**53 - 1}
    raw = map_record(record)
    params = raw["details"]["requestParameters"]
    assert details_problem(raw["details"]) is None
    assert params["long"].endswith(TRUNCATED)
    assert len(params["long"]) == MAX_DETAILS_STRING
    assert params["big"] == str(2**60)
    assert params["neg"] == str(-(2**60))
    assert params["ok"] == 2**53 - 1
    # the subtree beyond the depth limit is kept as its JSON text
    assert any('"leaf":1' in text for text in _strings(params["deep"]))
    _validate(raw)


def test_oversized_event_drops_bulky_fields_with_a_marker() -> None:
    record = dict(_by_event_id("865d9377-9c6b-4fd7-8aad-725e95f6a140"))
    record["responseElements"] = {f"k{i}": "v" * 4000 for i in range(40)}
    raw = map_record(record, max_event_bytes=65_536)
    assert raw["details"]["responseElements"].startswith(TRUNCATED)
    assert len(orjson.dumps(raw)) <= 65_536
    _validate(raw)


def test_objects_with_keys_beyond_the_key_limit_are_kept_as_their_json_text() -> None:
    record = dict(_by_event_id("865d9377-9c6b-4fd7-8aad-725e95f6a140"))
    long_key = "k" * 300
    record["requestParameters"] = {"tags": {long_key: "v", "short": "w"}, "ok": {"k" * 256: 1}}
    raw = map_record(record)
    params = raw["details"]["requestParameters"]
    assert isinstance(params["tags"], str)
    assert long_key in params["tags"]
    assert params["ok"] == {"k" * 256: 1}
    assert details_problem(raw["details"]) is None
    _validate(raw)
    _assert_prepared_like_the_reference(_in_window(record))
    # A tighter limit from the settings applies to both paths alike.
    _assert_prepared_like_the_reference(_in_window(record), Limits(max_details_key_chars=200))


def test_a_top_level_field_name_beyond_the_key_limit_skips_the_record() -> None:
    record = {**_by_event_id("865d9377-9c6b-4fd7-8aad-725e95f6a140"), "x" * 300: 1}
    with pytest.raises(SkipRecord) as skipped:
        map_record(record)
    assert skipped.value.reason == "invalid"
    _assert_prepared_like_the_reference(_in_window(record))


def test_to_event_skips_records_outside_the_retention_window() -> None:
    record = dict(_by_event_id("865d9377-9c6b-4fd7-8aad-725e95f6a140"))
    with pytest.raises(SkipRecord) as old:
        to_event(record, limits=Limits(retention_days=14), now=datetime(2024, 9, 1, tzinfo=UTC))
    assert old.value.reason == "too_old"
    event = to_event(record, limits=Limits(retention_days=14), now=datetime(2024, 8, 3, tzinfo=UTC))
    assert event.action == "aws.signin.ConsoleLogin"
    with pytest.raises(SkipRecord) as future:
        to_event(record, limits=Limits(), now=datetime(2024, 8, 1, tzinfo=UTC))
    assert future.value.reason == "invalid"


# -- prepare: the import's fast path builds what EventIn and to_document would ------------------------------------

NOW = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)


def _in_window(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "eventTime": "2026-11-27T15:00:00.123Z"}


def _assert_prepared_like_the_reference(record: dict[str, Any], limits: Limits | None = None) -> None:
    """prepare's journal item equals what to_event, to_document and canonical_json make of the same record."""
    limits = limits or Limits()
    refused: SkipRecord | None = None
    try:
        event = to_event(copy.deepcopy(record), limits=limits, now=NOW)
    except SkipRecord as exc:
        refused = exc
    if refused is not None:
        with pytest.raises(SkipRecord) as skipped:
            prepare(copy.deepcopy(record), tenant="acme", limits=limits, received_at=NOW)
        assert skipped.value.reason == refused.reason
        return
    identifier = event_id(copy.deepcopy(record))
    document = to_document(event, event_id=identifier, tenant="acme", received_at=NOW, source=SOURCE)
    item = prepare(copy.deepcopy(record), tenant="acme", limits=limits, received_at=NOW)
    assert item.id == identifier
    assert item.client_id
    assert item.canonical == canonical_json(document)
    # what the journal stores: orjson of the body (a Fragment of details is written as it is)
    assert orjson.loads(orjson.dumps(item.body)) == orjson.loads(orjson.dumps(document))


def test_prepare_equals_the_validated_path_on_real_records() -> None:
    for record in _all_records():
        _assert_prepared_like_the_reference(_in_window(record))
    _assert_prepared_like_the_reference(_all_records()[0])  # too old
    _assert_prepared_like_the_reference({**_all_records()[0], "eventTime": "2026-11-27T16:10:00Z"})  # future


def test_prepare_equals_the_validated_path_on_generated_records() -> None:
    from bench.cloudtrail import make_record

    rng = random.Random(3)
    for index in range(300):
        record = make_record(rng, "111111111111", "eu-west-1", NOW - timedelta(minutes=index))
        _assert_prepared_like_the_reference(record)


_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.text(min_size=4090, max_size=4200, alphabet="ab\n\u00e9")
)
_json = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=25,
)
_identity = st.fixed_dictionaries(
    {},
    optional={
        "type": st.text(max_size=300),
        "principalId": st.text(max_size=300),
        "arn": st.text(max_size=300),
        "userName": st.text(max_size=600),
        "invokedBy": _json,
        "sessionContext": _json,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    identity=_identity | _json,
    extra=st.dictionaries(st.sampled_from(["requestParameters", "responseElements", "resources", "x\u00e9"]), _json),
    ip=st.sampled_from(["10.1.2.3", "010.1.2.3", "2001:DB8::1", "s3.amazonaws.com", "1.2.3.4\n"]) | st.text(max_size=8),
    name=st.text(max_size=300),
    agent=st.text(max_size=1100) | st.none(),
)
def test_prepare_equals_the_validated_path_on_odd_records(
    identity: Any, extra: dict[str, Any], ip: str, name: str, agent: str | None
) -> None:
    record = {
        "eventTime": "2026-11-27T15:00:00Z",
        "eventID": "e1",
        "eventSource": "iam.amazonaws.com",
        "eventName": name,
        "userIdentity": identity,
        "sourceIPAddress": ip,
        "userAgent": agent,
        "requestID": name,
        **extra,
    }
    _assert_prepared_like_the_reference(record, Limits(max_event_bytes=16_384))


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00", "yesterday"])
def test_an_event_time_outside_the_calendar_is_a_skipped_record(when: str) -> None:
    with pytest.raises(SkipRecord, match="eventTime") as skipped:
        map_record({**_all_records()[0], "eventTime": when})
    assert skipped.value.reason == "invalid"


def test_a_tenants_own_retention_decides_what_is_too_old() -> None:
    record = {**_all_records()[0], "eventTime": "2026-11-07T15:00:00Z"}  # 20 days before NOW
    limits = Limits(retention_days=14, tenant_retention_days={"keeps-long": 90})
    assert prepare(copy.deepcopy(record), tenant="keeps-long", limits=limits, received_at=NOW).id
    with pytest.raises(SkipRecord) as skipped:
        prepare(copy.deepcopy(record), tenant="acme", limits=limits, received_at=NOW)
    assert skipped.value.reason == "too_old"


def _s3_data_event(**overrides: Any) -> dict[str, Any]:
    """An S3 data event in the layout CloudTrail documents for them (no real one is in ../shared/testdata)."""
    record: dict[str, Any] = {
        "eventVersion": "1.10",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLEID:reporting-job",
            "arn": "arn:aws:sts::111122223333:assumed-role/reporting/reporting-job",
            "accountId": "111122223333",
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": "arn:aws:iam::111122223333:role/reporting"}},
        },
        "eventTime": "2026-11-20T09:15:02Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": "eu-central-1",
        "sourceIPAddress": "198.51.100.23",
        "userAgent": "[aws-sdk-java/2.25.1]",
        "requestParameters": {
            "bucketName": "reports-bucket",
            "Host": "reports-bucket.s3.eu-central-1.amazonaws.com",
            "key": "q3/summary.csv",
        },
        "responseElements": None,
        "additionalEventData": {"SignatureVersion": "SigV4", "bytesTransferredIn": 0, "bytesTransferredOut": 5120},
        "requestID": "8F2C3A1B7D6E5F40",
        "eventID": "0c6e1f9a-3b7d-4c2e-9a51-7f3e2d1c0b9a",
        "readOnly": True,
        "resources": [
            {"type": "AWS::S3::Object", "ARNPrefix": "arn:aws:s3:::reports-bucket/q3/summary.csv"},
            {"accountId": "111122223333", "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::reports-bucket"},
        ],
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": "111122223333",
        "eventCategory": "Data",
    }
    record.update(overrides)
    return record


def test_s3_data_events_name_the_object_and_keep_the_data_fields() -> None:
    event = map_record(_s3_data_event())
    assert event["action"] == "aws.s3.GetObject"
    assert event["outcome"] == "success"
    assert event["target"] == {"type": "AWS::S3::Object", "id": "arn:aws:s3:::reports-bucket/q3/summary.csv"}
    assert event["actor"]["ip"] == "198.51.100.23"
    assert event["request"]["request_id"] == "8F2C3A1B7D6E5F40"
    details = event["details"]
    assert details["requestParameters"]["key"] == "q3/summary.csv"
    assert details["additionalEventData"]["bytesTransferredOut"] == 5120
    assert (details["eventCategory"], details["managementEvent"], details["readOnly"]) == ("Data", False, True)

    denied = map_record(
        _s3_data_event(eventName="PutObject", errorCode="AccessDenied", errorMessage="Access Denied", readOnly=False)
    )
    assert denied["action"] == "aws.s3.PutObject"
    assert denied["outcome"] == "failure"
    assert (denied["details"]["errorCode"], denied["details"]["errorMessage"]) == ("AccessDenied", "Access Denied")


def test_ids_and_source_are_the_importers_own_and_refused_from_producers() -> None:
    raw = map_record(_by_event_id("865d9377-9c6b-4fd7-8aad-725e95f6a140"))
    assert raw["id"].startswith(ID_PREFIX)
    assert reserved_id(raw["id"])
    now = datetime.fromisoformat(raw["time"]) + timedelta(minutes=1)
    for field in ("id", "source"):
        with pytest.raises(ValidationError) as refused:
            EventIn.model_validate({"action": "x", field: raw[field]}, context=Limits().context(now))
        assert [e["loc"] for e in refused.value.errors()] == [(field,)]


# -- outcome: errorCode, errorMessage, or the status a sign-in event gives under its own name -----------------------


def _sign_in(name: str, **fields: Any) -> dict[str, Any]:
    """A sign-in event of our own, shaped as the public ConsoleLogin sample and the AWS CloudTrail user guide's
    sign-in examples (no real failed sign-in is in the public samples)."""
    record = {
        **_by_event_id("865d9377-9c6b-4fd7-8aad-725e95f6a140"),
        "eventName": name,
        "eventID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"test:{name}:{sorted(fields.items())!r}")),
        "responseElements": {name: "Success"},
    }
    record.update(fields)
    return record


OUTCOMES = [
    # public samples (tests/fixtures/cloudtrail, see SOURCES.md)
    pytest.param(_by_event_id("865d9377-9c6b-4fd7-8aad-725e95f6a140"), "success", id="console-login-success"),
    pytest.param(_by_event_id("16903cbd-fdff-4818-82f2-d66ad09aaf57"), "failure", id="error-code-access-denied"),
    pytest.param(_by_event_id("450230d4-b39e-4a18-a6a0-d07a6e2105cb"), "failure", id="error-code-unauthorized"),
    pytest.param(_by_event_id("099bfd30-232c-4dff-9998-3821921063ca"), "success", id="api-call-without-error"),
    # records of our own
    pytest.param(
        _sign_in("ConsoleLogin", responseElements={"ConsoleLogin": "Failure"}, errorMessage="Failed authentication"),
        "failure",
        id="console-login-failed-authentication",
    ),
    pytest.param(
        _sign_in("ConsoleLogin", responseElements={"ConsoleLogin": "Failure"}), "failure", id="console-login-failure"
    ),
    pytest.param(
        _sign_in("ConsoleLogin", responseElements=None, errorMessage="No username found in supplied account"),
        "failure",
        id="console-login-error-message-only",
    ),
    pytest.param(_sign_in("CheckMfa"), "success", id="check-mfa-success"),
    pytest.param(
        _sign_in("CheckMfa", responseElements={"CheckMfa": "Failure"}, additionalEventData={"MfaType": "Virtual MFA"}),
        "failure",
        id="check-mfa-failure",
    ),
    pytest.param(_sign_in("SwitchRole"), "success", id="switch-role-success"),
    pytest.param(
        _sign_in("SwitchRole", responseElements={"SwitchRole": "Failure"}, errorMessage="Failed to switch role"),
        "failure",
        id="switch-role-failure",
    ),
    pytest.param(
        _sign_in(
            "CredentialVerification",
            responseElements=None,
            serviceEventDetails={"CredentialVerification": "Failure"},
            eventType="AwsServiceEvent",
        ),
        "failure",
        id="credential-verification-failure",
    ),
    pytest.param(
        _sign_in("UserAuthentication", responseElements=None, serviceEventDetails={"UserAuthentication": "Success"}),
        "success",
        id="user-authentication-success",
    ),
    # another element saying Failure is not the event's own status; odd shapes do not break the mapping
    pytest.param(_sign_in("SwitchRole", responseElements={"ConsoleLogin": "Failure"}), "success", id="other-element"),
    pytest.param(_sign_in("ConsoleLogin", responseElements=["Failure"]), "success", id="elements-a-list"),
    pytest.param(_sign_in("ConsoleLogin", responseElements="Failure"), "success", id="elements-a-string"),
    pytest.param(_sign_in("ConsoleLogin", eventName=None), "success", id="no-event-name"),
]


@pytest.mark.parametrize(("record", "expected"), OUTCOMES)
def test_outcome(record: dict[str, Any], expected: str) -> None:
    assert map_record(copy.deepcopy(record))["outcome"] == expected
    fresh = _in_window(record)
    assert prepare(copy.deepcopy(fresh), tenant="acme", limits=Limits(), received_at=NOW).body["outcome"] == expected
    _assert_prepared_like_the_reference(fresh)
