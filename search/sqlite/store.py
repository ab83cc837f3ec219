"""The embedded search store: SQLite with FTS5, fed by the fan-out like any sink."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from eventlog.journal import Entry
from eventlog.model import parse_time, time_to_us
from eventlog.sink import Rejection
from search.backend import Bucket, EventQuery, FacetValue, Page, Position, Scope, TenantScopeMissing
from search.query import Node, details_leaves
from search.reads import Reads, Ticket
from search.sqlite.query import ip_key, leaf_key, to_sqlite
from search.text import searchable_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    rowid INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    actor_id TEXT,
    source TEXT NOT NULL,
    document BLOB NOT NULL,
    actor_ip BLOB,
    status,
    duration_ms,
    UNIQUE (tenant, id)
);
CREATE INDEX IF NOT EXISTS events_tenant_time ON events (tenant, time_us, id);
-- search/text.py has tokenized the body already; 'ascii' only splits it on the spaces (unicode61
-- would fold more than OpenSearch does, e.g. a final sigma).
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5 (body, tokenize = 'ascii');
"""

# Every scalar of an event's details as its flat_object string (search/query.py, details_leaves), so
# that a details term is an index range rather than a walk through every document of the tenant.
# Rows go with their event: inserted with it, deleted by the trigger (retention deletes events).
_LEAVES_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS details_leaves ("
    "tenant TEXT NOT NULL, leaf BLOB NOT NULL, event INTEGER NOT NULL, PRIMARY KEY (tenant, leaf, event)"
    ") WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS details_leaves_event ON details_leaves (event)",
    "CREATE TRIGGER IF NOT EXISTS events_delete_details_leaves AFTER DELETE ON events "
    "BEGIN DELETE FROM details_leaves WHERE event = old.rowid; END",
)
SCHEMA += "".join(statement + ";\n" for statement in _LEAVES_SCHEMA)

# SQLite calls the progress handler every this many virtual machine steps (a few microseconds' work).
_PROGRESS_STEPS = 1000

_TENANT_CONDITION = "tenant = ?"


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.create_function("ip_key", 1, ip_key, deterministic=True)
    conn.execute("PRAGMA journal_mode=WAL")
    # The journal is the durable copy; the store can be rebuilt from it, so
    # NORMAL (fsync at checkpoints only) is enough here.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


