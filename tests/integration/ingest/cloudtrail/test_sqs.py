"""The service's CloudTrail poll reading S3 event notifications from SQS, against moto's standalone server.

moto serves S3 and SQS on one loopback port: the bucket holds real CloudTrail log files from
tests/fixtures/cloudtrail (see SOURCES.md there), and the queue gets notifications shaped as S3, SNS and
CloudTrail send them (tests/unit/ingest/cloudtrail/test_sqs.py builds them).
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from eventlog.app.service import create_app
from eventlog.settings import Settings
from tests.app import Service, make_settings
from tests.integration.ingest.cloudtrail.test_digest import CONSOLE, FEDERATION, LEAVE, Trail
from tests.integration.ingest.cloudtrail.test_import import ALPHA, Bucket, _key, _log_file, _recent, _records
from tests.integration.ingest.cloudtrail.test_poll import _metric, _wait
from tests.unit.ingest.cloudtrail.test_sqs import TEST_EVENT, s3_event, sns

pytestmark = pytest.mark.s3

PREFIX = "audit trail"  # a space: S3 sends it as "+" in the notification's key


class Queue:
    def __init__(self, endpoint_url: str, **attributes: str) -> None:
        self.sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name="us-east-1")
        name = f"cloudtrail-{uuid.uuid4().hex[:12]}"
        self.url: str = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        self.arn: str = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def send(self, body: str) -> str:
        message_id: str = self.sqs.send_message(QueueUrl=self.url, MessageBody=body)["MessageId"]
        return message_id

    def depth(self) -> int:
        """Messages in the queue, visible or not."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)["Attributes"]
        return sum(int(attributes[n]) for n in names)


def _put(bucket: Bucket, key: str, body: bytes) -> str:
    """Put a log file; the notification S3 would send for it."""
    bucket.put(key, body)
    return s3_event(key, bucket=bucket.name)


def _actions(*fixtures: str) -> list[str]:
    """The actions the records of these fixture files map to (ingest/cloudtrail/mapping.py, `_map`)."""
    records = [r for name in fixtures for r in _records(name)]
    return sorted(f"aws.{r['eventSource'].removesuffix('.amazonaws.com')}.{r['eventName']}" for r in records)


def _log_key(stamp: str, unique: str) -> str:
    return _key(ALPHA, "us-east-1", stamp, unique).replace("audit/", f"{PREFIX}/", 1)


def _settings(
    tmp_path: Path, bucket: Bucket, queue: Queue, endpoint: str, prefix: str = PREFIX, **more: object
) -> Settings:
    return make_settings(
        tmp_path / "data",
        cloudtrail_bucket=bucket.name,
        cloudtrail_prefix=prefix,
        cloudtrail_endpoint_url=endpoint,
        cloudtrail_sqs_queue_url=queue.url,
        cloudtrail_poll_interval_seconds=0.2,
        cloudtrail_account_tenants={ALPHA: "alpha"},
        **more,
    )


@pytest.fixture
def bucket(s3_endpoint_url: str) -> Bucket:
    return Bucket(s3_endpoint_url)


def _events(service: Service, token: str) -> list[dict[str, Any]]:
    service.settle()
    answer = service.client.get("/v1/events", params={"q": "source:cloudtrail"}, headers={"Authorization": token})
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


def _metrics(client: TestClient, name: str, at_least: float) -> str:
    def check() -> str:
        text: str = client.get("/metrics").text
        return text if _metric(text, name) >= at_least else ""

    text: str = _wait(f"{name} >= {at_least}", check)
    return text


