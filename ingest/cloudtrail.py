"""Import AWS CloudTrail log files from S3 into the journal.

Layout read (AWS CloudTrail user guide)::

    [prefix/]AWSLogs/[o-orgid/]<account>/CloudTrail/<region>/YYYY/MM/DD/
        <account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz

Each object is gzip JSON with a top-level ``Records`` array. It is read as a
stream (gzip -> ijson), so memory holds one record plus a few batches of at most
``BATCH_EVENTS`` mapped events, whatever the size of the file. Insights
(``CloudTrail-Insight/``) are not read; digest files (``CloudTrail-Digest/``)
are, when public keys are configured: see ingest/cloudtrail_digest.py.

A checkpoint per (bucket, prefix, account, region) in ``cloudtrail.db`` in the
data dir remembers the newest key read and every key read in the last days,
so a re-run reads only new files; late deliveries into a day already read are
still picked up (listing restarts one day before the newest key). `import_cloudtrail_keys` reads, instead of
a listing, the keys S3 event notifications name (ingest/cloudtrail_sqs.py), by the same rules.

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
import functools
import hashlib
import ipaddress
import re
import sqlite3
import tempfile
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol

import ijson
import orjson
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from eventlog.canonical import MAX_SAFE_INT, canonical_json
from eventlog.journal import Appended, Prepared
from eventlog.model import MAX_DETAILS_STRING, EventIn, format_time
from ingest.cloudtrail_digest import DigestStore, IntegrityFailure, S3Client, verify_digests, verify_new_digests

__all__ = [
    "CheckpointStore",
    "ImportStats",
    "Limits",
    "LogFile",
    "MalformedFile",
    "NotifiedKey",
    "S3Client",
    "SkipRecord",
    "import_cloudtrail",
    "import_cloudtrail_keys",
    "iter_records",
    "locate_key",
    "map_record",
]

# The C parser (yajl2_c) is ~8x faster than the pure-Python one but refuses numbers beyond 64 bits ("integer
# overflow") and doubles ("numeric (floating point) overflow"); a file that has one is read again with the
# Python parser from its start (the records already yielded are skipped).
_IJSON_PY = ijson.get_backend("python")
try:
    _IJSON_C: Any = ijson.get_backend("yajl2_c")
except ImportError:  # a build of ijson without its C extension
    _IJSON_C = None
# Deterministic event ids: UUIDv5 of eventID in this namespace (uuid5(NAMESPACE_URL, "eventlog:cloudtrail")).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "eventlog:cloudtrail")
_NAMESPACE_BYTES = NAMESPACE.bytes
BATCH_EVENTS = 1_000
# Batches handed to the journal and not yet committed while the next ones are parsed: the writer's fsync
# overlaps the parsing, and memory stays bounded.
IN_FLIGHT_BATCHES = 3
# A log file whose hash must match before its records are imported is first copied here: in memory up to
# this size, then in a temporary file.
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
TRUNCATED = "…[truncated]"
_LOOKBACK = timedelta(days=1)
_READ_BYTES = 256 * 1024

_ACCOUNT = re.compile(r"^\d{12}$")
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")
_KEY_DAY = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/[^/]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# How CloudTrail writes every log file; anything else takes the Python parser, which says what is wrong.
_LOG_HEAD = re.compile(rb'\A\s*\{\s*"Records"\s*:\s*\[')

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
    tenant_retention_days: Mapping[str, int] = field(default_factory=dict)  # settings.retention_tenant_days

    def retention_days_for(self, tenant: str | None) -> int:
        return self.tenant_retention_days.get(tenant, self.retention_days) if tenant else self.retention_days

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
    text = value if type(value) is str else str(value)
    if _CONTROL.search(text) is not None:
        text = _CONTROL.sub("", text)
    return text[:limit] or None


def _clip(text: str) -> str:
    if len(text) <= MAX_DETAILS_STRING:
        return text
    return text[: MAX_DETAILS_STRING - len(TRUNCATED)] + TRUNCATED


def _json_text(value: Any) -> str:
    return _clip(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode())


def _fit_value(value: Any) -> tuple[Any, bool]:
    """A scalar within the details limits, and whether orjson writes it as RFC 8785 does (eventlog/canonical.py)."""
    kind = type(value)
    if kind is str:
        return (value if len(value) <= MAX_DETAILS_STRING else _clip(value)), True
    if value is None or kind is bool:
        return value, True
    if kind is int:
        return (value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)), True
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            return str(value), True
        magnitude = abs(value)
        return value, 1e-5 <= magnitude < 1e15 and not value.is_integer()
    return _clip(str(value)), True


def _fit(container: dict[str, Any] | list[Any], depth_left: int) -> bool:
    """Bring parsed JSON within eventlog's details limits, in place; False if a float keeps orjson from RFC 8785.

    Deeper subtrees become their JSON text, long strings are cut, integers beyond ±(2^53-1) and non-finite
    floats become strings. This one walk replaces what EventIn's `_depth` and canonical_json's fast-path check
    would each walk again (keys are checked on the serialized bytes instead: see `prepare`).
    """
    jcs = True
    items: Iterable[tuple[Any, Any]] = container.items() if type(container) is dict else enumerate(container)
    for key, value in items:
        kind = type(value)
        if kind is str:
            if len(value) > MAX_DETAILS_STRING:
                container[key] = _clip(value)
        elif kind is dict or kind is list:
            if depth_left <= 0:
                container[key] = _json_text(value)
            elif not _fit(value, depth_left - 1):
                jcs = False
        elif kind is int:
            if value > MAX_SAFE_INT or value < -MAX_SAFE_INT:
                container[key] = str(value)
        elif value is None or kind is bool:
            pass
        else:
            fitted, canonical = _fit_value(value)
            if fitted is not value:
                container[key] = fitted
            jcs = jcs and canonical
    return jcs


def _safe(value: Any, depth_left: int) -> Any:
    """A copy of `value` within the details limits (for hashing a record without eventID; not the hot path)."""
    if isinstance(value, dict | list):
        if depth_left <= 0:
            return _json_text(value)
        if isinstance(value, dict):
            return {str(k): _safe(v, depth_left - 1) for k, v in value.items()}
        return [_safe(v, depth_left - 1) for v in value]
    return _fit_value(value)[0]


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


def _uuid5(name: str) -> str:
    """str(uuid.uuid5(NAMESPACE, name)) (RFC 4122 section 4.3), without building a UUID object."""
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def event_id(record: dict[str, Any]) -> str:
    """UUIDv5 of eventID (of the whole record when it has none): a record seen twice gets one id."""
    key = record.get("eventID")
    seed = key if isinstance(key, str) and key else canonical_json(_safe(record, 64)).decode()
    return _uuid5(seed)


# A dotted-quad IPv4 address without leading zeros: already the form ipaddress writes, at 1/10 of its cost.
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")


def _ip(text: str) -> str | None:
    """`text` as an IP address in its normal form, or None if it is not one."""
    if _IPV4.fullmatch(text) is not None:
        return text
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


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
        name = identity.get("userName") or (arn[max(arn.rfind("/"), arn.rfind(":")) + 1 :] if arn else None)
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
        ip = _ip(source_ip)
        if ip is not None:
            actor["ip"] = ip
        else:
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


_DETAILS_MEMBER = len(b',"details":')


def _map(record: Any, max_details_depth: int, max_event_bytes: int) -> tuple[dict[str, Any], datetime, bool, bytes]:
    """map_record, plus the event time, whether orjson's sorted output of details is canonical, and that output."""
    if not isinstance(record, dict):
        raise SkipRecord("invalid", f"a record is a JSON {type(record).__name__}, not an object")
    when = _parse_time(record.get("eventTime"))
    identifier = event_id(record)  # before _fit changes the record's values in place
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
    jcs = _fit(details, max_details_depth - 1)
    event = {
        "id": identifier,
        "time": when.isoformat(),
        "action": action,
        "outcome": "failure" if record.get("errorCode") is not None else "success",
        "actor": actor,
        "target": _target(record),
        "request": request,
        "source": "cloudtrail",
        "message": "",
    }
    # The size of the whole event as JSON, from details serialized once (the canonical form needs it sorted;
    # sorting does not change the length).
    rest = len(orjson.dumps(event)) + _DETAILS_MEMBER
    text = orjson.dumps(details, option=orjson.OPT_SORT_KEYS)
    for bulky in _BULKY:
        if rest + len(text) <= max_event_bytes:
            break
        if bulky in details:
            details[bulky] = (
                f"{TRUNCATED} {len(orjson.dumps(details[bulky]))} bytes of JSON dropped: the event exceeded {max_event_bytes} bytes"
            )
            text = orjson.dumps(details, option=orjson.OPT_SORT_KEYS)
    else:
        if rest + len(text) > max_event_bytes:
            raise SkipRecord(
                "too_large", f"the event is larger than {max_event_bytes} bytes even without its bulky fields"
            )
    event["details"] = details
    return event, when, jcs, text


