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

from eventlog.journal_meta import delete_prefix
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
    dead_seqs = {seq for _, seq in conn.execute("SELECT id, seq FROM dead_letters")} - {seq for _, seq in dead}
    cursors = dict(conn.execute("SELECT sink, seq FROM sink_cursors").fetchall())
    delivered = min((int(cursors.get(name, 0)) for name in sinks), default=0)
    head = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0
    stop = _first_kept(conn, policy, today, min(delivered, head - 1), dead_seqs)
    events = conn.execute(
        "SELECT COUNT(*) FROM events WHERE seq < ?", (stop if stop is not None else head,)
    ).fetchone()[0]
    checkpoints = _expired_checkpoints(conn, policy, today)
    if not dry_run:  # Journal.call wraps this in one transaction
        conn.executemany("DELETE FROM dead_letters WHERE id = ?", [(i,) for i, _ in dead])
        delete_prefix(conn, stop if stop is not None else head)
        conn.executemany("DELETE FROM checkpoints WHERE stream = ? AND seq = ?", checkpoints)
    return JournalExpiry(events, len(dead), len(checkpoints), stop)


def _expired_dead_letters(conn: sqlite3.Connection, policy: Policy, today: date) -> list[tuple[int, int]]:
    rows = conn.execute(
        "SELECT d.id, d.seq, d.tenant, e.document FROM dead_letters d LEFT JOIN events e ON e.seq = d.seq"
    ).fetchall()
    # A dead letter whose event already left the journal has nothing left to redrive.
    return [(i, seq) for i, seq, tenant, doc in rows if doc is None or policy.due(tenant, _day(doc), today)]


def _first_kept(
    conn: sqlite3.Connection, policy: Policy, today: date, last_candidate: int, pinned: set[int]
) -> int | None:
    """The seq of the first row that must stay; None when every row up to the head may go."""
    after = 0
    while True:
        rows = conn.execute(
            "SELECT seq, tenant, document FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, _BATCH)
        ).fetchall()
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
    rows = conn.execute(
        "SELECT stream, seq, time FROM checkpoints c "
        "WHERE seq < (SELECT MAX(seq) FROM checkpoints n WHERE n.stream = c.stream)"
    ).fetchall()
    expired: list[tuple[str, int]] = []
    for stream, seq, at in rows:
        if datetime.fromisoformat(str(at).replace("Z", "+00:00")).date() < oldest_needed:
            expired.append((stream, int(seq)))
    return expired
