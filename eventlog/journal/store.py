"""The durable journal: SQLite in WAL mode, one writer thread, group commit.

Every append waits until the transaction that holds it is fsynced, so an
acknowledged event survives `kill -9` and power loss. Concurrent appends are
folded into one transaction; the chain links are assigned in that thread,
in commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from prometheus_client import CollectorRegistry, Histogram

from eventlog.chain import GENESIS, StoredLink, link_hash
from eventlog.journal import history

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    document BLOB NOT NULL,
    committed_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_tenant_id ON events (tenant, id);
CREATE TABLE IF NOT EXISTS checkpoints (
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    time TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (stream, seq)
);
CREATE TABLE IF NOT EXISTS sink_cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    sink TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


_ROWS_PER_INSERT = 1000  # 7 000 bound values, under SQLite's limit of 32 766
_IDS_PER_LOOKUP = 500


@functools.lru_cache(maxsize=64)
def _insert_sql(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO events (seq, id, tenant, prev, hash, document, committed_at) VALUES {values}"


@dataclass(frozen=True, slots=True)
class JournalMetrics:
    """The group commit's duration (fsync included) and size."""

    commit_seconds: Histogram
    group_events: Histogram

    @classmethod
    def register(cls, registry: CollectorRegistry) -> JournalMetrics:
        return cls(
            commit_seconds=Histogram(
                "eventlog_journal_commit_seconds",
                "Time of one journal group commit, fsync included.",
                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
                registry=registry,
            ),
            group_events=Histogram(
                "eventlog_journal_group_events",
                "Events per group commit.",
                buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000),
                registry=registry,
            ),
        )

    def observe_commit(self, seconds: float, events: int) -> None:
        self.commit_seconds.observe(seconds)
        self.group_events.observe(events)


class JournalClosed(RuntimeError):
    """The journal is not accepting writes (shutting down or failed)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """An event ready for the journal: everything but its chain link."""

    id: str
    body: dict[str, Any]
    canonical: bytes
    client_id: bool


@dataclass(frozen=True, slots=True)
class Appended:
    id: str
    hash: str
    seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Entry:
    """A committed event as the fan-out and readers get it."""

    seq: int
    id: str
    tenant: str
    document: bytes
    committed_at: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event a sink refused for good, with the sink's reason."""

    id: int
    sink: str
    seq: int
    event_id: str
    tenant: str
    reason: str
    created_at: float


@dataclass(slots=True)
class _Append:
    tenant: str
    items: Sequence[Prepared]
    done: Callable[[list[Appended] | BaseException], None]


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    done: Callable[[Any], None]
    error: Callable[[BaseException], None]


@dataclass(slots=True)
class _Stop:
    """Queued by close(): the writer finishes what is ahead of it, then ends."""


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsynced at every commit, which is what "durable" means here.
        conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


