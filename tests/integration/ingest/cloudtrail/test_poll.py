"""The service's periodic CloudTrail poll against a real S3-compatible server (moto's standalone server)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from eventlog.app.service import create_app
from eventlog.settings import Settings
from tests.app import Service, make_settings
from tests.integration.ingest.cloudtrail.test_import import (
    ALPHA,
    BETA,
    Bucket,
    _key,
    _log_file,
    _recent,
    _records,
)

pytestmark = pytest.mark.s3


def _wait(what: str, check: Callable[[], Any], timeout_seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def _polling(tmp_path: Path, bucket: Bucket) -> Settings:
    """A service that polls `bucket` every 0.2 s for the two accounts."""
    return make_settings(
        tmp_path / "data",
        cloudtrail_bucket=bucket.name,
        cloudtrail_prefix="audit",
        cloudtrail_endpoint_url=bucket.endpoint_url,
        cloudtrail_poll_interval_seconds=0.2,
        cloudtrail_account_tenants={ALPHA: "alpha", BETA: "beta"},
    )


def test_service_polls_the_bucket_and_counts(s3_endpoint_url: str, tmp_path: Path) -> None:
    bucket = Bucket(s3_endpoint_url)
    console = _recent(_records("aws.initial-access.console-login-without-mfa.json"), ALPHA)
    bucket.put(_key(ALPHA, "us-east-1", "1500", "consolelogin0000"), _log_file(console))
    bucket.put(_key(ALPHA, "us-east-1", "1510", "badgzip000000000"), b"not gzip")
    settings = _polling(tmp_path, bucket)
    with TestClient(create_app(settings)) as client:
        service = Service(client, settings)
        headers = {"Authorization": f"Bearer {service.token('alpha')}"}

        def search() -> list[dict[str, Any]]:
            service.settle()
            answer = client.get("/v1/events", params={"q": "source:cloudtrail"}, headers=headers)
            assert answer.status_code == 200, answer.text
            events: list[dict[str, Any]] = answer.json()["events"]
            return events

        first = _wait("the first file's event", search)
        assert [e["action"] for e in first] == ["aws.signin.ConsoleLogin"]

        # A file that appears later is picked up by a later round, and a duplicate is stored once.
        later = _recent(_records("aws.persistence.sts-federation-token.json"), ALPHA)
        bucket.put(_key(ALPHA, "us-east-1", "1520", "federation000000"), _log_file(later))
        bucket.put(_key(ALPHA, "us-east-1", "1530", "duplicate0000000"), _log_file(console))
        both = _wait("the later file's events", lambda: events if len(events := search()) == 3 else [])
        assert {e["action"] for e in both} >= {"aws.signin.ConsoleLogin", "aws.sts.GetFederationToken"}

        def metrics() -> str:
            text: str = client.get("/metrics").text
            return text if _metric(text, "eventlog_cloudtrail_duplicates_total") >= 1 else ""

        text = _wait("the duplicate to be counted", metrics)
        assert _metric(text, "eventlog_cloudtrail_files_total") == 4
        assert _metric(text, "eventlog_cloudtrail_records_total") == 4
        assert _metric(text, "eventlog_cloudtrail_imported_total") == 3
        assert _metric(text, "eventlog_cloudtrail_malformed_files_total") == 1
        assert _metric(text, 'eventlog_events_accepted_total{source="cloudtrail"}') == 3

        cloudtrail = service.readiness()["cloudtrail"]
        assert cloudtrail["bucket"] == bucket.name
        assert cloudtrail["runs"] >= 2
        assert cloudtrail["last_error"] is None
        assert cloudtrail["last_run_at"] is not None
        assert set(cloudtrail["last_summary"]) >= {"files", "imported", "duplicates", "skipped", "malformed_files"}


def test_poll_errors_are_reported_and_retried(s3_endpoint_url: str, tmp_path: Path) -> None:
    bucket = Bucket(s3_endpoint_url)
    settings = make_settings(
        tmp_path / "data",
        cloudtrail_bucket=f"{bucket.name}-missing",
        cloudtrail_endpoint_url=s3_endpoint_url,
        cloudtrail_poll_interval_seconds=0.1,
        cloudtrail_account_tenants={ALPHA: "alpha"},
    )
    with TestClient(create_app(settings)) as client:
        service = Service(client, settings)
        state = _wait("two failed runs", lambda: (s := service.readiness()["cloudtrail"])["runs"] >= 2 and s)
        assert "NoSuchBucket" in state["last_error"]
        assert state["last_summary"] is None
        public = client.get("/readyz")
        assert public.status_code == 200
        assert public.json()["cloudtrail"]["state"] == "failing"
        assert "NoSuchBucket" not in public.text
        assert bucket.name not in public.text
        assert _metric(client.get("/metrics").text, "eventlog_cloudtrail_poll_errors_total") >= 2


def test_records_naming_another_account_than_their_key_are_counted(s3_endpoint_url: str, tmp_path: Path) -> None:
    bucket = Bucket(s3_endpoint_url)
    console = _recent(_records("aws.initial-access.console-login-without-mfa.json"), BETA)
    bucket.put(_key(ALPHA, "us-east-1", "1500", "claimsbeta000000"), _log_file(console))
    settings = _polling(tmp_path, bucket)
    with TestClient(create_app(settings)) as client:
        name = 'eventlog_cloudtrail_skipped_total{reason="account_mismatch"}'

        def counted() -> str:
            text: str = client.get("/metrics").text
            return text if _metric(text, name) else ""

        text = _wait("the skipped record", counted)
        assert _metric(text, name) == 1
        assert _metric(text, "eventlog_cloudtrail_imported_total") == 0
        summary = Service(client, settings).readiness()["cloudtrail"]["last_summary"]
        assert summary["skipped"] == {"account_mismatch": 1}
