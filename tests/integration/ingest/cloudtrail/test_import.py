"""`eventlog cloudtrail import` against a real S3-compatible server (moto's standalone server) on loopback.

The records are real CloudTrail records from tests/fixtures/cloudtrail (see SOURCES.md there; Apache-2.0):
flosell/trailscraper tests/cloudtrail/data, DataDog/stratus-red-team docs/detonation-logs and
aws/aws-cloudtrail-processing-library src/test/resources; their eventTime is moved into the retention window.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from fastapi.testclient import TestClient

from eventlog.app.cli import main
from eventlog.app.service import create_app
from ingest.cloudtrail.mapping import NAMESPACE, event_id
from tests.app import Service, bearer, make_settings

pytestmark = pytest.mark.s3

DATA = Path(__file__).parents[3] / "fixtures" / "cloudtrail"
ALPHA, BETA, UNMAPPED = "111111111111", "222222222222", "333333333333"
ORG = "o-abcdefghij"
NOW = datetime.now(UTC)
DAY = f"{NOW:%Y/%m/%d}"


def _records(name: str) -> list[dict[str, Any]]:
    data = json.loads((DATA / name).read_text())
    records: list[dict[str, Any]] = data["Records"] if isinstance(data, dict) else data
    return records


def _recent(records: list[dict[str, Any]], account: str) -> list[dict[str, Any]]:
    """The records with eventTime an hour ago (order kept) and the account of the folder they are put in."""
    out = []
    for index, record in enumerate(records):
        record = dict(record)
        record["eventTime"] = (NOW - timedelta(hours=1, seconds=index)).strftime("%Y-%m-%dT%H:%M:%SZ")
        record["recipientAccountId"] = account
        out.append(record)
    return out


def _key(account: str, region: str, stamp: str, unique: str, *, org: bool = False) -> str:
    root = f"audit/AWSLogs/{ORG}/{account}" if org else f"audit/AWSLogs/{account}"
    return f"{root}/CloudTrail/{region}/{DAY}/{account}_CloudTrail_{region}_{NOW:%Y%m%d}T{stamp}Z_{unique}.json.gz"


def _log_file(records: list[dict[str, Any]]) -> bytes:
    return gzip.compress(orjson.dumps({"Records": records}))


class Bucket:
    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self.name = f"trail-{uuid.uuid4().hex[:12]}"
        self.s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1")
        self.s3.create_bucket(Bucket=self.name)

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.name, Key=key, Body=body)


@pytest.fixture
def bucket(s3_endpoint_url: str) -> Bucket:
    return Bucket(s3_endpoint_url)


@pytest.fixture
def tenants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLOG_CLOUDTRAIL_ACCOUNT_TENANTS", json.dumps({ALPHA: "alpha", BETA: "beta"}))
    monkeypatch.setenv("EVENTLOG_STREAM", "test-node")


def _run(capsys: pytest.CaptureFixture[str], bucket: Bucket, data_dir: Path, endpoint: str) -> dict[str, Any]:
    argv = ["cloudtrail", "import", "--bucket", bucket.name, "--prefix", "audit/", "--json"]
    code = main([*argv, "--data-dir", str(data_dir), "--endpoint-url", endpoint])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary: dict[str, Any] = json.loads(out)
    summary["stderr"] = err
    return summary


def _events(data_dir: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(data_dir / "journal.db")
    try:
        return [orjson.loads(row[0]) for row in conn.execute("SELECT document FROM events ORDER BY seq")]
    finally:
        conn.close()


def _fill(bucket: Bucket) -> None:
    trailscraper = _records("111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json")
    console = _records("aws.initial-access.console-login-without-mfa.json")
    federation = _records("aws.persistence.sts-federation-token.json")
    leave = _records("aws.defense-evasion.organizations-leave.json")
    # the all-null record (no eventTime: invalid) and one from 2013 (older than the retention window)
    nulls = [dict(r, recipientAccountId=ALPHA) for r in _records("record_all_fields_null.json")]

    bucket.put(_key(ALPHA, "eu-central-1", "1505", "A6kvhMoVeCsc7v8U"), _log_file(_recent(trailscraper, ALPHA)))
    bucket.put(_key(ALPHA, "eu-central-1", "1510", "badgzip000000000"), b"this is not gzip")
    bucket.put(_key(ALPHA, "eu-central-1", "1515", "badjson000000000"), gzip.compress(b'{"Records": [{"eventID": '))
    bucket.put(_key(ALPHA, "eu-central-1", "1520", "norecords0000000"), gzip.compress(b'{"logFiles": []}'))
    bucket.put(_key(ALPHA, "eu-central-1", "1525", "nulls00000000000"), _log_file(nulls))
    bucket.put(_key(ALPHA, "us-east-1", "1500", "consolefed000000"), _log_file(_recent(console + federation, ALPHA)))
    # the console login delivered twice: stored once
    bucket.put(_key(ALPHA, "us-east-1", "1530", "duplicate0000000"), _log_file(_recent(console, ALPHA)))
    bucket.put(_key(BETA, "eu-west-1", "1500", "orgtrail00000000", org=True), _log_file(_recent(leave, BETA)))
    bucket.put(_key(UNMAPPED, "eu-west-1", "1500", "unmapped00000000"), _log_file(_recent(federation, UNMAPPED)))
    # never read: digest files and other prefixes
    digest = (
        f"audit/AWSLogs/{ALPHA}/CloudTrail-Digest/eu-central-1/{DAY}/{ALPHA}_CloudTrail-Digest_eu-central-1_x.json.gz"
    )
    bucket.put(digest, gzip.compress(b'{"logFiles": []}'))
    bucket.put(_key(ALPHA, "eu-central-1", "1500", "otherprefix00000").replace("audit/", "other/"), b"junk")


@pytest.mark.usefixtures("tenants")
def test_import_maps_counts_and_is_idempotent(
    bucket: Bucket, s3_endpoint_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(bucket)
    data_dir = tmp_path / "data"

    first = _run(capsys, bucket, data_dir, s3_endpoint_url)
    assert first["files"] == 9
    assert first["records"] == 2 + 2 + 3 + 1 + 3 + 2
    assert first["imported"] == 2 + 3 + 3
    assert first["duplicates"] == 1
    assert first["skipped"] == {"invalid": 1, "too_old": 1, "unmapped_account": 2}
    malformed = {m["key"].rsplit("_", 1)[1]: m["error"] for m in first["malformed_files"]}
    assert set(malformed) == {"badgzip000000000.json.gz", "badjson000000000.json.gz", "norecords0000000.json.gz"}
    assert "gzip" in malformed["badgzip000000000.json.gz"]
    assert "JSON" in malformed["badjson000000000.json.gz"]
    assert "Records" in malformed["norecords0000000.json.gz"]
    assert "badgzip000000000.json.gz: skipped, malformed" in first["stderr"]

    events = _events(data_dir)
    assert len(events) == 8
    assert {e["tenant"] for e in events} == {"alpha", "beta"}
    assert all(e["source"] == "cloudtrail" for e in events)
    by_id = {e["id"]: e for e in events}
    leave = by_id[f"cloudtrail:{uuid.uuid5(NAMESPACE, '16903cbd-fdff-4818-82f2-d66ad09aaf57')}"]
    assert leave["tenant"] == "beta"
    assert leave["action"] == "aws.organizations.LeaveOrganization"
    assert leave["outcome"] == "failure"
    assert leave["actor"]["type"] == "aws.AssumedRole"
    assert leave["actor"]["ip"] == "252.5.222.230"
    assert leave["details"]["errorCode"] == "AccessDenied"
    assert leave["request"] == {"request_id": "47bd7f8f-1cbf-49df-8503-7d60917e721a"}
    console = by_id[f"cloudtrail:{uuid.uuid5(NAMESPACE, '865d9377-9c6b-4fd7-8aad-725e95f6a140')}"]
    assert console["tenant"] == "alpha"
    assert console["action"] == "aws.signin.ConsoleLogin"
    assert "ip" not in console["actor"]
    assert console["details"]["sourceIPAddress"] == "225.01.00.16"

    # A second run reads nothing.
    second = _run(capsys, bucket, data_dir, s3_endpoint_url)
    assert (second["files"], second["records"], second["imported"]) == (0, 0, 0)
    assert len(_events(data_dir)) == 8

    # A late file whose key sorts before the ones already read (same day) is still picked up, and only it.
    late = _recent(_records("aws.persistence.sts-federation-token.json"), BETA)
    bucket.put(_key(BETA, "eu-west-1", "1400", "latedelivery0000", org=True), _log_file(late))
    third = _run(capsys, bucket, data_dir, s3_endpoint_url)
    assert (third["files"], third["records"], third["imported"], third["duplicates"]) == (1, 2, 2, 0)

    # --reread reads everything again and stores nothing new.
    argv = ["cloudtrail", "import", "--bucket", bucket.name, "--prefix", "audit", "--reread", "--json"]
    code = main([*argv, "--data-dir", str(data_dir), "--endpoint-url", s3_endpoint_url])
    reread = json.loads(capsys.readouterr().out)
    assert code == 0
    assert reread["imported"] == 0
    assert reread["duplicates"] == 8 + 1 + 2
    assert len(_events(data_dir)) == 10

    # The chain of what was imported holds.
    assert main(["verify", "--data-dir", str(data_dir)]) == 0


@pytest.mark.usefixtures("tenants")
def test_text_summary_and_missing_bucket(
    bucket: Bucket, s3_endpoint_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket.put(
        _key(ALPHA, "us-east-1", "1500", "consolelogin0000"),
        _log_file(_recent(_records("aws.initial-access.console-login-without-mfa.json"), ALPHA)),
    )
    argv = ["cloudtrail", "import", "--bucket", bucket.name, "--prefix", "audit", "--data-dir", str(tmp_path / "d")]
    assert main([*argv, "--endpoint-url", s3_endpoint_url]) == 0
    out = capsys.readouterr().out
    assert "imported:   1" in out
    assert "skipped:    none" in out
    argv[3] = f"{bucket.name}-missing"
    assert main([*argv, "--endpoint-url", s3_endpoint_url]) == 1
    assert "NoSuchBucket" in capsys.readouterr().err


@pytest.mark.usefixtures("tenants")
def test_the_tenant_is_the_account_of_the_key_and_other_accounts_are_skipped(
    bucket: Bucket, s3_endpoint_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whoever can write to the bucket writes any recipientAccountId: only the key's account picks the tenant."""
    trailscraper = _recent(_records("111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json"), ALPHA)
    console, federation = (
        _recent(_records(name), ALPHA)
        for name in ("aws.initial-access.console-login-without-mfa.json", "aws.persistence.sts-federation-token.json")
    )
    # ALPHA's folder: one record of its own, one without recipientAccountId (ALPHA's), two naming other accounts
    without = {k: v for k, v in trailscraper[1].items() if k != "recipientAccountId"}
    claims = [
        trailscraper[0],
        without,
        dict(federation[0], recipientAccountId=BETA),
        dict(federation[1], recipientAccountId=UNMAPPED),
    ]
    bucket.put(_key(ALPHA, "eu-central-1", "1500", "claimsothers0000"), _log_file(claims))
    # an unmapped account's folder whose record names ALPHA; BETA's organization folder with a record naming ALPHA
    bucket.put(_key(UNMAPPED, "eu-west-1", "1500", "unmappedclaim000"), _log_file(console))
    bucket.put(_key(BETA, "eu-west-1", "1500", "orgclaimsalpha00", org=True), _log_file(console))

    summary = _run(capsys, bucket, tmp_path / "data", s3_endpoint_url)
    assert summary["skipped"] == {"account_mismatch": 3, "unmapped_account": 1}
    assert summary["imported"] == 2
    assert "2 records skipped: their recipientAccountId is not 111111111111" in summary["stderr"]
    events = _events(tmp_path / "data")
    assert sorted((e["tenant"], e["id"]) for e in events) == sorted(
        ("alpha", event_id(record)) for record in trailscraper
    )