class SqliteStore:
    """Both the embedded `SearchBackend` and the `Sink` that fills it."""

    name = "sqlite"

    def __init__(self, path: Path, reads: Reads) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._reads = reads
        self._writer = _connect(path)
        _add_details_leaves(self._writer)
        self._writer.executescript(SCHEMA)
        _add_columns(self._writer)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._trace: Callable[[str], object] | None = None

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self._path)
            conn.set_trace_callback(self._trace)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def trace(self, callback: Callable[[str], object] | None) -> None:
        """Hand every statement the reads run to `callback` from now on (None stops): to look at their plans."""
        with self._readers_lock:
            self._trace = callback
            for conn in self._readers:
                conn.set_trace_callback(callback)

    # -- Sink --------------------------------------------------------------

    async def deliver(self, entries: Sequence[Entry]) -> Sequence[Rejection]:
        return await asyncio.to_thread(self._insert, entries)

    def _insert(self, entries: Sequence[Entry]) -> list[Rejection]:
        rejected: list[Rejection] = []
        conn = self._writer
        conn.execute("BEGIN")
        try:
            for entry in entries:
                try:
                    document = orjson.loads(entry.document)
                    time_us = time_to_us(parse_time(document["time"]))
                except (ValueError, KeyError, TypeError) as exc:
                    rejected.append(Rejection(entry.seq, f"unreadable document: {exc}"))
                    continue
                actor = document.get("actor", {})
                request = document.get("request", {})
                cur = conn.execute(
                    "INSERT OR IGNORE INTO events "
                    "(tenant, id, time_us, action, outcome, actor_id, source, document, actor_ip, status, duration_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        entry.tenant,
                        entry.id,
                        time_us,
                        document.get("action", ""),
                        document.get("outcome", "unknown"),
                        actor.get("id"),
                        document.get("source", "api"),
                        entry.document,
                        ip_key(actor.get("ip")),
                        request.get("status"),
                        request.get("duration_ms"),
                    ),
                )
                # A redelivered event is ignored above; index its text and details only once.
                if cur.rowcount == 1:
                    conn.execute(
                        "INSERT INTO events_fts (rowid, body) VALUES (?, ?)", (cur.lastrowid, searchable_text(document))
                    )
                    insert_details_leaves(conn, entry.tenant, cur.lastrowid, entry.document, document)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return rejected

    async def close(self) -> None:
        self._writer.close()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    # -- SearchBackend -----------------------------------------------------

    def _rows(self, ticket: Ticket, sql: str, params: Sequence[Any]) -> list[Any]:
        """The statement's rows, or the ticket's error once it says stop (deadline, or the caller left)."""
        conn = self._reader()
        conn.set_progress_handler(ticket.stopped, _PROGRESS_STEPS)
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            if ticket.stopped():  # "interrupted": the progress handler stopped the statement
                raise ticket.stop_error() from None
            raise
        finally:
            conn.set_progress_handler(None, 0)

    async def _read(self, scope: Scope, sql: str, params: list[Any]) -> list[Any]:
        sql, params = scope_checked(scope, sql, params)
        return await self._reads.run(scope.tenant, lambda ticket: self._rows(ticket, sql, params))

    async def search(self, scope: Scope, query: EventQuery) -> Page:
        condition, params = to_sqlite(query.where)
        params = [scope.tenant, *params]
        descending = query.order == "desc"
        keyset = ""
        if query.after is not None:
            keyset = " AND (time_us, id) < (?, ?)" if descending else " AND (time_us, id) > (?, ?)"
            params.extend((query.after.time_us, query.after.id))
        direction = "DESC" if descending else "ASC"
        sql = (
            f"SELECT time_us, id, document FROM events WHERE {_TENANT_CONDITION} AND ({condition}){keyset} "
            f"ORDER BY time_us {direction}, id {direction} LIMIT ?"
        )
        params.append(query.limit + 1)
        rows = await self._read(scope, sql, params)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        last = Position(rows[-1][0], rows[-1][1]) if rows else None
        return Page([bytes(r[2]) for r in rows], last, more)

    async def get(self, scope: Scope, event_id: str) -> bytes | None:
        rows = await self._read(
            scope, "SELECT document FROM events WHERE tenant = ? AND id = ?", [scope.tenant, event_id]
        )
        return bytes(rows[0][0]) if rows else None

    async def histogram(
        self, scope: Scope, where: Node, *, since_us: int, until_us: int, interval_us: int
    ) -> list[Bucket]:
        condition, params = to_sqlite(where)
        width = int(interval_us)  # an int we computed, written into the SQL so the tenant stays the first parameter
        sql = (
            f"SELECT (time_us / {width}) * {width} AS bucket, COUNT(*) FROM events WHERE {_TENANT_CONDITION} "
            f"AND time_us >= ? AND time_us < ? AND ({condition}) GROUP BY bucket ORDER BY bucket"
        )
        rows = await self._read(scope, sql, [scope.tenant, since_us, until_us, *params])
        return [Bucket(int(start), int(count)) for start, count in rows]

    async def facets(self, scope: Scope, where: Node, *, field: str, size: int) -> list[FacetValue]:
        column = _FACET_COLUMNS[field]
        condition, params = to_sqlite(where)
        sql = (
            f"SELECT {column} AS value, COUNT(*) AS n FROM events WHERE {_TENANT_CONDITION} AND ({condition}) "
            f"AND {column} IS NOT NULL GROUP BY value ORDER BY n DESC, {_FACET_TIEBREAK.get(field, 'value')} ASC LIMIT ?"
        )
        rows = await self._read(scope, sql, [scope.tenant, *params, size])
        return [FacetValue(str(value), int(count)) for value, count in rows]

    async def export(self, scope: Scope, query: EventQuery) -> AsyncIterator[Sequence[bytes]]:
        """Keyset pages of 1 000: constant memory whatever the number of events."""
        page_query = replace(query, limit=1000, after=None)
        while True:
            page = await self.search(scope, page_query)
            if page.documents:
                yield page.documents
            if not page.more or page.last is None:
                return
            page_query = replace(page_query, after=page.last)


