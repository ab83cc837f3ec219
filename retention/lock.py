"""The retention lock: of several nodes, one runs retention; it also remembers when the last run ended.

Here the protocol and the single node's lock; a cluster's is search/opensearch/lock.py.

A lock expires after `ttl_seconds`, so a node that died mid-run does not block the next
day's run for good; the holder renews nothing because a run is short next to the TTL.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Protocol


class Lock(Protocol):
    def acquire(self, holder: str, ttl_seconds: float) -> bool:
        """Take the lock unless another holder has it and it has not expired."""
        ...

    def release(self, holder: str, *, completed: bool) -> None:
        """Give the lock back; `completed` records the end of a successful run."""
        ...

    def last_completed(self) -> float | None:
        """When the last successful run ended (epoch seconds), if any."""
        ...


class SqliteLock:
    """For a single node: a row in `retention.db` in the data dir (the CLI and the service share it)."""

    def __init__(self, path: Path, name: str = "retention") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._name = name
        with self._connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, holder TEXT, expires_at REAL NOT NULL, "
                "completed_at REAL)"
            )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=10.0)
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def acquire(self, holder: str, ttl_seconds: float) -> bool:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT holder, expires_at FROM locks WHERE name = ?", (self._name,)).fetchone()
            now = time.time()
            if row is not None and row[0] is not None and row[0] != holder and row[1] > now:
                conn.execute("ROLLBACK")
                return False
            conn.execute(
                "INSERT INTO locks (name, holder, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
                (self._name, holder, now + ttl_seconds),
            )
            conn.execute("COMMIT")
            return True
        finally:
            conn.close()

    def release(self, holder: str, *, completed: bool) -> None:
        conn = self._connect()
        try:
            conn.execute(
                "UPDATE locks SET holder = NULL, expires_at = 0, "
                "completed_at = CASE WHEN ? THEN ? ELSE completed_at END WHERE name = ? AND holder = ?",
                (completed, time.time(), self._name, holder),
            )
        finally:
            conn.close()

    def last_completed(self) -> float | None:
        conn = self._connect()
        try:
            row = conn.execute("SELECT completed_at FROM locks WHERE name = ?", (self._name,)).fetchone()
        finally:
            conn.close()
        return float(row[0]) if row is not None and row[0] is not None else None
