"""The sinks' side of the journal: cursors and dead letters, written in the writer's transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from eventlog.journal.store import DeadLetter, Entry


def advance(
    conn: sqlite3.Connection, sink: str, entries: Sequence[Entry], refused: Mapping[int, str], now: float
) -> None:
    """Dead-letter the refused events of a delivered batch and move the sink's cursor past it, atomically."""
    for entry in entries:
        reason = refused.get(entry.seq)
        if reason is not None:
            conn.execute(
                "INSERT INTO dead_letters (sink, seq, event_id, tenant, reason, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (sink, entry.seq, entry.id, entry.tenant, reason, now),
            )
    conn.execute(
        "INSERT INTO sink_cursors (sink, seq, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (sink) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at",
        (sink, entries[-1].seq, now),
    )


def settle_redrive(
    conn: sqlite3.Connection, letters: Sequence[DeadLetter], refused: Mapping[int, str], now: float
) -> None:
    """After a redrive: drop the letters delivered, keep the ones refused again with the new reason."""
    for letter in letters:
        if letter.seq in refused:
            conn.execute(
                "UPDATE dead_letters SET reason = ?, created_at = ? WHERE id = ?", (refused[letter.seq], now, letter.id)
            )
        else:
            conn.execute("DELETE FROM dead_letters WHERE id = ?", (letter.id,))


def cursors(conn: sqlite3.Connection) -> dict[str, int]:
    """Every sink's cursor by sink name."""
    return {str(sink): int(seq) for sink, seq in conn.execute("SELECT sink, seq FROM sink_cursors")}