def map_record(record: Any, *, max_details_depth: int = 8, max_event_bytes: int = 65_536) -> dict[str, Any]:
    """One CloudTrail record as the raw JSON of an `EventIn` (not yet validated against the time window).

    Values of `record` that exceed the details limits are replaced in place. Raises SkipRecord("invalid", ...)
    for a record without a usable eventTime.
    """
    return _map(record, max_details_depth, max_event_bytes)[0]


@functools.lru_cache(maxsize=8)
def _format_received(received_at: datetime) -> str:
    """format_time of the one receipt time of a whole file, once."""
    return format_time(received_at)


def _in_window(
    record: Any, limits: Limits, now: datetime, tenant: str | None = None
) -> tuple[dict[str, Any], datetime, bool, bytes]:
    mapped = _map(record, limits.max_details_depth, limits.max_event_bytes)
    if mapped[1] < now - timedelta(days=limits.retention_days_for(tenant)):
        raise SkipRecord("too_old", f"eventTime {mapped[0]['time']} lies before the retention window")
    return mapped


def to_event(record: Any, *, limits: Limits, now: datetime) -> EventIn:
    """map_record, then the retention window and EventIn's validation; SkipRecord says why not."""
    raw = _in_window(record, limits, now)[0]
    try:
        return EventIn.model_validate(raw, context=limits.context(now))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SkipRecord("invalid", f"{where}: {first['msg']}") from None