@pytest.mark.usefixtures("tenants")
def test_a_producer_cannot_claim_a_records_id_before_it_is_imported(
    bucket: Bucket, s3_endpoint_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The importer's ids are predictable; a write token may not use them, nor the source, to store a fake first."""
    (record,) = _recent(_records("aws.initial-access.console-login-without-mfa.json"), ALPHA)
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir)
    fake = {"action": "aws.signin.ConsoleLogin", "outcome": "success", "message": "nothing to see"}
    legacy = str(uuid.uuid5(NAMESPACE, record["eventID"]))  # the form the importer's ids had
    with TestClient(create_app(settings)) as client:
        writer = bearer(Service(client, settings).token("alpha", "events:write"))
        for claim, field in (
            ({"id": event_id(record)}, "id"),
            ({"id": event_id(record).upper()}, "id"),
            ({"id": legacy, "source": "cloudtrail"}, "source"),
        ):
            answer = client.post("/v1/events", json={**fake, **claim}, headers=writer)
            assert answer.status_code == 422, answer.text
            assert [e["pointer"] for e in answer.json()["errors"]] == [f"/{field}"]
        assert client.post("/v1/events", json={**fake, "id": legacy}, headers=writer).status_code == 201

    bucket.put(_key(ALPHA, "us-east-1", "1500", "consolelogin0000"), _log_file([record]))
    summary = _run(capsys, bucket, data_dir, s3_endpoint_url)
    assert (summary["imported"], summary["duplicates"]) == (1, 0)
    stored = {e["id"]: e for e in _events(data_dir)}
    assert stored[event_id(record)]["source"] == "cloudtrail"
    assert stored[event_id(record)]["actor"]["type"] == "aws.IAMUser"
    assert stored[legacy]["source"] == "api"
