"""Digest validation of `eventlog cloudtrail import` and of the service's poll, against a real S3 server (moto).

Digest files are signed in the test as CloudTrail signs them (tests/cloudtrail_signer.py: an RSA key made
here, the signature in the object metadata), in chains of two or three. Log files hold real CloudTrail
records from tests/fixtures/cloudtrail (see SOURCES.md there).
"""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from eventlog.app.cli import main
from eventlog.app.service import create_app
from tests.app import Service, make_settings
from tests.cloudtrail_signer import DigestObject, TrailSigner
from tests.integration.ingest.cloudtrail.test_import import (
    ALPHA,
    BETA,
    NOW,
    ORG,
    Bucket,
    _events,
    _key,
    _log_file,
    _recent,
    _records,
)
from tests.integration.ingest.cloudtrail.test_poll import _metric, _wait

pytestmark = pytest.mark.s3

CONSOLE = "aws.initial-access.console-login-without-mfa.json"
FEDERATION = "aws.persistence.sts-federation-token.json"
LEAVE = "aws.defense-evasion.organizations-leave.json"
TRAILSCRAPER = "111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json"
HOUR = timedelta(hours=1)
START = NOW.replace(microsecond=0) - 4 * HOUR


class Trail:
    """A bucket with log files and the digest chain of one account/region, as CloudTrail delivers them."""

    def __init__(self, bucket: Bucket, account: str = ALPHA, region: str = "us-east-1", org: bool = False) -> None:
        self.bucket = bucket
        self.account = account
        self.region = region
        self.org = org
        self.signer = TrailSigner(bucket.name, account, region, prefix="audit", org=ORG if org else None)

    def log(self, stamp: str, records: str, *, put: bool = True) -> tuple[str, bytes]:
        key = _key(self.account, self.region, stamp, f"{stamp}digested00"[:16], org=self.org)
        body = _log_file(_recent(_records(records), self.account))
        if put:
            self.bucket.put(key, body)
        return key, body

    def digest(self, hour: int, logs: list[tuple[str, bytes]], *, put: bool = True, **options: Any) -> DigestObject:
        made = self.signer.digest(START + hour * HOUR, logs, **options)
        if put:
            self.bucket.s3.put_object(Bucket=self.bucket.name, Key=made.key, Body=made.body, Metadata=made.metadata)
        return made


def _altered(body: bytes) -> bytes:
    """The same log file with one record's sourceIPAddress changed: what an intruder covering tracks does."""
    data = json.loads(gzip.decompress(body))
    data["Records"][0]["sourceIPAddress"] = "10.9.9.9"
    return _log_file(data["Records"])


@pytest.fixture
def bucket(s3_endpoint_url: str) -> Bucket:
    return Bucket(s3_endpoint_url)


@pytest.fixture
def trail(bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> Trail:
    made = Trail(bucket)
    monkeypatch.setenv("EVENTLOG_CLOUDTRAIL_ACCOUNT_TENANTS", json.dumps({ALPHA: "alpha", BETA: "beta"}))
    monkeypatch.setenv("EVENTLOG_STREAM", "test-node")
    monkeypatch.setenv(
        "EVENTLOG_CLOUDTRAIL_DIGEST_PUBLIC_KEYS", json.dumps({made.signer.fingerprint: made.signer.public_key_der_b64})
    )
    return made


def _import(
    capsys: pytest.CaptureFixture[str], bucket: Bucket, data_dir: Path, endpoint: str, *more: str
) -> tuple[int, dict[str, Any]]:
    argv = ["cloudtrail", "import", "--bucket", bucket.name, "--prefix", "audit", "--json", *more]
    code = main([*argv, "--data-dir", str(data_dir), "--endpoint-url", endpoint])
    out, err = capsys.readouterr()
    summary: dict[str, Any] = json.loads(out)
    summary["stderr"] = err
    return code, summary


def _failures(summary: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["kind"], f["key"]) for f in summary["integrity_failures"]]


