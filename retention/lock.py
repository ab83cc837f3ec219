"""The retention lock: of several nodes, one runs retention; it also remembers when the last run ended.

A lock expires after `ttl_seconds`, so a node that died mid-run does not block the next
day's run for good; the holder renews nothing because a run is short next to the TTL.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Protocol

from opensearchpy import ConflictError, NotFoundError, OpenSearch


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


class OpenSearchLock:
    """For a cluster: one document in `<prefix>-locks`, changed only by compare-and-set on its seq_no."""

    def __init__(self, client: OpenSearch, prefix: str, name: str = "retention") -> None:
        self._client = client
        self._index = f"{prefix}-locks"
        self._name = name

    def _get(self) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._client.get(index=self._index, id=self._name)
        except NotFoundError:
            return None
        return found

    def acquire(self, holder: str, ttl_seconds: float) -> bool:
        now = time.time()
        found = self._get()
        body: dict[str, Any] = {"holder": holder, "expires_at": now + ttl_seconds}
        try:
            if found is None:
                self._client.index(
                    index=self._index, id=self._name, body=body, params={"op_type": "create", "refresh": "true"}
                )
                return True
            source = found["_source"]
            if source.get("holder") not in (None, holder) and float(source.get("expires_at", 0)) > now:
                return False
            body["completed_at"] = source.get("completed_at")
            self._client.index(
                index=self._index,
                id=self._name,
                body=body,
                params={"if_seq_no": found["_seq_no"], "if_primary_term": found["_primary_term"], "refresh": "true"},
            )
        except ConflictError:
            return False  # another node won the race
        return True

    def release(self, holder: str, *, completed: bool) -> None:
        found = self._get()
        if found is None or found["_source"].get("holder") != holder:
            return
        completed_at = time.time() if completed else found["_source"].get("completed_at")
        try:
            self._client.index(
                index=self._index,
                id=self._name,
                body={"holder": None, "expires_at": 0, "completed_at": completed_at},
                params={"if_seq_no": found["_seq_no"], "if_primary_term": found["_primary_term"], "refresh": "true"},
            )
        except ConflictError:
            return  # expired and taken over meanwhile: the new holder owns it now

    def last_completed(self) -> float | None:
        found = self._get()
        value = found["_source"].get("completed_at") if found is not None else None
        return float(value) if value is not None else None
