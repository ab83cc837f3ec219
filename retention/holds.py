"""Legal holds of a single node, in SQLite next to the journal (a cluster keeps them in OpenSearch).

The holds are also events: the hold API is self-audited (`eventlog.holds.place` and
`eventlog.holds.release`, the hold as the target); this store keeps the state that
retention consults, because a hold must outlive the events that recorded it.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path

import orjson

from search.retention import Hold, HoldNotFound, hold_from_dict, new_hold, released_hold


class SqliteHoldStore:
    """Holds of a single node (the embedded setup), in `holds.db` in the data dir."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS holds (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
        self._lock = threading.Lock()

    def list(self) -> list[Hold]:
        with self._lock:
            rows = self._conn.execute("SELECT body FROM holds ORDER BY id").fetchall()
        return [hold_from_dict(orjson.loads(row[0])) for row in rows]

    def place(
        self, *, tenant: str, since: datetime | None, until: datetime | None, reason: str, placed_by: str
    ) -> Hold:
        hold = new_hold(tenant, since, until, reason, placed_by)
        self._write(hold)
        return hold

    def release(self, hold_id: str, *, released_by: str) -> Hold:
        found = next((h for h in self.list() if h.id == hold_id), None)
        if found is None:
            raise HoldNotFound(f"no hold {hold_id!r}; list them with GET /v1/holds")
        if not found.active:
            return found
        released = released_hold(found, released_by)
        self._write(released)
        return released

    def _write(self, hold: Hold) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO holds (id, body) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                (hold.id, orjson.dumps(hold.as_dict()).decode()),
            )

    def close(self) -> None:
        self._conn.close()
