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
        return cls(
            files=Counter("eventlog_cloudtrail_files", "CloudTrail log files read by the poll.", registry=registry),
            records=Counter("eventlog_cloudtrail_records", "CloudTrail records read by the poll.", registry=registry),
            imported=Counter(
                "eventlog_cloudtrail_imported", "CloudTrail records stored as new events.", registry=registry
            ),
            duplicates=Counter(
                "eventlog_cloudtrail_duplicates", "CloudTrail records already stored.", registry=registry
            ),
            skipped=Counter(
                "eventlog_cloudtrail_skipped",
                "CloudTrail records skipped: invalid, too_old, too_large, unmapped_account, account_mismatch.",
                ["reason"],
                registry=registry,
            ),
            malformed_files=Counter(
                "eventlog_cloudtrail_malformed_files",
                "CloudTrail log files skipped as malformed.",
                registry=registry,
            ),
            poll_errors=Counter(
                "eventlog_cloudtrail_poll_errors", "CloudTrail poll runs that failed (retried).", registry=registry
            ),
            digests=Counter(
                "eventlog_cloudtrail_digests", "CloudTrail digest files whose signature verified.", registry=registry
            ),
            validated_files=Counter(
                "eventlog_cloudtrail_validated_files",
                "CloudTrail log files whose hash matched their digest file.",
                registry=registry,
            ),
            unvalidated_files=Counter(
                "eventlog_cloudtrail_unvalidated_files",
                "CloudTrail log files imported before any digest file listed them.",
                registry=registry,
            ),
            awaiting_digest_files=Gauge(
                "eventlog_cloudtrail_awaiting_digest_files",
                "CloudTrail log files held back at the last poll until a digest file lists them.",
                registry=registry,
            ),
            integrity_failures=Counter(
                "eventlog_cloudtrail_integrity_failures",
                "CloudTrail integrity failures: log_hash, log_missing, digest_format, digest_signature, digest_chain.",
                ["kind"],
                registry=registry,
            ),
            sqs_received=Counter(
                "eventlog_cloudtrail_sqs_messages_received",
                "SQS notification messages the CloudTrail poll received (again after each visibility timeout).",
                registry=registry,
            ),
            sqs_deleted=Counter(
                "eventlog_cloudtrail_sqs_messages_deleted",
                "SQS notification messages deleted: their files imported, or nothing to import, or malformed.",
                registry=registry,
            ),
            sqs_ignored=Counter(
                "eventlog_cloudtrail_sqs_messages_ignored",
                "SQS notification messages deleted with nothing to import: test_event, not_object_created,"
                " other_bucket, not_cloudtrail, digest_not_validated.",
                ["reason"],
                registry=registry,
            ),
            sqs_malformed=Counter(
                "eventlog_cloudtrail_sqs_messages_malformed",
                "SQS messages deleted because their body is no notification.",
                registry=registry,
            ),
            sqs_failed=Counter(
                "eventlog_cloudtrail_sqs_messages_failed",
                "SQS notification messages left in the queue after an error (received again after the visibility timeout).",
                registry=registry,
            ),
        )
