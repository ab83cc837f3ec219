"""The CloudTrail poll's configuration checks and the /readyz block of each mode (no S3 or SQS reached)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventlog.journal import Journal
from eventlog.metrics import Metrics
from eventlog.settings import Settings
from ingest.cloudtrail.mapping import limits_of
from ingest.cloudtrail.poll import CloudTrailPoller

QUEUE = "https://sqs.eu-west-1.amazonaws.com/111111111111/cloudtrail-files"


def _poller(tmp_path: Path, **settings: object) -> CloudTrailPoller:
    made = Settings(data_dir=tmp_path, **settings)  # type: ignore[arg-type]
    limits = limits_of(made.retention, made.limits)
    journal = Journal(tmp_path / "journal.db", stream="test")
    return CloudTrailPoller(made.cloudtrail, limits, made.cloudtrail_path, journal, Metrics())


def test_list_mode_is_the_default(tmp_path: Path) -> None:
    status = _poller(tmp_path, cloudtrail_bucket="trail").status()
    assert status["mode"] == "list"
    assert "queue_url" not in status


def test_sqs_mode_shows_its_queue_and_message_counts(tmp_path: Path) -> None:
    status = _poller(tmp_path, cloudtrail_bucket="trail", cloudtrail_sqs_queue_url=QUEUE).status()
    assert (status["mode"], status["queue_url"], status["runs"]) == ("sqs", QUEUE, 0)
    assert status["messages"] == {"received": 0, "deleted": 0, "failed": 0, "malformed": 0, "ignored": {}}
    assert (status["last_error"], status["last_error_at"]) == (None, None)


def test_a_queue_needs_the_bucket_it_is_about(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cloudtrail_bucket"):
        _poller(tmp_path, cloudtrail_sqs_queue_url=QUEUE)


def test_a_queue_name_instead_of_its_url_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a queue URL"):
        _poller(tmp_path, cloudtrail_bucket="trail", cloudtrail_sqs_queue_url="cloudtrail-files")


async def test_the_public_summary_says_failing_without_the_bucket_or_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    # Nothing listens on port 1: the run fails at once, with the endpoint and bucket in its error.
    poller = _poller(tmp_path, cloudtrail_bucket="secret-trail-bucket", cloudtrail_endpoint_url="http://127.0.0.1:1")
    assert poller.summary() == {
        "mode": "list",
        "state": "not_run",
        "runs": 0,
        "integrity": {"state": "ok", "failure_count": 0},
    }
    assert await poller.run_once() is None
    summary = poller.summary()
    assert (summary["state"], summary["runs"]) == ("failing", 1)
    assert "secret-trail-bucket" in str(poller.status())
    assert "127.0.0.1" in str(poller.status()["last_error"])
    assert "secret-trail-bucket" not in str(summary)
    assert "127.0.0.1" not in str(summary)
