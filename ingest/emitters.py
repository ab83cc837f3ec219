"""Where captured events go: the `Emitter` protocol and its two implementations.

- `JournalEmitter` appends to eventlog's own journal, in process (eventlog
  audits its own API with it).
- `HttpEmitter` sends batches to a remote eventlog's `POST /v1/events`, with
  retries, and keeps on disk (`Spool`) whatever eventlog cannot take yet.

Durability: nothing handed to an emitter is dropped. Events wait in a bounded
queue in memory; beyond it, and whenever eventlog does not answer, they go to
an fsynced spool on disk, which a background loop delivers with backoff,
also after a restart of the host. Events eventlog refuses for good (invalid)
go to the spool's dead letters with the reason. Every event carries a client
id (UUIDv7 made here) so that a retry is answered as a duplicate, never stored
twice. Only a crash (`kill -9`) of the host can lose what was still in memory:
at most one queue, about `flush_interval_seconds` of traffic.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import httpx
import orjson
import uuid_utils
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from eventlog.append import prepare
from eventlog.journal import Journal, Prepared
from eventlog.model import EventIn

log = logging.getLogger(__name__)

__all__ = ["Emitter", "EmitterStats", "HttpEmitter", "JournalEmitter", "Spool"]

T = TypeVar("T")

# The server's limits (eventlog Settings): 1 000 events and 5 MiB per request.
SERVER_MAX_EVENTS = 1_000
SERVER_MAX_REQUEST_BYTES = 5 * 1024 * 1024


class Emitter(Protocol):
    """Takes finished events off the host's hands.

    `emit` returns after a bounded hand-over and never raises for a delivery
    problem: the remote emitter only queues (it never awaits inside); the
    in-process one waits for the journal commit, at most `commit_wait_seconds`,
    which the middleware does after the response was sent. The middleware
    shields `emit` from anyio and trio cancel scopes; a plain asyncio
    `Task.cancel()` cannot be shielded, so an emitter hands the event over
    before its first await (both here do). `start` before serving, `close` at
    shutdown: it delivers or spools whatever is pending.
    """

    async def start(self) -> None: ...

    async def emit(self, event: EventIn, *, tenant: str | None = None) -> None:
        """`tenant` is for emitters that write for several tenants (in-process); a remote one writes in its token's."""
        ...

    async def close(self) -> None: ...


# -- in process ----------------------------------------------------------------


class JournalEmitter:
    """Appends each event to the journal in the given tenant; `source` overrides the event's (eventlog's own: `eventlog`)."""

    def __init__(
        self,
        journal: Journal,
        *,
        tenant: str | None = None,
        source: str | None = None,
        commit_wait_seconds: float = 5.0,
    ) -> None:
        self._journal = journal
        self._tenant = tenant
        self._source = source
        self._wait = commit_wait_seconds
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        return None

    async def emit(self, event: EventIn, *, tenant: str | None = None) -> None:
        owner = tenant or self._tenant
        if owner is None:
            raise ValueError("JournalEmitter needs a tenant: give one to emit() or to the emitter")
        prepared = prepare(event, tenant=owner, received_at=datetime.now(UTC), source=self._source)
        task = asyncio.create_task(self._append(owner, prepared), name="audit-append")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        # Committed before the ASGI call returns (tests read right after); a stalled disk costs at most the wait.
        await asyncio.wait((task,), timeout=self._wait)

    async def _append(self, tenant: str, prepared: Prepared) -> None:
        try:
            await self._journal.append(tenant, [prepared])
        except Exception as exc:  # noqa: BLE001 - the journal refuses writes only when it is closing or failed
            log.error(
                "audit event not recorded: the journal refused it",
                extra={"error": repr(exc), "tenant": tenant, "event": orjson.dumps(prepared.body).decode()},
            )

    async def close(self) -> None:
        """Wait for appends still in flight (call before the journal closes)."""
        if self._pending:
            await asyncio.wait(set(self._pending))


# -- the disk spool ------------------------------------------------------------

_SPOOL_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, event BLOB NOT NULL, spooled_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event BLOB NOT NULL,
    reason TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


