"""Retention in whole UTC days, per-tenant overrides, and which days a legal hold covers."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from retention.policy import Policy
from search.retention import Hold

TODAY = date(2026, 11, 27)


def _hold(tenant: str, since: str | None = None, until: str | None = None, released: bool = False) -> Hold:
    def at(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text).replace(tzinfo=UTC) if text else None

    return Hold(
        id="h",
        tenant=tenant,
        since=at(since),
        until=at(until),
        reason="case",
        placed_at=datetime(2026, 11, 1, tzinfo=UTC),
        placed_by="tok",
        released_at=datetime(2026, 11, 2, tzinfo=UTC) if released else None,
    )


@pytest.mark.parametrize(
    ("tenant", "day", "expired"),
    [
        ("a", date(2026, 11, 13), False),  # exactly 14 days back: the oldest day kept
        ("a", date(2026, 11, 12), True),
        ("a", date(2026, 10, 1), True),
        ("long", date(2026, 11, 12), False),  # 30-day override
        ("long", date(2026, 10, 28), False),  # exactly 30 days back
        ("long", date(2026, 10, 27), True),
        ("short", date(2026, 11, 25), False),  # 2-day override: 11-25 is the oldest kept
        ("short", date(2026, 11, 24), True),
    ],
)
def test_expiry_is_by_whole_utc_days_with_tenant_overrides(tenant: str, day: date, expired: bool) -> None:
    policy = Policy(default_days=14, tenant_days={"long": 30, "short": 2})
    assert policy.expired(tenant, day, TODAY) is expired
    assert policy.due(tenant, day, TODAY) is expired


@pytest.mark.parametrize(
    ("hold", "day", "covered"),
    [
        (_hold("a"), date(2020, 1, 1), True),
        (_hold("b"), date(2020, 1, 1), False),  # another tenant's hold
        (_hold("a", released=True), date(2020, 1, 1), False),
        (_hold("a", since="2026-11-01T12:00:00"), date(2026, 11, 1), True),  # starts within the day
        (_hold("a", since="2026-11-01T12:00:00"), date(2026, 10, 31), False),
        (_hold("a", until="2026-11-01T00:00:00"), date(2026, 11, 1), False),  # until is exclusive
        (_hold("a", until="2026-11-01T00:00:01"), date(2026, 11, 1), True),
        (_hold("a", since="2026-11-03T00:00:00", until="2026-11-04T00:00:00"), date(2026, 11, 3), True),
        (_hold("a", since="2026-11-03T00:00:00", until="2026-11-04T00:00:00"), date(2026, 11, 4), False),
    ],
)
def test_a_hold_covers_the_days_its_range_touches(hold: Hold, day: date, covered: bool) -> None:
    assert hold.covers_day("a", day) is covered
    policy = Policy(default_days=14, holds=(hold,))
    assert policy.due("a", day, TODAY) is (not covered)


def test_archive_selection() -> None:
    assert Policy(default_days=14, archive_tenants=frozenset({"a"})).archived("a")
    assert not Policy(default_days=14, archive_tenants=frozenset({"a"})).archived("b")
    assert Policy(default_days=14, archive_all=True).archived("b")
