"""What the CloudTrail poll counts: files, records, digests, SQS messages."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass(frozen=True, slots=True)
class CloudTrailMetrics:
    files: Counter
    records: Counter
    imported: Counter
    duplicates: Counter
    skipped: Counter
    malformed_files: Counter
    poll_errors: Counter
    digests: Counter
    validated_files: Counter
    unvalidated_files: Counter
    awaiting_digest_files: Gauge
    integrity_failures: Counter
    sqs_received: Counter
    sqs_deleted: Counter
    sqs_ignored: Counter
    sqs_malformed: Counter
    sqs_failed: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> CloudTrailMetrics:
        def counter(name: str, text: str, *labels: str) -> Counter:
            return Counter(f"eventlog_cloudtrail_{name}", text, labels, registry=registry)

        return cls(
            files=counter("files", "CloudTrail log files read by the poll."),
            records=counter("records", "CloudTrail records read by the poll."),
            imported=counter("imported", "CloudTrail records stored as new events."),
            duplicates=counter("duplicates", "CloudTrail records already stored."),
            skipped=counter(
                "skipped",
                "CloudTrail records skipped: invalid, too_old, too_large, unmapped_account, account_mismatch.",
                "reason",
            ),
            malformed_files=counter("malformed_files", "CloudTrail log files skipped as malformed."),
            poll_errors=counter("poll_errors", "CloudTrail poll runs that failed (retried)."),
            digests=counter("digests", "CloudTrail digest files whose signature verified."),
            validated_files=counter("validated_files", "CloudTrail log files whose hash matched their digest file."),
            unvalidated_files=counter(
                "unvalidated_files", "CloudTrail log files imported before any digest file listed them."
            ),
            awaiting_digest_files=Gauge(
                "eventlog_cloudtrail_awaiting_digest_files",
                "CloudTrail log files held back at the last poll until a digest file lists them.",
                registry=registry,
            ),
            integrity_failures=counter(
                "integrity_failures",
                "CloudTrail integrity failures: log_hash, log_missing, digest_format, digest_signature, digest_chain.",
                "kind",
            ),
            sqs_received=counter(
                "sqs_messages_received",
                "SQS notification messages the CloudTrail poll received (again after each visibility timeout).",
            ),
            sqs_deleted=counter(
                "sqs_messages_deleted",
                "SQS notification messages deleted: their files imported, or nothing to import, or malformed.",
            ),
            sqs_ignored=counter(
                "sqs_messages_ignored",
                "SQS notification messages deleted with nothing to import: test_event, not_object_created, other_bucket, not_cloudtrail, digest_not_validated.",
                "reason",
            ),
            sqs_malformed=counter(
                "sqs_messages_malformed", "SQS messages deleted because their body is no notification."
            ),
            sqs_failed=counter(
                "sqs_messages_failed",
                "SQS notification messages left in the queue after an error (received again after the visibility timeout).",
            ),
        )
