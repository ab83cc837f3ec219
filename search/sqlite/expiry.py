"""Expiry of the embedded search store: a tenant's rows of a day and their full-text entries."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from search.retention import TenantDay, day_bounds_us

_DAY_US = 86_400_000_000


class EmbeddedExpiry:
    """Works on `search.db` through its own connection; SQLite's locking orders it with the fan-out's writes."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self._path = path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    async def inventory(self) -> list[TenantDay]:
        def read() -> list[TenantDay]:
            if not self._path.exists():
                return []
            conn = self._connect()
            try:
                rows = conn.execute(
                    "SELECT tenant, time_us / ? AS d, COUNT(*) FROM events GROUP BY tenant, d ORDER BY tenant, d",
                    (_DAY_US,),
                ).fetchall()
            except sqlite3.OperationalError:  # the store was never written to
                return []
            finally:
                conn.close()
            return [TenantDay(t, datetime.fromtimestamp(d * 86_400, UTC).date(), n) for t, d, n in rows]

        return await asyncio.to_thread(read)

    async def documents(self, tenant: str, day: date) -> AsyncIterator[Sequence[bytes]]:
        start, end = day_bounds_us(day)
        after: tuple[int, str] = (start - 1, "")

        def page(last: tuple[int, str]) -> list[tuple[int, str, bytes]]:
            conn = self._connect()
            try:
                rows: list[tuple[int, str, bytes]] = conn.execute(
                    "SELECT time_us, id, document FROM events WHERE tenant = ? AND time_us < ? "
                    "AND (time_us, id) > (?, ?) ORDER BY time_us, id LIMIT 1000",
                    (tenant, end, *last),
                ).fetchall()
                return rows
            finally:
                conn.close()

        while True:
            rows = await asyncio.to_thread(page, after)
            if not rows:
                return
            yield [bytes(r[2]) for r in rows]
            after = (rows[-1][0], rows[-1][1])

    async def remove(self, due: Sequence[TenantDay]) -> list[TenantDay]:
        def delete() -> list[TenantDay]:
            removed: list[TenantDay] = []
            conn = self._connect()
            try:
                for item in due:
                    start, end = day_bounds_us(item.day)
                    where = "tenant = ? AND time_us >= ? AND time_us < ?"
                    # One transaction per tenant-day: rows and their FTS entries go together.
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        conn.execute(
                            f"DELETE FROM events_fts WHERE rowid IN (SELECT rowid FROM events WHERE {where})",
                            (item.tenant, start, end),
                        )
                        count = conn.execute(f"DELETE FROM events WHERE {where}", (item.tenant, start, end)).rowcount
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    removed.append(TenantDay(item.tenant, item.day, count, item.location))
            finally:
                conn.close()
            return removed

        return await asyncio.to_thread(delete)
