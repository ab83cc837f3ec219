"""How reads reach the search store: threads of their own, a share of them per tenant, a deadline each.

A read is one store request: a page of a search or an export, a histogram, facets, an event by id.

- Reads run on threads of their own, never on asyncio's default executor, so a slow read holds up
  neither the fan-out nor the journal nor retention.
- One tenant runs at most `tenant_reads` reads at once. Its further reads wait for one of them to
  end (at most `tenant_queue` wait, each at most the deadline), beyond that they are refused (429).
  So while one tenant's reads are slow, the other tenants' reads still find a free thread.
- A read stops at its deadline, counted from the moment it has a thread: the store looks at the
  read's `Ticket` while it works and raises `ReadDeadlineExceeded` (400: narrow the query).
- When the task awaiting a read is cancelled (its client left, see `while_connected`), the ticket is
  cancelled and the store stops the same way. The tenant's slot comes free only once the thread is,
  so leaving early never gives a tenant more threads than its share.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.types import Receive

from eventlog.errors import ApiError
from eventlog.settings import ReadSettings

T = TypeVar("T")


class ReadDeadlineExceeded(ApiError):
    """A read ran into its deadline and was stopped."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            400,
            "read_deadline_exceeded",
            f"the read was stopped after {seconds:g} s, the longest one read may run: narrow the query "
            "(fewer or more selective terms) or the time range (since, until) and send it again",
            [{"parameter": "q", "message": f"too costly to answer within {seconds:g} s"}],
        )


class TooManyReads(ApiError):
    """The tenant has its share of reads running and as many waiting as may wait."""

    def __init__(self, tenant: str, running: int, waiting: int, retry_after_seconds: int) -> None:
        super().__init__(
            429,
            "too_many_reads",
            f"tenant {tenant!r} has {running} reads running and {waiting} waiting, the most one tenant may have; "
            f"send fewer reads at once, or retry in {retry_after_seconds} s",
            headers={"Retry-After": str(retry_after_seconds)},
        )


class ReadCancelled(Exception):
    """The read's caller left and its worker gave up; no client sees this."""


class ClientGone(ApiError):
    """The client disconnected before its answer was ready (logged as nginx's 499; nobody receives it)."""

    def __init__(self) -> None:
        super().__init__(499, "client_closed_request", "the client closed the connection before the answer was ready")


class Ticket:
    """What a read's worker looks at while it works: the deadline, and whether the caller left."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._expires = math.inf
        self._cancelled = False
        self._on_cancel: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """The worker has its thread: the deadline runs from now."""
        self._expires = time.monotonic() + self.seconds

    def remaining_seconds(self) -> float:
        return self._expires - time.monotonic()

    def stopped(self) -> bool:
        """Whether the work should stop now; cheap, as SQLite's progress handler calls it often."""
        return self._cancelled or time.monotonic() >= self._expires

    def stop_error(self) -> Exception:
        """What the worker raises once it stopped."""
        return ReadCancelled() if self._cancelled else ReadDeadlineExceeded(self.seconds)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the cancelling thread: keep it short) when the caller leaves; at once if it left."""
        with self._lock:
            if not self._cancelled:
                self._on_cancel.append(callback)
                return
        callback()

    def cancel(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            callbacks, self._on_cancel = self._on_cancel, []
        for callback in callbacks:
            callback()


class _Slots:
    """Per tenant: how many reads run, and the reads waiting for one of them to end (first come, first served).

    Only touched on the event loop's thread."""

    def __init__(self, limit: int, queue: int) -> None:
        self._limit = limit
        self._queue = queue
        self._running: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    def running(self, tenant: str) -> int:
        return self._running.get(tenant, 0)

    def waiting(self, tenant: str) -> int:
        return len(self._waiting.get(tenant, ()))

    async def acquire(self, tenant: str, wait_seconds: float) -> None:
        running = self.running(tenant)
        if running < self._limit and not self.waiting(tenant):
            self._running[tenant] = running + 1
            return
        retry_after = max(1, math.ceil(wait_seconds))
        if self.waiting(tenant) >= self._queue:
            raise TooManyReads(tenant, running, self.waiting(tenant), retry_after)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(tenant, deque())
        waiting.append(turn)
        try:
            async with asyncio.timeout(wait_seconds):
                await turn
        except BaseException as exc:
            if turn.done() and not turn.cancelled():
                self.release(tenant)  # the slot came just as this read gave up: hand it on
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    waiting.remove(turn)
                if not waiting and self._waiting.get(tenant) is waiting:
                    del self._waiting[tenant]
            if isinstance(exc, TimeoutError):
                raise TooManyReads(tenant, self.running(tenant), self.waiting(tenant), retry_after) from None
            raise

    def release(self, tenant: str) -> None:
        waiting = self._waiting.get(tenant)
        while waiting:
            turn = waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes to the next read: the count stays
                if not waiting:
                    del self._waiting[tenant]
                return
        self._waiting.pop(tenant, None)
        left = self._running.get(tenant, 0) - 1
        if left > 0:
            self._running[tenant] = left
        else:
            self._running.pop(tenant, None)


def _release_soon(loop: asyncio.AbstractEventLoop, slots: _Slots, tenant: str, _: Future[Any]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: the service is gone
        loop.call_soon_threadsafe(slots.release, tenant)


def _work(ticket: Ticket, work: Callable[[Ticket], T]) -> T:
    ticket.start()
    if ticket.stopped():
        raise ticket.stop_error()
    return work(ticket)


class Reads:
    """Runs the store's blocking reads: `await reads.run(tenant, work)` where `work(ticket)` does the I/O."""

    def __init__(self, *, threads: int, tenant_reads: int, tenant_queue: int, deadline_seconds: float) -> None:
        self.deadline_seconds = deadline_seconds
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="eventlog-read")
        self._slots = _Slots(tenant_reads, tenant_queue)

    @classmethod
    def from_settings(cls, settings: ReadSettings) -> Reads:
        return cls(
            threads=settings.threads,
            tenant_reads=settings.tenant_concurrent_reads,
            tenant_queue=settings.tenant_queued_reads,
            deadline_seconds=settings.deadline_seconds,
        )

    def running(self, tenant: str) -> int:
        """The tenant's reads that hold a thread (or are about to)."""
        return self._slots.running(tenant)

    def waiting(self, tenant: str) -> int:
        return self._slots.waiting(tenant)

    async def run(self, tenant: str, work: Callable[[Ticket], T]) -> T:
        await self._slots.acquire(tenant, self.deadline_seconds)
        loop = asyncio.get_running_loop()
        ticket = Ticket(self.deadline_seconds)
        try:
            future = self._executor.submit(_work, ticket, work)
        except BaseException:
            self._slots.release(tenant)
            raise
        future.add_done_callback(functools.partial(_release_soon, loop, self._slots, tenant))
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            ticket.cancel()
            raise

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def while_connected(request: Request, read: Awaitable[T]) -> T:
    """`read`, given up when the client disconnects first (which stops its store work): raises ClientGone.

    Only for answers sent whole: a StreamingResponse watches for the disconnect itself and cancels."""
    work = asyncio.ensure_future(read)
    gone = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        work.cancel()
        raise
    finally:
        gone.cancel()
        gone.add_done_callback(_retrieve)  # a receive that failed counts as a disconnect
    if work.done():
        return work.result()
    work.cancel()  # the read's runner cancels its ticket as this reaches it
    work.add_done_callback(_retrieve)
    raise ClientGone()