def prepare(record: Any, *, tenant: str, limits: Limits, received_at: datetime) -> Prepared:
    """The journal item of one record: the document to_document(to_event(...)) gives, at a third of the cost.

    _map builds every field within EventIn's constraints (identifiers and names through _text, details through
    _fit, the address through _ip, the rest constants), so validating its output again only repeated the work,
    and was half of an import's time: the document is built here, after the one check EventIn would add (the
    time not too far in the future). tests/unit/ingest/test_cloudtrail_mapping.py checks on real and generated
    records that EventIn accepts every mapped event and that both documents are equal.
    """
    raw, when, jcs, text = _in_window(record, limits, received_at, tenant)
    if when > received_at + timedelta(seconds=limits.max_future_seconds):
        raise SkipRecord("invalid", f"time: lies more than {limits.max_future_seconds} s in the future")
    document: dict[str, Any] = {
        "id": raw["id"],
        "tenant": tenant,
        "time": format_time(when),
        "received_at": _format_received(received_at),
        "action": raw["action"],
        "outcome": raw["outcome"],
        "actor": raw["actor"],
        "target": raw["target"],
        "request": raw["request"],
        "source": "cloudtrail",
        "message": "",
        "details": raw["details"],
    }
    # details were serialized once (by _map, keys sorted) and are kept as that JSON text, an orjson.Fragment: the
    # canonical bytes are the document's with it inside, and the journal writes it as is. The events waiting in
    # the journal's queue then hold a few objects each instead of every node of details, which made the garbage
    # collector's full passes a large cost of an import. RFC 8785 sorts keys by UTF-16 code units, orjson by code
    # points: the same for ASCII keys. Every other part of the document is strings under ASCII keys, so ASCII
    # details bytes (and floats _fit found ordinary) make orjson's output canonical.
    if jcs and text.isascii():
        document["details"] = orjson.Fragment(text)
        return Prepared(raw["id"], document, orjson.dumps(document, option=orjson.OPT_SORT_KEYS), True)
    return Prepared(raw["id"], document, canonical_json(document), True)


# -- S3 layout -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trail:
    """One (account, region) folder of CloudTrail files."""

    account: str
    region: str
    folder: str  # ends with "/", e.g. "p/AWSLogs/o-abc/111111111111/CloudTrail/eu-west-1/"

    @property
    def digest_folder(self) -> str:
        """Where CloudTrail puts the digest files of this folder's log files."""
        root = self.folder.removesuffix(f"CloudTrail/{self.region}/")
        return f"{root}CloudTrail-Digest/{self.region}/"