def test_notifications_import_each_file_once_and_are_deleted(
    s3_endpoint_url: str, bucket: Bucket, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = Queue(s3_endpoint_url)
    console_key, federation_key = _log_key("1500", "consolelogin0000"), _log_key("1505", "federation000000")
    console = _put(bucket, console_key, _log_file(_recent(_records(CONSOLE), ALPHA)))
    federation = _put(bucket, federation_key, _log_file(_recent(_records(FEDERATION), ALPHA)))
    bucket.put(f"{PREFIX}/notes/read me.txt", b"not CloudTrail")
    bodies = [
        TEST_EVENT.replace("trail-bucket", bucket.name),  # what S3 sends when the notification is configured
        console,
        sns(federation),  # S3 -> SNS -> SQS without raw message delivery
        s3_event(f"{PREFIX}/notes/read me.txt", bucket=bucket.name),
        s3_event(console_key, bucket=bucket.name, name="ObjectRemoved:Delete"),
        "this is not JSON",
    ]
    malformed_id = [queue.send(body) for body in bodies][-1]
    settings = _settings(tmp_path, bucket, queue, s3_endpoint_url)
    with TestClient(create_app(settings)) as client:
        service = Service(client, settings)
        token = f"Bearer {service.token('alpha')}"
        text = _metrics(client, "eventlog_cloudtrail_sqs_messages_deleted_total", len(bodies))
        events = _events(service, token)
        assert sorted(e["action"] for e in events) == _actions(CONSOLE, FEDERATION)
        assert _metric(text, "eventlog_cloudtrail_sqs_messages_received_total") == len(bodies)
        assert _metric(text, 'eventlog_cloudtrail_sqs_messages_ignored_total{reason="test_event"}') == 1
        assert _metric(text, 'eventlog_cloudtrail_sqs_messages_ignored_total{reason="not_cloudtrail"}') == 1
        assert _metric(text, 'eventlog_cloudtrail_sqs_messages_ignored_total{reason="not_object_created"}') == 1
        assert _metric(text, "eventlog_cloudtrail_sqs_messages_malformed_total") == 1
        assert _metric(text, "eventlog_cloudtrail_sqs_messages_failed_total") == 0
        assert _metric(text, "eventlog_cloudtrail_files_total") == 2
        assert _metric(text, "eventlog_cloudtrail_imported_total") == len(events)
        assert queue.depth() == 0

        # The same files notified again (S3 delivers at least once; CloudTrail's own SNS form too): nothing new.
        cloudtrail_form = json.dumps({"s3Bucket": bucket.name, "s3ObjectKey": [console_key, federation_key]})
        for body in (console, sns(cloudtrail_form)):
            queue.send(body)
        text = _metrics(client, "eventlog_cloudtrail_sqs_messages_deleted_total", len(bodies) + 2)
        assert _metric(text, "eventlog_cloudtrail_files_total") == 2
        assert _metric(text, "eventlog_cloudtrail_imported_total") == len(events)
        assert _metric(text, "eventlog_cloudtrail_duplicates_total") == 0
        assert len(_events(service, token)) == len(events)
        assert queue.depth() == 0

        state = service.readiness()["cloudtrail"]
        assert (state["mode"], state["queue_url"], state["bucket"]) == ("sqs", queue.url, bucket.name)
        assert state["messages"]["malformed"] == 1
        assert state["last_error"] is None
    # A body that can never be imported is deleted at once, and the log names it.
    [record] = [r for r in caplog.records if r.getMessage() == "cloudtrail sqs message malformed, deleted"]
    assert (record.levelno, record.__dict__["message_id"]) == (logging.ERROR, malformed_id)


def test_a_notification_for_a_missing_file_is_left_and_retried_until_it_comes(
    s3_endpoint_url: str, bucket: Bucket, tmp_path: Path
) -> None:
    queue = Queue(s3_endpoint_url, VisibilityTimeout="1")
    key = _log_key("1510", "latecomer0000000")
    message_id = queue.send(s3_event(key, bucket=bucket.name))
    settings = _settings(tmp_path, bucket, queue, s3_endpoint_url)
    with TestClient(create_app(settings)) as client:
        # Received, failed, visible again a second later, failed again: SQS's retry, not ours.
        _metrics(client, "eventlog_cloudtrail_sqs_messages_failed_total", 2)
        state = Service(client, settings).readiness()["cloudtrail"]
        assert state["last_error"].startswith(f"message {message_id}: ")
        assert "NoSuchKey" in state["last_error"]
        assert state["last_error_at"] is not None
        public = client.get("/readyz")
        assert public.status_code == 200
        assert public.json()["cloudtrail"]["state"] == "failing"
        assert message_id not in public.text
        assert queue.url not in public.text
        assert queue.depth() == 1

        bucket.put(key, _log_file(_recent(_records(CONSOLE), ALPHA)))
        text = _metrics(client, "eventlog_cloudtrail_sqs_messages_deleted_total", 1)
        assert _metric(text, "eventlog_cloudtrail_imported_total") == 1
        assert queue.depth() == 0


def test_a_message_that_keeps_failing_goes_to_the_queues_dead_letter_queue(
    s3_endpoint_url: str, bucket: Bucket, tmp_path: Path
) -> None:
    dead = Queue(s3_endpoint_url)
    policy = json.dumps({"deadLetterTargetArn": dead.arn, "maxReceiveCount": 2})
    queue = Queue(s3_endpoint_url, VisibilityTimeout="1", RedrivePolicy=policy)
    body = s3_event(_log_key("1515", "nevercomes000000"), bucket=bucket.name)
    queue.send(body)
    settings = _settings(tmp_path, bucket, queue, s3_endpoint_url)
    with TestClient(create_app(settings)) as client:
        _wait("the message in the dead-letter queue", lambda: dead.depth() == 1)
        assert queue.depth() == 0
        text = client.get("/metrics").text
        assert _metric(text, "eventlog_cloudtrail_sqs_messages_failed_total") == 2
        assert _metric(text, "eventlog_cloudtrail_sqs_messages_deleted_total") == 0
    [message] = dead.sqs.receive_message(QueueUrl=dead.url)["Messages"]
    assert message["Body"] == body


@pytest.mark.parametrize("require_digest", [False, True])
def test_digests_and_log_files_in_either_order(
    s3_endpoint_url: str, bucket: Bucket, tmp_path: Path, require_digest: bool
) -> None:
    """A log file notified before its digest is compared (or held back) until the digest comes; one a digest
    lists before its own notification is imported when the digest is checked, and its notification adds nothing."""
    trail = Trail(bucket)  # under the prefix "audit", signed as CloudTrail signs
    first, second = trail.log("1500", CONSOLE), trail.log("1505", LEAVE)
    digest = trail.digest(0, [first, second])
    queue = Queue(s3_endpoint_url)
    console, leave = len(_records(CONSOLE)), len(_records(LEAVE))
    settings = _settings(
        tmp_path,
        bucket,
        queue,
        s3_endpoint_url,
        prefix="audit",
        cloudtrail_digest_public_keys={trail.signer.fingerprint: trail.signer.public_key_der_b64},
        cloudtrail_require_digest=require_digest,
    )
    with TestClient(create_app(settings)) as client:
        queue.send(s3_event(first[0], bucket=bucket.name))
        text = _metrics(client, "eventlog_cloudtrail_sqs_messages_deleted_total", 1)
        if require_digest:
            assert _metric(text, "eventlog_cloudtrail_awaiting_digest_files") == 1
            assert _metric(text, "eventlog_cloudtrail_imported_total") == 0
        else:
            assert _metric(text, "eventlog_cloudtrail_unvalidated_files_total") == 1
            assert _metric(text, "eventlog_cloudtrail_imported_total") == console

        queue.send(sns(s3_event(digest.key, bucket=bucket.name)))
        text = _metrics(client, "eventlog_cloudtrail_sqs_messages_deleted_total", 2)
        assert _metric(text, "eventlog_cloudtrail_digests_total") == 1
        assert _metric(text, "eventlog_cloudtrail_validated_files_total") == 2
        imported = _metric(text, "eventlog_cloudtrail_imported_total")
        assert imported == console + leave

        queue.send(s3_event(second[0], bucket=bucket.name))
        text = _metrics(client, "eventlog_cloudtrail_sqs_messages_deleted_total", 3)
        assert _metric(text, "eventlog_cloudtrail_imported_total") == imported
        assert _metric(text, "eventlog_cloudtrail_files_total") == 2
        integrity = Service(client, settings).readiness()["cloudtrail"]["integrity"]
        assert (integrity["state"], integrity["require_digest"]) == ("ok", require_digest)


def test_receive_errors_are_reported_and_retried(s3_endpoint_url: str, bucket: Bucket, tmp_path: Path) -> None:
    queue = Queue(s3_endpoint_url)
    queue.sqs.delete_queue(QueueUrl=queue.url)
    settings = _settings(tmp_path, bucket, queue, s3_endpoint_url)
    with TestClient(create_app(settings)) as client:
        service = Service(client, settings)
        state = _wait("two failed receives", lambda: (s := service.readiness()["cloudtrail"])["runs"] >= 2 and s)
        assert "NonExistentQueue" in state["last_error"]
        assert client.get("/readyz").status_code == 200
        assert _metric(client.get("/metrics").text, "eventlog_cloudtrail_poll_errors_total") >= 2
