"""Archive a tenant's day of events to S3 before it expires, and read it back.

Layout (Hive-style partitions, so Athena or Glue can query the objects in place)::

    <prefix>/tenant=<tenant, percent-encoded>/dt=YYYY-MM-DD/events-00000.ndjson.gz
                                                           events-00001.ndjson.gz
                                                           _manifest.json

Each object is gzip NDJSON: the stored event documents, byte for byte as the
journal wrote them (so every chain hash can be re-computed from the archive),
one per line, in the order given. The manifest is written last, after every
object was downloaded again and re-hashed: its presence means the day is
complete. Its name starts with `_` because Hive and Athena skip such files;
a `manifest.json` among the objects would be read as one more row.

A day with no events still gets a manifest (0 events, no objects), so that
"this day was archived" is provable and `days()` lists it.

Re-running `write_day` for an archived day answers the existing manifest when
it holds the same events (same count, first/last, chain ends) and still
verifies. Different events (late arrivals) replace the day: the old manifest
is deleted first, so a crash half-way leaves "not archived", never a manifest
over changed objects. A day is never replaced by fewer events: once the store
has expired some, the archive is the only copy, and a re-run would shrink it.

Memory: at most `spool_bytes` per spool, beyond that a temporary file; one
spool in memory while writing, two (gzip and NDJSON of one object) while reading.
The objects of a day are spooled (to disk past the first) before anything is
uploaded, because the decision above needs the whole day: temporary disk space
of about the day's compressed size.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import re
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from eventlog.model import format_time, parse_time

__all__ = [
    "MANIFEST_NAME",
    "Archive",
    "ArchiveError",
    "ArchivedObject",
    "DaySummary",
    "Manifest",
    "day_folder",
    "encode_tenant",
    "tenant_folder",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "_manifest.json"
MANIFEST_VERSION = 1
_OBJECT_NAME = re.compile(r"^events-\d{5,}\.ndjson\.gz\Z")
_KEY_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}\Z")
_GZIP_WBITS = 31  # zlib's gzip container; its header has mtime 0, so equal input gives equal bytes
_COMPRESS_LEVEL = 6
_CHUNK_BYTES = 1 << 20
_FIX = "check the EVENTLOG_ARCHIVE_* settings (bucket, endpoint, region) and that the credentials may read, write and list that bucket"


class ArchiveError(RuntimeError):
    """An archive could not be written, read or verified; the message names the key and what to do."""


@dataclass(frozen=True, slots=True)
class ArchivedObject:
    key: str
    sha256: str  # hex SHA-256 of the object's bytes as stored (compressed)
    bytes: int
    events: int


@dataclass(frozen=True, slots=True)
class Manifest:
    tenant: str
    day: date
    events: int
    first: dict[str, str]  # {"id", "time"} of the first event by (time, id); {} for an empty day
    last: dict[str, str]
    chain_ends: dict[str, dict[str, Any]]  # stream -> {"first": {seq, prev, hash}, "last": {seq, prev, hash}}
    objects: tuple[ArchivedObject, ...]
    created_at: str  # RFC 3339 UTC

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "tenant": self.tenant,
            "day": self.day.isoformat(),
            "events": self.events,
            "first": self.first,
            "last": self.last,
            "chain_ends": self.chain_ends,
            "objects": [{"key": o.key, "sha256": o.sha256, "bytes": o.bytes, "events": o.events} for o in self.objects],
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """The manifest `as_dict` wrote; ArchiveError names the first field that is not as written."""
        if data.get("version") != MANIFEST_VERSION:
            raise ArchiveError(f"manifest version {data.get('version')!r} is not {MANIFEST_VERSION}; upgrade eventlog")
        try:
            day = date.fromisoformat(_field(data, "day", str))
        except ValueError:
            raise ArchiveError(f"manifest field `day` is {data['day']!r}, not YYYY-MM-DD") from None
        objects = tuple(
            ArchivedObject(
                key=_field(item, "key", str, f"objects[{i}]."),
                sha256=_field(item, "sha256", str, f"objects[{i}]."),
                bytes=_field(item, "bytes", int, f"objects[{i}]."),
                events=_field(item, "events", int, f"objects[{i}]."),
            )
            for i, item in enumerate(_field(data, "objects", list))
        )
        manifest = cls(
            tenant=_field(data, "tenant", str),
            day=day,
            events=_field(data, "events", int),
            first=_ends(data, "first"),
            last=_ends(data, "last"),
            chain_ends=_chain_ends(data),
            objects=objects,
            created_at=_field(data, "created_at", str),
        )
        for i, obj in enumerate(objects):
            if not _SHA256_HEX.match(obj.sha256):
                raise ArchiveError(f"manifest field `objects[{i}].sha256` is not 64 lowercase hex digits")
        if sum(o.events for o in objects) != manifest.events:
            raise ArchiveError(
                f"manifest says {manifest.events} events but its objects hold {sum(o.events for o in objects)}"
            )
        return manifest


def _field(data: Any, name: str, kind: type, where: str = "") -> Any:
    value = data.get(name) if isinstance(data, Mapping) else None
    # bool is an int to Python, never to a manifest.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ArchiveError(f"manifest field `{where}{name}` is {value!r}, not a {kind.__name__}")
    return value


def _ends(data: Mapping[str, Any], name: str) -> dict[str, str]:
    value = _field(data, name, dict)
    if value and not (isinstance(value.get("id"), str) and isinstance(value.get("time"), str)):
        raise ArchiveError(f"manifest field `{name}` is {value!r}, not {{id, time}}")
    return {str(k): str(v) for k, v in value.items()}


def _chain_ends(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    ends: dict[str, dict[str, Any]] = {}
    for stream, pair in _field(data, "chain_ends", dict).items():
        ends[stream] = {}
        for end in ("first", "last"):
            where = f"chain_ends.{stream}.{end}."
            link = _field(pair, end, dict, f"chain_ends.{stream}.")
            ends[stream][end] = {
                "seq": _field(link, "seq", int, where),
                "prev": _field(link, "prev", str, where),
                "hash": _field(link, "hash", str, where),
            }
    return ends


def encode_tenant(tenant: str) -> str:
    """The tenant as a key segment: UTF-8 percent-encoding of everything outside [A-Za-z0-9._-]."""
    # Tenants are any printable text (tokens.create), '/' and '=' included; Hive unescapes %XX.
    return "".join(c if c in _KEY_SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in tenant)


def tenant_folder(prefix: str, tenant: str) -> str:
    """The key prefix of one tenant's archive, ending in '/'."""
    return f"{prefix.strip('/')}/tenant={encode_tenant(tenant)}/".lstrip("/")