def _base(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/AWSLogs/" if prefix else "AWSLogs/"


def _subfolders(s3: S3Client, bucket: str, under: str) -> Iterator[str]:
    """The names of the 'folders' directly under `under`."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=under, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            yield common["Prefix"][len(under) :].rstrip("/")


def discover_trails(s3: S3Client, bucket: str, prefix: str, *, digests: bool = False) -> list[Trail]:
    """Every account/region folder under the bucket and prefix, organization trails included.

    With `digests`, a region that has only digest files counts too: its log files may all have been deleted.
    """
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
    trails: set[Trail] = set()
    for account, root in account_roots:
        folder = f"{root}CloudTrail/"
        regions = set(_subfolders(s3, bucket, folder))
        if digests:
            regions.update(_subfolders(s3, bucket, f"{root}CloudTrail-Digest/"))
        trails.update(Trail(account, region, f"{folder}{region}/") for region in regions)
    return sorted(trails, key=lambda t: t.folder)


@dataclass(frozen=True, slots=True)
class NotifiedKey:
    """Where a key named by a notification lies in the layout: its trail, and whether it is a digest file."""

    trail: Trail
    digest: bool


@functools.lru_cache(maxsize=16)
def _layout(prefix: str) -> re.Pattern[str]:
    """The keys discover_trails and list_new_files would find under `prefix`, log and digest files alike."""
    return re.compile(
        re.escape(_base(prefix))
        + r"(?P<root>(?:o-[a-z0-9]{10,32}/)?(?P<account>\d{12})/)"
        + r"(?P<kind>CloudTrail|CloudTrail-Digest)/(?P<region>[^/]+)/.+\.json\.gz"
    )


def locate_key(prefix: str, key: str) -> NotifiedKey | None:
    """The trail of a CloudTrail log or digest file key under `prefix`; None for any other key.

    The same keys the listing reads: ``.json.gz`` under an account's (or an organization member's)
    ``CloudTrail/<region>/`` or ``CloudTrail-Digest/<region>/`` folder; ``CloudTrail-Insight/`` is not one.
    """
    match = _layout(prefix).fullmatch(key)
    if match is None:
        return None
    region = match["region"]
    folder = f"{_base(prefix)}{match['root']}CloudTrail/{region}/"
    return NotifiedKey(Trail(match["account"], region, folder), match["kind"] == "CloudTrail-Digest")


def _key_day(key: str) -> date | None:
    match = _KEY_DAY.search(key)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _start_day(last_key: str | None, since: date | None) -> date | None:
    """The first day to list: one day before the checkpoint's, or `since`, whichever is later."""
    starts: list[date] = []
    last_day = _key_day(last_key) if last_key else None
    if last_day is not None:
        starts.append(last_day - _LOOKBACK)
    if since is not None:
        starts.append(since)
    return max(starts) if starts else None


def list_new_files(
    s3: S3Client, bucket: str, trail: Trail, *, last_key: str | None, since: date | None, seen: set[str]
) -> Iterator[str]:
    """Keys of log files in `trail`, oldest first, from one day before the checkpoint (or `since`), not yet read."""
    start = _start_day(last_key, since)
    # "YYYY/MM/DD" sorts just before every key of that day: StartAfter it lists the day and what follows.
    start_after = f"{trail.folder}{start:%Y/%m/%d}" if start else ""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=trail.folder, StartAfter=start_after):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith(".json.gz") and key not in seen:
                yield key


# -- reading one file ----------------------------------------------------------------------------------------------


