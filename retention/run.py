"""One retention run: archive what must be archived, then expire every store, then say what went.

The order is the durability rule applied to deletion: a tenant-day whose archive is on
is removed only after its archive was written and verified; a failure leaves it for
the next run. Every run appends audit events: one per tenant it touched (in that
tenant, so the tenant sees its own expiry) and one summary in the operator's tenant.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from eventlog.append import prepare
from eventlog.journal import Journal
from eventlog.model import EventIn, Target
from retention.archive import Manifest
from retention.journal import JournalExpiry, expire_journal
from retention.policy import Policy, utc_day
from search.retention import ExpiringStore, TenantDay

log = logging.getLogger(__name__)


class DayArchive(Protocol):
    """What a run needs of retention.archive.Archive (sync: called in a thread)."""

    def manifest(self, tenant: str, day: date) -> Manifest | None: ...

    def write_day(self, tenant: str, day: date, documents: Iterable[bytes]) -> Manifest: ...

    def verify(self, manifest: Manifest) -> None: ...


@dataclass
class Report:
    today: date
    dry_run: bool
    removed: list[TenantDay] = field(default_factory=list)
    archived: list[dict[str, Any]] = field(default_factory=list)
    held: list[TenantDay] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    journal: JournalExpiry | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "dry_run": self.dry_run,
            "removed": [_tenant_day(t) for t in self.removed],
            "removed_events": sum(t.events for t in self.removed),
            "archived": self.archived,
            "held": [_tenant_day(t) for t in self.held],
            "journal": self.journal.as_dict() if self.journal is not None else None,
            "failures": self.failures,
        }


def _tenant_day(item: TenantDay) -> dict[str, Any]:
    return {"tenant": item.tenant, "day": item.day.isoformat(), "events": item.events, "location": item.location}


class Retention:
    def __init__(
        self,
        *,
        store: ExpiringStore,
        policy: Callable[[], Policy],
        archive: DayArchive | None,
        journal: Journal | None,
        sinks: Sequence[str],
        operator_tenant: str,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """`clock` is the run's notion of now, the wall clock unless given (tests move it forward)."""
        self._store = store
        self._policy = policy
        self._archive = archive
        self._journal = journal
        self._sinks = tuple(sinks)
        self._operator = operator_tenant
        self._clock = clock or (lambda: datetime.now(UTC))

    async def run(self, *, dry_run: bool = False, shared: bool = True) -> Report:
        """`shared=False` expires only this node's journal: the search store is the lock holder's job."""
        policy = await asyncio.to_thread(self._policy)
        today = utc_day(self._clock())
        report = Report(today=today, dry_run=dry_run)
        inventory = await self._store.inventory() if shared else []
        due = [t for t in inventory if policy.due(t.tenant, t.day, today)]
        report.held = [t for t in inventory if policy.expired(t.tenant, t.day, today) and policy.held(t.tenant, t.day)]
        removable = await self._archive_first(policy, due, report, dry_run=dry_run)
        if dry_run:
            report.removed = removable
        elif removable:
            report.removed = await self._store.remove(removable)
        if self._journal is not None:
            sinks = self._sinks
            report.journal = await self._journal.call(
                lambda conn: expire_journal(conn, policy, today, sinks, dry_run=dry_run)
            )
        if not dry_run:
            await self._record(report)
        log.info("retention run", extra={k: v for k, v in report.as_dict().items() if k not in ("removed", "held")})
        return report

    async def _archive_first(
        self, policy: Policy, due: list[TenantDay], report: Report, *, dry_run: bool
    ) -> list[TenantDay]:
        by_day: dict[tuple[str, date], list[TenantDay]] = defaultdict(list)
        for item in due:
            by_day[(item.tenant, item.day)].append(item)
        removable: list[TenantDay] = []
        for (tenant, day), items in sorted(by_day.items()):
            if not policy.archived(tenant):
                removable.extend(items)
                continue
            if self._archive is None:
                report.failures.append(
                    f"tenant {tenant!r} {day}: archive is on but no archive bucket is configured "
                    "(set EVENTLOG_ARCHIVE_BUCKET); kept"
                )
                continue
            events = sum(i.events for i in items)
            if dry_run:
                report.archived.append({"tenant": tenant, "day": day.isoformat(), "events": events, "objects": []})
                removable.extend(items)
                continue
            try:
                manifest = await self._archive_day(tenant, day, events)
            except Exception as exc:  # noqa: BLE001 - the day stays; the next run tries again
                report.failures.append(f"tenant {tenant!r} {day}: archive failed, events kept: {exc}")
                continue
            report.archived.append(
                {
                    "tenant": tenant,
                    "day": day.isoformat(),
                    "events": manifest.events,
                    "objects": [o.key for o in manifest.objects],
                }
            )
            removable.extend(items)
        return removable

    async def _archive_day(self, tenant: str, day: date, events: int) -> Any:
        archive = self._archive
        assert archive is not None
        existing = await asyncio.to_thread(archive.manifest, tenant, day)
        if existing is not None and existing.events == events:
            # Archived by an earlier run that stopped before deleting: deletion rests on a check made now.
            try:
                await asyncio.to_thread(archive.verify, existing)
            except Exception:  # noqa: BLE001 - write_day rewrites (and so repairs) a day that no longer verifies
                log.warning("archived day no longer verifies; writing it again", extra={"tenant": tenant})
            else:
                return existing
        loop = asyncio.get_running_loop()
        pages = self._store.documents(tenant, day)
        manifest = await asyncio.to_thread(archive.write_day, tenant, day, _blocking(pages, loop))
        if manifest.events != events:
            raise RuntimeError(f"archived {manifest.events} events but the store holds {events}")
        return manifest

    async def _record(self, report: Report) -> None:
        if self._journal is None:
            return
        by_tenant: dict[str, list[TenantDay]] = defaultdict(list)
        for item in report.removed:
            by_tenant[item.tenant].append(item)
        archived: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in report.archived:
            archived[entry["tenant"]].append(entry)
        for tenant in sorted(set(by_tenant) | set(archived)):
            removed = by_tenant.get(tenant, [])
            days = sorted({i.day.isoformat() for i in removed})
            await self._append(
                tenant,
                EventIn(
                    action="eventlog.retention.expire",
                    outcome="success",
                    target=Target(type="tenant", id=tenant),
                    message=f"Retention removed {sum(i.events for i in removed)} events of {len(days)} days",
                    details={
                        "days": days,
                        "events": sum(i.events for i in removed),
                        "archived": archived.get(tenant, []),
                    },
                ),
            )
        summary = report.as_dict()
        await self._append(
            self._operator,
            EventIn(
                action="eventlog.retention.run",
                outcome="success" if report.ok else "failure",
                target=Target(type="retention", id=report.today.isoformat()),
                message=f"Retention run removed {summary['removed_events']} events, "
                f"archived {len(report.archived)} tenant-days, {len(report.failures)} failures",
                details={
                    "removed": [
                        {"tenant": t["tenant"], "day": t["day"], "events": t["events"]} for t in summary["removed"]
                    ][:500],
                    "archived": len(report.archived),
                    "held": len(report.held),
                    "journal": summary["journal"],
                    "failures": report.failures[:50],
                },
            ),
        )

    async def _append(self, tenant: str, event: EventIn) -> None:
        assert self._journal is not None
        await self._journal.append(
            tenant, [prepare(event, tenant=tenant, received_at=datetime.now(UTC), source="eventlog")]
        )


def _blocking(pages: AsyncIterator[Sequence[bytes]], loop: asyncio.AbstractEventLoop) -> Iterator[bytes]:
    """The store's async pages as a plain iterator for the archive's thread: one page in memory at a time."""

    async def next_page() -> Sequence[bytes] | None:
        return await anext(pages, None)

    while True:
        page = asyncio.run_coroutine_threadsafe(next_page(), loop).result()
        if page is None:
            return
        yield from page