def day_folder(prefix: str, tenant: str, day: date) -> str:
    """The key prefix of one tenant's day, ending in '/'."""
    return f"{tenant_folder(prefix, tenant)}dt={day.isoformat()}/"


class DaySummary:
    """What a manifest says about a day's events, gathered one stored document at a time."""

    def __init__(self, tenant: str, day: date) -> None:
        self.tenant = tenant
        self.day = day
        self.events = 0
        self.first: dict[str, str] = {}
        self.last: dict[str, str] = {}
        self.chain_ends: dict[str, dict[str, Any]] = {}
        self._first: tuple[datetime, str] | None = None
        self._last: tuple[datetime, str] | None = None

    def add(self, document: bytes) -> None:
        """Count one document; ValueError says why it is not a stored event of this tenant and day."""
        if b"\n" in document:
            raise ValueError("holds a line break; a stored document is one line of JSON")
        try:
            data = orjson.loads(document)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError("is not a JSON object")
        event_id, tenant, time, chain = data.get("id"), data.get("tenant"), data.get("time"), data.get("chain")
        if not isinstance(event_id, str) or not event_id:
            raise ValueError("has no id")
        if tenant != self.tenant:
            raise ValueError(f"event {event_id} belongs to tenant {tenant!r}, not {self.tenant!r}")
        if not isinstance(time, str):
            raise ValueError(f"event {event_id} has time {time!r}, not RFC 3339")
        try:
            when = parse_time(time)
        except ValueError:
            raise ValueError(f"event {event_id} has time {time!r}, not RFC 3339") from None
        if when.date() != self.day:
            raise ValueError(f"event {event_id} has time {time}, not on {self.day} (UTC)")
        if not (
            isinstance(chain, dict)
            and isinstance(chain.get("stream"), str)
            and isinstance(chain.get("seq"), int)
            and not isinstance(chain.get("seq"), bool)
            and isinstance(chain.get("prev"), str)
            and isinstance(chain.get("hash"), str)
        ):
            raise ValueError(f"event {event_id} has no chain link {{stream, seq, prev, hash}}")

        self.events += 1
        order = (when, event_id)
        if self._first is None or order < self._first:
            self._first, self.first = order, {"id": event_id, "time": time}
        if self._last is None or order > self._last:
            self._last, self.last = order, {"id": event_id, "time": time}
        link = {"seq": chain["seq"], "prev": chain["prev"], "hash": chain["hash"]}
        ends = self.chain_ends.setdefault(chain["stream"], {"first": link, "last": link})
        if link["seq"] < ends["first"]["seq"]:
            ends["first"] = link
        if link["seq"] > ends["last"]["seq"]:
            ends["last"] = link

    def matches(self, manifest: Manifest) -> bool:
        return (
            self.events == manifest.events
            and self.first == manifest.first
            and self.last == manifest.last
            and self.chain_ends == manifest.chain_ends
        )


