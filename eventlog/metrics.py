"""Prometheus metrics of one service instance (own registry, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_accepted = Counter(
            "eventlog_events_accepted", "Events committed to the journal.", ["source"], registry=self.registry
        )
        self.events_duplicate = Counter(
            "eventlog_events_duplicate", "Replayed events answered with the original receipt.", registry=self.registry
        )
        self.events_rejected = Counter(
            "eventlog_events_rejected", "Events or requests refused at ingest.", ["reason"], registry=self.registry
        )
        self.journal_commit_seconds = Histogram(
            "eventlog_journal_commit_seconds",
            "Time of one journal group commit, fsync included.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        self.journal_group_events = Histogram(
            "eventlog_journal_group_events",
            "Events per group commit.",
            buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000),
            registry=self.registry,
        )
        self.sink_delivered = Counter(
            "eventlog_sink_delivered_events", "Events a sink acknowledged.", ["sink"], registry=self.registry
        )
        self.sink_failures = Counter(
            "eventlog_sink_failures", "Failed deliveries (retried).", ["sink"], registry=self.registry
        )
        self.sink_dead_letters = Counter(
            "eventlog_sink_dead_letters", "Events a sink refused for good.", ["sink"], registry=self.registry
        )
        self.sink_lag_events = Gauge(
            "eventlog_sink_lag_events", "Committed events not yet delivered.", ["sink"], registry=self.registry
        )
        self.sink_lag_seconds = Gauge(
            "eventlog_sink_lag_seconds", "Age of the oldest undelivered event.", ["sink"], registry=self.registry
        )
        self.auth_failures = Counter(
            "eventlog_auth_failures", "Refused authentications.", ["reason"], registry=self.registry
        )

        self.cloudtrail_files = Counter(
            "eventlog_cloudtrail_files", "CloudTrail log files read by the poll.", registry=self.registry
        )
        self.cloudtrail_records = Counter(
            "eventlog_cloudtrail_records", "CloudTrail records read by the poll.", registry=self.registry
        )
        self.cloudtrail_imported = Counter(
            "eventlog_cloudtrail_imported", "CloudTrail records stored as new events.", registry=self.registry
        )
        self.cloudtrail_duplicates = Counter(
            "eventlog_cloudtrail_duplicates", "CloudTrail records already stored.", registry=self.registry
        )
        self.cloudtrail_skipped = Counter(
            "eventlog_cloudtrail_skipped",
            "CloudTrail records skipped: invalid, too_old, too_large, unmapped_account, account_mismatch.",
            ["reason"],
            registry=self.registry,
        )
        self.cloudtrail_malformed_files = Counter(
            "eventlog_cloudtrail_malformed_files",
            "CloudTrail log files skipped as malformed.",
            registry=self.registry,
        )
        self.cloudtrail_poll_errors = Counter(
            "eventlog_cloudtrail_poll_errors", "CloudTrail poll runs that failed (retried).", registry=self.registry
        )
        self.cloudtrail_digests = Counter(
            "eventlog_cloudtrail_digests", "CloudTrail digest files whose signature verified.", registry=self.registry
        )
        self.cloudtrail_validated_files = Counter(
            "eventlog_cloudtrail_validated_files",
            "CloudTrail log files whose hash matched their digest file.",
            registry=self.registry,
        )
        self.cloudtrail_unvalidated_files = Counter(
            "eventlog_cloudtrail_unvalidated_files",
            "CloudTrail log files imported before any digest file listed them.",
            registry=self.registry,
        )
        self.cloudtrail_awaiting_digest_files = Gauge(
            "eventlog_cloudtrail_awaiting_digest_files",
            "CloudTrail log files held back at the last poll until a digest file lists them.",
            registry=self.registry,
        )
        self.cloudtrail_integrity_failures = Counter(
            "eventlog_cloudtrail_integrity_failures",
            "CloudTrail integrity failures: log_hash, log_missing, digest_format, digest_signature, digest_chain.",
            ["kind"],
            registry=self.registry,
        )
        self.cloudtrail_sqs_received = Counter(
            "eventlog_cloudtrail_sqs_messages_received",
            "SQS notification messages the CloudTrail poll received (again after each visibility timeout).",
            registry=self.registry,
        )
        self.cloudtrail_sqs_deleted = Counter(
            "eventlog_cloudtrail_sqs_messages_deleted",
            "SQS notification messages deleted: their files imported, or nothing to import, or malformed.",
            registry=self.registry,
        )
        self.cloudtrail_sqs_ignored = Counter(
            "eventlog_cloudtrail_sqs_messages_ignored",
            "SQS notification messages deleted with nothing to import: test_event, not_object_created,"
            " other_bucket, not_cloudtrail, digest_not_validated.",
            ["reason"],
            registry=self.registry,
        )
        self.cloudtrail_sqs_malformed = Counter(
            "eventlog_cloudtrail_sqs_messages_malformed",
            "SQS messages deleted because their body is no notification.",
            registry=self.registry,
        )
        self.cloudtrail_sqs_failed = Counter(
            "eventlog_cloudtrail_sqs_messages_failed",
            "SQS notification messages left in the queue after an error (received again after the visibility timeout).",
            registry=self.registry,
        )

    def observe_commit(self, seconds: float, events: int) -> None:
        self.journal_commit_seconds.observe(seconds)
        self.journal_group_events.observe(events)