class Journal:
    def __init__(
        self,
        path: Path,
        *,
        stream: str,
        max_group_events: int = 5_000,
        observe_commit: Callable[[float, int], None] | None = None,
    ) -> None:
        self.path = path
        self._stream_hint = stream
        self._max_group = max_group_events
        self._listeners: list[Callable[[int], None]] = []
        self._observe_commit = observe_commit
        self._queue: queue.SimpleQueue[_Append | _Call | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = True
        self._failed: BaseException | None = None
        self.stream = stream
        self.last_seq = 0
        self.last_hash = GENESIS
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()

    def subscribe(self, on_commit: Callable[[int], None]) -> Callable[[], None]:
        """Call `on_commit(last_seq)` from the writer thread after every commit; returns the unsubscribe."""
        self._listeners.append(on_commit)
        return lambda: self._listeners.remove(on_commit)

    # -- lifecycle -------------------------------------------------------

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = connect(self.path)
        writer.executescript(SCHEMA)
        row = writer.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()
        if row is None:
            writer.execute("INSERT INTO meta (key, value) VALUES ('stream', ?)", (self._stream_hint,))
        else:
            self.stream = row[0]
        writer.execute("BEGIN IMMEDIATE")
        history.backfill(writer)
        writer.execute("COMMIT")
        last = writer.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        if last is not None:
            self.last_seq, self.last_hash = int(last[0]), str(last[1])
        self._reader = connect(self.path)
        self._closed = False
        self._thread = threading.Thread(target=self._run, args=(writer,), name="journal-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is None:
            return
        self._closed = True
        stop = _Stop()
        self._queue.put(stop)
        self._thread.join()
        self._thread = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def healthy(self) -> bool:
        return not self._closed and self._failed is None and self._thread is not None and self._thread.is_alive()

    # -- writes ----------------------------------------------------------

    async def append(self, tenant: str, items: Sequence[Prepared]) -> list[Appended]:
        """Commit `items` for `tenant`; returns once they are on disk."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Appended]] = loop.create_future()

        def done(result: list[Appended] | BaseException) -> None:
            loop.call_soon_threadsafe(_settle, future, result)

        self._submit(_Append(tenant, items, done))
        return await future

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in the writer thread inside one transaction."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(value: Any) -> None:
            loop.call_soon_threadsafe(_settle, future, value)

        self._submit(_Call(fn, settle, settle))
        return await future

    def _submit(self, job: _Append | _Call) -> None:
        if self._closed:
            raise JournalClosed("the journal is closed; the service is shutting down")
        if self._failed is not None:
            raise JournalClosed(f"the journal failed and refuses writes: {self._failed!r}")
        self._queue.put(job)
        # The writer may have died between the check and the put: then nobody would answer.
        if self._thread is None or not self._thread.is_alive():
            self._drain_queue()

    def _run(self, conn: sqlite3.Connection) -> None:
        inflight: list[_Append | _Call] = []
        try:
            self._serve(conn, inflight)
        except BaseException as exc:  # noqa: BLE001 - recorded, then every waiting caller is told
            self._failed = exc
            log.critical("journal writer stopped; the journal refuses writes", extra={"error": repr(exc)})
            for job in inflight:
                _fail(job, exc)
        finally:
            self._drain_queue()
            conn.close()

    def _serve(self, conn: sqlite3.Connection, inflight: list[_Append | _Call]) -> None:
        while True:
            inflight.clear()
            job = self._queue.get()
            if isinstance(job, _Stop):
                return
            inflight.append(job)
            if isinstance(job, _Call):
                self._run_call(conn, job)
                continue
            group = [job]
            count = len(job.items)
            stop: _Stop | None = None
            pending_call: _Call | None = None
            while count < self._max_group:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(more, _Stop):
                    stop = more
                    break
                inflight.append(more)
                if isinstance(more, _Call):
                    pending_call = more
                    break
                group.append(more)
                count += len(more.items)
            self._commit(conn, group)
            if pending_call is not None:
                self._run_call(conn, pending_call)
            if stop is not None:
                return

    def _drain_queue(self) -> None:
        """Settle whatever is still queued so that no caller waits forever."""
        reason = self._failed or JournalClosed("the journal closed before this write")
        while True:
            try:
                late = self._queue.get_nowait()
            except queue.Empty:
                return
            if not isinstance(late, _Stop):
                _fail(late, reason)

    def _run_call(self, conn: sqlite3.Connection, job: _Call) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = job.fn(conn)
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            job.error(exc)
        else:
            job.done(result)

    def _commit(self, conn: sqlite3.Connection, group: list[_Append]) -> None:
        started = time.perf_counter()
        seq, prev = self.last_seq, self.last_hash
        results: list[list[Appended]] = []
        rows: list[tuple[int, str, str, str, str, bytes, float]] = []
        seen: dict[tuple[str, str], Appended] = {}
        now = time.time()
        try:
            conn.execute("BEGIN IMMEDIATE")
            stored = _stored_ids(conn, group)
            for job in group:
                out: list[Appended] = []
                for item in job.items:
                    if item.client_id:
                        key = (job.tenant, item.id)
                        known = seen.get(key)
                        if known is None:
                            found = stored.get(key)
                            if found is not None:
                                known = Appended(item.id, found[1], found[0], True)
                        if known is not None:
                            out.append(Appended(item.id, known.hash, known.seq, True))
                            continue
                    seq += 1
                    digest = link_hash(prev, item.canonical)
                    document = dict(item.body)
                    document["chain"] = {"stream": self.stream, "seq": seq, "prev": prev, "hash": digest}
                    rows.append((seq, item.id, job.tenant, prev, digest, orjson.dumps(document), now))
                    appended = Appended(item.id, digest, seq, False)
                    if item.client_id:
                        seen[(job.tenant, item.id)] = appended
                    out.append(appended)
                    prev = digest
                results.append(out)
            # One multi-row statement per chunk: executemany releases and retakes the GIL per
            # row, and under load the writer waits for it longer than SQLite takes to write.
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                conn.execute(_insert_sql(len(chunk)), [value for row in chunk for value in row])
            if rows:
                history.record_head(conn, seq)
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - every caller of the group gets it
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            log.error("journal commit failed", extra={"error": str(exc), "events": len(rows)})
            for job in group:
                job.done(exc)
            return
        self.last_seq, self.last_hash = seq, prev
        for job, out in zip(group, results, strict=True):
            job.done(out)
        # Observers come after the answers: the events are durable whatever they do.
        try:
            if self._observe_commit is not None:
                self._observe_commit(time.perf_counter() - started, len(rows))
            if rows:
                for listener in list(self._listeners):
                    listener(seq)
        except Exception as exc:  # noqa: BLE001 - metrics and wake-ups must not stop the writer
            log.error("journal commit observer failed", extra={"error": repr(exc)})

    # -- reads -----------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._reader is None:
            raise JournalClosed("the journal is not open")
        with self._reader_lock:
            return self._reader.execute(sql, params).fetchall()

    def read_after(self, seq: int, limit: int) -> list[Entry]:
        rows = self._read(
            "SELECT seq, id, tenant, document, committed_at FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [Entry(*row) for row in rows]

    def get(self, tenant: str, event_id: str) -> bytes | None:
        rows = self._read("SELECT document FROM events WHERE tenant = ? AND id = ?", (tenant, event_id))
        return bytes(rows[0][0]) if rows else None

    def committed_at(self, seq: int) -> float | None:
        rows = self._read("SELECT committed_at FROM events WHERE seq = ?", (seq,))
        return float(rows[0][0]) if rows else None

    def read_seqs(self, seqs: Sequence[int]) -> list[Entry]:
        if not seqs:
            return []
        marks = ",".join("?" * len(seqs))
        rows = self._read(
            f"SELECT seq, id, tenant, document, committed_at FROM events WHERE seq IN ({marks}) ORDER BY seq", seqs
        )
        return [Entry(*row) for row in rows]

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        rows = self._read(
            "SELECT id, sink, seq, event_id, tenant, reason, created_at FROM dead_letters ORDER BY id LIMIT ?", (limit,)
        )
        return [DeadLetter(*row) for row in rows]

    def cursor(self, sink: str) -> int:
        rows = self._read("SELECT seq FROM sink_cursors WHERE sink = ?", (sink,))
        return int(rows[0][0]) if rows else 0


def purge_delivered(conn: sqlite3.Connection, *, up_to_seq: int, committed_before: float) -> int:
    """Drop the oldest events every sink has delivered and that are old enough; answers how many went.

    Only a prefix of the stream goes, so `eventlog verify` walks the rest without a gap:
    it ends before the first dead-lettered event (undelivered; retention expires it), the
    first recent one, and the newest row, which carries the chain's head across restarts.
    """
    never = 9223372036854775807
    (bound,) = conn.execute(
        "SELECT MIN(?, COALESCE((SELECT MAX(seq) FROM events), 0), "
        "COALESCE((SELECT MIN(seq) FROM dead_letters), ?), "
        "COALESCE((SELECT MIN(seq) FROM events WHERE committed_at >= ?), ?))",
        (up_to_seq + 1, never, committed_before, never),
    ).fetchone()
    return history.delete_prefix(conn, int(bound))


def _stored_ids(conn: sqlite3.Connection, group: list[_Append]) -> dict[tuple[str, str], tuple[int, str]]:
    """(tenant, id) -> (seq, hash) of the group's client ids already in the journal.

    One query per tenant and 500 ids, not one per item: each query releases and retakes the GIL, and the
    writer waits for it as long as another thread holds it (up to the 5 ms switch interval each time).
    """
    wanted: dict[str, set[str]] = {}
    for job in group:
        ids = [item.id for item in job.items if item.client_id]
        if ids:
            wanted.setdefault(job.tenant, set()).update(ids)
    stored: dict[tuple[str, str], tuple[int, str]] = {}
    for tenant, id_set in wanted.items():
        ids = sorted(id_set)
        for start in range(0, len(ids), _IDS_PER_LOOKUP):
            chunk = ids[start : start + _IDS_PER_LOOKUP]
            marks = ", ".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT id, seq, hash FROM events WHERE tenant = ? AND id IN ({marks})",  # only "?" marks
                (tenant, *chunk),
            )
            for event_id, seq, digest in rows:
                stored[(tenant, event_id)] = (int(seq), str(digest))
    return stored


def _fail(job: _Append | _Call, exc: BaseException) -> None:
    if isinstance(job, _Append):
        job.done(exc)
    else:
        job.error(exc)


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def read_links(conn: sqlite3.Connection) -> Iterator[StoredLink]:
    """Every journal row in stream order, for `eventlog verify`."""
    cur = conn.execute("SELECT seq, id, tenant, prev, hash, document FROM events ORDER BY seq")
    # A tampered row may hold TEXT where a BLOB was written; read either.
    return (
        StoredLink(r[0], r[1], r[2], r[3], r[4], r[5] if isinstance(r[5], bytes) else str(r[5]).encode()) for r in cur
    )


def stream_of(conn: sqlite3.Connection) -> str:
    """The name of the journal's stream ("" for a journal that never opened)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()
    return str(row[0]) if row else ""


def first_seq(conn: sqlite3.Connection) -> int | None:
    """The seq of the oldest retained event; None for an empty journal."""
    row = conn.execute("SELECT seq FROM events ORDER BY seq LIMIT 1").fetchone()
    return int(row[0]) if row is not None else None