class MalformedFile(ValueError):
    """A log file that is not gzip, not JSON, or has no `Records` array."""


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _Gunzip:
    """The uncompressed content of a gzip stream (every member), hashed with SHA-256 as it is read.

    A gzip error ends the stream and is kept (`error`), so the JSON parser fails cleanly and we say why.
    """

    def __init__(self, raw: _Readable) -> None:
        self._raw = raw
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self._pending = b""  # compressed input not inflated yet
        self._hash = hashlib.sha256()
        self._started = False
        self._ended = False
        self.error: str | None = None

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        limit = max(size, 0)  # 0: no limit for zlib
        while not self._ended:
            if not self._pending:
                self._pending = self._raw.read(_READ_BYTES)
                if not self._pending:
                    self._ended = True
                    if not self._started:
                        self.error = "the object is empty"
                    elif not self._inflater.eof:
                        self.error = "the gzip stream is truncated"
                    return b""
                self._started = True
            if self._inflater.eof:  # the next gzip member
                self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
            try:
                out = self._inflater.decompress(self._pending, limit)
            except zlib.error as exc:
                self.error = str(exc)
                self._ended = True
                return b""
            self._pending = self._inflater.unconsumed_tail or self._inflater.unused_data
            if out:
                self._hash.update(out)
                return out
        return b""

    def sha256(self) -> str | None:
        """Hex SHA-256 of the whole uncompressed content (reading what is left); None if it is not gzip."""
        while self.read(_READ_BYTES):
            pass
        return self._hash.hexdigest() if self.error is None else None


class _Prefixed:
    """`head`, then the rest of `stream`."""

    def __init__(self, head: bytes, stream: _Gunzip) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._stream.read(size)


class LogFile:
    """One log file's uncompressed content; it can be read again from its start, and says its SHA-256.

    `open_body` gives the gzip body from its start each time it is called (a new S3 GET, or a seek).
    """

    def __init__(self, open_body: Callable[[], IO[bytes]], *, same_body: bool = False) -> None:
        self._open_body = open_body
        self._same_body = same_body  # open_body rewinds one body: do not close it between two reads
        self._body: IO[bytes] | None = None
        self.stream: _Gunzip | None = None

    @classmethod
    def of(cls, body: IO[bytes]) -> LogFile:
        """A gzip body in memory or on disk, read again by seeking back to where it starts."""
        start = body.tell() if body.seekable() else 0

        def rewind() -> IO[bytes]:
            if body.tell() != start:
                body.seek(start)
            return body

        return cls(rewind, same_body=True)

    def open(self) -> _Gunzip:
        if self._body is not None and not self._same_body:
            self._body.close()
        self._body = self._open_body()
        self.stream = _Gunzip(self._body)
        return self.stream

    def sha256(self) -> str | None:
        return self.stream.sha256() if self.stream is not None else None

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None


