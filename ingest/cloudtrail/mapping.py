"""One CloudTrail record as an eventlog event (pure): `map_record`, and `prepare`, the journal item the import appends.

Fields CloudTrail gives its own place (time, service and name, identity, address, agent, request id, event id)
become the event's; every other top-level field goes to `details`, brought within eventlog's limits. The event
id is ``cloudtrail:`` and a UUIDv5 of eventID, so a record imported twice is stored once; producers may not send
ids in that namespace nor the source ``cloudtrail`` (eventlog/model.py), so none can claim a record's id first.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from eventlog.canonical import MAX_SAFE_INT, canonical_json
from eventlog.journal import Prepared
from eventlog.model import MAX_DETAILS_STRING, EventIn, format_time
from eventlog.settings import LimitSettings, RetentionSettings

__all__ = [
    "ID_PREFIX",
    "NAMESPACE",
    "SOURCE",
    "TRUNCATED",
    "Limits",
    "SkipRecord",
    "event_id",
    "limits_of",
    "map_record",
    "outcome",
    "prepare",
    "to_event",
]

SOURCE = "cloudtrail"
# Deterministic event ids: ID_PREFIX and the UUIDv5 of eventID in NAMESPACE (uuid5(NAMESPACE_URL,
# "eventlog:cloudtrail")). The prefix is a namespace EventIn refuses from producers.
ID_PREFIX = f"{SOURCE}:"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "eventlog:cloudtrail")
_NAMESPACE_BYTES = NAMESPACE.bytes
TRUNCATED = "…[truncated]"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

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
    max_details_key_chars: int = 256
    tenant_retention_days: Mapping[str, int] = field(default_factory=dict)  # settings.retention_tenant_days

    def retention_days_for(self, tenant: str | None) -> int:
        return self.tenant_retention_days.get(tenant, self.retention_days) if tenant else self.retention_days

    def context(self, now: datetime) -> dict[str, Any]:
        return {
            "now": now,
            "retention_days": self.retention_days,
            "max_future_seconds": self.max_future_seconds,
            "max_details_depth": self.max_details_depth,
            "max_details_key_chars": self.max_details_key_chars,
        }


def limits_of(retention: RetentionSettings, limits: LimitSettings) -> Limits:
    return Limits(
        retention_days=retention.days,
        max_future_seconds=limits.future_seconds,
        max_details_depth=limits.details_depth,
        max_event_bytes=limits.event_bytes,
        max_details_key_chars=limits.details_key_chars,
        tenant_retention_days=retention.tenant_days,
    )


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


def _fit(container: dict[str, Any] | list[Any], depth_left: int, max_key_chars: int) -> bool:
    """Bring parsed JSON within eventlog's details limits, in place; False if a float keeps orjson from RFC 8785.

    Deeper subtrees and objects with a key longer than max_key_chars become their JSON text, long strings are cut, integers beyond ±(2^53-1) and non-finite
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
            if depth_left <= 0 or (kind is dict and max(map(len, value), default=0) > max_key_chars):
                container[key] = _json_text(value)
            elif not _fit(value, depth_left - 1, max_key_chars):
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
    """ID_PREFIX and the UUIDv5 of eventID (of the whole record when it has none): a record seen twice gets one id."""
    key = record.get("eventID")
    seed = key if isinstance(key, str) and key else canonical_json(_safe(record, 64)).decode()
    return ID_PREFIX + _uuid5(seed)


def _status(value: Any, name: Any) -> Any:
    return value.get(name) if isinstance(value, dict) and isinstance(name, str) else None


