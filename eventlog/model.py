"""The audit event: what producers send (`EventIn`) and what is stored and returned (`Event`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
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

from eventlog.canonical import MAX_SAFE_INT

Outcome = Literal["success", "failure", "unknown"]
ProducerSource = Literal["api", "middleware", "cloudtrail"]
Source = Literal["api", "middleware", "cloudtrail", "eventlog"]


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


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def time_to_us(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339_text(value: Any) -> Any:
    """Only RFC 3339 text: pydantic alone also takes Unix seconds, as a number or as digits in a string."""
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise ValueError("must be an RFC 3339 time with a UTC offset, e.g. 2026-11-27T14:00:00Z")


Rfc3339Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]
"""A time as the API documents it (`format: date-time`): RFC 3339 text with an offset, never a number."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Actor(_Part):
    type: Ident | None = Field(None, description="user, token, service, aws.IAMUser, ...")
    id: Ident | None = None
    name: Name | None = None
    ip: IPvAnyAddress | None = Field(None, description="Client address, IPv4 or IPv6.")
    user_agent: Annotated[str, StringConstraints(max_length=1024)] | None = None


class Target(_Part):
    type: Ident | None = None
    id: Ident | None = None
    name: Name | None = None


class RequestInfo(_Part):
    method: Annotated[str, StringConstraints(min_length=1, max_length=16, pattern=r"^[A-Za-z]+$")] | None = None
    path: Annotated[str, StringConstraints(max_length=2048), AfterValidator(_no_control_chars)] | None = None
    route: Annotated[str, StringConstraints(max_length=512), AfterValidator(_no_control_chars)] | None = None
    query: Annotated[str, StringConstraints(max_length=4096), AfterValidator(_no_control_chars)] | None = None
    status: int | None = Field(None, ge=100, le=599)
    duration_ms: float | None = Field(None, ge=0, le=86_400_000)
    request_id: Ident | None = None
    bytes_in: int | None = Field(None, ge=0)
    bytes_out: int | None = Field(None, ge=0)


MAX_DETAILS_STRING = 4096


def _depth(value: Any) -> int:
    """Nesting depth; raises on integers a JSON double cannot hold exactly."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INT:
        raise ValueError(f"holds the integer {value}, beyond ±(2**53-1); send it as a string")
    if isinstance(value, str) and len(value) > MAX_DETAILS_STRING:
        # Every details value is one search term; Lucene refuses terms over 32 766 bytes.
        raise ValueError(f"holds a string of {len(value)} characters; at most {MAX_DETAILS_STRING} per value")
    return 0


class EventIn(_Part):
    """An event as a producer sends it. Tenant, received_at and chain are never accepted."""

    id: ClientId | None = Field(None, description="Client idempotency id; a retry with the same id stores nothing new.")
    time: datetime | None = Field(
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

    @field_validator("time")
    @classmethod
    def _time_in_window(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-11-27T14:00:00Z")
        value = value.astimezone(UTC)
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
        return value

    @field_validator("details")
    @classmethod
    def _details_depth(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        limit = (info.context or {}).get("max_details_depth", 8)
        if _depth(value) > limit:
            raise ValueError(f"is nested deeper than {limit} levels; flatten it")
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