def _head(stream: _Gunzip, size: int = 256) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < size:
        part = stream.read(size - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _malformed(stream: _Gunzip, exc: Exception) -> MalformedFile:
    if stream.error is not None:
        return MalformedFile(f"not a gzip file: {stream.error}")
    return MalformedFile(f"not JSON: {exc}")


def iter_records(source: IO[bytes] | LogFile) -> Iterator[Any]:
    """The records of one gzip JSON log file, streamed; MalformedFile when it is not one."""
    log = source if isinstance(source, LogFile) else LogFile.of(source)
    stream = log.open()
    head = _head(stream)
    skip = 0
    if _IJSON_C is not None and _LOG_HEAD.match(head):
        try:
            for record in _IJSON_C.items(_Prefixed(head, stream), "Records.item", use_float=True):
                skip += 1
                yield record
        except ijson.JSONError as exc:
            if stream.error is not None or "overflow" not in str(exc):
                raise _malformed(stream, exc) from None
        else:
            if stream.error is not None:
                raise MalformedFile(f"not a gzip file: {stream.error}")
            return
        stream = log.open()  # a number the C parser cannot hold: again with the Python one
        head = b""
    yield from _python_records(_Prefixed(head, stream), stream, skip)


def _python_records(reader: _Prefixed, stream: _Gunzip, skip: int) -> Iterator[Any]:
    """The slow, general way: any key order, big numbers; says when there is no `Records` array."""
    seen_records = False

    def watch(events: Iterable[tuple[str, str, Any]]) -> Iterator[tuple[str, str, Any]]:
        nonlocal seen_records
        for prefix, event, value in events:
            if prefix == "Records" and event == "start_array":
                seen_records = True
            yield prefix, event, value

    try:
        for index, record in enumerate(_IJSON_PY.items(watch(_IJSON_PY.parse(reader, use_float=True)), "Records.item")):
            if index >= skip:
                yield record
    except ijson.JSONError as exc:  # IncompleteJSONError is a JSONError; bad UTF-8 becomes one too
        raise _malformed(stream, exc) from None
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
    sha256 TEXT,
    PRIMARY KEY (bucket, key)
);
"""


class CheckpointStore:
    """What has been read, per (bucket, prefix, account, region): SQLite in the data dir (cloudtrail.db).

    files.status: ``ok``, ``malformed``, or ``hash_mismatch`` (not imported: it differs from its digest);
    files.sha256: hex SHA-256 of the uncompressed content as read (NULL: not gzip, or read before it was kept).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # A checkpoint lost to a power cut only makes the next run read a file again, and its events are stored
        # once (same ids): no fsync per file, which cost as much as parsing a thousand records.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.executescript(_CHECKPOINT_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(files)")}
        if "sha256" not in columns:  # a cloudtrail.db from before hashes were kept
            self._conn.execute("ALTER TABLE files ADD COLUMN sha256 TEXT")
        self.digests = DigestStore(self._conn)

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

    def file(self, bucket: str, key: str) -> tuple[str, str | None] | None:
        """(status, sha256) of a file read before, or None."""
        row = self._conn.execute("SELECT status, sha256 FROM files WHERE bucket = ? AND key = ?", (bucket, key))
        found = row.fetchone()
        return None if found is None else (str(found[0]), found[1])

    def done(
        self, bucket: str, prefix: str, trail: Trail, key: str, *, status: str, records: int, sha256: str | None = None
    ) -> None:
        """Record `key` as read (after its events are durable in the journal) and move the checkpoint."""
        now = datetime.now(UTC).isoformat()
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute(
                "INSERT OR REPLACE INTO files (bucket, key, status, records, read_at, sha256) VALUES (?, ?, ?, ?, ?, ?)",
                (bucket, key, status, records, now, sha256),
            )
            self._conn.execute(
                "INSERT INTO checkpoints (bucket, prefix, account, region, last_key, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bucket, prefix, account, region)"
                " DO UPDATE SET last_key = max(last_key, excluded.last_key), updated_at = excluded.updated_at",
                (bucket, prefix, trail.account, trail.region, key, now),
            )


# -- the import ----------------------------------------------------------------------------------------------------

