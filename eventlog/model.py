"""The audit event: what producers send (`EventIn`) and what is stored and returned (`Event`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyAddress,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from eventlog.canonical import MAX_SAFE_INT

Outcome = Literal["success", "failure", "unknown"]
ProducerSource = Literal["api", "middleware"]
Source = Literal["api", "middleware", "cloudtrail", "eventlog"]
# The sources of what the service writes itself (the CloudTrail importer, self-audit and retention). A producer may
# claim neither them nor an id in their namespace ("cloudtrail:..."): the importer's ids are predictable, and a
# client's event stored first under one would make the journal drop the real record as its duplicate.
RESERVED_SOURCES = ("cloudtrail", "eventlog")


def reserved_source(value: object) -> bool:
    """Whether `value` is one of the service's own sources."""
    return isinstance(value, str) and value in RESERVED_SOURCES


def reserved_id(value: str) -> bool:
    """Whether `value` lies in the id namespace of one of the service's own sources (``cloudtrail:...``)."""
    namespace, colon, _ = value.partition(":")
    return bool(colon) and namespace.lower() in RESERVED_SOURCES


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control_chars(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (newlines, tabs, NUL)")
    return value


# Short identifiers and names may not carry control characters: they end up in
# syslog headers, CSV cells and log lines. Free text (message, details) may.
Ident = Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(_no_control_chars)]
Name = Annotated[str, StringConstraints(max_length=512), AfterValidator(_no_control_chars)]
Action = Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(_no_control_chars)]
ClientId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"),
]


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds, the one form eventlog writes."""
    # isoformat is ~3x cheaper than strftime and writes the same characters for naive UTC.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def to_utc(value: datetime) -> datetime:
    """`value` in UTC; ValueError (not OverflowError) when its offset carries it past year 9999 or before year 1."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("lies beyond the years 0001..9999 once in UTC") from None


def parse_time(value: str) -> datetime:
    return to_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def time_to_us(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_time_us(time_us: int) -> str:
    """`format_time` of a time in microseconds since the epoch."""
    return format_time(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=time_us))


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_TIME_EXAMPLE = "e.g. 2026-11-27T14:00:00Z"


def _rfc3339(value: Any) -> Any:
    """RFC 3339 text only: pydantic alone also reads Unix seconds, as a number or as digits in a string."""
    if isinstance(value, datetime):  # built in process
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be an RFC 3339 time as a JSON string, {_TIME_EXAMPLE}")
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError(f"is not an RFC 3339 time, {_TIME_EXAMPLE}")
    if match["offset"] is None:
        raise ValueError(f"needs a UTC offset, {_TIME_EXAMPLE}")
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError as exc:
        raise ValueError(f"is not a valid time ({exc}), {_TIME_EXAMPLE}") from None


def _ip_text(value: Any) -> Any:
    """An address as text only: pydantic alone also reads integers and booleans (167772167 as 10.0.0.7)."""
    if isinstance(value, str | IPv4Address | IPv6Address):
        return value
    raise ValueError("must be an IP address as a JSON string, e.g. 192.0.2.1 or 2001:db8::1")


Rfc3339Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(to_utc)]
"""A time as the API documents it (`format: date-time`): RFC 3339 text with an offset, never a number; read in UTC."""


class _Part(BaseModel):
    # strict: a value of the wrong JSON type is refused, never converted ("201" is no status, false no address).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Actor(_Part):
    # Not strict, so that code may write Actor(ip="192.0.2.1") (mypy types a strict model's fields exactly):
    # _ip_text checks the address's type, and a str field takes only a str from JSON anyway.
    model_config = ConfigDict(strict=False)

    type: Ident | None = Field(None, description="user, token, service, aws.IAMUser, ...")
    id: Ident | None = None
    name: Name | None = None
    ip: Annotated[IPvAnyAddress, BeforeValidator(_ip_text)] | None = Field(
        None, description="Client address, IPv4 or IPv6."
    )
    user_agent: Annotated[str, StringConstraints(max_length=1024)] | None = None


class Target(_Part):
    type: Ident | None = None
    id: Ident | None = None
    name: Name | None = None


# An HTTP method is an RFC 9110 token (`M-SEARCH`, `PRIVATE_METHOD`), at most 16 characters here.
METHOD_PATTERN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,16}$"
_TARGET_CHARS = {"type": 256, "id": 256, "name": 512}


