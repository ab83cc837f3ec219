"""CloudTrail files named by S3 event notifications in an SQS queue, instead of listing the bucket.

Bodies understood (AWS S3 user guide, "Event message structure"; AWS CloudTrail user guide, "Configuring
Amazon SNS notifications for CloudTrail"):

- an S3 event notification: ``{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
  "s3": {"bucket": {"name": ...}, "object": {"key": ..., "size": ..., "eTag": ...}}}]}``, the key URL-encoded
  (``+`` for a space);
- the ``s3:TestEvent`` message S3 sends when a notification is configured (deleted, counted as ignored);
- CloudTrail's own notification ``{"s3Bucket": ..., "s3ObjectKey": [...]}`` (keys not encoded);
- any of them inside an SNS envelope (``{"Type": "Notification", "Message": "<the JSON above as text>"}``), as
  S3 → SNS → SQS and CloudTrail → SNS → SQS deliver them without raw message delivery.

A message is deleted once the files it names are imported (their events durable) or when it names none. On an
error (S3, journal) it is left: SQS shows it again after the queue's visibility timeout, which is the retry,
and after the queue's maxReceiveCount moves it to the dead-letter queue of its redrive policy. A body that is
no notification at all can never succeed, so it is deleted at once and counted as malformed, with a log line
naming the message id (left, it would only come back until the dead-letter queue takes it).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote_plus, urlsplit

import boto3
import orjson
from botocore.exceptions import BotoCoreError, ClientError

from ingest.cloudtrail.layout import locate_key

__all__ = [
    "BATCH_MESSAGES",
    "WAIT_SECONDS",
    "MalformedMessage",
    "MessageCounts",
    "Notification",
    "QueueConsumer",
    "S3Object",
    "SqsClient",
    "check_queue_url",
    "parse_notification",
    "sqs_client",
]

log = logging.getLogger(__name__)

# SQS's own limits: at most 10 messages per ReceiveMessage, and a long poll of at most 20 s.
BATCH_MESSAGES = 10
WAIT_SECONDS = 20

# Hosts of AWS SQS endpoints, for the region a request must be signed for.
_AWS_HOST = re.compile(r"sqs(?:-fips)?\.(?P<region>[a-z0-9-]+)\.(?:amazonaws\.com(?:\.cn)?|api\.aws)")
_LEGACY_HOST = re.compile(r"(?P<region>[a-z0-9-]+)\.queue\.amazonaws\.com")


class MalformedMessage(ValueError):
    """A message body that is not a notification this module understands: it can never be imported."""


@dataclass(frozen=True, slots=True)
class S3Object:
    bucket: str
    key: str  # decoded


@dataclass(frozen=True, slots=True)
class Notification:
    """What one message says: the objects created, and why its other records name nothing to import."""

    objects: tuple[S3Object, ...] = ()
    skipped: tuple[str, ...] = ()  # "test_event", "not_object_created"


# -- parsing (pure) ------------------------------------------------------------------------------------------------


def _json(text: Any, what: str) -> Any:
    if not isinstance(text, str | bytes):
        raise MalformedMessage(f"{what} is a JSON {type(text).__name__}, not text")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"{what} is not JSON: {exc}") from None


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{where} is not a non-empty string")
    return value


def _s3_records(records: Any) -> Notification:
    if not isinstance(records, list) or not records:
        raise MalformedMessage("`Records` is not a non-empty array")
    objects: list[S3Object] = []
    skipped: list[str] = []
    for index, record in enumerate(records):
        where = f"Records[{index}]"
        if not isinstance(record, dict):
            raise MalformedMessage(f"{where} is not an object")
        name = record.get("eventName")
        if record.get("eventSource") != "aws:s3" or not isinstance(name, str) or not name.startswith("ObjectCreated:"):
            skipped.append("not_object_created")  # a deletion, a restore, another service: nothing to read
            continue
        s3 = record.get("s3")
        bucket = s3.get("bucket") if isinstance(s3, dict) else None
        item = s3.get("object") if isinstance(s3, dict) else None
        if not isinstance(bucket, dict) or not isinstance(item, dict):
            raise MalformedMessage(f"{where} has no s3.bucket and s3.object")
        key = unquote_plus(_text(item.get("key"), f"{where}.s3.object.key"))  # S3 form-encodes keys here
        objects.append(S3Object(_text(bucket.get("name"), f"{where}.s3.bucket.name"), key))
    return Notification(tuple(objects), tuple(skipped))


def _cloudtrail(document: dict[str, Any]) -> Notification:
    bucket = _text(document.get("s3Bucket"), "s3Bucket")
    keys = document.get("s3ObjectKey")
    if not isinstance(keys, list) or not keys:
        raise MalformedMessage("`s3ObjectKey` is not a non-empty array")
    return Notification(tuple(S3Object(bucket, _text(k, f"s3ObjectKey[{i}]")) for i, k in enumerate(keys)))


def _notification(document: Any) -> Notification:
    if not isinstance(document, dict):
        raise MalformedMessage(f"the notification is a JSON {type(document).__name__}, not an object")
    if document.get("Event") == "s3:TestEvent":
        return Notification(skipped=("test_event",))
    if "Records" in document:
        return _s3_records(document["Records"])
    if "s3ObjectKey" in document:
        return _cloudtrail(document)
    raise MalformedMessage(
        "neither an S3 event notification (`Records`), an s3:TestEvent, nor a CloudTrail notification (`s3ObjectKey`)"
    )


def parse_notification(body: str) -> Notification:
    """The objects one SQS message body names; MalformedMessage when it is no notification."""
    document = _json(body, "the message body")
    if isinstance(document, dict) and document.get("Type") == "Notification" and "Message" in document:
        document = _json(document["Message"], "the SNS envelope's Message")
    return _notification(document)


# -- the queue -----------------------------------------------------------------------------------------------------


class SqsClient(Protocol):
    def receive_message(self, **kwargs: Any) -> Any: ...
    def delete_message(self, **kwargs: Any) -> Any: ...


def _region(host: str) -> str | None:
    if host == "queue.amazonaws.com":
        return "us-east-1"
    match = _AWS_HOST.fullmatch(host) or _LEGACY_HOST.fullmatch(host)
    return match["region"] if match else None


def check_queue_url(queue_url: str) -> tuple[str, str | None]:
    """The endpoint (scheme and host of the queue URL) and, for AWS, the region; ValueError if it is no URL."""
    parts = urlsplit(queue_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.count("/") != 2:
        raise ValueError(
            f"cloudtrail_sqs_queue_url {queue_url!r} is not a queue URL; give it as SQS prints it, "
            "https://sqs.<region>.amazonaws.com/<account>/<queue name>"
        )
    return f"{parts.scheme}://{parts.netloc}", _region(parts.hostname)


def sqs_client(queue_url: str) -> Any:
    """A boto3 SQS client for the queue: its URL names the endpoint (AWS, or moto, ElasticMQ, LocalStack).

    The S3 endpoint setting is not reused: S3-compatible stores do not serve SQS. On AWS the region the URL
    names is the one requests are signed for, whatever boto3's default region is.
    """
    endpoint, region = check_queue_url(queue_url)
    return boto3.session.Session().client("sqs", endpoint_url=endpoint, region_name=region)


@dataclass
class MessageCounts:
    """What happened to the messages of one or more receives."""

    received: int = 0
    deleted: int = 0  # imported, ignored or malformed
    failed: int = 0  # left in the queue after an error
    malformed: int = 0
    ignored: Counter[str] = field(default_factory=Counter)

    def add(self, other: MessageCounts) -> None:
        self.received += other.received
        self.deleted += other.deleted
        self.failed += other.failed
        self.malformed += other.malformed
        self.ignored.update(other.ignored)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "deleted": self.deleted,
            "failed": self.failed,
            "malformed": self.malformed,
            "ignored": dict(sorted(self.ignored.items())),
        }


ImportKeys = Callable[[list[str]], Awaitable[object]]  # imports the keys; raises if it could not


class QueueConsumer:
    """Receives the notifications of one queue and, per message, imports the CloudTrail files it names."""

    def __init__(
        self,
        sqs: SqsClient,
        queue_url: str,
        *,
        bucket: str,
        prefix: str,
        digests: bool,
        wait_seconds: int = WAIT_SECONDS,
    ) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self.bucket = bucket
        self.prefix = prefix
        self._digests = digests  # digest files are read only when they are validated
        self.wait_seconds = wait_seconds

    def receive(self) -> list[dict[str, Any]]:
        """One long poll: up to BATCH_MESSAGES messages, waiting up to wait_seconds for the first."""
        answer = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=BATCH_MESSAGES,
            WaitTimeSeconds=self.wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        return messages

    async def handle(
        self,
        messages: Sequence[dict[str, Any]],
        import_keys: ImportKeys,
        counts: MessageCounts,
        *,
        stopping: Callable[[], bool] = lambda: False,
    ) -> list[str]:
        """Import and delete each message in turn; returns the errors of those left in the queue."""
        errors: list[str] = []
        for message in messages:
            if stopping():
                break  # the rest come back after their visibility timeout
            counts.received += 1
            error = await self._one(message, import_keys, counts)
            if error is not None:
                errors.append(error)
        return errors

    def wanted(self, notification: Notification) -> tuple[list[str], list[str]]:
        """The keys of a notification to import, and why the others are not."""
        keys: list[str] = []
        reasons = list(notification.skipped)
        for item in notification.objects:
            where = locate_key(self.prefix, item.key)
            if item.bucket != self.bucket:
                reasons.append("other_bucket")
            elif where is None:
                reasons.append("not_cloudtrail")
            elif where.digest and not self._digests:
                reasons.append("digest_not_validated")
            elif item.key not in keys:
                keys.append(item.key)
        return keys, reasons

    async def _one(self, message: dict[str, Any], import_keys: ImportKeys, counts: MessageCounts) -> str | None:
        message_id = str(message.get("MessageId"))
        fields = {"queue_url": self.queue_url, "message_id": message_id}
        try:
            notification = parse_notification(message.get("Body", ""))
        except MalformedMessage as exc:
            counts.malformed += 1
            log.error("cloudtrail sqs message malformed, deleted", extra={**fields, "error": str(exc)})
            return self._delete(message, counts)
        keys, reasons = self.wanted(notification)
        if not keys:
            counts.ignored[reasons[0] if reasons else "empty"] += 1
            log.info("cloudtrail sqs message ignored", extra={**fields, "reasons": reasons})
            return self._delete(message, counts)
        try:
            await import_keys(keys)
        except Exception as exc:  # noqa: BLE001 - the message stays: SQS redelivers it, then its DLQ takes it
            counts.failed += 1
            error = f"message {message_id}: {type(exc).__name__}: {exc}"
            attempts = message.get("Attributes", {}).get("ApproximateReceiveCount")
            log.error(
                "cloudtrail sqs message failed, left in the queue",
                extra={**fields, "keys": keys, "receive_count": attempts, "error": f"{type(exc).__name__}: {exc}"},
            )
            return error
        return self._delete(message, counts)

    def _delete(self, message: dict[str, Any], counts: MessageCounts) -> str | None:
        try:
            self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        except (BotoCoreError, ClientError) as exc:
            # Its files are read: when it comes back it is passed over as already read, and deleted then.
            counts.failed += 1
            error = f"message {message.get('MessageId')}: delete failed: {type(exc).__name__}: {exc}"
            log.error("cloudtrail sqs delete failed", extra={"queue_url": self.queue_url, "error": error})
            return error
        counts.deleted += 1
        return None