AppendFn = Callable[[str, list[Prepared]], Awaitable[list[Appended]]]  # Journal.append


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
    bucket: str
    prefix: str
    append: AppendFn
    checkpoints: CheckpointStore
    tenants: Mapping[str, str]
    limits: Limits
    since: date | None
    reread: bool
    public_keys: Mapping[str, rsa.RSAPublicKey] | None
    require_digest: bool
    progress: Callable[[str], None]
    now: Callable[[], datetime]
    stats: ImportStats = field(default_factory=ImportStats)
    _pipeline: _Pipeline = field(init=False)
    _unsettled: deque[_Read] = field(default_factory=deque)

    async def run(self, notified: Iterable[str] | None = None) -> ImportStats:
        """Every trail the listing finds; or, given `notified`, only those keys."""
        self.stats.validation = self.public_keys is not None
        self._pipeline = _Pipeline(self.append, self.stats)
        try:
            if notified is None:
                for trail in discover_trails(self.s3, self.bucket, self.prefix, digests=self.public_keys is not None):
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
                self.checkpoints.digests.settle(self.bucket, read.key, "valid")
            self.checkpoints.done(
                self.bucket,
                self.prefix,
                read.trail,
                read.key,
                status=read.status,
                records=read.records,
                sha256=read.sha256,
            )
            if read.status == "ok":
                self.progress(
                    f"cloudtrail: {read.key}: {read.records} records, {read.imported} imported, "
                    f"{read.duplicates} duplicates" + (", hash valid" if read.validated else "")
                )

    def _fail(self, failure: IntegrityFailure) -> None:
        self.stats.integrity.append(failure)
        extra = f" (expected {failure.expected}, found {failure.actual})" if failure.kind == "log_hash" else ""
        self.progress(f"cloudtrail: {failure.key}: INTEGRITY {failure.kind}: {failure.error}{extra}")

    async def _trail(self, trail: Trail) -> None:
        last = None if self.reread else self.checkpoints.last_key(self.bucket, self.prefix, trail)
        seen = set() if self.reread else self.checkpoints.seen(self.bucket, trail.folder)
        keys = set(list_new_files(self.s3, self.bucket, trail, last_key=last, since=self.since, seen=seen))
        if self.public_keys is not None:
            # Digests first: a log file they list is then checked before its records are imported.
            start = _start_day(last, self.since)
            self._digested(
                verify_new_digests(
                    self.s3,
                    bucket=self.bucket,
                    folder=trail.digest_folder,
                    start_after=f"{trail.digest_folder}{start:%Y/%m/%d}" if start else "",
                    keys=self.public_keys,
                    store=self.checkpoints.digests,
                )
            )
        await self._files(trail, keys, seen.__contains__)

    async def _notified(self, keys: Iterable[str]) -> None:
        """The log and digest files notifications named, read by the listing's rules, trail by trail.

        Instead of the listing: a log file already read is passed over (checked one key at a time, not by loading
        the folder's keys), and each digest file named is checked unless it was before.
        """
        digests = self.checkpoints.digests
        trails: dict[Trail, tuple[set[str], list[str]]] = {}
        for key in keys:
            where = locate_key(self.prefix, key)
            if where is None:
                continue  # not a CloudTrail file: the caller counts it
            logs, digest_keys = trails.setdefault(where.trail, (set(), []))
            if not where.digest:
                if not self._was_read(key):
                    logs.add(key)
            elif self.public_keys is not None and key not in digest_keys and not digests.checked(self.bucket, key):
                digest_keys.append(key)
        for trail, (logs, digest_keys) in sorted(trails.items(), key=lambda item: item[0].folder):
            if self.public_keys is not None:
                self._digested(
                    verify_digests(
                        self.s3,
                        bucket=self.bucket,
                        digest_keys=sorted(digest_keys),  # oldest first, as the listing checks them
                        keys=self.public_keys,
                        store=digests,
                    )
                )
            await self._files(trail, logs, self._was_read)

    def _was_read(self, key: str) -> bool:
        return self.checkpoints.file(self.bucket, key) is not None

    def _digested(self, checked: tuple[int, list[IntegrityFailure]]) -> None:
        valid, failures = checked
        self.stats.digests += valid
        for failure in failures:
            self._fail(failure)

    async def _files(self, trail: Trail, keys: set[str], was_read: Callable[[str], bool]) -> None:
        """Import `keys` of `trail` (not read yet), and the files its valid digests list that wait for a check."""
        digests = self.checkpoints.digests
        if self.public_keys is not None:
            for key, expected in sorted(digests.pending(self.bucket, trail.folder).items()):
                if was_read(key):
                    self._check_read_file(key, expected)
                else:
                    keys.add(key)  # even when the listing no longer reaches its day (held back for long)
        for key in sorted(keys):
            # Any hash a valid digest gave, compared or not: a file found altered stays refused on --reread.
            wanted = digests.expected(self.bucket, key) if self.public_keys is not None else None
            if wanted is None and self.public_keys is not None and self.require_digest:
                self.stats.awaiting_digest += 1
                self.progress(f"cloudtrail: {key}: held back until a digest file lists it")
                continue
            await self._file(trail, key, wanted)

    def _check_read_file(self, key: str, expected: str) -> None:
        """Compare a file read before its digest came with the hash that digest gives."""
        status, actual = self.checkpoints.file(self.bucket, key) or ("ok", None)
        if actual is None:  # not gzip, or read before hashes were kept: hash it now
            try:
                body = self._get(key)
            except ClientError as exc:
                if not _no_such_key(exc):
                    raise
                self._fail(IntegrityFailure("log_missing", key, "a digest file lists it but it is not in the bucket"))
                self.checkpoints.digests.settle(self.bucket, key, "missing")
                return
            try:
                actual = _Gunzip(body).sha256()
            finally:
                body.close()
        if actual == expected:
            self.stats.validated += 1
            self.checkpoints.digests.settle(self.bucket, key, "valid")
            return
        self.checkpoints.digests.settle(self.bucket, key, "mismatch")
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
        body: IO[bytes] = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        return body

    def _verified_copy(self, trail: Trail, key: str, expected: str) -> IO[bytes] | None:
        """A copy of the log file if its hash is `expected`; None (reported) if it differs or is missing.

        The hash must be known before the first record is imported, and the journal cannot take records back:
        so the file is first copied (in memory up to SPOOL_MEMORY_BYTES, then in a temporary file) while its hash
        is computed, and parsed from that copy only if it matches. One GET, bounded memory, and what is parsed
        is exactly what was hashed.
        """
        try:
            body = self._get(key)
        except ClientError as exc:
            if not _no_such_key(exc):
                raise
            self._fail(IntegrityFailure("log_missing", key, "a digest file lists it but it is not in the bucket"))
            self.checkpoints.digests.settle(self.bucket, key, "missing")
            return None
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115 - returned
        try:
            actual = _Gunzip(_Tee(body, spool)).sha256()
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
        self.checkpoints.digests.settle(self.bucket, key, "mismatch")
        self.checkpoints.done(self.bucket, self.prefix, trail, key, status="hash_mismatch", records=0, sha256=actual)
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
            self.progress(f"cloudtrail: {key}: skipped, malformed: {exc}")
        except BaseException:
            log.close()
            raise
        if expected is None:
            read.sha256 = log.sha256()
        log.close()
        if expected is not None:
            stats.validated += 1
        elif self.public_keys is not None:
            stats.unvalidated += 1
        self._unsettled.append(read)
        self._settle()

    async def _records(self, read: _Read, log: LogFile) -> None:
        stats = self.stats
        batches: dict[str, list[Prepared]] = {}
        received_at = self.now()
        default_account = read.trail.account
        try:
            for record in iter_records(log):
                read.records += 1
                account = record.get("recipientAccountId") if type(record) is dict else None
                tenant = self.tenants.get(account if isinstance(account, str) and account else default_account)
                if tenant is None:
                    stats.skipped["unmapped_account"] += 1
                    continue
                try:
                    item = prepare(record, tenant=tenant, limits=self.limits, received_at=received_at)
                except SkipRecord as exc:
                    stats.skipped[exc.reason] += 1
                    continue
                batch = batches.setdefault(tenant, [])
                batch.append(item)
                if len(batch) >= BATCH_EVENTS:
                    await self._pipeline.add(tenant, batches.pop(tenant), read)
        finally:
            stats.records += read.records
            # What was read before a malformed tail is kept: the same ids make a later re-read harmless.
            for tenant, batch in batches.items():
                await self._pipeline.add(tenant, batch, read)


