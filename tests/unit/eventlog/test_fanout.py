"""The fan-out against a fake `Sink`: cursor moves only after delivery, failures back off, refusals dead-letter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from eventlog.canonical import canonical_json
from eventlog.fanout import FanOut
from eventlog.journal import Entry, Journal, Prepared
from eventlog.metrics import Metrics
from eventlog.sink import Rejection


@dataclass
class FakeSink:
    """A sink that fails its first `failures` deliveries and refuses the events whose id is in `refuse`."""

    name: str = "fake"
    failures: int = 0
    refuse: set[str] = field(default_factory=set)
    delivered: list[int] = field(default_factory=list)
    attempts: list[float] = field(default_factory=list)
    closed: bool = False

    async def deliver(self, entries: Sequence[Entry]) -> Sequence[Rejection]:
        self.attempts.append(asyncio.get_running_loop().time())
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("receiver down")
        self.delivered.extend(e.seq for e in entries if e.id not in self.refuse)
        return [Rejection(e.seq, "mapping refused") for e in entries if e.id in self.refuse]

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    journal = Journal(tmp_path / "journal.db", stream="node-a")
    journal.open()
    yield journal
    journal.close()


async def _append(journal: Journal, *ids: str) -> None:
    items = [Prepared(i, {"id": i, "action": "a.b"}, canonical_json({"id": i, "action": "a.b"}), True) for i in ids]
    await journal.append("acme", items)


def _fanout(journal: Journal, sink: FakeSink, metrics: Metrics, *, batch: int = 2, backoff: float = 0.4) -> FanOut:
    fanout = FanOut(journal, [sink], metrics.sinks, batch_events=batch, poll_seconds=0.05, max_backoff_seconds=backoff)
    journal.subscribe(fanout.notify)
    return fanout


def _metric(metrics: Metrics, name: str, sink: str) -> float:
    value = metrics.registry.get_sample_value(name, {"sink": sink})
    return value or 0.0


async def test_every_event_is_delivered_once_in_order_and_the_cursor_follows(journal: Journal) -> None:
    sink, metrics = FakeSink(), Metrics()
    fanout = _fanout(journal, sink, metrics)
    fanout.start()
    try:
        await _append(journal, "e1", "e2", "e3", "e4", "e5")
        assert await fanout.drain(5)
        await _append(journal, "e6")
        assert await fanout.drain(5)
    finally:
        await fanout.stop()
    assert sink.delivered == [1, 2, 3, 4, 5, 6]
    assert journal.cursor("fake") == 6
    assert fanout.lag("fake") == (0, 0.0)
    assert _metric(metrics, "eventlog_sink_delivered_events_total", "fake") == 6
    assert sink.closed


async def test_a_failing_sink_is_retried_with_growing_backoff_and_the_cursor_waits(journal: Journal) -> None:
    sink, metrics = FakeSink(failures=4), Metrics()
    await _append(journal, "e1", "e2")
    fanout = _fanout(journal, sink, metrics, backoff=0.4)
    fanout.start()
    try:
        await asyncio.sleep(0.05)
        assert journal.cursor("fake") == 0, "the cursor must not move past a failed delivery"
        assert fanout.states["fake"].state == "retrying"
        assert fanout.states["fake"].last_error == "receiver down"
        assert await fanout.drain(10)
    finally:
        await fanout.stop()
    assert sink.delivered == [1, 2]
    assert journal.cursor("fake") == 2
    assert fanout.states["fake"].last_error is None
    assert _metric(metrics, "eventlog_sink_failures_total", "fake") == 4
    gaps = [b - a for a, b in zip(sink.attempts, sink.attempts[1:], strict=False)]
    # Jittered in [backoff/2, backoff], doubling from 0.1 up to the 0.4 cap.
    assert 0.05 <= gaps[0] <= 0.15
    assert 0.2 <= gaps[-1] <= 0.5
    assert gaps[-1] > gaps[0]


async def test_refused_events_go_to_dead_letters_and_the_rest_moves_on(journal: Journal) -> None:
    sink, metrics = FakeSink(refuse={"e2"}), Metrics()
    await _append(journal, "e1", "e2", "e3")
    fanout = _fanout(journal, sink, metrics)
    fanout.start()
    try:
        assert await fanout.drain(5)
    finally:
        await fanout.stop()
    assert sink.delivered == [1, 3]
    assert journal.cursor("fake") == 3
    letters = journal.dead_letters()
    assert [(d.sink, d.seq, d.event_id, d.tenant, d.reason) for d in letters] == [
        ("fake", 2, "e2", "acme", "mapping refused")
    ]
    assert _metric(metrics, "eventlog_sink_dead_letters_total", "fake") == 1


async def test_redrive_delivers_dead_letters_again_and_keeps_those_refused_again(journal: Journal) -> None:
    sink, metrics = FakeSink(refuse={"e1", "e2"}), Metrics()
    await _append(journal, "e1", "e2")
    fanout = _fanout(journal, sink, metrics)
    fanout.start()
    try:
        assert await fanout.drain(5)
        sink.refuse = {"e2"}
        assert await fanout.redrive() == {"delivered": 1, "failed_again": 1}
    finally:
        await fanout.stop()
    assert sink.delivered == [1]
    assert [d.event_id for d in journal.dead_letters()] == ["e2"]


async def test_a_restarted_fanout_resumes_after_the_stored_cursor(journal: Journal) -> None:
    first = FakeSink()
    fanout = _fanout(journal, first, Metrics())
    fanout.start()
    await _append(journal, "e1", "e2")
    assert await fanout.drain(5)
    await fanout.stop()
    await _append(journal, "e3")

    second = FakeSink()
    fanout = _fanout(journal, second, Metrics())
    fanout.start()
    try:
        assert await fanout.drain(5)
    finally:
        await fanout.stop()
    assert second.delivered == [3]