def fit_target(values: Mapping[str, Any]) -> Target:
    """A Target of whatever an endpoint named (path parameters, names from a body): never refused.

    Control characters become U+FFFD and values are cut to Target's limits, so the
    audit event of a call keeps its target whatever the caller sent.
    """
    fitted: dict[str, str] = {}
    for part, limit in _TARGET_CHARS.items():
        value = values.get(part)
        if value is None:
            continue
        text = _CONTROL.sub("\ufffd", str(value))[:limit]
        if text:
            fitted[part] = text
    return Target(**fitted)


class RequestInfo(_Part):
    method: Annotated[str, StringConstraints(min_length=1, max_length=16, pattern=METHOD_PATTERN)] | None = None
    path: Annotated[str, StringConstraints(max_length=2048), AfterValidator(_no_control_chars)] | None = None
    route: Annotated[str, StringConstraints(max_length=512), AfterValidator(_no_control_chars)] | None = None
    query: Annotated[str, StringConstraints(max_length=4096), AfterValidator(_no_control_chars)] | None = None
    status: int | None = Field(None, ge=100, le=599)
    duration_ms: float | None = Field(None, ge=0, le=86_400_000)
    request_id: Ident | None = None
    bytes_in: int | None = Field(None, ge=0)
    bytes_out: int | None = Field(None, ge=0)


MAX_DETAILS_STRING = 4096

JsonPath = tuple[str | int, ...]


def too_deep_message(max_depth: int) -> str:
    return f"is nested deeper than {max_depth} levels in details; flatten it"


def details_problem(
    details: dict[str, Any], *, max_depth: int = 8, max_key_chars: int = 256
) -> tuple[JsonPath, str] | None:
    """Where inside `details` a limit is broken and why, or None.

    Walks with a list instead of recursion, so any nesting is safe to look at.
    """
    pending: list[tuple[dict[str, Any] | list[Any], JsonPath]] = [(details, ())]
    while pending:
        container, path = pending.pop()
        is_object = isinstance(container, dict)
        items = container.items() if isinstance(container, dict) else enumerate(container)
        nested: list[tuple[dict[str, Any] | list[Any], JsonPath]] = []
        for key, value in items:
            if is_object:
                if type(key) is not str:
                    return (*path, str(key)), "is a key that is not a string"
                if len(key) > max_key_chars:
                    # Every key path is part of an OpenSearch term, which Lucene caps at 32 766 bytes.
                    return (*path, key), f"is a key of {len(key)} characters; at most {max_key_chars} per key"
            if isinstance(value, dict | list):
                # details is level 1; this value is level len(path) + 2
                if len(path) + 2 > max_depth:
                    return (*path, key), too_deep_message(max_depth)
                nested.append((value, (*path, key)))
            elif isinstance(value, str):
                if len(value) > MAX_DETAILS_STRING:
                    # Every details value is one search term; Lucene refuses terms over 32 766 bytes.
                    return (
                        (*path, key),
                        f"is a string of {len(value)} characters; at most {MAX_DETAILS_STRING} per value",
                    )
            elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INT:
                return (*path, key), f"is the integer {value}, beyond ±(2**53-1); send it as a string"
        pending.extend(reversed(nested))
    return None


def error_path(error: ErrorDetails) -> JsonPath:
    """Where a validation error lies: its location, and inside details the path to the key or value at fault."""
    inner: JsonPath = (error.get("ctx") or {}).get("path", ())
    return (*error["loc"], *inner)