def outcome(record: dict[str, Any]) -> str:
    """failure when CloudTrail reports an error or a failed step; success otherwise.

    API calls that fail carry errorCode (and usually errorMessage). Sign-in events (signin.amazonaws.com:
    ConsoleLogin, CheckMfa, SwitchRole, ...) carry no errorCode: they say "Failure" or "Success" under their own
    name in responseElements (serviceEventDetails for CredentialVerification and the other service events of
    sign-in), and a failed one usually adds errorMessage ("Failed authentication").
    """
    if record.get("errorCode") is not None or record.get("errorMessage") is not None:
        return "failure"
    name = record.get("eventName")
    for part in ("responseElements", "serviceEventDetails"):
        if _status(record.get(part), name) == "Failure":
            return "failure"
    return "success"


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
    # S3 data events name objects by "ARNPrefix" (the bucket's ARN and the key) rather than "ARN".
    arn = _text(first.get("ARN") or first.get("arn") or first.get("ARNPrefix"), 256)
    if arn:
        target["id"] = arn
    return target


_DETAILS_MEMBER = len(b',"details":')


def _map(
    record: Any, max_details_depth: int, max_event_bytes: int, max_key_chars: int
) -> tuple[dict[str, Any], datetime, bool, bytes]:
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
            if len(key) > max_key_chars:
                raise SkipRecord(
                    "invalid", f"a field name of {len(key)} characters; details keys have at most {max_key_chars}"
                )
            details[key] = value
    if record.get("requestID") is not None and not request_id:
        details["requestID"] = record["requestID"]
    # details is depth 1 itself: its values may nest max_details_depth - 1 more levels.
    jcs = _fit(details, max_details_depth - 1, max_key_chars)
    event = {
        "id": identifier,
        "time": when.isoformat(),
        "action": action,
        "outcome": outcome(record),
        "actor": actor,
        "target": _target(record),
        "request": request,
        "source": SOURCE,
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


def map_record(
    record: Any, *, max_details_depth: int = 8, max_event_bytes: int = 65_536, max_details_key_chars: int = 256
) -> dict[str, Any]:
    """One CloudTrail record as the event the importer stores (not yet checked against the time window).

    Its fields are an `EventIn`'s; its `id` and `source` are the importer's own, which EventIn refuses from producers.

    Values of `record` that exceed the details limits are replaced in place. Raises SkipRecord("invalid", ...)
    for a record without a usable eventTime.
    """
    return _map(record, max_details_depth, max_event_bytes, max_details_key_chars)[0]


@functools.lru_cache(maxsize=8)
def _format_received(received_at: datetime) -> str:
    """format_time of the one receipt time of a whole file, once."""
    return format_time(received_at)


def _in_window(
    record: Any, limits: Limits, now: datetime, tenant: str | None = None
) -> tuple[dict[str, Any], datetime, bool, bytes]:
    mapped = _map(record, limits.max_details_depth, limits.max_event_bytes, limits.max_details_key_chars)
    if mapped[1] < now - timedelta(days=limits.retention_days_for(tenant)):
        raise SkipRecord("too_old", f"eventTime {mapped[0]['time']} lies before the retention window")
    return mapped


def to_event(record: Any, *, limits: Limits, now: datetime) -> EventIn:
    """map_record, then the retention window and EventIn's validation; SkipRecord says why not.

    The id and source are left out (EventIn refuses them from producers): the stored form is
    to_document(event, event_id=event_id(record), source=SOURCE, ...).
    """
    raw = _in_window(record, limits, now)[0]
    fields = {key: value for key, value in raw.items() if key not in ("id", "source")}
    try:
        return EventIn.model_validate(fields, context=limits.context(now))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SkipRecord("invalid", f"{where}: {first['msg']}") from None


def prepare(record: Any, *, tenant: str, limits: Limits, received_at: datetime) -> Prepared:
    """The journal item of one record: the document to_document(to_event(...), event_id=event_id(record),
    source=SOURCE) gives, at a third of the cost.

    _map builds every field within EventIn's constraints (identifiers and names through _text, details through
    _fit, the address through _ip, the rest constants), so validating its output again only repeated the work,
    and was half of an import's time: the document is built here, after the one check EventIn would add (the
    time not too far in the future). tests/unit/ingest/cloudtrail/test_mapping.py checks on real and generated
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
        "source": SOURCE,
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