class _ObjectWriter:
    """One gzip NDJSON object being built in a spool, hashed as it is written."""

    def __init__(self, key: str, spool_bytes: int) -> None:
        self.key = key
        # Closed by write_day, which holds every writer of the day until the upload decision.
        self.file: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=spool_bytes)  # noqa: SIM115
        self.events = 0
        self.raw_bytes = 0
        self._gzip = zlib.compressobj(_COMPRESS_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
        self._sha = hashlib.sha256()
        self._size = 0

    def add(self, document: bytes) -> None:
        self._write(self._gzip.compress(document))
        self._write(self._gzip.compress(b"\n"))
        self.events += 1
        self.raw_bytes += len(document) + 1

    def finish(self) -> ArchivedObject:
        self._write(self._gzip.flush())
        self.file.seek(0)
        return ArchivedObject(self.key, self._sha.hexdigest(), self._size, self.events)

    def _write(self, data: bytes) -> None:
        if data:
            self._sha.update(data)
            self.file.write(data)
            self._size += len(data)


class Archive:
    def __init__(
        self,
        s3: Any,
        bucket: str,
        prefix: str = "eventlog-archive",
        *,
        max_object_events: int = 100_000,
        max_object_bytes: int = 1 << 30,
        spool_bytes: int = 16 << 20,
    ) -> None:
        """`max_object_bytes` bounds an object's uncompressed size: one PUT takes at most 5 GiB."""
        if max_object_events < 1 or max_object_bytes < 1:
            raise ValueError("max_object_events and max_object_bytes must be at least 1")
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._max_events = max_object_events
        self._max_bytes = max_object_bytes
        self._spool_bytes = spool_bytes

    # -- writing -----------------------------------------------------------------------------------------------

    def write_day(self, tenant: str, day: date, documents: Iterable[bytes]) -> Manifest:
        """Upload the day's events (stored JSON documents, one per line) as gzip NDJSON objects, then the manifest; verify; return the manifest."""
        folder = day_folder(self.prefix, tenant, day)
        writers: list[_ObjectWriter] = []
        try:
            summary, objects = self._spool(tenant, day, documents, writers)
            manifest = Manifest(
                tenant=tenant,
                day=day,
                events=summary.events,
                first=summary.first,
                last=summary.last,
                chain_ends=summary.chain_ends,
                objects=tuple(objects),
                created_at=format_time(datetime.now(UTC)),
            )
            existing = self.manifest(tenant, day)
            if existing is not None:
                if summary.matches(existing):
                    try:
                        self.verify(existing)
                    except ArchiveError as exc:
                        log.warning("archived day fails verification; writing it again", extra={"error": str(exc)})
                    else:
                        log.info("day already archived", extra={"tenant": tenant, "day": day.isoformat()})
                        return existing
                elif manifest.events < existing.events:
                    raise ArchiveError(
                        f"tenant {tenant!r} day {day} is archived with {existing.events} events at "
                        f"s3://{self.bucket}/{folder}{MANIFEST_NAME}, but only {manifest.events} were given; "
                        "refusing to replace the archive with fewer events (the store may have expired some). "
                        "Delete that manifest first if the smaller day is really meant"
                    )
                # The old manifest goes first: from here until the new one lands the day reads as not archived.
                self._delete(f"{folder}{MANIFEST_NAME}")
            for writer, obj in zip(writers, objects, strict=True):
                self._put_object(writer, obj)
            self.verify(manifest)
            self._put_manifest(manifest, f"{folder}{MANIFEST_NAME}")
        finally:
            for writer in writers:
                writer.file.close()
        if self.manifest(tenant, day) != manifest:
            raise ArchiveError(
                f"s3://{self.bucket}/{folder}{MANIFEST_NAME} does not read back as written; run the archive for tenant {tenant!r} day {day} again"
            )
        self._delete_strays(folder, {o.key for o in manifest.objects})
        log.info(
            "archived a day",
            extra={"tenant": tenant, "day": day.isoformat(), "events": manifest.events, "objects": len(objects)},
        )
        return manifest

    def _spool(
        self, tenant: str, day: date, documents: Iterable[bytes], writers: list[_ObjectWriter]
    ) -> tuple[DaySummary, list[ArchivedObject]]:
        """Check and compress the whole day into `writers` (the caller closes them); nothing is uploaded yet."""
        summary = DaySummary(tenant, day)
        objects: list[ArchivedObject] = []
        folder = day_folder(self.prefix, tenant, day)
        for index, document in enumerate(documents):
            try:
                summary.add(document)
            except ValueError as exc:
                raise ArchiveError(
                    f"document {index} of tenant {tenant!r} day {day}: {exc}; pass only the tenant's stored documents whose time is on that day (UTC)"
                ) from None
            current = writers[-1] if writers else None
            if current is None or current.events >= self._max_events or current.raw_bytes >= self._max_bytes:
                if current is not None:
                    objects.append(current.finish())
                    current.file.rollover()  # a finished object waits on disk, not in memory
                current = _ObjectWriter(f"{folder}events-{len(writers):05d}.ndjson.gz", self._spool_bytes)
                writers.append(current)
            current.add(document)
        if writers:
            objects.append(writers[-1].finish())
        return summary, objects

    def _put_object(self, writer: _ObjectWriter, obj: ArchivedObject) -> None:
        writer.file.seek(0)
        with self._errors("upload", obj.key):
            self._s3.put_object(
                Bucket=self.bucket,
                Key=obj.key,
                Body=writer.file,
                # application/gzip, not Content-Encoding: gzip, which would let HTTP clients unpack it on download.
                ContentType="application/gzip",
                # S3 checks this itself, refuses the PUT on a mismatch and keeps it with the object.
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=base64.b64encode(bytes.fromhex(obj.sha256)).decode(),
                Metadata={"sha256": obj.sha256, "events": str(obj.events)},
            )

    def _put_manifest(self, manifest: Manifest, key: str) -> None:
        body = orjson.dumps(manifest.as_dict(), option=orjson.OPT_INDENT_2) + b"\n"
        with self._errors("upload", key):
            self._s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode(),
            )

    def _delete(self, key: str) -> None:
        with self._errors("delete", key):
            self._s3.delete_object(Bucket=self.bucket, Key=key)

    def _delete_strays(self, folder: str, keep: set[str]) -> None:
        """Drop objects of an earlier, longer version of the day: Athena would read them as rows."""
        for key in list(self._list(folder)):  # listed in full first: deleting while paging may skip keys
            if key not in keep and _OBJECT_NAME.match(key[len(folder) :]):
                self._delete(key)

    # -- reading -----------------------------------------------------------------------------------------------

    def manifest(self, tenant: str, day: date) -> Manifest | None:
        """The day's manifest, or None when the day is not (completely) archived."""
        key = f"{day_folder(self.prefix, tenant, day)}{MANIFEST_NAME}"
        with self._errors("download", key):
            try:
                response = self._s3.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            body: bytes = response["Body"].read()
        try:
            manifest = Manifest.from_dict(orjson.loads(body))
        except (orjson.JSONDecodeError, ArchiveError) as exc:
            raise ArchiveError(
                f"s3://{self.bucket}/{key} is not a valid manifest: {exc}; it was changed after archiving. "
                "Investigate, then delete it and archive the day again while the store still holds its events"
            ) from None
        if manifest.tenant != tenant or manifest.day != day:
            raise ArchiveError(
                f"s3://{self.bucket}/{key} is the manifest of tenant {manifest.tenant!r} day {manifest.day}, "
                f"not of tenant {tenant!r} day {day}; it was copied or changed after archiving"
            )
        return manifest

    def verify(self, manifest: Manifest) -> None:
        """Download every object and check SHA-256, size, line count and that every line is an event of this tenant and day."""
        summary = DaySummary(manifest.tenant, manifest.day)
        for obj in manifest.objects:
            self._fetch(manifest, obj, summary).close()
        self._check_summary(manifest, summary)

    def read_day(self, tenant: str, day: date) -> Iterator[bytes]:
        """The archived documents in archive order, each object verified before any of its lines is yielded."""
        manifest = self.manifest(tenant, day)
        if manifest is None:
            raise ArchiveError(
                f"tenant {tenant!r} day {day} is not archived in s3://{self.bucket}/{day_folder(self.prefix, tenant, day)}; "
                "`days()` lists the archived days"
            )
        summary = DaySummary(tenant, day)
        for obj in manifest.objects:
            with self._fetch(manifest, obj, summary) as lines:
                for line in lines:
                    yield line[:-1]
        self._check_summary(manifest, summary)

    def days(self, tenant: str) -> list[date]:
        """The tenant's archived days (those with a manifest), oldest first."""
        base = tenant_folder(self.prefix, tenant)
        found = []
        for key in self._list(base):
            folder, _, name = key[len(base) :].partition("/")
            if name == MANIFEST_NAME and folder.startswith("dt="):
                with contextlib.suppress(ValueError):
                    found.append(date.fromisoformat(folder[3:]))
        return sorted(found)

    def _fetch(
        self, manifest: Manifest, obj: ArchivedObject, summary: DaySummary
    ) -> tempfile.SpooledTemporaryFile[bytes]:
        """The object's NDJSON, checked against the manifest and fed to `summary`; the caller closes it."""
        where = f"s3://{self.bucket}/{obj.key}"
        if not obj.key.startswith(day_folder(self.prefix, manifest.tenant, manifest.day)):
            raise ArchiveError(
                f"the manifest of tenant {manifest.tenant!r} day {manifest.day} lists {where}, outside its day"
            )
        # Handed to the caller, who closes it; closed here only on failure.
        raw: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=self._spool_bytes)  # noqa: SIM115
        try:
            with tempfile.SpooledTemporaryFile(max_size=self._spool_bytes) as compressed:
                self._download(manifest, obj, compressed)
                self._gunzip(compressed, raw, where)
            count = 0
            for line in raw:
                count += 1
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("does not end with a line break")
                    summary.add(line[:-1])
                except ValueError as exc:
                    raise ArchiveError(f"{where} line {count}: {exc}") from None
            if count != obj.events:
                raise ArchiveError(f"{where} holds {count} events, but the manifest says {obj.events}")
            raw.seek(0)
        except BaseException:
            raw.close()
            raise
        return raw

    def _download(self, manifest: Manifest, obj: ArchivedObject, target: tempfile.SpooledTemporaryFile[bytes]) -> None:
        """Copy the object into `target`; ArchiveError unless it is there with the manifest's SHA-256 and size."""
        where = f"s3://{self.bucket}/{obj.key}"
        sha, size = hashlib.sha256(), 0
        with self._errors("download", obj.key):
            try:
                body = self._s3.get_object(Bucket=self.bucket, Key=obj.key)["Body"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    raise ArchiveError(
                        f"{where} is missing, but the manifest of tenant {manifest.tenant!r} day {manifest.day} lists it; "
                        "restore it from a bucket version or backup, or archive the day again while the store still holds its events"
                    ) from None
                raise
            try:
                for chunk in body.iter_chunks(_CHUNK_BYTES):
                    sha.update(chunk)
                    size += len(chunk)
                    target.write(chunk)
            finally:
                body.close()
        # Checked before unpacking: a changed object is reported as changed, whatever it now holds.
        if sha.hexdigest() != obj.sha256 or size != obj.bytes:
            raise ArchiveError(
                f"{where} has SHA-256 {sha.hexdigest()} and {size} bytes, but the manifest says {obj.sha256} "
                f"and {obj.bytes} bytes: it was changed after archiving. Restore it from a bucket version or "
                "backup, or archive the day again while the store still holds its events"
            )

    @staticmethod
    def _gunzip(
        source: tempfile.SpooledTemporaryFile[bytes], target: tempfile.SpooledTemporaryFile[bytes], where: str
    ) -> None:
        source.seek(0)
        unpack = zlib.decompressobj(_GZIP_WBITS)
        try:
            while chunk := source.read(_CHUNK_BYTES):
                target.write(unpack.decompress(chunk))
            target.write(unpack.flush())
        except zlib.error as exc:
            raise ArchiveError(f"{where} is not valid gzip ({exc})") from None
        if not unpack.eof or unpack.unused_data:
            raise ArchiveError(f"{where} is not one complete gzip stream (truncated or with trailing bytes)")
        target.seek(0)

    def _check_summary(self, manifest: Manifest, summary: DaySummary) -> None:
        if not summary.matches(manifest):
            key = f"s3://{self.bucket}/{day_folder(self.prefix, manifest.tenant, manifest.day)}{MANIFEST_NAME}"
            raise ArchiveError(
                f"{key} does not describe its objects: it says {manifest.events} events from {manifest.first} to "
                f"{manifest.last}, the objects hold {summary.events} from {summary.first} to {summary.last} "
                f"(or their chain ends differ); archive the day again while the store still holds its events"
            )

    def _list(self, prefix: str) -> Iterator[str]:
        with self._errors("list", prefix):
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]

    @contextlib.contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise ArchiveError(f"{action} of s3://{self.bucket}/{key} failed: {exc}; {_FIX}") from exc
