"""The rows of the signed checkpoints (signing and checking are `eventlog.checkpoints`)."""

from __future__ import annotations

import sqlite3

from eventlog.journal import history

CheckpointRow = tuple[str, int, str, str, str]  # stream, seq, hash, time, signature


def insert(conn: sqlite3.Connection, row: CheckpointRow) -> None:
    """Store one checkpoint and record it as the newest one the journal has seen."""
    conn.execute("INSERT OR IGNORE INTO checkpoints (stream, seq, hash, time, signature) VALUES (?, ?, ?, ?, ?)", row)
    history.record_checkpoint(conn, row[1])


def latest_seq(conn: sqlite3.Connection, stream: str) -> int:
    row = conn.execute("SELECT MAX(seq) FROM checkpoints WHERE stream = ?", (stream,)).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def rows(conn: sqlite3.Connection, stream: str) -> list[CheckpointRow]:
    found = conn.execute(
        "SELECT stream, seq, hash, time, signature FROM checkpoints WHERE stream = ? ORDER BY seq", (stream,)
    ).fetchall()
    return [(str(s), int(q), str(h), str(t), str(g)) for s, q, h, t, g in found]
