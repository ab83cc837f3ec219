"""Import AWS CloudTrail log files from S3 into the journal.

Layout read (AWS CloudTrail user guide)::

    [prefix/]AWSLogs/[o-orgid/]<account>/CloudTrail/<region>/YYYY/MM/DD/
        <account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz

Each object is gzip JSON with a top-level ``Records`` array. It is read as a
stream (gzip -> ijson), so memory holds one record plus one batch of at most
``BATCH_EVENTS`` mapped events, whatever the size of the file. Digest files
(``CloudTrail-Digest/``) and Insights (``CloudTrail-Insight/``) are not read.

A checkpoint per (bucket, prefix, account, region) in ``cloudtrail.db`` in the
data dir remembers the newest key read and every key read in the last days,
so a re-run reads only new files; late deliveries into a day already read are
still picked up (listing restarts one day before the newest key).
"""

from __future__ import annotations

import gzip
import ipaddress
import re
import sqlite3
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import ijson
import orjson
from pydantic import ValidationError

from eventlog.canonical import MAX_SAFE_INT, canonical_json
from eventlog.journal import Appended, Prepared
from eventlog.model import MAX_DETAILS_STRING, EventIn, to_document

__all__ = [
    "CheckpointStore",
    "ImportStats",
    "Limits",
    "SkipRecord",
    "import_cloudtrail",
    "map_record",
]

# The pure-Python ijson backend: the C one refuses integers beyond 64 bits ("integer overflow").
_IJSON = ijson.get_backend("python")
# Deterministic event ids: UUIDv5 of eventID in this namespace (uuid5(NAMESPACE_URL, "eventlog:cloudtrail")).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "eventlog:cloudtrail")
BATCH_EVENTS = 500
TRUNCATED = "…[truncated]"
_LOOKBACK = timedelta(days=1)

_ACCOUNT = re.compile(r"^\d{12}$")
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")
_KEY_DAY = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/[^/]+$")

# Fields that become part of the event itself; every other top-level field goes to `details`.
_MAPPED = {
    "eventTime",
    "eventSource",
    "eventName",
    "userIdentity",
    "sourceIPAddress",
    "userAgent",
    "requestID",
    "eventID",
}
_IDENTITY_MAPPED = {"type", "principalId", "arn", "userName", "invokedBy"}
# Shrunk first, in this order, when an event exceeds max_event_bytes.
_BULKY = ("responseElements", "requestParameters", "additionalEventData", "serviceEventDetails", "resources")


class SkipRecord(ValueError):
    """A record that cannot become an event; `reason` is the summary's counter name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Limits:
    """The ingest limits of eventlog's settings that a CloudTrail event must respect."""

    retention_days: int = 14
    max_future_seconds: int = 300
    max_details_depth: int = 8
    max_event_bytes: int = 65_536

    def context(self, now: datetime) -> dict[str, Any]:
        return {
            "now": now,
            "retention_days": self.retention_days,
            "max_future_seconds": self.max_future_seconds,
            "max_details_depth": self.max_details_depth,
        }


# -- mapping (pure) -----------------------------------------------------------------------------------------------


def _text(value: Any, limit: int) -> str | None:
    """A short single-line string for an identifier field, or None."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    text = "".join(c for c in text if ord(c) >= 0x20 and ord(c) != 0x7F)
    return text[:limit] or None


def _safe(value: Any, depth_left: int) -> Any:
    """`value` within eventlog's details limits: deep subtrees become JSON strings, long strings and big ints shrink."""
    if isinstance(value, dict | list):
        if depth_left <= 0:
            return _clip(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode())
        if isinstance(value, dict):
            return {str(k): _safe(v, depth_left - 1) for k, v in value.items()}
        return [_safe(v, depth_left - 1) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) <= MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, str):
        return _clip(value)
    return _clip(str(value))


