"""What retention reads and removes in the journal; the decisions are retention's own (retention/journal.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from eventlog.journal.history import delete_prefix

__all__ = [
    "checkpoints_but_newest",
    "count_before",
    "dead_letter_seqs",
    "dead_letters_with_documents",
    "delete_checkpoints",
    "delete_dead_letters",
    "delete_prefix",
    "events_after",
    "head_seq",
]


def head_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0)


def count_before(conn: sqlite3.Connection, seq: int) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM events WHERE seq < ?", (seq,)).fetchone()[0])


def events_after(conn: sqlite3.Connection, after: int, limit: int) -> list[tuple[int, str, bytes | str]]:
    """(seq, tenant, document) of the next `limit` events after `after`, in stream order."""
    rows = conn.execute("SELECT seq, tenant, document FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
    return [(int(seq), str(tenant), document) for seq, tenant, document in rows]


def dead_letter_seqs(conn: sqlite3.Connection) -> set[int]:
    return {int(seq) for (seq,) in conn.execute("SELECT seq FROM dead_letters")}


def dead_letters_with_documents(conn: sqlite3.Connection) -> list[tuple[int, int, str, bytes | str | None]]:
    """(id, seq, tenant, document) of every dead letter; the document is None once its event left the journal."""
    rows = conn.execute(
        "SELECT d.id, d.seq, d.tenant, e.document FROM dead_letters d LEFT JOIN events e ON e.seq = d.seq"
    )
    return [(int(i), int(seq), str(tenant), document) for i, seq, tenant, document in rows]


def delete_dead_letters(conn: sqlite3.Connection, ids: Iterable[int]) -> None:
    conn.executemany("DELETE FROM dead_letters WHERE id = ?", [(i,) for i in ids])


def checkpoints_but_newest(conn: sqlite3.Connection) -> list[tuple[str, int, str]]:
    """(stream, seq, time) of every checkpoint except the newest of its stream, which always stays."""
    rows = conn.execute(
        "SELECT stream, seq, time FROM checkpoints c "
        "WHERE seq < (SELECT MAX(seq) FROM checkpoints n WHERE n.stream = c.stream)"
    )
    return [(str(stream), int(seq), str(at)) for stream, seq, at in rows]


def delete_checkpoints(conn: sqlite3.Connection, keys: Iterable[tuple[str, int]]) -> None:
    conn.executemany("DELETE FROM checkpoints WHERE stream = ? AND seq = ?", list(keys))