async def import_cloudtrail(
    s3: S3Client,
    *,
    bucket: str,
    prefix: str,
    append: AppendFn,
    checkpoints: CheckpointStore,
    tenants: Mapping[str, str],
    limits: Limits,
    since: date | None = None,
    reread: bool = False,
    public_keys: Mapping[str, rsa.RSAPublicKey] | None = None,
    require_digest: bool = False,
    progress: Callable[[str], None] = lambda _: None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ImportStats:
    """Read every new log file under bucket/prefix and append its events; returns the counts.

    `append(tenant, prepared)` is `Journal.append`. A file's checkpoint moves only after its events are durable,
    so an interrupted import re-reads at most the files it was in (their events are stored once: same ids).
    With `public_keys` (fingerprint -> key, see cloudtrail_digest.load_public_keys) digest files are checked
    and log files compared with them; `require_digest` imports only log files a valid digest lists.
    """
    run = _Import(
        s3=s3,
        bucket=bucket,
        prefix=prefix,
        append=append,
        checkpoints=checkpoints,
        tenants=tenants,
        limits=limits,
        since=since,
        reread=reread,
        public_keys=public_keys,
        require_digest=require_digest,
        progress=progress,
        now=now,
    )
    return await run.run()


async def import_cloudtrail_keys(
    s3: S3Client,
    *,
    bucket: str,
    prefix: str,
    keys: Iterable[str],
    append: AppendFn,
    checkpoints: CheckpointStore,
    tenants: Mapping[str, str],
    limits: Limits,
    public_keys: Mapping[str, rsa.RSAPublicKey] | None = None,
    require_digest: bool = False,
    progress: Callable[[str], None] = lambda _: None,
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
    run = _Import(
        s3=s3,
        bucket=bucket,
        prefix=prefix,
        append=append,
        checkpoints=checkpoints,
        tenants=tenants,
        limits=limits,
        since=None,
        reread=False,
        public_keys=public_keys,
        require_digest=require_digest,
        progress=progress,
        now=now,
        stats=ImportStats() if stats is None else stats,
    )
    return await run.run(list(keys))
