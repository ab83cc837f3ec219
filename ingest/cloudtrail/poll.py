"""The service's CloudTrail import into the live journal: `import_cloudtrail` every interval, or, with
EVENTLOG_CLOUDTRAIL_SQS_QUEUE_URL, the files S3 event notifications in that queue name (ingest/cloudtrail/sqs.py).

Each run goes through the service's own `Journal` object (its one writer thread), so no second writer ever
opens the journal file. The run itself (boto3 listing and reads, gzip, ijson, mapping) is blocking work, so it
runs in a worker thread with its own event loop; `Journal.append` is safe to call from any loop. The checkpoint
store (SQLite) is opened and closed in that thread at every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import boto3

from eventlog.journal import Appended, Journal, Prepared
from eventlog.metrics import Metrics
from eventlog.settings import CloudTrailSettings
from ingest.cloudtrail.checkpoints import CheckpointStore
from ingest.cloudtrail.digest import load_public_keys
from ingest.cloudtrail.importer import ImportOptions, ImportStats, import_cloudtrail, import_cloudtrail_keys
from ingest.cloudtrail.mapping import Limits
from ingest.cloudtrail.metrics import CloudTrailMetrics
from ingest.cloudtrail.sqs import MessageCounts, QueueConsumer, check_queue_url, sqs_client

__all__ = ["CloudTrailPoller"]

log = logging.getLogger(__name__)

# Integrity failures /readyz shows, newest last; the counters in /metrics count them all.
RECENT_FAILURES = 20
# After a failed receive from the queue the next one waits this long, doubling up to the poll interval.
SQS_FIRST_BACKOFF_SECONDS = 1.0

_T = TypeVar("_T")


async def _in_daemon_thread(work: Callable[[], _T]) -> _T:
    """`work()` in a daemon thread: unlike asyncio.to_thread, the service's shutdown does not wait for it.

    For the queue's long poll (up to 20 s): nothing is lost if the process ends during it, since a message
    received and not yet deleted comes back after its visibility timeout.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():  # not cancelled meanwhile
            outcome()

    def run() -> None:
        try:
            result = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            outcome = functools.partial(future.set_exception, exc)
        else:
            outcome = functools.partial(future.set_result, result)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=run, name="cloudtrail-sqs-receive", daemon=True).start()
    return await future


@dataclass
class _LastRun:
    started_at: str
    seconds: float
    summary: dict[str, Any] | None
    error: str | None