def _clip(text: str) -> str:
    if len(text) <= MAX_DETAILS_STRING:
        return text
    return text[: MAX_DETAILS_STRING - len(TRUNCATED)] + TRUNCATED


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise SkipRecord("invalid", "no eventTime")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SkipRecord("invalid", f"eventTime {value!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def event_id(record: dict[str, Any]) -> str:
    """UUIDv5 of eventID (of the whole record when it has none): a record seen twice gets one id."""
    key = record.get("eventID")
    seed = key if isinstance(key, str) and key else canonical_json(_safe(record, 64)).decode()
    return str(uuid.uuid5(NAMESPACE, seed))


def _actor(record: dict[str, Any], details: dict[str, Any]) -> dict[str, Any]:
    identity = record.get("userIdentity")
    actor: dict[str, Any] = {}
    if isinstance(identity, dict):
        kind = _text(identity.get("type"), 252)
        if kind:
            actor["type"] = f"aws.{kind}"
        arn = identity.get("arn") if isinstance(identity.get("arn"), str) else None
        actor_id = _text(identity.get("principalId") or arn or identity.get("userName"), 256)
        if actor_id:
            actor["id"] = actor_id
        name = identity.get("userName") or (re.split(r"[/:]", arn)[-1] if arn else None)
        name = _text(name, 512)
        if name:
            actor["name"] = name
        if identity.get("invokedBy") is not None:
            details["invokedBy"] = identity["invokedBy"]
        rest = {k: v for k, v in identity.items() if k not in _IDENTITY_MAPPED}
        context = rest.get("sessionContext")
        if isinstance(context, dict) and context.get("sessionIssuer") is not None:
            details["sessionIssuer"] = context["sessionIssuer"]
            context = {k: v for k, v in context.items() if k != "sessionIssuer"}
            if context:
                rest["sessionContext"] = context
            else:
                del rest["sessionContext"]
        if rest:
            details["userIdentity"] = rest
    elif identity is not None:
        details["userIdentity"] = identity
    source_ip = record.get("sourceIPAddress")
    if isinstance(source_ip, str):
        try:
            actor["ip"] = str(ipaddress.ip_address(source_ip))
        except ValueError:
            details["sourceIPAddress"] = source_ip  # a service name (config.amazonaws.com) or a pseudonymised value
    elif source_ip is not None:
        details["sourceIPAddress"] = source_ip
    agent = record.get("userAgent")
    if agent is not None:
        actor["user_agent"] = (agent if isinstance(agent, str) else str(agent))[:1024]
    return actor


def _target(record: dict[str, Any]) -> dict[str, Any]:
    resources = record.get("resources")
    if not isinstance(resources, list) or not resources or not isinstance(resources[0], dict):
        return {}
    first = resources[0]
    target: dict[str, Any] = {}
    kind = _text(first.get("type"), 256)
    if kind:
        target["type"] = kind
    arn = _text(first.get("ARN") or first.get("arn"), 256)
    if arn:
        target["id"] = arn
    return target


def map_record(record: dict[str, Any], *, max_details_depth: int = 8, max_event_bytes: int = 65_536) -> dict[str, Any]:
    """One CloudTrail record as the raw JSON of an `EventIn` (not yet validated against the time window).

    Raises SkipRecord("invalid", ...) for a record without a usable eventTime.
    """
    if not isinstance(record, dict):
        raise SkipRecord("invalid", f"a record is a JSON {type(record).__name__}, not an object")
    when = _parse_time(record.get("eventTime"))
    source = record.get("eventSource")
    service = source.removesuffix(".amazonaws.com") if isinstance(source, str) and source else "unknown"
    name = record.get("eventName")
    action = _text(f"aws.{service}.{name if isinstance(name, str) and name else 'unknown'}", 256)
    details: dict[str, Any] = {}
    actor = _actor(record, details)
    request: dict[str, Any] = {}
    request_id = _text(record.get("requestID"), 256)
    if request_id:
        request["request_id"] = request_id
    for key, value in record.items():
        if key not in _MAPPED:
            details[key] = value
    if record.get("requestID") is not None and not request_id:
        details["requestID"] = record["requestID"]
    # details is depth 1 itself: its values may nest max_details_depth - 1 more levels.
    details = {key: _safe(value, max_details_depth - 1) for key, value in details.items()}
    event = {
        "id": event_id(record),
        "time": when.isoformat(),
        "action": action,
        "outcome": "failure" if record.get("errorCode") is not None else "success",
        "actor": actor,
        "target": _target(record),
        "request": request,
        "source": "cloudtrail",
        "message": "",
        "details": details,
    }
    for bulky in _BULKY:
        size = len(orjson.dumps(event))
        if size <= max_event_bytes:
            break
        if bulky in details:
            details[bulky] = (
                f"{TRUNCATED} {len(orjson.dumps(details[bulky]))} bytes of JSON dropped: the event exceeded {max_event_bytes} bytes"
            )
    else:
        if len(orjson.dumps(event)) > max_event_bytes:
            raise SkipRecord(
                "too_large", f"the event is larger than {max_event_bytes} bytes even without its bulky fields"
            )
    return event


def to_event(record: Any, *, limits: Limits, now: datetime) -> EventIn:
    """map_record, then the retention window and EventIn's validation; SkipRecord says why not."""
    raw = map_record(record, max_details_depth=limits.max_details_depth, max_event_bytes=limits.max_event_bytes)
    when = datetime.fromisoformat(raw["time"])
    if when < now - timedelta(days=limits.retention_days):
        raise SkipRecord("too_old", f"eventTime {raw['time']} lies before the retention window")
    try:
        return EventIn.model_validate(raw, context=limits.context(now))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SkipRecord("invalid", f"{where}: {first['msg']}") from None


# -- S3 layout -----------------------------------------------------------------------------------------------------


class S3Client(Protocol):
    def get_paginator(self, operation_name: str) -> Any: ...
    def get_object(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Trail:
    """One (account, region) folder of CloudTrail files."""

    account: str
    region: str
    folder: str  # ends with "/", e.g. "p/AWSLogs/o-abc/111111111111/CloudTrail/eu-west-1/"


def _base(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/AWSLogs/" if prefix else "AWSLogs/"


def _subfolders(s3: S3Client, bucket: str, under: str) -> Iterator[str]:
    """The names of the 'folders' directly under `under`."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=under, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            yield common["Prefix"][len(under) :].rstrip("/")


def discover_trails(s3: S3Client, bucket: str, prefix: str) -> list[Trail]:
    """Every account/region folder under the bucket and prefix, organization trails included."""
    base = _base(prefix)
    account_roots: list[tuple[str, str]] = []
    for name in _subfolders(s3, bucket, base):
        if _ACCOUNT.match(name):
            account_roots.append((name, f"{base}{name}/"))
        elif _ORG.match(name):
            account_roots.extend(
                (member, f"{base}{name}/{member}/")
                for member in _subfolders(s3, bucket, f"{base}{name}/")
                if _ACCOUNT.match(member)
            )
    trails: list[Trail] = []
    for account, root in account_roots:
        folder = f"{root}CloudTrail/"
        trails.extend(Trail(account, region, f"{folder}{region}/") for region in _subfolders(s3, bucket, folder))
    return sorted(trails, key=lambda t: t.folder)


def _key_day(key: str) -> date | None:
    match = _KEY_DAY.search(key)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def list_new_files(
    s3: S3Client, bucket: str, trail: Trail, *, last_key: str | None, since: date | None, seen: set[str]
) -> Iterator[str]:
    """Keys of log files in `trail`, oldest first, from one day before the checkpoint (or `since`), not yet read."""
    starts: list[date] = []
    last_day = _key_day(last_key) if last_key else None
    if last_day is not None:
        starts.append(last_day - _LOOKBACK)
    if since is not None:
        starts.append(since)
    # "YYYY/MM/DD" sorts just before every key of that day: StartAfter it lists the day and what follows.
    start_after = f"{trail.folder}{max(starts):%Y/%m/%d}" if starts else ""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=trail.folder, StartAfter=start_after):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith(".json.gz") and key not in seen:
                yield key


# -- reading one file ----------------------------------------------------------------------------------------------


class MalformedFile(ValueError):
    """A log file that is not gzip, not JSON, or has no `Records` array."""


class _Gunzip:
    """A gzip reader that ends the stream at a gzip error and keeps it, so ijson fails cleanly and we say why."""

    def __init__(self, body: BinaryIO) -> None:
        self._gzip = gzip.GzipFile(fileobj=body, mode="rb")
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        if self.error is not None:
            return b""
        try:
            return self._gzip.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            self.error = exc
            return b""


def iter_records(body: BinaryIO) -> Iterator[Any]:
    """The records of one gzip JSON log file, streamed; MalformedFile when it is not one."""
    seen_records = False
    stream = _Gunzip(body)

    def watch(events: Iterable[tuple[str, str, Any]]) -> Iterator[tuple[str, str, Any]]:
        nonlocal seen_records
        for prefix, event, value in events:
            if prefix == "Records" and event == "start_array":
                seen_records = True
            yield prefix, event, value

    try:
        yield from _IJSON.items(watch(_IJSON.parse(stream, use_float=True)), "Records.item")
    except ijson.JSONError as exc:  # IncompleteJSONError is a JSONError; bad UTF-8 becomes one too
        if stream.error is not None:
            raise MalformedFile(f"not a gzip file: {stream.error}") from None
        raise MalformedFile(f"not JSON: {exc}") from None
    if stream.error is not None:
        raise MalformedFile(f"not a gzip file: {stream.error}")
    if not seen_records:
        raise MalformedFile("no top-level `Records` array (a digest file?)")


# -- checkpoints ---------------------------------------------------------------------------------------------------

_CHECKPOINT_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    bucket TEXT NOT NULL, prefix TEXT NOT NULL, account TEXT NOT NULL, region TEXT NOT NULL,
    last_key TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (bucket, prefix, account, region)
);
CREATE TABLE IF NOT EXISTS files (
    bucket TEXT NOT NULL, key TEXT NOT NULL, status TEXT NOT NULL, records INTEGER NOT NULL, read_at TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
);
"""


class CheckpointStore:
    """What has been read, per (bucket, prefix, account, region): SQLite in the data dir (cloudtrail.db)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.executescript(_CHECKPOINT_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def last_key(self, bucket: str, prefix: str, trail: Trail) -> str | None:
        row = self._conn.execute(
            "SELECT last_key FROM checkpoints WHERE bucket = ? AND prefix = ? AND account = ? AND region = ?",
            (bucket, prefix, trail.account, trail.region),
        ).fetchone()
        return None if row is None else str(row[0])

    def seen(self, bucket: str, folder: str) -> set[str]:
        rows = self._conn.execute(
            "SELECT key FROM files WHERE bucket = ? AND key >= ? AND key < ?", (bucket, folder, folder + "\uffff")
        )
        return {str(r[0]) for r in rows}

    def done(self, bucket: str, prefix: str, trail: Trail, key: str, *, status: str, records: int) -> None:
        """Record `key` as read (after its events are durable in the journal) and move the checkpoint."""
        now = datetime.now(UTC).isoformat()
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute(
                "INSERT OR REPLACE INTO files (bucket, key, status, records, read_at) VALUES (?, ?, ?, ?, ?)",
                (bucket, key, status, records, now),
            )
            self._conn.execute(
                "INSERT INTO checkpoints (bucket, prefix, account, region, last_key, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bucket, prefix, account, region)"
                " DO UPDATE SET last_key = max(last_key, excluded.last_key), updated_at = excluded.updated_at",
                (bucket, prefix, trail.account, trail.region, key, now),
            )


# -- the import ----------------------------------------------------------------------------------------------------

AppendFn = Callable[[str, list[Prepared]], Any]  # async (tenant, items) -> list[Appended]


@dataclass
class ImportStats:
    files: int = 0
    records: int = 0
    imported: int = 0
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    malformed: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "skipped": dict(sorted(self.skipped.items())),
            "malformed_files": [{"key": k, "error": e} for k, e in self.malformed],
        }


async def import_cloudtrail(
    s3: S3Client,
    *,
    bucket: str,
    prefix: str,
    append: AppendFn,
    checkpoints: CheckpointStore,
    tenants: dict[str, str],
    limits: Limits,
    since: date | None = None,
    reread: bool = False,
    progress: Callable[[str], None] = lambda _: None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ImportStats:
    """Read every new log file under bucket/prefix and append its events; returns the counts.

    `append(tenant, prepared)` is `Journal.append`. A file's checkpoint moves only after its events are durable,
    so an interrupted import re-reads at most the files it was in (their events are stored once: same ids).
    """
    stats = ImportStats()
    for trail in discover_trails(s3, bucket, prefix):
        last = None if reread else checkpoints.last_key(bucket, prefix, trail)
        seen = set() if reread else checkpoints.seen(bucket, trail.folder)
        for key in list_new_files(s3, bucket, trail, last_key=last, since=since, seen=seen):
            stats.files += 1
            before = (stats.records, stats.imported, stats.duplicates)
            status = "ok"
            try:
                await _import_file(s3, bucket, key, trail, append, tenants, limits, now, stats)
            except MalformedFile as exc:
                status = "malformed"
                stats.malformed.append((key, str(exc)))
                progress(f"cloudtrail: {key}: skipped, malformed: {exc}")
            records = stats.records - before[0]
            checkpoints.done(bucket, prefix, trail, key, status=status, records=records)
            if status == "ok":
                progress(
                    f"cloudtrail: {key}: {records} records, {stats.imported - before[1]} imported, "
                    f"{stats.duplicates - before[2]} duplicates"
                )
    return stats


async def _import_file(
    s3: S3Client,
    bucket: str,
    key: str,
    trail: Trail,
    append: AppendFn,
    tenants: dict[str, str],
    limits: Limits,
    now: Callable[[], datetime],
    stats: ImportStats,
) -> None:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    batches: dict[str, list[Prepared]] = {}
    received_at = now()
    try:
        for record in iter_records(body):
            stats.records += 1
            account = record.get("recipientAccountId") if isinstance(record, dict) else None
            tenant = tenants.get(account if isinstance(account, str) and account else trail.account)
            if tenant is None:
                stats.skipped["unmapped_account"] += 1
                continue
            try:
                event = to_event(record, limits=limits, now=received_at)
            except SkipRecord as exc:
                stats.skipped[exc.reason] += 1
                continue
            assert event.id is not None
            document = to_document(event, event_id=event.id, tenant=tenant, received_at=received_at)
            batch = batches.setdefault(tenant, [])
            batch.append(Prepared(event.id, document, canonical_json(document), True))
            if len(batch) >= BATCH_EVENTS:
                await _flush(append, tenant, batches.pop(tenant), stats)
    finally:
        body.close()
        # What was read before a malformed tail is kept: the same ids make a later re-read harmless.
        for tenant, batch in batches.items():
            await _flush(append, tenant, batch, stats)


async def _flush(append: AppendFn, tenant: str, batch: list[Prepared], stats: ImportStats) -> None:
    appended: list[Appended] = await append(tenant, batch)
    duplicates = sum(1 for a in appended if a.duplicate)
    stats.duplicates += duplicates
    stats.imported += len(appended) - duplicates
