"""The one way a validated event becomes a journal entry, used by every producer inside the service.

The HTTP ingest, the Keboola facade, self-audit and retention all give an event its id,
its stored form and its canonical bytes the same way, and answer a journal that cannot
commit with the same 503.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import uuid_utils
from prometheus_client import CollectorRegistry, Counter

from eventlog.canonical import canonical_json
from eventlog.claims import ClaimStore, ClaimsUnavailable, Held
from eventlog.errors import ApiError
from eventlog.journal import Appended, Journal, JournalClosed, Prepared
from eventlog.model import EventIn, to_document
from eventlog.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestMetrics:
    """What every way in counts: events stored, replays answered, refusals."""

    accepted: Counter
    duplicate: Counter
    rejected: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> IngestMetrics:
        return cls(
            accepted=Counter(
                "eventlog_events_accepted", "Events committed to the journal.", ["source"], registry=registry
            ),
            duplicate=Counter(
                "eventlog_events_duplicate", "Replayed events answered with the original receipt.", registry=registry
            ),
            rejected=Counter(
                "eventlog_events_rejected", "Events or requests refused at ingest.", ["reason"], registry=registry
            ),
        )


def validation_context(settings: Settings, tenant: str, now: datetime) -> dict[str, Any]:
    """What EventIn's validators check against: the tenant's retention window, clock skew, details limits."""
    return {
        "now": now,
        "retention_days": settings.retention_days_for(tenant),
        "max_future_seconds": settings.max_future_seconds,
        "max_details_depth": settings.max_details_depth,
        "max_details_key_chars": settings.max_details_key_chars,
    }


def prepare(event: EventIn, *, tenant: str, received_at: datetime, source: str | None = None) -> Prepared:
    """A client id makes retries idempotent; without one the event gets a UUIDv7."""
    event_id = event.id or str(uuid_utils.uuid7())
    document = to_document(event, event_id=event_id, tenant=tenant, received_at=received_at, source=source)
    return Prepared(event_id, document, canonical_json(document), client_id=event.id is not None)


async def append_or_503(
    journal: Journal,
    tenant: str,
    prepared: Sequence[Prepared],
    claims: ClaimStore | None = None,
    replicated: Callable[[int], Awaitable[bool]] | None = None,
) -> list[Appended]:
    """Append for an HTTP caller: a journal that cannot commit is a 503 with Retry-After, nothing stored.

    With `claims` (a cluster), client ids are claimed first: an id another node committed is answered
    with its receipt (`duplicate`), one it is still committing is a 409 `in_progress`, nothing stored.
    With `replicated` (EVENTLOG_ACK=replicated), the answer, and the receipts recorded for other nodes,
    wait until the store holds every copy: a receipt another node answers is then one of a replicated event.
    """
    ids = [p.id for p in prepared if p.client_id]
    held: dict[str, Held] = {}
    if claims is not None and ids:
        try:
            held = await asyncio.to_thread(claims.claim, tenant, ids, journal.stream)
        except ClaimsUnavailable as exc:
            # Durability before deduplication: the journal takes the events; the same id and time on two
            # nodes still make one document in the search store.
            log.warning("client ids not claimed in the cluster", extra={"error": str(exc), "events": len(ids)})
        busy = sorted(i for i, h in held.items() if not h.committed)
        if busy:
            raise ApiError(
                409,
                "in_progress",
                f"the event with id {busy[0]!r} is being committed by another node (stream {held[busy[0]].stream});"
                " nothing was stored: retry after Retry-After seconds to get its receipt",
                headers={"Retry-After": "1"},
            )
    fresh = [p for p in prepared if not (p.client_id and p.id in held)]
    appended = iter(await _append(journal, tenant, fresh) if fresh else [])
    answers: list[Appended] = []
    for item in prepared:
        known = held.get(item.id) if item.client_id else None
        receipt = known.receipt(item.id) if known is not None else None
        answers.append(receipt if receipt is not None else next(appended))
    # This journal's own events, replays of them included (another node's receipts are that node's).
    await _replicated(replicated, max((a.seq for a in answers if a.id not in held), default=0))
    if claims is not None and ids:
        committed = [a for a, p in zip(answers, prepared, strict=True) if p.client_id and a.id not in held]
        _settle_later(claims, tenant, committed, journal.stream)
    return answers


# Receipts being recorded after their 201 (kept so that the tasks are not collected while they run).
_SETTLING: set[asyncio.Task[None]] = set()


def _settle_later(claims: ClaimStore, tenant: str, committed: list[Appended], stream: str) -> None:
    """Record the receipts off the request's path: until they are, a retry on another node waits (409),
    and a claim never recorded is resolved from the stored events (see search/opensearch/claims.py)."""

    async def settle() -> None:
        try:
            await asyncio.to_thread(claims.settle, tenant, committed, stream)
        except ClaimsUnavailable as exc:
            log.warning("receipts not recorded in the cluster", extra={"error": str(exc), "events": len(committed)})

    task = asyncio.get_running_loop().create_task(settle())
    _SETTLING.add(task)
    task.add_done_callback(_SETTLING.discard)


async def _replicated(replicated: Callable[[int], Awaitable[bool]] | None, last: int) -> None:
    """Return once the store holds every copy of this journal's events through `last`; a 503 if not in time."""
    if replicated is not None and last and not await replicated(last):
        raise ApiError(
            503,
            "not_replicated",
            "the events are committed on this node, but OpenSearch did not confirm every copy in time"
            " (EVENTLOG_ACK=replicated); they reach it later. Retry with the same client ids: nothing is stored twice",
            headers={"Retry-After": "1"},
        )


async def receipts_recorded() -> None:
    """Wait for the receipts this event loop is still recording (a node's shutdown)."""
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(t for t in list(_SETTLING) if t.get_loop() is loop), return_exceptions=True)


async def _append(journal: Journal, tenant: str, prepared: Sequence[Prepared]) -> list[Appended]:
    try:
        return await journal.append(tenant, prepared)
    except (JournalClosed, sqlite3.Error) as exc:
        log.error("journal append failed", extra={"error": str(exc)})
        raise ApiError(
            503,
            "journal_unavailable",
            "the journal could not commit; nothing was stored, retry",
            headers={"Retry-After": "1"},
        ) from None
