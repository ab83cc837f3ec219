"""The service's periodic CloudTrail import: `import_cloudtrail` every interval, into the live journal.

Each run goes through the service's own `Journal` object (its one writer thread), so no second writer ever
opens the journal file. The run itself (boto3 listing and reads, gzip, ijson, mapping) is blocking work, so it
runs in a worker thread with its own event loop; `Journal.append` is safe to call from any loop. The checkpoint
store (SQLite) is opened and closed in that thread at every run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

from eventlog.journal import Appended, Journal, Prepared
from eventlog.metrics import Metrics
from eventlog.settings import Settings
from ingest.cloudtrail import CheckpointStore, ImportStats, Limits, import_cloudtrail
from ingest.cloudtrail_digest import load_public_keys

__all__ = ["CloudTrailPoller", "limits_of"]

log = logging.getLogger(__name__)

# Integrity failures /readyz shows, newest last; the counters in /metrics count them all.
RECENT_FAILURES = 20


def limits_of(settings: Settings) -> Limits:
    return Limits(
        retention_days=settings.retention_days,
        max_future_seconds=settings.max_future_seconds,
        max_details_depth=settings.max_details_depth,
        max_event_bytes=settings.max_event_bytes,
        tenant_retention_days=settings.retention_tenant_days,
    )


@dataclass
class _LastRun:
    started_at: str
    seconds: float
    summary: dict[str, Any] | None
    error: str | None


class CloudTrailPoller:
    """Runs the import of settings.cloudtrail_bucket/prefix every settings.cloudtrail_poll_interval_seconds."""

    def __init__(self, settings: Settings, journal: Journal, metrics: Metrics) -> None:
        if settings.cloudtrail_bucket is None:
            raise ValueError("the CloudTrail poll needs cloudtrail_bucket")
        self.bucket = settings.cloudtrail_bucket
        self.prefix = settings.cloudtrail_prefix
        self.interval = settings.cloudtrail_poll_interval_seconds
        self._settings = settings
        self._journal = journal
        self._metrics = metrics
        self._limits = limits_of(settings)
        # Read at start, so a key that cannot be read stops the service with its fingerprint named.
        self._public_keys = load_public_keys(settings.cloudtrail_digest_public_keys) or None
        self._s3: Any = None
        self._failures: Counter[str] = Counter()
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT_FAILURES)
        self.runs = 0
        self.last: _LastRun | None = None
        self._stopping = False

    def stop(self) -> None:
        """Make a run in progress end at its next append (its current file is re-read next time)."""
        self._stopping = True

    def status(self) -> dict[str, Any]:
        """The part of /readyz under "cloudtrail"."""
        last = self.last
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "interval_seconds": self.interval,
            "runs": self.runs,
            "last_run_at": last.started_at if last else None,
            "last_run_seconds": round(last.seconds, 3) if last else None,
            "last_summary": last.summary if last else None,
            "last_error": last.error if last else None,
            "integrity": {
                "validation": self._public_keys is not None,
                "require_digest": self._settings.cloudtrail_require_digest,
                "state": "failures" if self._failures else "ok",
                "failures": dict(sorted(self._failures.items())),
                "recent_failures": list(self._recent),
            },
        }

    async def run_forever(self) -> None:
        """One import at once, then one every interval; a failed run is logged and retried at the next round."""
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)

    async def run_once(self) -> ImportStats | None:
        started = datetime.now(UTC)
        clock = time.monotonic()
        stats: ImportStats | None = None
        error: str | None = None
        try:
            stats = await asyncio.to_thread(self._import)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - logged, counted, tried again at the next round
            error = f"{type(exc).__name__}: {exc}"
        self.runs += 1
        summary = stats.as_dict() if stats is not None else None
        self.last = _LastRun(started.isoformat(), time.monotonic() - clock, summary, error)
        if stats is not None:
            self._count(stats)
            log.info("cloudtrail import", extra={"bucket": self.bucket, "prefix": self.prefix, "summary": summary})
        else:
            self._metrics.cloudtrail_poll_errors.inc()
            log.error("cloudtrail import failed", extra={"bucket": self.bucket, "prefix": self.prefix, "error": error})
        return stats

    def _count(self, stats: ImportStats) -> None:
        m = self._metrics
        m.cloudtrail_files.inc(stats.files)
        m.cloudtrail_records.inc(stats.records)
        m.cloudtrail_imported.inc(stats.imported)
        m.cloudtrail_duplicates.inc(stats.duplicates)
        m.cloudtrail_malformed_files.inc(len(stats.malformed))
        for reason, count in stats.skipped.items():
            m.cloudtrail_skipped.labels(reason).inc(count)
        if stats.imported:
            m.events_accepted.labels("cloudtrail").inc(stats.imported)
        if stats.validation:
            m.cloudtrail_digests.inc(stats.digests)
            m.cloudtrail_validated_files.inc(stats.validated)
            m.cloudtrail_unvalidated_files.inc(stats.unvalidated)
            m.cloudtrail_awaiting_digest_files.set(stats.awaiting_digest)
        at = datetime.now(UTC).isoformat()
        for failure in stats.integrity:
            m.cloudtrail_integrity_failures.labels(failure.kind).inc()
            self._failures[failure.kind] += 1
            self._recent.append({"at": at, **failure.as_dict()})
            log.error(
                "cloudtrail integrity failure",
                extra={"bucket": self.bucket, "prefix": self.prefix, **failure.as_dict()},
            )

    async def _append(self, tenant: str, items: list[Prepared]) -> list[Appended]:
        if self._stopping:
            raise RuntimeError("the service is stopping")
        return await self._journal.append(tenant, items)

    def _import(self) -> ImportStats:
        """One run, in a worker thread: its own event loop; appends go to the service's journal writer."""
        if self._s3 is None:
            self._s3 = boto3.session.Session().client("s3", endpoint_url=self._settings.cloudtrail_endpoint_url)
        checkpoints = CheckpointStore(self._settings.cloudtrail_path)
        try:
            return asyncio.run(
                import_cloudtrail(
                    self._s3,
                    bucket=self.bucket,
                    prefix=self.prefix,
                    append=self._append,
                    checkpoints=checkpoints,
                    tenants=self._settings.cloudtrail_account_tenants,
                    limits=self._limits,
                    public_keys=self._public_keys,
                    require_digest=self._settings.cloudtrail_require_digest,
                    progress=lambda line: log.debug(line),
                )
            )
        finally:
            checkpoints.close()
