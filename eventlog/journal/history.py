"""What the journal records of its own history, so that `eventlog verify` can tell a purge from a deletion.

Each value is written in the transaction of the change it describes: the head with every
commit, the purge boundary (seq and hash of the last event removed) with every purge of
a prefix, the newest checkpoint with every checkpoint. They live in the journal's `meta`
table and are not signed: they expose rows deleted behind the service's back, not an
attacker who rewrites them too; what the signed checkpoints cover is the proof.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from eventlog.chain import GENESIS

HEAD_SEQ = "head_seq"
PURGED_SEQ = "purged_through_seq"
PURGED_HASH = "purged_through_hash"
CHECKPOINT_SEQ = "checkpoint_seq"


@dataclass(frozen=True, slots=True)
class History:
    """The recorded values; None where the journal holds none (written by an older eventlog, or deleted)."""

    head_seq: int | None
    purged_seq: int | None
    purged_hash: str | None
    checkpoint_seq: int | None
    malformed: list[str] = field(default_factory=list)


def read(conn: sqlite3.Connection) -> History:
    values = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    malformed: list[str] = []

    def number(key: str) -> int | None:
        raw = values.get(key)
        if raw is None:
            return None
        text = str(raw)
        if not (text.isascii() and text.isdecimal()):
            malformed.append(f"the journal's record of {key} is not a number: {text!r}")
            return None
        return int(text)

    head, purged, checkpoint = number(HEAD_SEQ), number(PURGED_SEQ), number(CHECKPOINT_SEQ)
    purged_hash = values.get(PURGED_HASH)
    return History(head, purged, None if purged_hash is None else str(purged_hash), checkpoint, malformed)


def _set(conn: sqlite3.Connection, key: str, value: int | str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, str(value)),
    )


def record_head(conn: sqlite3.Connection, seq: int) -> None:
    _set(conn, HEAD_SEQ, seq)


def record_checkpoint(conn: sqlite3.Connection, seq: int) -> None:
    recorded = read(conn).checkpoint_seq
    if recorded is None or seq > recorded:
        _set(conn, CHECKPOINT_SEQ, seq)


def delete_prefix(conn: sqlite3.Connection, before_seq: int) -> int:
    """Remove every event below `before_seq` and record where the purge ended; answers how many went.

    The one way events legitimately leave the journal (retention, the OpenSearch-mode prune).
    """
    last = conn.execute(
        "SELECT seq, hash FROM events WHERE seq < ? ORDER BY seq DESC LIMIT 1", (before_seq,)
    ).fetchone()
    if last is None:
        return 0
    removed = conn.execute("DELETE FROM events WHERE seq < ?", (before_seq,)).rowcount
    _set(conn, PURGED_SEQ, int(last[0]))
    _set(conn, PURGED_HASH, str(last[1]))
    return int(removed)


def backfill(conn: sqlite3.Connection) -> None:
    """Record what is missing from the journal as it stands (one written by an older eventlog)."""
    history = read(conn)
    if history.head_seq is None:
        row = conn.execute("SELECT MAX(seq) FROM events").fetchone()
        _set(conn, HEAD_SEQ, int(row[0] or 0))
    if history.purged_seq is None or history.purged_hash is None:
        first = conn.execute("SELECT seq, prev FROM events ORDER BY seq LIMIT 1").fetchone()
        seq, digest = (int(first[0]) - 1, str(first[1])) if first is not None else (0, GENESIS)
        _set(conn, PURGED_SEQ, seq)
        _set(conn, PURGED_HASH, digest if seq else GENESIS)
    if history.checkpoint_seq is None:
        row = conn.execute("SELECT MAX(seq) FROM checkpoints").fetchone()
        _set(conn, CHECKPOINT_SEQ, int(row[0] or 0))
