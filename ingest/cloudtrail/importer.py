"""Import AWS CloudTrail log files from S3 into the journal.

Every new log file of every trail under a bucket and prefix (ingest/cloudtrail/layout.py) is read as a stream
(ingest/cloudtrail/logfile.py), so memory holds one record plus a few batches of at most ``BATCH_EVENTS``
mapped events (ingest/cloudtrail/mapping.py), whatever the size of the file. Digest files
(``CloudTrail-Digest/``) are read too when public keys are configured: see ingest/cloudtrail/digest.py.

A file's records go to the tenant `tenants` maps the account of its key to (``AWSLogs/[o-orgid/]<account>/``);
records naming another recipientAccountId are skipped and counted (``account_mismatch``).

A checkpoint per (bucket, prefix, account, region) in ``cloudtrail.db`` in the
data dir (ingest/cloudtrail/checkpoints.py) remembers the newest key read and every key read in the last days,
so a re-run reads only new files; late deliveries into a day already read are
still picked up (listing restarts one day before the newest key). `import_cloudtrail_keys` reads, instead of
a listing, the keys S3 event notifications name (ingest/cloudtrail/sqs.py), by the same rules.

Integrity: the SHA-256 of every log file's uncompressed content is computed
while it is read and kept with its checkpoint. A log file that a valid digest
already lists is imported only if its hash matches; one read before its digest
arrived is compared when the digest comes (and reported if it differs, though
its events are already stored), unless ``require_digest`` holds it back until
then.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import IO, Any

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import rsa

from eventlog.journal import Appended, Prepared
from ingest.cloudtrail.checkpoints import CheckpointStore
from ingest.cloudtrail.digest import IntegrityFailure, S3Client, verify_digests, verify_new_digests
from ingest.cloudtrail.layout import Trail, discover_trails, list_new_files, locate_key, start_day
from ingest.cloudtrail.logfile import LogFile, MalformedFile, content_sha256, iter_records
from ingest.cloudtrail.mapping import Limits, SkipRecord, prepare

__all__ = ["ImportOptions", "ImportStats", "import_cloudtrail", "import_cloudtrail_keys"]

BATCH_EVENTS = 1_000
# Batches handed to the journal and not yet committed while the next ones are parsed: the writer's fsync
# overlaps the parsing, and memory stays bounded.
IN_FLIGHT_BATCHES = 3
# A log file whose hash must match before its records are imported is first copied here: in memory up to
# this size, then in a temporary file.
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024

AppendFn = Callable[[str, list[Prepared]], Awaitable[list[Appended]]]  # Journal.append


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """Where to read, where to append and under which rules: what every import of a bucket shares.

    `append(tenant, prepared)` is `Journal.append`. With `public_keys` (fingerprint -> key, see
    digest.load_public_keys) digest files are checked and log files compared with them;
    `require_digest` imports only log files a valid digest lists.
    """

    bucket: str
    prefix: str
    append: AppendFn
    checkpoints: CheckpointStore
    tenants: Mapping[str, str]
    limits: Limits
    public_keys: Mapping[str, rsa.RSAPublicKey] | None = None
    require_digest: bool = False
    progress: Callable[[str], None] = lambda _: None


@dataclass
class ImportStats:
    files: int = 0
    records: int = 0
    imported: int = 0
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    malformed: list[tuple[str, str]] = field(default_factory=list)
    # Digest validation (when public keys are configured).
    validation: bool = False
    digests: int = 0  # digest files whose signature verified
    validated: int = 0  # log files whose hash matched their digest
    unvalidated: int = 0  # log files imported before any digest listed them
    awaiting_digest: int = 0  # log files held back until a digest lists them (require_digest)
    integrity: list[IntegrityFailure] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "files": self.files,
            "records": self.records,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "skipped": dict(sorted(self.skipped.items())),
            "malformed_files": [{"key": k, "error": e} for k, e in self.malformed],
        }
        if self.validation:
            out.update(
                digests=self.digests,
                validated_files=self.validated,
                unvalidated_files=self.unvalidated,
                awaiting_digest_files=self.awaiting_digest,
                integrity_failures=[f.as_dict() for f in self.integrity],
            )
        return out


@dataclass
class _Read:
    """A file read, waiting for its events to be durable before its checkpoint moves."""

    trail: Trail
    key: str
    status: str
    sha256: str | None
    records: int = 0
    imported: int = 0
    duplicates: int = 0
    commits: list[asyncio.Task[None]] = field(default_factory=list)
    validated: bool = False


class _Pipeline:
    """Hands full batches to the journal without waiting for each commit, across files.

    At most IN_FLIGHT_BATCHES wait for their commit while the next records are parsed, so the journal's
    fsync overlaps the parsing and memory stays bounded.
    """

    def __init__(self, append: AppendFn, stats: ImportStats) -> None:
        self._append = append
        self._stats = stats
        self._waiting: deque[asyncio.Task[None]] = deque()

    async def add(self, tenant: str, batch: list[Prepared], read: _Read) -> None:
        task = asyncio.ensure_future(self._commit(tenant, batch, read))
        read.commits.append(task)
        self._waiting.append(task)
        await asyncio.sleep(0)  # lets the task hand the batch to the journal writer now
        while len(self._waiting) > IN_FLIGHT_BATCHES:
            await self._waiting.popleft()

    async def drain(self) -> None:
        """Wait for every batch handed over; the first failure is raised once all have settled."""
        waiting, self._waiting = list(self._waiting), deque()
        for result in await asyncio.gather(*waiting, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result

    async def _commit(self, tenant: str, batch: list[Prepared], read: _Read) -> None:
        appended = await self._append(tenant, batch)
        duplicates = sum(1 for a in appended if a.duplicate)
        read.duplicates += duplicates
        read.imported += len(appended) - duplicates
        self._stats.duplicates += duplicates
        self._stats.imported += len(appended) - duplicates


def _no_such_key(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound")


class _Tee:
    """Reads `body`, writing what it reads to `copy`."""

    def __init__(self, body: IO[bytes], copy: IO[bytes]) -> None:
        self._body = body
        self._copy = copy

    def read(self, size: int, /) -> bytes:
        data = self._body.read(size)
        self._copy.write(data)
        return data


@dataclass
class _Import:
    s3: S3Client
    options: ImportOptions
    since: date | None
    reread: bool
    now: Callable[[], datetime]
    stats: ImportStats = field(default_factory=ImportStats)
    _pipeline: _Pipeline = field(init=False)
    _unsettled: deque[_Read] = field(default_factory=deque)

    async def run(self, notified: Iterable[str] | None = None) -> ImportStats:
        """Every trail the listing finds; or, given `notified`, only those keys."""
        self.stats.validation = self.options.public_keys is not None
        self._pipeline = _Pipeline(self.options.append, self.stats)
        try:
            if notified is None:
                for trail in discover_trails(
                    self.s3, self.options.bucket, self.options.prefix, digests=self.options.public_keys is not None
                ):
                    await self._trail(trail)
            else:
                await self._notified(notified)
            await self._pipeline.drain()
        finally:
            # Whatever stopped the run, the files whose events are durable are checkpointed.
            with contextlib.suppress(Exception):
                await self._pipeline.drain()
            self._settle()
        return self.stats

    def _settle(self) -> None:
        """Checkpoint the files whose events are all committed, in the order they were read."""
        while self._unsettled:
            read = self._unsettled[0]
            for task in read.commits:
                if not task.done() or task.cancelled() or task.exception() is not None:
                    return  # a failed commit is raised by whoever awaits it; the file is read again next time
            self._unsettled.popleft()
            if read.validated:
                self.options.checkpoints.digests.settle(self.options.bucket, read.key, "valid")
            self.options.checkpoints.done(
                self.options.bucket,
                self.options.prefix,
                read.trail,
                read.key,
                status=read.status,
                records=read.records,
                sha256=read.sha256,
            )
            if read.status == "ok":
                self.options.progress(
                    f"cloudtrail: {read.key}: {read.records} records, {read.imported} imported, "
                    f"{read.duplicates} duplicates" + (", hash valid" if read.validated else "")
                )

    def _fail(self, failure: IntegrityFailure) -> None:
        self.stats.integrity.append(failure)
        extra = f" (expected {failure.expected}, found {failure.actual})" if failure.kind == "log_hash" else ""
        self.options.progress(f"cloudtrail: {failure.key}: INTEGRITY {failure.kind}: {failure.error}{extra}")

    async def _trail(self, trail: Trail) -> None:
        last = (
            None if self.reread else self.options.checkpoints.last_key(self.options.bucket, self.options.prefix, trail)
        )
        seen = set() if self.reread else self.options.checkpoints.seen(self.options.bucket, trail.folder)
        keys = set(list_new_files(self.s3, self.options.bucket, trail, last_key=last, since=self.since, seen=seen))
        if self.options.public_keys is not None:
            # Digests first: a log file they list is then checked before its records are imported.
            start = start_day(last, self.since)
            self._digested(
                verify_new_digests(
                    self.s3,
                    bucket=self.options.bucket,
                    folder=trail.digest_folder,
                    start_after=f"{trail.digest_folder}{start:%Y/%m/%d}" if start else "",
                    keys=self.options.public_keys,
                    store=self.options.checkpoints.digests,
                )
            )
        await self._files(trail, keys, seen.__contains__)

    async def _notified(self, keys: Iterable[str]) -> None:
        """The log and digest files notifications named, read by the listing's rules, trail by trail.

        Instead of the listing: a log file already read is passed over (checked one key at a time, not by loading
        the folder's keys), and each digest file named is checked unless it was before.
        """
        digests = self.options.checkpoints.digests
        trails: dict[Trail, tuple[set[str], list[str]]] = {}
        for key in keys:
            where = locate_key(self.options.prefix, key)
            if where is None:
                continue  # not a CloudTrail file: the caller counts it
            logs, digest_keys = trails.setdefault(where.trail, (set(), []))
            if not where.digest:
                if not self._was_read(key):
                    logs.add(key)
            elif (
                self.options.public_keys is not None
                and key not in digest_keys
                and not digests.checked(self.options.bucket, key)
            ):
                digest_keys.append(key)
        for trail, (logs, digest_keys) in sorted(trails.items(), key=lambda item: item[0].folder):
            if self.options.public_keys is not None:
                self._digested(
                    verify_digests(
                        self.s3,
                        bucket=self.options.bucket,
                        digest_keys=sorted(digest_keys),  # oldest first, as the listing checks them
                        keys=self.options.public_keys,
                        store=digests,
                    )
                )
            await self._files(trail, logs, self._was_read)

    def _was_read(self, key: str) -> bool:
        return self.options.checkpoints.file(self.options.bucket, key) is not None

    def _digested(self, checked: tuple[int, list[IntegrityFailure]]) -> None:
        valid, failures = checked
        self.stats.digests += valid
        for failure in failures:
            self._fail(failure)

    async def _files(self, trail: Trail, keys: set[str], was_read: Callable[[str], bool]) -> None:
        """Import `keys` of `trail` (not read yet), and the files its valid digests list that wait for a check."""
        digests = self.options.checkpoints.digests
        if self.options.public_keys is not None:
            for key, expected in sorted(digests.pending(self.options.bucket, trail.folder).items()):
                if was_read(key):
                    self._check_read_file(key, expected)
                else:
                    keys.add(key)  # even when the listing no longer reaches its day (held back for long)
        for key in sorted(keys):
            # Any hash a valid digest gave, compared or not: a file found altered stays refused on --reread.
            wanted = digests.expected(self.options.bucket, key) if self.options.public_keys is not None else None
            if wanted is None and self.options.public_keys is not None and self.options.require_digest:
                self.stats.awaiting_digest += 1
                self.options.progress(f"cloudtrail: {key}: held back until a digest file lists it")
                continue
            await self._file(trail, key, wanted)

    def _check_read_file(self, key: str, expected: str) -> None:
        """Compare a file read before its digest came with the hash that digest gives."""
        status, actual = self.options.checkpoints.file(self.options.bucket, key) or ("ok", None)
        if actual is None:  # not gzip, or read before hashes were kept: hash it now
            body = self._get_listed(key)
            if body is None:
                return
            try:
                actual = content_sha256(body)
            finally:
                body.close()
        if actual == expected:
            self.stats.validated += 1
            self.options.checkpoints.digests.settle(self.options.bucket, key, "valid")
            return
        self.options.checkpoints.digests.settle(self.options.bucket, key, "mismatch")
        imported = status == "ok"
        self._fail(
            IntegrityFailure(
                "log_hash",
                key,
                "its content differs from what its digest file lists"
                + ("; its records were imported before the digest came" if imported else ""),
                expected=expected,
                actual=actual,
                imported=imported,
            )
        )

    def _get(self, key: str) -> IO[bytes]:
        body: IO[bytes] = self.s3.get_object(Bucket=self.options.bucket, Key=key)["Body"]
        return body

    def _get_listed(self, key: str) -> IO[bytes] | None:
        """The body of a log file a digest lists; None (reported, settled as missing) when the bucket lacks it."""
        try:
            return self._get(key)
        except ClientError as exc:
            if not _no_such_key(exc):
                raise
        self._fail(IntegrityFailure("log_missing", key, "a digest file lists it but it is not in the bucket"))
        self.options.checkpoints.digests.settle(self.options.bucket, key, "missing")
        return None

    def _verified_copy(self, trail: Trail, key: str, expected: str) -> IO[bytes] | None:
        """A copy of the log file if its hash is `expected`; None (reported) if it differs or is missing.

        The hash must be known before the first record is imported, and the journal cannot take records back:
        so the file is first copied (in memory up to SPOOL_MEMORY_BYTES, then in a temporary file) while its hash
        is computed, and parsed from that copy only if it matches. One GET, bounded memory, and what is parsed
        is exactly what was hashed.
        """
        body = self._get_listed(key)
        if body is None:
            return None
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115 - returned
        try:
            actual = content_sha256(_Tee(body, spool))
        except BaseException:
            spool.close()
            raise
        finally:
            body.close()
        if actual == expected:
            spool.seek(0)
            return spool
        spool.close()
        self.stats.files += 1
        self._fail(
            IntegrityFailure(
                "log_hash",
                key,
                "its content differs from what its digest file lists; not imported",
                expected=expected,
                actual=actual,
            )
        )
        self.options.checkpoints.digests.settle(self.options.bucket, key, "mismatch")
        self.options.checkpoints.done(
            self.options.bucket, self.options.prefix, trail, key, status="hash_mismatch", records=0, sha256=actual
        )
        return None

    async def _file(self, trail: Trail, key: str, expected: str | None) -> None:
        stats = self.stats
        if expected is None:
            log = LogFile(lambda: self._get(key))
        else:
            copy = self._verified_copy(trail, key, expected)
            if copy is None:
                return
            log = LogFile.of(copy)
        stats.files += 1
        read = _Read(trail, key, "ok", expected, validated=expected is not None)
        try:
            await self._records(read, log)
        except MalformedFile as exc:
            read.status = "malformed"
            stats.malformed.append((key, str(exc)))
            self.options.progress(f"cloudtrail: {key}: skipped, malformed: {exc}")
        except BaseException:
            log.close()
            raise
        if expected is None:
            read.sha256 = log.sha256()
        log.close()
        if expected is not None:
            stats.validated += 1
        elif self.options.public_keys is not None:
            stats.unvalidated += 1
        self._unsettled.append(read)
        self._settle()

    async def _records(self, read: _Read, log: LogFile) -> None:
        """Append the file's records to the tenant of the account its key names.

        The account comes from the key (``AWSLogs/[o-orgid/]<account>/``), never from a record: whoever can write
        to the bucket can write any recipientAccountId, and a record could then be filed into any mapped tenant.
        A record that names another account than its key is skipped (``account_mismatch``).
        """
        stats = self.stats
        batches: dict[str, list[Prepared]] = {}
        received_at = self.now()
        account = read.trail.account
        tenant = self.options.tenants.get(account)
        mismatched = 0
        try:
            for record in iter_records(log):
                read.records += 1
                if tenant is None:
                    stats.skipped["unmapped_account"] += 1
                    continue
                recipient = record.get("recipientAccountId") if type(record) is dict else None
                if recipient is not None and recipient != account:
                    stats.skipped["account_mismatch"] += 1
                    mismatched += 1
                    continue
                try:
                    item = prepare(record, tenant=tenant, limits=self.options.limits, received_at=received_at)
                except SkipRecord as exc:
                    stats.skipped[exc.reason] += 1
                    continue
                batch = batches.setdefault(tenant, [])
                batch.append(item)
                if len(batch) >= BATCH_EVENTS:
                    await self._pipeline.add(tenant, batches.pop(tenant), read)
        finally:
            stats.records += read.records
            if mismatched:
                self.options.progress(
                    f"cloudtrail: {read.key}: {mismatched} records skipped: their recipientAccountId is not "
                    f"{account}, the account of the key"
                )
            # What was read before a malformed tail is kept: the same ids make a later re-read harmless.
            for tenant, batch in batches.items():
                await self._pipeline.add(tenant, batch, read)


async def import_cloudtrail(
    s3: S3Client,
    options: ImportOptions,
    *,
    since: date | None = None,
    reread: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ImportStats:
    """Read every new log file under bucket/prefix and append its events; returns the counts.

    A file's checkpoint moves only after its events are durable, so an interrupted import re-reads at
    most the files it was in (their events are stored once: same ids).
    """
    run = _Import(s3, options, since=since, reread=reread, now=now)
    return await run.run()


async def import_cloudtrail_keys(
    s3: S3Client,
    options: ImportOptions,
    keys: Iterable[str],
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    stats: ImportStats | None = None,
) -> ImportStats:
    """Import the files `keys` name (from S3 event notifications) as `import_cloudtrail` imports listed ones.

    Nothing is listed. Keys outside the layout (`locate_key`), digest files when no `public_keys` are given and
    log files already read are passed over. Every other rule is the listing's: checkpoints, hashes compared
    with digests whichever comes first, files a digest listed and that wait (held back, or named before they
    were notified) imported when that digest is checked, malformed files reported and checkpointed. Counts go
    to `stats` when given (one object across several calls). S3 and journal errors propagate; the files whose
    events are durable by then stay read.
    """
    run = _Import(s3, options, since=None, reread=False, now=now, stats=stats or ImportStats())
    return await run.run(list(keys))
