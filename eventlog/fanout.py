"""One loop per sink: read after the sink's cursor, deliver, then move the cursor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from eventlog.journal import DeadLetter, Entry, Journal, delivery, purge_delivered
from eventlog.sink import Rejection, Sink

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SinkMetrics:
    """What the fan-out counts per sink (the lag gauges are set when /readyz or /metrics reads them)."""

    delivered: Counter
    failures: Counter
    dead_letters: Counter
    lag_events: Gauge
    lag_seconds: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> SinkMetrics:
        def counter(name: str, text: str) -> Counter:
            return Counter(name, text, ["sink"], registry=registry)

        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, ["sink"], registry=registry)

        return cls(
            delivered=counter("eventlog_sink_delivered_events", "Events a sink acknowledged."),
            failures=counter("eventlog_sink_failures", "Failed deliveries (retried)."),
            dead_letters=counter("eventlog_sink_dead_letters", "Events a sink refused for good."),
            lag_events=gauge("eventlog_sink_lag_events", "Committed events not yet delivered."),
            lag_seconds=gauge("eventlog_sink_lag_seconds", "Age of the oldest undelivered event."),
        )


@dataclass(slots=True)
class SinkState:
    name: str
    cursor: int = 0
    state: str = "starting"
    last_error: str | None = None
    failures: int = 0


class FanOut:
    def __init__(
        self,
        journal: Journal,
        sinks: Sequence[Sink],
        metrics: SinkMetrics,
        *,
        batch_events: int,
        poll_seconds: float,
        max_backoff_seconds: float,
    ) -> None:
        self._journal = journal
        self._sinks = list(sinks)
        self._metrics = metrics
        self._batch = batch_events
        self._poll = poll_seconds
        self._max_backoff = max_backoff_seconds
        self._wakeups: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.states: dict[str, SinkState] = {}
        # Set each time a sink's cursor moves, for callers waiting on a delivery (`delivered`).
        self._advanced: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def notify(self, _seq: int) -> None:
        """Called from the journal writer thread after each commit."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for wakeup in self._wakeups.values():
            wakeup.set()

    async def delivered(self, name: str, seq: int, timeout_seconds: float) -> bool:
        """Wait until sink `name` has taken every event through `seq`; False when it has not in time."""
        deadline = time.monotonic() + timeout_seconds
        state = self.states[name]
        while state.cursor < seq:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            advanced = self._advanced.setdefault(name, asyncio.Event())
            advanced.clear()
            if state.cursor >= seq:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(advanced.wait(), left)
        return True

    @property
    def sink_names(self) -> list[str]:
        return [sink.name for sink in self._sinks]

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for sink in self._sinks:
            self._wakeups[sink.name] = asyncio.Event()
            self.states[sink.name] = SinkState(sink.name, cursor=self._journal.cursor(sink.name))
            self._tasks.append(asyncio.create_task(self._run(sink), name=f"fanout-{sink.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for sink in self._sinks:
            await sink.close()

    async def drain(self, timeout_seconds: float = 10.0) -> bool:
        """Wait until every sink has caught up with the journal (tests, shutdown)."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if all(s.cursor >= self._journal.last_seq for s in self.states.values()):
                return True
            await asyncio.sleep(0.01)
        return False

    def lag(self, name: str) -> tuple[int, float]:
        """(events behind, seconds the oldest undelivered event has waited)."""
        state = self.states[name]
        behind = max(0, self._journal.last_seq - state.cursor)
        if behind == 0:
            return 0, 0.0
        committed = self._journal.committed_at(state.cursor + 1)
        return behind, max(0.0, time.time() - committed) if committed else 0.0

    async def redrive(self) -> dict[str, int]:
        """Deliver every dead letter once more; answers how many went through and how many failed again."""
        letters = await asyncio.to_thread(self._journal.dead_letters, 100_000)
        delivered = failed = 0
        for sink in self._sinks:
            mine = [letter for letter in letters if letter.sink == sink.name]
            if mine:
                ok, again = await self._redrive(sink, mine)
                delivered, failed = delivered + ok, failed + again
        log.info("dead letters redriven", extra={"delivered": delivered, "failed_again": failed})
        return {"delivered": delivered, "failed_again": failed}

    async def _redrive(self, sink: Sink, letters: list[DeadLetter]) -> tuple[int, int]:
        entries = await asyncio.to_thread(self._journal.read_seqs, sorted({letter.seq for letter in letters}))
        rejected = {r.seq: r.reason for r in await sink.deliver(entries)} if entries else {}
        now = time.time()
        await self._journal.call(lambda conn: delivery.settle_redrive(conn, letters, rejected, now))
        again = sum(1 for letter in letters if letter.seq in rejected)
        return len(letters) - again, again

    async def prune_journal(self, keep_seconds: float) -> int:
        """Drop journal events that every sink has delivered and that are older than `keep_seconds`."""
        if not self.states:
            return 0
        delivered = min(state.cursor for state in self.states.values())
        before = time.time() - keep_seconds
        return await self._journal.call(
            lambda conn: purge_delivered(conn, up_to_seq=delivered, committed_before=before)
        )

    async def _run(self, sink: Sink) -> None:
        state = self.states[sink.name]
        wakeup = self._wakeups[sink.name]
        backoff = 0.1
        while True:
            entries = await asyncio.to_thread(self._journal.read_after, state.cursor, self._batch)
            if not entries:
                state.state = "idle"
                wakeup.clear()
                # Re-check after clearing: a commit may have landed in between.
                if self._journal.last_seq > state.cursor:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), self._poll)
                continue
            state.state = "delivering"
            try:
                rejected = await sink.deliver(entries)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means "retry later"
                state.failures += 1
                state.state = "retrying"
                state.last_error = str(exc)[:500]
                self._metrics.failures.labels(sink.name).inc()
                delay = random.uniform(backoff / 2, backoff)  # noqa: S311 - jitter, not a secret
                log.warning(
                    "sink delivery failed; will retry",
                    extra={"sink": sink.name, "error": state.last_error, "retry_in_seconds": round(delay, 3)},
                )
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = 0.1
            state.last_error = None
            await self._advance(sink.name, entries, rejected)
            state.cursor = entries[-1].seq
            advanced = self._advanced.get(sink.name)
            if advanced is not None:
                advanced.set()
            self._metrics.delivered.labels(sink.name).inc(len(entries) - len(rejected))

    async def _advance(self, name: str, entries: Sequence[Entry], rejected: Sequence[Rejection]) -> None:
        refused = {r.seq: r.reason for r in rejected}
        now = time.time()
        await self._journal.call(lambda conn: delivery.advance(conn, name, entries, refused, now))
        if rejected:
            self._metrics.dead_letters.labels(name).inc(len(rejected))
            log.error("sink rejected events; moved to dead letters", extra={"sink": name, "count": len(rejected)})