class Spool:
    """Events (as JSON) waiting for eventlog, on disk: SQLite in WAL mode, every write fsynced.

    Several processes may share one directory: each takes and deletes rows in
    transactions; a row two of them send is answered as a duplicate. Not thread
    safe: `HttpEmitter` calls it from one thread.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / "spool.db"
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # fsync at every commit: spooled means on disk
        conn.executescript(_SPOOL_SCHEMA)
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"the spool {self.path} is not open")
        return self._conn

    def put(self, items: Sequence[bytes]) -> None:
        if not items:
            return
        conn = self._db()
        now = time.time()
        with _transaction(conn):
            conn.executemany("INSERT INTO spool (event, spooled_at) VALUES (?, ?)", [(item, now) for item in items])

    def take(self, limit: int) -> list[tuple[int, bytes]]:
        """The oldest `limit` events with their row ids; they stay until `delete`."""
        rows = self._db().execute("SELECT id, event FROM spool ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def delete(self, ids: Sequence[int]) -> None:
        conn = self._db()
        with _transaction(conn):
            conn.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in ids])

    def dead_letter(self, refused: Sequence[tuple[bytes, str]]) -> None:
        conn = self._db()
        now = time.time()
        with _transaction(conn):
            conn.executemany(
                "INSERT INTO dead_letters (event, reason, created_at) VALUES (?, ?, ?)",
                [(item, reason, now) for item, reason in refused],
            )

    def count(self) -> int:
        return int(self._db().execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    def dead_letters(self) -> list[tuple[bytes, str]]:
        rows = self._db().execute("SELECT event, reason FROM dead_letters ORDER BY id").fetchall()
        return [(bytes(r[0]), str(r[1])) for r in rows]


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# -- remote --------------------------------------------------------------------


class _Unavailable(Exception):
    """eventlog did not take the batch this time (down, 5xx, 429, auth); try again later."""


@dataclass(slots=True)
class EmitterStats:
    """Counters since start (events): handed in, in requests eventlog accepted (a retry counts again),
    written to the spool, taken off the spool after delivery, refused for good, beyond the memory queue."""

    emitted: int = 0
    delivered: int = 0
    spooled: int = 0
    drained: int = 0
    dead_lettered: int = 0
    overflowed: int = 0


def wire(event: EventIn) -> bytes:
    """The JSON eventlog ingests, with a client id (UUIDv7) so that a retry is answered as a duplicate."""
    body = event.model_dump_json(exclude_none=True).encode()
    if event.id is not None:
        return body
    # `{"action":...}` -> `{"id":"<uuid7>","action":...}`: cheaper than copying the model to set its id.
    return b'{"id":"' + str(uuid_utils.uuid7()).encode() + b'",' + body[1:]


class HttpEmitter:
    """Batches events to a remote eventlog (`POST {url}/v1/events`, Bearer `token`), spooling to `spool_dir`.

    - Batches leave when `batch_max_events` are queued or `flush_interval_seconds` after the first one.
    - A failed batch is retried `send_attempts` times with backoff, then spooled; while eventlog is
      unreachable every batch goes to the spool and one loop retries the spool with backoff up to
      `max_backoff_seconds`; the first success switches back to direct sending.
    - More than `queue_max_events` waiting in memory: the excess goes straight to the spool.
    - `close` sends (or spools, within `close_timeout_seconds`) everything still in memory.
    - A new emitter on the same `spool_dir` (the host restarted) delivers what the last one left.
    - 413/422 for single events (e.g. a `time` outside eventlog's retention window): those events go to
      the spool's dead letters with eventlog's reason; the rest of the batch is delivered.
    """

    def __init__(
        self,
        url: str,
        token: str,
        spool_dir: Path,
        *,
        batch_max_events: int = 500,
        batch_max_bytes: int = 4 * 1024 * 1024,
        flush_interval_seconds: float = 0.2,
        queue_max_events: int = 10_000,
        request_timeout_seconds: float = 10.0,
        send_attempts: int = 3,
        max_backoff_seconds: float = 30.0,
        close_timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not 1 <= batch_max_events <= SERVER_MAX_EVENTS:
            raise ValueError(f"batch_max_events must be within 1..{SERVER_MAX_EVENTS} (eventlog's limit per request)")
        if not 1024 <= batch_max_bytes <= SERVER_MAX_REQUEST_BYTES:
            raise ValueError(f"batch_max_bytes must be within 1024..{SERVER_MAX_REQUEST_BYTES}")
        if queue_max_events < batch_max_events:
            raise ValueError("queue_max_events must hold at least one batch (batch_max_events)")
        self.url = url.rstrip("/")
        self._token = token
        self.spool = Spool(spool_dir)
        self._batch_max = batch_max_events
        self._batch_bytes = batch_max_bytes
        self._flush_interval = flush_interval_seconds
        self._queue_max = queue_max_events
        self._timeout = request_timeout_seconds
        self._attempts = max(1, send_attempts)
        self._max_backoff = max_backoff_seconds
        self._close_timeout = close_timeout_seconds
        self._transport = transport
        self.stats = EmitterStats()

        # Events wait as their JSON: bytes cost the garbage collector nothing, models held for a
        # flush interval would be promoted and traversed again and again.
        self._queue: collections.deque[bytes] = collections.deque()
        self._overflow: list[bytes] = []
        self._inflight: list[bytes] = []
        self._wake = asyncio.Event()  # the queue got its first event, or closing
        self._full = asyncio.Event()  # the queue holds a whole batch, or closing
        self._spill_wake = asyncio.Event()
        self._drain_wake = asyncio.Event()
        self._down = False
        self._started = False
        self._closing = False
        self._closed = False
        self._client: httpx.AsyncClient | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def unreachable(self) -> bool:
        """eventlog did not answer the last attempt; new events go to the spool until it does."""
        return self._down

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("this HttpEmitter was already started")
        self._started = True
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventlog-spool")
        await self._spool_call(self.spool.open)
        self._client = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
            timeout=self._timeout,
            transport=self._transport,
        )
        self._tasks = {
            "sender": asyncio.create_task(self._run_sender(), name="emitter-sender"),
            "spiller": asyncio.create_task(self._run_spiller(), name="emitter-spiller"),
            "drainer": asyncio.create_task(self._run_drainer(), name="emitter-drainer"),
        }
        for task in self._tasks.values():
            task.add_done_callback(_report_crash)
        if self._queue:
            self._wake.set()
        if self._overflow:
            self._spill_wake.set()
        self._drain_wake.set()  # what an earlier run left in the spool

    async def close(self) -> None:
        if self._closed:
            return
        self._closing = True
        if not self._started:
            self._closed = True
            self._spool_now([*self._queue, *self._overflow])
            self._queue.clear()
            self._overflow.clear()
            return
        for event in (self._wake, self._full, self._spill_wake):
            event.set()
        sender, spiller, drainer = self._tasks["sender"], self._tasks["spiller"], self._tasks["drainer"]
        _, late = await asyncio.wait({sender, spiller}, timeout=self._close_timeout)
        drainer.cancel()
        for task in late:
            task.cancel()
        await asyncio.gather(sender, spiller, drainer, return_exceptions=True)
        self._closed = True
        # A batch cut off mid-delivery may have arrived: sending it again later is answered as a duplicate.
        leftovers = [*self._inflight, *self._queue, *self._overflow]
        self._inflight, self._overflow = [], []
        self._queue.clear()
        if leftovers:
            await self._spool_put(leftovers)
            log.warning(
                "eventlog did not take every event before shutdown; they wait in the spool",
                extra={"events": len(leftovers), "spool": str(self.spool.path)},
            )
        await self._spool_call(self.spool.close)
        assert self._executor is not None
        self._executor.shutdown(wait=True)
        if self._client is not None:
            await self._client.aclose()

    # -- the hand-over ---------------------------------------------------

    async def emit(self, event: EventIn, *, tenant: str | None = None) -> None:
        if tenant is not None:
            raise ValueError("an HttpEmitter writes in its token's tenant; do not give a tenant")
        self.stats.emitted += 1
        item = wire(event)
        if self._closed:
            self._spool_now([item])  # rare: a call that ended after shutdown; slow, but kept
            return
        queue = self._queue
        if len(queue) >= self._queue_max:
            self.stats.overflowed += 1
            self._overflow.append(item)
            self._spill_wake.set()
            return
        queue.append(item)
        size = len(queue)
        if size == 1:
            self._wake.set()
        if size >= self._batch_max:
            self._full.set()

    def _spool_now(self, items: Sequence[bytes]) -> None:
        if not items:
            return
        with Spool(self.spool.path.parent) as spool:
            spool.put(items)
        self.stats.spooled += len(items)

    # -- background loops ------------------------------------------------

    async def _run_sender(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if len(queue) < self._batch_max and not self._closing:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._flush_interval):
                        await self._full.wait()
            batch = [queue.popleft() for _ in range(min(len(queue), self._batch_max))]
            self._inflight = batch
            try:
                await self._deliver(self._inflight)
            except Exception:
                log.exception("audit batch delivery failed unexpectedly; it goes to the spool")
                await self._spool_put(self._inflight)
                self._drain_wake.set()
            self._inflight = []

    async def _deliver(self, items: list[bytes]) -> None:
        if not self._down:
            try:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self._attempts),
                    wait=wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05),
                    retry=retry_if_exception_type(_Unavailable),
                    reraise=True,
                ):
                    with attempt:
                        await self._send(items)
                return
            except _Unavailable as exc:
                self._down = True
                log.warning(
                    "eventlog unreachable; events go to the disk spool until it answers",
                    extra={"url": self.url, "error": str(exc), "spool": str(self.spool.path)},
                )
        await self._spool_put(items)
        self._drain_wake.set()

    async def _run_spiller(self) -> None:
        while True:
            if not self._overflow:
                if self._closing:
                    return
                self._spill_wake.clear()
                await self._spill_wake.wait()
                continue
            items, self._overflow = self._overflow, []
            await self._spool_put(items)
            self._drain_wake.set()

    async def _run_drainer(self) -> None:
        while True:
            self._drain_wake.clear()
            rows = await self._spool_call(self.spool.take, self._batch_max)
            if not rows:
                await self._drain_wake.wait()
                continue
            async for attempt in AsyncRetrying(
                wait=wait_exponential_jitter(multiplier=0.2, max=self._max_backoff, jitter=0.2),
                retry=retry_if_exception_type(Exception),  # whatever it is, the spool keeps the events
                before_sleep=self._note_unavailable,
            ):
                with attempt:
                    await self._send([item for _, item in rows])
            self._down = False
            await self._spool_call(self.spool.delete, [row_id for row_id, _ in rows])
            self.stats.drained += len(rows)

    def _note_unavailable(self, state: RetryCallState) -> None:
        self._down = True
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        log.warning(
            "eventlog unreachable; spooled events wait",
            extra={
                "url": self.url,
                "error": str(error),
                "attempt": state.attempt_number,
                "retry_in_seconds": round(state.upcoming_sleep, 2),
            },
        )

    # -- one delivery ----------------------------------------------------

    async def _send(self, items: list[bytes]) -> None:
        """Deliver `items` in requests within the byte limit; raises _Unavailable to be tried again."""
        chunk: list[bytes] = []
        size = 0
        for item in items:
            if chunk and size + len(item) + 1 > self._batch_bytes - 16:
                await self._post(chunk)
                chunk, size = [], 0
            chunk.append(item)
            size += len(item) + 1
        if chunk:
            await self._post(chunk)

    async def _post(self, items: list[bytes]) -> None:
        assert self._client is not None
        body = b'{"events":[' + b",".join(items) + b"]}"
        try:
            response = await self._client.post("/v1/events", content=body)
        except httpx.HTTPError as exc:
            raise _Unavailable(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status in (200, 201):
            self.stats.delivered += len(items)
            return
        if status not in (413, 422):
            # 5xx, 429, 401/403 (a token to fix), 404 (a URL to fix): keep the events until it works.
            raise _Unavailable(f"eventlog answered {status}: {response.text[:300]}")
        refused = _refused_items(response, len(items))
        if refused:
            await self._dead_letter([(items[i], reason) for i, reason in refused.items()])
            rest = [item for i, item in enumerate(items) if i not in refused]
            if rest:
                await self._post(rest)
        elif len(items) > 1:
            # The batch as a whole was refused: halve it until the culprit stands alone.
            half = len(items) // 2
            await self._post(items[:half])
            await self._post(items[half:])
        else:
            await self._dead_letter([(items[0], f"{status}: {response.text[:1000]}")])

    async def _dead_letter(self, refused: list[tuple[bytes, str]]) -> None:
        await self._spool_call(self.spool.dead_letter, refused)
        self.stats.dead_lettered += len(refused)
        log.error(
            "eventlog refused events for good; they are kept in the spool's dead letters",
            extra={"events": len(refused), "reason": refused[0][1][:500], "spool": str(self.spool.path)},
        )

    # -- the spool, in its thread ----------------------------------------

    async def _spool_call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def _spool_put(self, items: list[bytes]) -> None:
        """Write `items` to the spool; a failing disk is retried, never given up on."""
        delay = 0.1
        while True:
            try:
                await self._spool_call(self.spool.put, items)
            except (sqlite3.Error, OSError) as exc:
                log.critical(
                    "cannot write the audit spool; holding the events in memory and retrying",
                    extra={"error": repr(exc), "events": len(items), "spool": str(self.spool.path)},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
                continue
            self.stats.spooled += len(items)
            return


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical(
            "an audit emitter loop stopped; events stay queued in memory until close spools them",
            extra={"task": task.get_name(), "error": repr(task.exception())},
            exc_info=task.exception(),
        )


def _refused_items(response: httpx.Response, count: int) -> dict[int, str]:
    """Index -> reason of the events a 413/422 names (eventlog's `errors[].index`)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    refused: dict[int, str] = {}
    errors = body.get("errors") if isinstance(body, dict) else None
    for error in errors if isinstance(errors, list) else []:
        index = error.get("index") if isinstance(error, dict) else None
        if isinstance(index, int) and 0 <= index < count:
            reason = f"{response.status_code} {error.get('pointer', '')}: {error.get('message', '')}"
            refused[index] = f"{refused[index]}; {reason}" if index in refused else reason
    return refused
