"""What the CloudTrail import has read: the newest key per trail and every file read, in cloudtrail.db."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from ingest.cloudtrail.digest import DigestStore
from ingest.cloudtrail.layout import Trail

__all__ = ["CheckpointStore"]

_CHECKPOINT_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    bucket TEXT NOT NULL, prefix TEXT NOT NULL, account TEXT NOT NULL, region TEXT NOT NULL,
    last_key TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (bucket, prefix, account, region)
);
CREATE TABLE IF NOT EXISTS files (
    bucket TEXT NOT NULL, key TEXT NOT NULL, status TEXT NOT NULL, records INTEGER NOT NULL, read_at TEXT NOT NULL,
    sha256 TEXT,
    PRIMARY KEY (bucket, key)
);
"""


class CheckpointStore:
    """What has been read, per (bucket, prefix, account, region): SQLite in the data dir (cloudtrail.db).

    files.status: ``ok``, ``malformed``, or ``hash_mismatch`` (not imported: it differs from its digest);
    files.sha256: hex SHA-256 of the uncompressed content as read (NULL: not gzip, or read before it was kept).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # A checkpoint lost to a power cut only makes the next run read a file again, and its events are stored
        # once (same ids): no fsync per file, which cost as much as parsing a thousand records.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.executescript(_CHECKPOINT_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(files)")}
        if "sha256" not in columns:  # a cloudtrail.db from before hashes were kept
            self._conn.execute("ALTER TABLE files ADD COLUMN sha256 TEXT")
        self.digests = DigestStore(self._conn)

    def close(self) -> None:
        self._conn.close()

    def last_key(self, bucket: str, prefix: str, trail: Trail) -> str | None:
        row = self._conn.execute(
            "SELECT last_key FROM checkpoints WHERE bucket = ? AND prefix = ? AND account = ? AND region = ?",
            (bucket, prefix, trail.account, trail.region),
        ).fetchone()
        return None if row is None else str(row[0])

    def seen(self, bucket: str, folder: str) -> set[str]:
        rows = self._conn.execute(
            "SELECT key FROM files WHERE bucket = ? AND key >= ? AND key < ?", (bucket, folder, folder + "\uffff")
        )
        return {str(r[0]) for r in rows}

    def file(self, bucket: str, key: str) -> tuple[str, str | None] | None:
        """(status, sha256) of a file read before, or None."""
        row = self._conn.execute("SELECT status, sha256 FROM files WHERE bucket = ? AND key = ?", (bucket, key))
        found = row.fetchone()
        return None if found is None else (str(found[0]), found[1])

    def done(
        self, bucket: str, prefix: str, trail: Trail, key: str, *, status: str, records: int, sha256: str | None = None
    ) -> None:
        """Record `key` as read (after its events are durable in the journal) and move the checkpoint."""
        now = datetime.now(UTC).isoformat()
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute(
                "INSERT OR REPLACE INTO files (bucket, key, status, records, read_at, sha256) VALUES (?, ?, ?, ?, ?, ?)",
                (bucket, key, status, records, now, sha256),
            )
            self._conn.execute(
                "INSERT INTO checkpoints (bucket, prefix, account, region, last_key, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bucket, prefix, account, region)"
                " DO UPDATE SET last_key = max(last_key, excluded.last_key), updated_at = excluded.updated_at",
                (bucket, prefix, trail.account, trail.region, key, now),
            )