def test_valid_chains_validate_every_file_and_later_digests_check_files_already_read(
    trail: Trail, bucket: Bucket, s3_endpoint_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    first, second, third = trail.log("1500", CONSOLE), trail.log("1510", FEDERATION), trail.log("1520", LEAVE)
    trail.digest(0, [first, second])
    trail.digest(1, [third])
    org = Trail(bucket, BETA, "eu-west-1", org=True)  # an organization trail's member account, same key
    org.digest(0, [org.log("1500", TRAILSCRAPER)])

    code, summary = _import(capsys, bucket, data, s3_endpoint_url)
    assert code == 0, summary["stderr"]
    assert (summary["digests"], summary["validated_files"], summary["unvalidated_files"]) == (3, 4, 0)
    assert summary["integrity_failures"] == []
    assert summary["imported"] == 1 + 2 + 3 + 2
    assert "hash valid" in summary["stderr"]

    # A file delivered before its digest is imported, unvalidated; the digest that comes later vouches for it.
    fourth = trail.log("1530", FEDERATION)
    # ... and one altered before eventlog read it: only its digest can tell.
    fifth_key, fifth_body = trail.log("1540", TRAILSCRAPER, put=False)
    bucket.put(fifth_key, _altered(fifth_body))
    code, summary = _import(capsys, bucket, data, s3_endpoint_url)
    assert code == 0
    assert (summary["files"], summary["unvalidated_files"], summary["validated_files"]) == (2, 2, 0)

    trail.digest(2, [fourth, (fifth_key, fifth_body)])
    code, summary = _import(capsys, bucket, data, s3_endpoint_url)
    assert code == 3
    assert (summary["files"], summary["digests"], summary["validated_files"]) == (0, 1, 1)
    [failure] = summary["integrity_failures"]
    assert failure["kind"] == "log_hash"
    assert failure["key"] == fifth_key
    assert failure["imported"] is True
    assert failure["expected"] != failure["actual"]
    assert f"{fifth_key}: INTEGRITY log_hash" in summary["stderr"]

    # Reported once: the next run finds nothing new.
    code, summary = _import(capsys, bucket, data, s3_endpoint_url)
    assert (code, summary["integrity_failures"], summary["files"]) == (0, [], 0)


def test_a_log_file_altered_after_its_digest_is_reported_and_not_imported(
    trail: Trail, bucket: Bucket, s3_endpoint_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    good, altered = trail.log("1500", CONSOLE), trail.log("1510", LEAVE)
    trail.digest(0, [good, altered])
    bucket.put(altered[0], _altered(altered[1]))

    code, summary = _import(capsys, bucket, data, s3_endpoint_url)
    assert code == 3
    assert _failures(summary) == [("log_hash", altered[0])]
    [failure] = summary["integrity_failures"]
    assert failure["imported"] is False
    assert len(failure["expected"]) == len(failure["actual"]) == 64
    assert (summary["files"], summary["validated_files"], summary["imported"]) == (2, 1, 1)
    assert [e["action"] for e in _events(data)] == ["aws.signin.ConsoleLogin"]

    # --reread still refuses it, and the text summary names it.
    argv = ["cloudtrail", "import", "--bucket", bucket.name, "--prefix", "audit", "--reread"]
    assert main([*argv, "--data-dir", str(data), "--endpoint-url", s3_endpoint_url]) == 3
    out = capsys.readouterr().out
    assert f"INTEGRITY:  log_hash: {altered[0]}: its content differs" in out
    assert f"expected {failure['expected']}, found {failure['actual']}" in out
    assert len(_events(data)) == 1


def test_a_digest_whose_signature_fails_vouches_for_nothing(
    trail: Trail,
    bucket: Bucket,
    s3_endpoint_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = trail.log("1500", CONSOLE), trail.log("1510", FEDERATION)
    # The intruder rewrote the digest to match an altered log file; the signature no longer verifies.
    forged = trail.digest(0, [first], tamper={"logFiles": []})
    trail.digest(1, [second])  # the next digest still links to the forged one's (real) signature

    monkeypatch.setenv("EVENTLOG_CLOUDTRAIL_REQUIRE_DIGEST", "true")
    code, summary = _import(capsys, bucket, tmp_path / "strict", s3_endpoint_url)
    assert code == 3
    assert _failures(summary) == [("digest_signature", forged.key)]
    assert "does not verify" in summary["integrity_failures"][0]["error"]
    # Only the file a valid digest lists is imported; the other waits for one.
    assert (summary["digests"], summary["validated_files"], summary["awaiting_digest_files"]) == (1, 1, 1)
    assert summary["imported"] == 2

    monkeypatch.setenv("EVENTLOG_CLOUDTRAIL_REQUIRE_DIGEST", "false")
    code, summary = _import(capsys, bucket, tmp_path / "lenient", s3_endpoint_url)
    assert code == 3
    assert (summary["validated_files"], summary["unvalidated_files"], summary["imported"]) == (1, 1, 3)


def test_broken_chains_and_missing_files_are_reported(
    trail: Trail, bucket: Bucket, s3_endpoint_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = [trail.log(stamp, CONSOLE) for stamp in ("1500", "1510", "1520")]
    trail.digest(0, [logs[0]])
    # Signed correctly, but over a previousDigestSignature that is not the previous digest's: a replaced link.
    relinked = trail.digest(1, [logs[1]], previous_signature="ab" * 256)
    deleted = trail.digest(2, [], put=False)  # a digest an intruder deleted
    after_gap = trail.digest(3, [logs[2]])
    # Another region whose only log file was deleted: its digest still lists it.
    other = Trail(bucket, ALPHA, "eu-west-1")
    missing = other.log("1530", LEAVE, put=False)
    other.digest(0, [missing])

    code, summary = _import(capsys, bucket, tmp_path / "data", s3_endpoint_url)
    assert code == 3
    assert sorted(_failures(summary)) == sorted(
        [("digest_chain", relinked.key), ("digest_chain", after_gap.key), ("log_missing", missing[0])]
    )
    errors = {f["key"]: f["error"] for f in summary["integrity_failures"]}
    assert "previousDigestSignature" in errors[relinked.key]
    assert f"{deleted.key} is missing" in errors[after_gap.key]
    # A digest with a broken link is still signed by AWS: its log files are validated and imported.
    assert (summary["digests"], summary["validated_files"], summary["imported"]) == (2, 3, 1)


def test_the_poll_shows_integrity_failures_in_readyz_and_metrics(
    trail: Trail, bucket: Bucket, s3_endpoint_url: str, tmp_path: Path
) -> None:
    good, altered = trail.log("1500", CONSOLE), trail.log("1510", LEAVE)
    trail.digest(0, [good, altered])
    bucket.put(altered[0], _altered(altered[1]))
    settings = make_settings(
        tmp_path / "data",
        cloudtrail_bucket=bucket.name,
        cloudtrail_prefix="audit",
        cloudtrail_endpoint_url=s3_endpoint_url,
        cloudtrail_poll_interval_seconds=0.2,
        cloudtrail_account_tenants={ALPHA: "alpha"},
        cloudtrail_digest_public_keys={trail.signer.fingerprint: trail.signer.public_key_der_b64},
    )
    with TestClient(create_app(settings)) as client:
        service = Service(client, settings)
        state = _wait("the poll to find the altered file", lambda: client.get("/readyz").json()["cloudtrail"]["runs"])
        assert state
        public = client.get("/readyz")
        assert public.json()["cloudtrail"]["integrity"] == {"state": "failures", "failure_count": 1}
        assert altered[0] not in public.text
        integrity = service.readiness()["cloudtrail"]["integrity"]
        assert integrity["validation"] is True
        assert integrity["state"] == "failures"
        assert integrity["failures"] == {"log_hash": 1}
        [recent] = integrity["recent_failures"]
        assert (recent["key"], recent["imported"]) == (altered[0], False)
        assert client.get("/readyz").status_code == 200  # an alert, not a reason to stop taking events
        text = client.get("/metrics").text
        assert _metric(text, 'eventlog_cloudtrail_integrity_failures_total{kind="log_hash"}') == 1
        assert _metric(text, "eventlog_cloudtrail_validated_files_total") == 1
        assert _metric(text, "eventlog_cloudtrail_digests_total") == 1
        assert _metric(text, "eventlog_cloudtrail_imported_total") == 1
