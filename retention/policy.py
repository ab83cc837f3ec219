"""The retention policy: how long each tenant's events live, and which of them a legal hold protects.

Expiry works in whole UTC days, the same on every store: OpenSearch can only drop whole
daily indices, and an archive object holds one tenant's day. An event expires once its
UTC day ended `retention_days` or more days ago, so with 14 days, on 2026-11-27 the days
up to 2026-11-12 go and 2026-11-13 (exactly 14 days back) is the oldest that stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from search.retention import Hold


@dataclass(frozen=True, slots=True)
class Policy:
    """Retention days per tenant, the holds in force, and which tenants are archived before expiry."""

    default_days: int
    tenant_days: Mapping[str, int] = field(default_factory=dict)
    holds: tuple[Hold, ...] = ()
    archive_tenants: frozenset[str] = frozenset()
    archive_all: bool = False

    def days_for(self, tenant: str) -> int:
        return self.tenant_days.get(tenant, self.default_days)

    def oldest_kept_day(self, tenant: str, today: date) -> date:
        """The oldest UTC day of `tenant` that is still inside retention."""
        return today - timedelta(days=self.days_for(tenant))

    def expired(self, tenant: str, day: date, today: date) -> bool:
        return day < self.oldest_kept_day(tenant, today)

    def held(self, tenant: str, day: date) -> bool:
        return any(hold.covers_day(tenant, day) for hold in self.holds)

    def archived(self, tenant: str) -> bool:
        return self.archive_all or tenant in self.archive_tenants

    def due(self, tenant: str, day: date, today: date) -> bool:
        """The tenant's events of that day must go (after archiving, where archive is on)."""
        return self.expired(tenant, day, today) and not self.held(tenant, day)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()
