"""SQS notifications of CloudTrail files: parsing the bodies, choosing the keys, and what each message becomes.

The bodies are shaped as AWS documents them (S3 user guide, "Event message structure"; CloudTrail user
guide, "Configuring Amazon SNS notifications for CloudTrail"). The queue itself is an in-memory fake here;
tests/integration/ingest/cloudtrail/test_sqs.py runs the same against moto's SQS server.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote_plus

import pytest
from botocore.exceptions import ClientError

from ingest.cloudtrail.sqs import (
    MalformedMessage,
    MessageCounts,
    Notification,
    QueueConsumer,
    S3Object,
    check_queue_url,
    parse_notification,
)

BUCKET = "trail-bucket"
ROOT = "audit logs/AWSLogs/111111111111"
LOG = f"{ROOT}/CloudTrail/eu-west-1/2026/11/27/111111111111_CloudTrail_eu-west-1_20261127T1455Z_AbC+d.json.gz"
DIGEST = (
    f"{ROOT}/CloudTrail-Digest/eu-west-1/2026/11/27/"
    "111111111111_CloudTrail-Digest_eu-west-1_management-events_eu-west-1_20261127T150131Z.json.gz"
)


def s3_event(key: str, *, bucket: str = BUCKET, name: str = "ObjectCreated:Put", encode: bool = True) -> str:
    """An S3 event notification (eventVersion 2.1) as S3 sends it to SQS or SNS: the key form-encoded."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "eu-west-1",
                    "eventTime": "2026-11-27T15:00:12.345Z",
                    "eventName": name,
                    "userIdentity": {"principalId": "AWS:AROAEXAMPLE:regional-delivery"},
                    "requestParameters": {"sourceIPAddress": "10.1.2.3"},
                    "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xR"},
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": "eventlog-cloudtrail",
                        "bucket": {
                            "name": bucket,
                            "ownerIdentity": {"principalId": "A3NL1KOZZKEXAMPLE"},
                            "arn": f"arn:aws:s3:::{bucket}",
                        },
                        "object": {
                            "key": quote_plus(key, safe="/") if encode else key,
                            "size": 1024,
                            "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                            "sequencer": "0055AED6DCD90281E5",
                        },
                    },
                }
            ]
        }
    )


