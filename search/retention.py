"""What a store gives retention: the events it holds per tenant and UTC day, and the legal holds it keeps.

Here, below retention/, because the stores that implement it live in search/sqlite/ and
search/opensearch/; retention/ runs the policy over them, and retention/holds.py keeps a single
node's holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import uuid_utils

from eventlog.model import format_time, parse_time, time_to_us
from eventlog.tenant import tenant_problem


@dataclass(frozen=True, slots=True, order=True)
class TenantDay:
    """The events of one tenant on one UTC day in one place of a store (an OpenSearch index; '' for SQLite)."""

    tenant: str
    day: date
    events: int
    location: str = ""


class ExpiringStore(Protocol):
    name: str

    async def inventory(self) -> list[TenantDay]:
        """Every tenant and day the store holds events of, with counts."""
        ...

    def documents(self, tenant: str, day: date) -> AsyncIterator[Sequence[bytes]]:
        """The tenant's stored events of that day, page by page (for the archive)."""
        ...

    async def remove(self, due: Sequence[TenantDay]) -> list[TenantDay]:
        """Delete exactly these tenant-days and nothing else; answer what went."""
        ...


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def day_bounds_us(day: date) -> tuple[int, int]:
    """[start, end) of a UTC day in µs since the epoch, as the stores keep times."""
    begin = time_to_us(day_start(day))
    return begin, begin + 86_400_000_000


@dataclass(frozen=True, slots=True)
class Hold:
    """A legal hold: a tenant's events (all, or those in [since, until)) are kept until released."""

    id: str
    tenant: str
    since: datetime | None
    until: datetime | None
    reason: str
    placed_at: datetime
    placed_by: str
    released_at: datetime | None = None
    released_by: str | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None

    def covers_day(self, tenant: str, day: date) -> bool:
        """Whether any event of `tenant` on `day` may fall under this hold."""
        if not self.active or tenant != self.tenant:
            return False
        start = day_start(day)
        end = start + timedelta(days=1)
        return (self.since is None or self.since < end) and (self.until is None or self.until > start)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "reason": self.reason,
            "placed_at": _iso(self.placed_at),
            "placed_by": self.placed_by,
            "released_at": _iso(self.released_at),
            "released_by": self.released_by,
        }


def _iso(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


class HoldNotFound(LookupError):
    """No hold with that id."""


class InvalidHold(ValueError):
    """A hold that cannot be placed as asked; `parameter` names the field at fault."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class HoldStore(Protocol):
    def list(self) -> list[Hold]: ...

    def place(
        self, *, tenant: str, since: datetime | None, until: datetime | None, reason: str, placed_by: str
    ) -> Hold: ...

    def release(self, hold_id: str, *, released_by: str) -> Hold: ...

    def close(self) -> None: ...


def new_hold(tenant: str, since: datetime | None, until: datetime | None, reason: str, placed_by: str) -> Hold:
    problem = tenant_problem(tenant)
    if problem is not None:
        raise InvalidHold("tenant", problem)
    if since is not None and until is not None and since >= until:
        raise InvalidHold("since", "must lie before `until`")
    return Hold(
        id=str(uuid_utils.uuid7()),
        tenant=tenant,
        since=since,
        until=until,
        reason=reason,
        placed_at=datetime.now(UTC),
        placed_by=placed_by,
    )


def _hold_time(value: Any) -> datetime | None:
    if value is None:
        return None
    return parse_time(str(value))


def hold_from_dict(data: dict[str, Any]) -> Hold:
    placed_at = _hold_time(data["placed_at"])
    assert placed_at is not None
    return Hold(
        id=str(data["id"]),
        tenant=str(data["tenant"]),
        since=_hold_time(data.get("since")),
        until=_hold_time(data.get("until")),
        reason=str(data.get("reason") or ""),
        placed_at=placed_at,
        placed_by=str(data.get("placed_by") or ""),
        released_at=_hold_time(data.get("released_at")),
        released_by=data.get("released_by"),
    )


def released_hold(hold: Hold, released_by: str) -> Hold:
    return replace(hold, released_at=datetime.now(UTC), released_by=released_by)
