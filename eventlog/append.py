"""The one way a validated event becomes a journal entry, used by every producer inside the service.

The HTTP ingest, the Keboola facade, self-audit and retention all give an event its id,
its stored form and its canonical bytes the same way, and answer a journal that cannot
commit with the same 503.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import uuid_utils
from prometheus_client import CollectorRegistry, Counter

from eventlog.canonical import canonical_json
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


async def append_or_503(journal: Journal, tenant: str, prepared: Sequence[Prepared]) -> list[Appended]:
    """Append for an HTTP caller: a journal that cannot commit is a 503 with Retry-After, nothing stored."""
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