def sns(message: str) -> str:
    """The SNS envelope SQS receives from a topic without raw message delivery."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:eu-west-1:111111111111:cloudtrail-files",
            "Subject": "Amazon S3 Notification",
            "Message": message,
            "Timestamp": "2026-11-27T15:00:12.500Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:eu-west-1:111111111111:cloudtrail-files:0",
        }
    )


TEST_EVENT = json.dumps(
    {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-11-27T14:57:02.089Z",
        "Bucket": BUCKET,
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
)
CLOUDTRAIL_SNS = json.dumps({"s3Bucket": BUCKET, "s3ObjectKey": [LOG, DIGEST]})


# -- parse_notification ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(s3_event(LOG), Notification((S3Object(BUCKET, LOG),)), id="s3-event-key-decoded"),
        pytest.param(sns(s3_event(LOG)), Notification((S3Object(BUCKET, LOG),)), id="s3-event-in-sns-envelope"),
        pytest.param(
            s3_event(LOG, name="ObjectCreated:CompleteMultipartUpload"),
            Notification((S3Object(BUCKET, LOG),)),
            id="multipart-upload",
        ),
        pytest.param(
            s3_event(LOG, name="ObjectRemoved:Delete"), Notification((), ("not_object_created",)), id="delete"
        ),
        pytest.param(TEST_EVENT, Notification((), ("test_event",)), id="s3-test-event"),
        pytest.param(sns(TEST_EVENT), Notification((), ("test_event",)), id="s3-test-event-in-sns-envelope"),
        pytest.param(
            CLOUDTRAIL_SNS,
            Notification((S3Object(BUCKET, LOG), S3Object(BUCKET, DIGEST))),
            id="cloudtrail-notification-keys-as-they-are",
        ),
        pytest.param(
            sns(CLOUDTRAIL_SNS),
            Notification((S3Object(BUCKET, LOG), S3Object(BUCKET, DIGEST))),
            id="cloudtrail-notification-in-sns-envelope",
        ),
    ],
)
def test_parse_notification(body: str, expected: Notification) -> None:
    assert parse_notification(body) == expected


def test_two_records_in_one_message_are_both_read() -> None:
    first, second = json.loads(s3_event(LOG)), json.loads(s3_event(DIGEST, name="ObjectRemoved:Delete"))
    body = json.dumps({"Records": first["Records"] + second["Records"] + first["Records"]})
    assert parse_notification(body) == Notification(
        (S3Object(BUCKET, LOG), S3Object(BUCKET, LOG)), ("not_object_created",)
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param("this is not JSON", "the message body is not JSON", id="not-json"),
        pytest.param("", "the message body is not JSON", id="empty"),
        pytest.param("[1, 2]", "a JSON list, not an object", id="array"),
        pytest.param("{}", "neither an S3 event notification", id="unknown-object"),
        pytest.param('{"Records": []}', "`Records` is not a non-empty array", id="no-records"),
        pytest.param('{"Records": [3]}', "Records[0] is not an object", id="record-not-object"),
        pytest.param(
            '{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}',
            "Records[0] has no s3.bucket and s3.object",
            id="no-s3",
        ),
        pytest.param(s3_event(LOG).replace(quote_plus(LOG, safe="/"), ""), "Records[0].s3.object.key", id="empty-key"),
        pytest.param(sns("not JSON either"), "the SNS envelope's Message is not JSON", id="sns-message-not-json"),
        pytest.param(
            json.dumps({"Type": "Notification", "Message": {"Records": []}}), "Message is a JSON dict", id="sns-object"
        ),
        pytest.param(json.dumps({"s3Bucket": BUCKET, "s3ObjectKey": []}), "`s3ObjectKey`", id="cloudtrail-no-keys"),
        pytest.param(json.dumps({"s3Bucket": BUCKET, "s3ObjectKey": [7]}), "s3ObjectKey[0]", id="cloudtrail-bad-key"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body: str, error: str) -> None:
    with pytest.raises(MalformedMessage, match=re.escape(error)):
        parse_notification(body)


# -- which keys are CloudTrail files -----------------------------------------------------------------------------


def test_wanted_keeps_cloudtrail_keys_of_the_bucket_once() -> None:
    consumer = QueueConsumer(FakeQueue(), "http://q", bucket=BUCKET, prefix="audit logs", digests=False)
    notification = Notification(
        (
            S3Object(BUCKET, LOG),
            S3Object(BUCKET, LOG),
            S3Object("another-bucket", LOG),
            S3Object(BUCKET, "audit logs/notes/readme.txt"),
            S3Object(BUCKET, DIGEST),
        ),
        ("not_object_created",),
    )
    assert consumer.wanted(notification) == (
        [LOG],
        ["not_object_created", "other_bucket", "not_cloudtrail", "digest_not_validated"],
    )
    validating = QueueConsumer(FakeQueue(), "http://q", bucket=BUCKET, prefix="audit logs", digests=True)
    assert validating.wanted(Notification((S3Object(BUCKET, DIGEST),))) == ([DIGEST], [])


# -- the queue URL -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://sqs.eu-west-1.amazonaws.com/111111111111/trail",
            ("https://sqs.eu-west-1.amazonaws.com", "eu-west-1"),
        ),
        (
            "https://sqs-fips.us-gov-west-1.amazonaws.com/1/q",
            ("https://sqs-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        ),
        ("https://sqs.cn-north-1.amazonaws.com.cn/1/q", ("https://sqs.cn-north-1.amazonaws.com.cn", "cn-north-1")),
        ("https://eu-west-1.queue.amazonaws.com/1/q", ("https://eu-west-1.queue.amazonaws.com", "eu-west-1")),
        ("https://queue.amazonaws.com/1/q", ("https://queue.amazonaws.com", "us-east-1")),
        ("http://127.0.0.1:5000/123456789012/trail", ("http://127.0.0.1:5000", None)),
    ],
)
def test_queue_url_names_endpoint_and_region(url: str, expected: tuple[str, str | None]) -> None:
    assert check_queue_url(url) == expected


@pytest.mark.parametrize("url", ["trail-queue", "arn:aws:sqs:eu-west-1:1:q", "https://sqs.eu-west-1.amazonaws.com/"])
def test_a_queue_name_or_arn_is_refused_with_the_form_expected(url: str) -> None:
    with pytest.raises(ValueError, match=r"https://sqs\.<region>\.amazonaws\.com/<account>/<queue name>"):
        check_queue_url(url)


# -- what each message becomes -----------------------------------------------------------------------------------


class FakeQueue:
    """The two SQS calls the consumer makes, in memory."""

    def __init__(self, *, delete_fails: bool = False) -> None:
        self.deleted: list[str] = []
        self.delete_fails = delete_fails

    def receive_message(self, **kwargs: Any) -> Any:
        return {}

    def delete_message(self, **kwargs: Any) -> Any:
        if self.delete_fails:
            raise ClientError({"Error": {"Code": "ReceiptHandleIsInvalid", "Message": "expired"}}, "DeleteMessage")
        self.deleted.append(kwargs["ReceiptHandle"])
        return {}


def _message(handle: str, body: str) -> dict[str, Any]:
    return {
        "MessageId": f"id-{handle}",
        "ReceiptHandle": handle,
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": "1"},
    }


async def test_messages_are_deleted_after_their_import_and_left_when_it_fails() -> None:
    queue = FakeQueue()
    consumer = QueueConsumer(queue, "http://q", bucket=BUCKET, prefix="audit logs", digests=False)
    imported: list[list[str]] = []
    missing = LOG.replace("AbC", "Missing")

    async def import_keys(keys: list[str]) -> None:
        if missing in keys:
            raise RuntimeError("NoSuchKey")
        imported.append(keys)

    counts = MessageCounts()
    messages = [
        _message("log", s3_event(LOG)),
        _message("sns", sns(s3_event(LOG))),
        _message("test", TEST_EVENT),
        _message("junk", "not JSON"),
        _message("elsewhere", s3_event("audit logs/notes/readme.txt")),
        _message("missing", s3_event(missing)),
    ]
    errors = await consumer.handle(messages, import_keys, counts)
    assert imported == [[LOG], [LOG]]  # a file read once is passed over by the importer, not here
    assert queue.deleted == ["log", "sns", "test", "junk", "elsewhere"]
    assert [e.split(":")[0] for e in errors] == ["message id-missing"]
    assert "RuntimeError: NoSuchKey" in errors[0]
    assert counts.as_dict() == {
        "received": 6,
        "deleted": 5,
        "failed": 1,
        "malformed": 1,
        "ignored": {"not_cloudtrail": 1, "test_event": 1},
    }


async def test_a_failed_delete_is_counted_and_the_rest_go_on() -> None:
    consumer = QueueConsumer(
        FakeQueue(delete_fails=True), "http://q", bucket=BUCKET, prefix="audit logs", digests=False
    )
    counts = MessageCounts()

    async def import_keys(keys: list[str]) -> None:
        return None

    errors = await consumer.handle([_message("a", s3_event(LOG)), _message("b", TEST_EVENT)], import_keys, counts)
    assert [("ReceiptHandleIsInvalid" in e) for e in errors] == [True, True]
    assert (counts.received, counts.deleted, counts.failed) == (2, 0, 2)


async def test_stopping_leaves_the_remaining_messages() -> None:
    queue = FakeQueue()
    consumer = QueueConsumer(queue, "http://q", bucket=BUCKET, prefix="audit logs", digests=False)
    counts = MessageCounts()

    async def import_keys(keys: list[str]) -> None:
        return None

    seen: list[str] = []

    def stopping() -> bool:
        seen.append("asked")
        return len(seen) > 1

    await consumer.handle(
        [_message("a", TEST_EVENT), _message("b", TEST_EVENT)], import_keys, counts, stopping=stopping
    )
    assert queue.deleted == ["a"]
    assert counts.received == 1
