"""The read pool: a share per tenant, a bounded wait, the deadline and the caller's leaving reach the work."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from starlette.requests import Request
from starlette.types import Message

from search.reads import (
    ClientGone,
    ReadCancelled,
    ReadDeadlineExceeded,
    Reads,
    Ticket,
    TooManyReads,
    while_connected,
)


async def until(condition: Callable[[], bool], timeout_seconds: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true"
        await asyncio.sleep(0.005)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Work that blocks until the test opens the gate (opened at the end in any case)."""
    event = threading.Event()
    yield event
    event.set()


def blocked(gate: threading.Event) -> Callable[[Ticket], str]:
    def work(_: Ticket) -> str:
        assert gate.wait(10)
        return "done"

    return work


async def test_a_tenant_over_its_share_waits_while_another_tenant_gets_a_thread_at_once(gate: threading.Event) -> None:
    reads = Reads(threads=3, tenant_reads=2, tenant_queue=4, deadline_seconds=10)
    hog = [asyncio.create_task(reads.run("hog", blocked(gate))) for _ in range(3)]
    await until(lambda: reads.running("hog") == 2 and reads.waiting("hog") == 1)
    assert await asyncio.wait_for(reads.run("other", lambda _: "other"), 5) == "other"
    assert reads.running("hog") == 2  # the hog's reads were all still there meanwhile
    gate.set()
    assert await asyncio.gather(*hog) == ["done"] * 3
    await until(lambda: reads.running("hog") == 0 and reads.waiting("hog") == 0)
    reads.close()


async def test_reads_beyond_the_queue_are_refused_with_retry_after(gate: threading.Event) -> None:
    reads = Reads(threads=2, tenant_reads=1, tenant_queue=1, deadline_seconds=7.5)
    first = asyncio.create_task(reads.run("hog", blocked(gate)))
    second = asyncio.create_task(reads.run("hog", blocked(gate)))
    await until(lambda: reads.running("hog") == 1 and reads.waiting("hog") == 1)
    with pytest.raises(TooManyReads) as refused:
        await reads.run("hog", blocked(gate))
    assert (refused.value.status, refused.value.code, refused.value.headers) == (
        429,
        "too_many_reads",
        {"Retry-After": "8"},
    )
    assert "1 reads running and 1 waiting" in refused.value.message
    gate.set()
    assert [await first, await second] == ["done", "done"]
    reads.close()


async def test_a_read_that_waits_longer_than_the_deadline_is_refused(gate: threading.Event) -> None:
    reads = Reads(threads=2, tenant_reads=1, tenant_queue=4, deadline_seconds=0.1)
    first = asyncio.create_task(reads.run("hog", blocked(gate)))
    await until(lambda: reads.running("hog") == 1)
    with pytest.raises(TooManyReads):
        await reads.run("hog", blocked(gate))
    assert reads.waiting("hog") == 0
    gate.set()
    assert await first == "done"
    await until(lambda: reads.running("hog") == 0)
    reads.close()


async def test_a_slot_passes_to_the_next_waiting_read_in_turn() -> None:
    reads = Reads(threads=2, tenant_reads=1, tenant_queue=4, deadline_seconds=10)
    order: list[int] = []

    def work(n: int) -> Callable[[Ticket], None]:
        return lambda _: order.append(n)

    await asyncio.gather(*(reads.run("t", work(n)) for n in range(4)))
    assert order == [0, 1, 2, 3]
    assert (reads.running("t"), reads.waiting("t")) == (0, 0)
    reads.close()


async def test_the_work_sees_its_deadline_and_stops_with_400() -> None:
    reads = Reads(threads=1, tenant_reads=1, tenant_queue=0, deadline_seconds=0.05)

    def spin(ticket: Ticket) -> None:
        while not ticket.stopped():
            time.sleep(0.001)
        raise ticket.stop_error()

    with pytest.raises(ReadDeadlineExceeded) as stopped:
        await reads.run("t", spin)
    assert (stopped.value.status, stopped.value.code) == (400, "read_deadline_exceeded")
    assert "narrow the query" in stopped.value.message
    assert "0.05 s" in stopped.value.message
    await until(lambda: reads.running("t") == 0)
    reads.close()


async def test_a_cancelled_caller_cancels_the_work_and_holds_the_slot_until_the_thread_is_free() -> None:
    reads = Reads(threads=1, tenant_reads=1, tenant_queue=0, deadline_seconds=60)
    saw: list[str] = []
    proceed = threading.Event()

    def work(ticket: Ticket) -> None:
        ticket.on_cancel(lambda: saw.append("callback"))
        while not ticket.stopped():
            time.sleep(0.001)
        saw.append("stopped")
        assert proceed.wait(10)  # a worker that takes its time to wind down
        raise ticket.stop_error()

    task = asyncio.create_task(reads.run("t", work))
    await until(lambda: reads.running("t") == 1)
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: saw == ["callback", "stopped"])
    with pytest.raises(TooManyReads):  # the thread is still busy: the slot is still taken
        await reads.run("t", lambda _: None)
    proceed.set()
    await until(lambda: reads.running("t") == 0)
    assert await reads.run("t", lambda _: "again") == "again"
    reads.close()


def test_a_ticket_says_why_it_stopped() -> None:
    ticket = Ticket(30)
    assert not ticket.stopped()  # the deadline runs only once the work has a thread
    ticket.start()
    assert not ticket.stopped()
    assert 29 < ticket.remaining_seconds() <= 30
    late: list[str] = []
    ticket.cancel()
    ticket.on_cancel(lambda: late.append("at once"))
    assert ticket.stopped()
    assert late == ["at once"]
    assert isinstance(ticket.stop_error(), ReadCancelled)
    expired = Ticket(0.001)
    expired.start()
    time.sleep(0.01)
    assert expired.stopped()
    assert isinstance(expired.stop_error(), ReadDeadlineExceeded)


def _request(messages: list[Message], then: asyncio.Event) -> Request:
    """A request whose client sends `messages`, then disconnects once `then` is set."""

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await then.wait()
        return {"type": "http.disconnect"}

    return Request({"type": "http", "method": "GET", "path": "/", "headers": []}, receive)


async def test_while_connected_gives_up_the_read_when_the_client_leaves() -> None:
    leave = asyncio.Event()
    cancelled = asyncio.Event()

    async def read() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    request = _request([{"type": "http.request", "body": b"", "more_body": False}], leave)
    asyncio.get_running_loop().call_later(0.05, leave.set)
    with pytest.raises(ClientGone) as gone:
        await asyncio.wait_for(while_connected(request, read()), 5)
    assert gone.value.status == 499
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_while_connected_answers_the_read_while_the_client_stays() -> None:
    async def read() -> str:
        await asyncio.sleep(0.01)
        return "answer"

    async def failing() -> str:
        raise ReadDeadlineExceeded(1)

    stay = asyncio.Event()
    assert await while_connected(_request([], stay), read()) == "answer"
    with pytest.raises(ReadDeadlineExceeded):
        await while_connected(_request([], stay), failing())
