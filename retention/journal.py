"""Expiry of the journal: delivered events past retention, their dead letters, and old checkpoints.

The journal only ever loses a prefix of its stream, so `eventlog verify` can still walk
what is left without a gap: the walk stops at the first row that must stay (not yet
delivered to every sink, dead-lettered and not yet expired, held, or inside retention).
The newest row always stays: it carries the chain head across restarts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import orjson

from eventlog.journal import delivery
from eventlog.journal import expiry as journal
from retention.policy import Policy

_BATCH = 5_000


@dataclass(frozen=True, slots=True)
class JournalExpiry:
    events: int
    dead_letters: int
    checkpoints: int
    first_kept_seq: int | None

    def as_dict(self) -> dict[str, int | None]:
        return {
            "events": self.events,
            "dead_letters": self.dead_letters,
            "checkpoints": self.checkpoints,
            "first_kept_seq": self.first_kept_seq,
        }


def _day(document: bytes | str) -> date:
    return datetime.fromisoformat(orjson.loads(document)["time"].replace("Z", "+00:00")).date()


def expire_journal(
    conn: sqlite3.Connection, policy: Policy, today: date, sinks: Sequence[str], *, dry_run: bool = False
) -> JournalExpiry:
    """Run in the journal's writer thread (`Journal.call`, one transaction) so it orders with appends."""
    dead = _expired_dead_letters(conn, policy, today)
    dead_seqs = journal.dead_letter_seqs(conn) - {seq for _, seq in dead}
    cursors = delivery.cursors(conn)
    delivered = min((cursors.get(name, 0) for name in sinks), default=0)
    head = journal.head_seq(conn)
    stop = _first_kept(conn, policy, today, min(delivered, head - 1), dead_seqs)
    events = journal.count_before(conn, stop if stop is not None else head)
    checkpoints = _expired_checkpoints(conn, policy, today)
    if not dry_run:  # Journal.call wraps this in one transaction
        journal.delete_dead_letters(conn, (i for i, _ in dead))
        journal.delete_prefix(conn, stop if stop is not None else head)
        journal.delete_checkpoints(conn, checkpoints)
    return JournalExpiry(events, len(dead), len(checkpoints), stop)


def _expired_dead_letters(conn: sqlite3.Connection, policy: Policy, today: date) -> list[tuple[int, int]]:
    rows = journal.dead_letters_with_documents(conn)
    # A dead letter whose event already left the journal has nothing left to redrive.
    return [(i, seq) for i, seq, tenant, doc in rows if doc is None or policy.due(tenant, _day(doc), today)]


def _first_kept(
    conn: sqlite3.Connection, policy: Policy, today: date, last_candidate: int, pinned: set[int]
) -> int | None:
    """The seq of the first row that must stay; None when every row up to the head may go."""
    after = 0
    while True:
        rows = journal.events_after(conn, after, _BATCH)
        if not rows:
            return None
        for seq, tenant, document in rows:
            if seq > last_candidate or seq in pinned or not policy.due(tenant, _day(document), today):
                return int(seq)
        after = rows[-1][0]


def _expired_checkpoints(conn: sqlite3.Connection, policy: Policy, today: date) -> list[tuple[str, int]]:
    """Checkpoints older than the longest retention, unless a hold's range reaches back to them.

    A checkpoint signs the stream head at one moment; it is of use while some store
    still holds events from then, i.e. within the longest retention of any tenant.
    The newest one always stays, as the newest event does: it signs the chain the
    journal still holds, and `eventlog verify` reports a journal whose checkpoints are all gone.
    """
    oldest_needed = min(policy.oldest_kept_day(t, today) for t in ["", *policy.tenant_days])
    for hold in policy.holds:
        if hold.active:
            start = hold.since.date() if hold.since is not None else date.min
            oldest_needed = min(oldest_needed, start)
    rows = journal.checkpoints_but_newest(conn)
    expired: list[tuple[str, int]] = []
    for stream, seq, at in rows:
        if datetime.fromisoformat(str(at).replace("Z", "+00:00")).date() < oldest_needed:
            expired.append((stream, int(seq)))
    return expired