class CloudTrailPoller:
    """Runs the import of the bucket/prefix every `poll_interval_seconds`.

    With `sqs_queue_url` it reads that queue instead, one long poll after the other.
    """

    def __init__(
        self, settings: CloudTrailSettings, limits: Limits, state_path: Path, journal: Journal, metrics: Metrics
    ) -> None:
        """`state_path` is cloudtrail.db (checkpoints, digests); `limits` what an imported event must respect."""
        if settings.bucket is None:
            raise ValueError(
                "the CloudTrail poll needs cloudtrail_bucket (with cloudtrail_sqs_queue_url too: the bucket the"
                " notifications are about)"
            )
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.interval = settings.poll_interval_seconds
        self.queue_url = settings.sqs_queue_url
        if self.queue_url is not None:
            check_queue_url(self.queue_url)  # a wrong URL stops the service at start, with the fix named
        self.mode = "list" if self.queue_url is None else "sqs"
        self._settings = settings
        self._state_path = state_path
        self._journal = journal
        self._metrics = CloudTrailMetrics.register(metrics.registry)
        self._ingest = metrics.ingest
        self._limits = limits
        # Read at start, so a key that cannot be read stops the service with its fingerprint named.
        self._public_keys = load_public_keys(settings.digest_public_keys) or None
        self._s3: Any = None
        self._consumer: QueueConsumer | None = None
        self._messages = MessageCounts()
        self._last_error: tuple[str, str] | None = None  # (at, error): in sqs mode, the latest, kept
        self._failures: Counter[str] = Counter()
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT_FAILURES)
        self.runs = 0
        self.last: _LastRun | None = None
        # What /readyz's public state says: the latest receive (sqs) failed; the latest import (a listed
        # run, or a batch of messages) failed. An empty receive leaves the import's state as it was.
        self._receive_failing = False
        self._import_failing = False
        self._stopping = False

    def stop(self) -> None:
        """Make a run in progress end at its next append (its current file is re-read next time)."""
        self._stopping = True

    def summary(self) -> dict[str, Any]:
        """The public part of /readyz under "cloudtrail": state and counts, no bucket, key or error text."""
        state = "failing" if self._receive_failing or self._import_failing else "ok"
        return {
            "mode": self.mode,
            "state": state if self.runs else "not_run",
            "runs": self.runs,
            "integrity": {
                "state": "failures" if self._failures else "ok",
                "failure_count": sum(self._failures.values()),
            },
        }

    def status(self) -> dict[str, Any]:
        """The part of /readyz under "cloudtrail" for admin tokens."""
        last = self.last
        status: dict[str, Any] = {
            "mode": self.mode,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "interval_seconds": self.interval,
            "runs": self.runs,
            "last_run_at": last.started_at if last else None,
            "last_run_seconds": round(last.seconds, 3) if last else None,
            "last_summary": last.summary if last else None,
            "last_error": last.error if last else None,
        }
        if self.queue_url is not None:
            # A message that fails comes back only after its visibility timeout, and empty long polls run
            # meanwhile: the latest error stays shown, with its time, instead of the last receive's.
            status.update(
                queue_url=self.queue_url,
                messages=self._messages.as_dict(),
                last_error=self._last_error[1] if self._last_error else None,
                last_error_at=self._last_error[0] if self._last_error else None,
            )
        return {
            **status,
            "integrity": {
                "validation": self._public_keys is not None,
                "require_digest": self._settings.require_digest,
                "state": "failures" if self._failures else "ok",
                "failures": dict(sorted(self._failures.items())),
                "recent_failures": list(self._recent),
            },
        }

    async def run_forever(self) -> None:
        """One import at once, then one every interval; a failed run is logged and retried at the next round.

        In sqs mode: one long poll after the other; after a failed receive, a pause from 1 s doubling up to the
        interval.
        """
        if self.queue_url is None:
            while True:
                await self.run_once()
                await asyncio.sleep(self.interval)
        backoff = 0.0
        while True:
            if await self.receive_once():
                backoff = 0.0
            else:
                backoff = min(self.interval, max(SQS_FIRST_BACKOFF_SECONDS, 2 * backoff))
                await asyncio.sleep(backoff)

    async def receive_once(self) -> bool:
        """One long poll of the queue, and the import of the files its messages name; False if it failed."""
        started = datetime.now(UTC)
        clock = time.monotonic()
        try:
            # The client is made there too: making it takes a while, and a configuration error (no region)
            # is then a failed receive, reported and retried like any other.
            messages = await _in_daemon_thread(lambda: self._queue().receive())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - logged, counted, tried again after a pause
            self.runs += 1
            self._receive_failing = True
            self._receive_failed(started, "cloudtrail sqs receive failed", exc)
            return False
        self.runs += 1
        self._receive_failing = False
        if not messages:
            return True
        stats = ImportStats()
        counts = MessageCounts()
        failed = False
        try:
            errors = await asyncio.to_thread(self._handle, self._queue(), messages, stats, counts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. cloudtrail.db unreadable: the messages not deleted come back
            errors, failed = [], True
            self._receive_failed(started, "cloudtrail sqs batch failed", exc)
        self._messages.add(counts)
        m = self._metrics
        m.sqs_received.inc(counts.received)
        m.sqs_deleted.inc(counts.deleted)
        m.sqs_failed.inc(counts.failed)
        m.sqs_malformed.inc(counts.malformed)
        for reason, count in counts.ignored.items():
            m.sqs_ignored.labels(reason).inc(count)
        self._count(stats)
        summary = {**stats.as_dict(), "messages": counts.as_dict()}
        self.last = _LastRun(started.isoformat(), time.monotonic() - clock, summary, errors[-1] if errors else None)
        self._import_failing = failed or bool(errors)
        if errors:
            self._last_error = (datetime.now(UTC).isoformat(), errors[-1])
        log.info("cloudtrail import", extra={"bucket": self.bucket, "queue_url": self.queue_url, "summary": summary})
        return not failed

    def _receive_failed(self, started: datetime, what: str, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        self._metrics.poll_errors.inc()
        self._last_error = (started.isoformat(), error)
        log.error(what, extra={"queue_url": self.queue_url, "error": error})

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
        self._import_failing = error is not None
        if stats is not None:
            self._count(stats)
            log.info("cloudtrail import", extra={"bucket": self.bucket, "prefix": self.prefix, "summary": summary})
        else:
            self._metrics.poll_errors.inc()
            log.error("cloudtrail import failed", extra={"bucket": self.bucket, "prefix": self.prefix, "error": error})
        return stats

    def _count(self, stats: ImportStats) -> None:
        m = self._metrics
        m.files.inc(stats.files)
        m.records.inc(stats.records)
        m.imported.inc(stats.imported)
        m.duplicates.inc(stats.duplicates)
        m.malformed_files.inc(len(stats.malformed))
        for reason, count in stats.skipped.items():
            m.skipped.labels(reason).inc(count)
        if stats.imported:
            self._ingest.accepted.labels("cloudtrail").inc(stats.imported)
        if stats.validation:
            m.digests.inc(stats.digests)
            m.validated_files.inc(stats.validated)
            m.unvalidated_files.inc(stats.unvalidated)
            m.awaiting_digest_files.set(stats.awaiting_digest)
        at = datetime.now(UTC).isoformat()
        for failure in stats.integrity:
            m.integrity_failures.labels(failure.kind).inc()
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

    def _s3_client(self) -> Any:
        if self._s3 is None:
            self._s3 = boto3.session.Session().client("s3", endpoint_url=self._settings.endpoint_url)
        return self._s3

    def _queue(self) -> QueueConsumer:
        if self._consumer is None:
            assert self.queue_url is not None
            self._consumer = QueueConsumer(
                sqs_client(self.queue_url),
                self.queue_url,
                bucket=self.bucket,
                prefix=self.prefix,
                digests=self._public_keys is not None,
            )
        return self._consumer

    def _handle(
        self, consumer: QueueConsumer, messages: list[dict[str, Any]], stats: ImportStats, counts: MessageCounts
    ) -> list[str]:
        """Import what a batch of messages names, in a worker thread, as `_import` does a listed run."""
        s3 = self._s3_client()
        checkpoints = CheckpointStore(self._state_path)

        async def import_keys(keys: list[str]) -> None:
            await import_cloudtrail_keys(s3, self._import_options(checkpoints), keys, stats=stats)

        try:
            return asyncio.run(consumer.handle(messages, import_keys, counts, stopping=lambda: self._stopping))
        finally:
            checkpoints.close()

    def _import_options(self, checkpoints: CheckpointStore) -> ImportOptions:
        """What a listed run and a notified batch share: where, into what, and under which rules."""
        return ImportOptions(
            bucket=self.bucket,
            prefix=self.prefix,
            append=self._append,
            checkpoints=checkpoints,
            tenants=self._settings.account_tenants,
            limits=self._limits,
            public_keys=self._public_keys,
            require_digest=self._settings.require_digest,
            progress=log.debug,
        )

    def _import(self) -> ImportStats:
        """One run, in a worker thread: its own event loop; appends go to the service's journal writer."""
        s3 = self._s3_client()
        checkpoints = CheckpointStore(self._state_path)
        try:
            return asyncio.run(import_cloudtrail(s3, self._import_options(checkpoints)))
        finally:
            checkpoints.close()