# Columns added after the first release, with how to fill them from the stored document; each has an
# index with the tenant first, so a query on it is an index range, not a scan of the tenant's rows.
_ADDED_COLUMNS = {
    "actor_ip": "ip_key(json_extract(document, '$.actor.ip'))",
    "status": "json_extract(document, '$.request.status')",
    "duration_ms": "json_extract(document, '$.request.duration_ms')",
}


def _add_columns(conn: sqlite3.Connection) -> None:
    """Stores written before a column existed get it, filled from their documents, and its index."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    missing = [name for name in _ADDED_COLUMNS if name not in present]
    if missing:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for name in missing:
                conn.execute(f"ALTER TABLE events ADD COLUMN {name}")
                conn.execute(f"UPDATE events SET {name} = {_ADDED_COLUMNS[name]}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    for name in _ADDED_COLUMNS:
        conn.execute(f"CREATE INDEX IF NOT EXISTS events_tenant_{name} ON events (tenant, {name})")


def insert_details_leaves(
    conn: sqlite3.Connection, tenant: str, rowid: int | None, raw: bytes, document: Mapping[str, Any]
) -> None:
    """Index the details of the event stored as `rowid` (`document` is `raw` parsed)."""
    if not document.get("details"):
        return
    # Parsed again with the numbers' text as written: flat_object compares "<path>=<text>" strings.
    written = json.loads(raw, parse_int=str, parse_float=str).get("details")
    conn.executemany(
        "INSERT OR IGNORE INTO details_leaves (tenant, leaf, event) VALUES (?, ?, ?)",
        ((tenant, leaf_key(leaf), rowid) for leaf in details_leaves(written)),
    )


def _add_details_leaves(conn: sqlite3.Connection) -> None:
    """A store written before the index of details leaves gets it, filled from its documents, in one go."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "events" not in tables or "details_leaves" in tables:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _LEAVES_SCHEMA:
            conn.execute(statement)
        last = 0
        while True:  # in pages, so the documents never are in memory all at once
            rows: list[tuple[int, str, bytes]] = conn.execute(
                "SELECT rowid, tenant, document FROM events WHERE rowid > ? ORDER BY rowid LIMIT 1000", (last,)
            ).fetchall()
            if not rows:
                break
            for rowid, tenant, raw in rows:
                insert_details_leaves(conn, tenant, rowid, bytes(raw), orjson.loads(raw))
            last = rows[-1][0]
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# Ties of equal count are ordered as OpenSearch orders their keys.
_FACET_TIEBREAK = {"actor.ip": "ip_key(value)"}

_FACET_COLUMNS = {
    "actor.id": "actor_id",
    "action": "action",
    "outcome": "outcome",
    "source": "source",
    "target.type": "json_extract(document, '$.target.type')",
    "actor.ip": "json_extract(document, '$.actor.ip')",
}


def scope_checked(scope: Scope, sql: str, params: list[Any]) -> tuple[str, list[Any]]:
    """The failsafe: no statement leaves without the tenant condition bound to the scope."""
    where = sql.find(" WHERE ")
    if where < 0 or not sql[where + 7 :].startswith(_TENANT_CONDITION) or not params or params[0] != scope.tenant:
        raise TenantScopeMissing(f"refusing a store request without the tenant condition: {sql[:80]}")
    return sql, params