class EventIn(_Part):
    """An event as a producer sends it. Tenant, received_at and chain are never accepted."""

    id: ClientId | None = Field(None, description="Client idempotency id; a retry with the same id stores nothing new.")
    time: Annotated[datetime, BeforeValidator(_rfc3339)] | None = Field(
        None, description="When it happened (RFC 3339 with offset); defaults to the time of receipt."
    )
    action: Action = Field(description="Dotted verb, e.g. storage.tables.create.")
    outcome: Outcome = "unknown"
    actor: Actor = Field(default_factory=Actor)
    target: Target = Field(default_factory=Target)
    request: RequestInfo = Field(default_factory=RequestInfo)
    source: ProducerSource = "api"
    message: Annotated[str, StringConstraints(max_length=8192)] = ""
    details: dict[str, Any] = Field(default_factory=dict, description="Free JSON, nested at most 8 deep.")

    @model_validator(mode="before")
    @classmethod
    def _refuse_server_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, why in _SERVER_FIELDS.items():
                if key in data:
                    raise ValueError(f"`{key}` is set by the server ({why}); remove it from the event")
        return data

    @field_validator("source", mode="before")
    @classmethod
    def _not_reserved_source(cls, value: Any) -> Any:
        if reserved_source(value):
            raise ValueError(f"`{value}` is reserved for the service's own events; send `api` or `middleware`")
        return value

    @field_validator("id")
    @classmethod
    def _not_reserved_id(cls, value: str | None) -> str | None:
        if value is not None and reserved_id(value):
            namespace = value.partition(":")[0]
            raise ValueError(f"ids beginning with `{namespace}:` are the service's own; choose another id")
        return value

    @field_validator("time")
    @classmethod
    def _time_in_window(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"needs a UTC offset, {_TIME_EXAMPLE}")
        try:
            value = value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 lies before year 1 in UTC
            raise ValueError("lies outside the years 1 to 9999 in UTC") from None
        ctx = info.context or {}
        now: datetime = ctx.get("now") or datetime.now(UTC)
        retention = timedelta(days=ctx.get("retention_days", 14))
        future = timedelta(seconds=ctx.get("max_future_seconds", 300))
        if value < now - retention:
            raise ValueError(
                f"lies before the retention window of {retention.days} days (oldest accepted: {format_time(now - retention)})"
            )
        if value > now + future:
            raise ValueError(
                f"lies more than {int(future.total_seconds())} s in the future (server time {format_time(now)}); check the producer's clock"
            )
        # Only now, inside the window: an offset could carry a time at the ends of the calendar past them.
        return to_utc(value)

    @field_validator("details")
    @classmethod
    def _details_within_limits(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        ctx = info.context or {}
        found = details_problem(
            value,
            max_depth=ctx.get("max_details_depth", 8),
            max_key_chars=ctx.get("max_details_key_chars", 256),
        )
        if found is not None:
            path, why = found
            # ctx["path"] leads from `details` to the key or value at fault: see error_path.
            raise PydanticCustomError("details_limit", "{why}", {"why": why, "path": path})
        return value


_SERVER_FIELDS = {
    "tenant": "it comes from your token",
    "received_at": "it is the server's clock",
    "chain": "it is the hash-chain link",
}


class Chain(BaseModel):
    stream: str
    seq: int
    prev: str = Field(description="Hex SHA-256 of the previous event in the stream.")
    hash: str = Field(description="Hex SHA-256 of prev and this event's canonical JSON.")


class Event(BaseModel):
    """An event as stored and returned; read-only."""

    id: str
    tenant: str
    time: str
    received_at: str
    action: str
    outcome: Outcome
    actor: dict[str, Any]
    target: dict[str, Any]
    request: dict[str, Any]
    source: Source
    message: str
    details: dict[str, Any]
    chain: Chain


class Receipt(BaseModel):
    id: str
    hash: str
    duplicate: bool = False


class Receipts(BaseModel):
    receipts: list[Receipt]


def _request_document(request: RequestInfo) -> dict[str, Any]:
    document = request.model_dump(mode="json", exclude_none=True)
    duration = document.get("duration_ms")
    # 12 arrives as 12.0; stored as 12 it is the same JSON number and keeps canonical JSON on its fast path.
    if isinstance(duration, float) and duration.is_integer():
        document["duration_ms"] = int(duration)
    return document


def to_document(
    event: EventIn, *, event_id: str, tenant: str, received_at: datetime, source: str | None = None
) -> dict[str, Any]:
    """The stored form of an event without its chain link (what the hash covers)."""
    return {
        "id": event_id,
        "tenant": tenant,
        "time": format_time(event.time or received_at),
        "received_at": format_time(received_at),
        "action": event.action,
        "outcome": event.outcome,
        "actor": event.actor.model_dump(mode="json", exclude_none=True),
        "target": event.target.model_dump(mode="json", exclude_none=True),
        "request": _request_document(event.request),
        "source": source or event.source,
        "message": event.message,
        "details": event.details,
    }
