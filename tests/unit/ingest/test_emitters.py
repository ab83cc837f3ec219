"""Emitters: the in-process journal emitter and the remote HTTP emitter with its disk spool.

The remote emitter is driven against a scripted `POST /v1/events` (httpx
MockTransport) for the failure modes, and against the real eventlog app in
process for idempotent retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
import pytest
import uuid_utils

from eventlog.app.service import create_app
from eventlog.journal import Appended, Journal, Prepared
from eventlog.model import EventIn
from eventlog.tokens import SqliteTokenStore, parse_scopes
from ingest.emitters import Emitter, HttpEmitter, JournalEmitter, Spool, wire
from tests.app import make_settings

URL = "http://eventlog.test"


def _event(n: int = 0, **fields: Any) -> EventIn:
    return EventIn.model_validate(
        {"action": "http.GET /items/{id}", "source": "middleware", "message": f"m{n}", **fields}
    )


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.01)


# -- in process ------------------------------------------------------------------


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    journal = Journal(tmp_path / "journal.db", stream="test")
    journal.open()
    yield journal
    journal.close()


async def test_journal_emitter_appends_in_the_tenant_with_its_source(journal: Journal) -> None:
    emitter: Emitter = JournalEmitter(journal, source="eventlog")
    await emitter.start()
    await emitter.emit(_event(1), tenant="acme")
    await emitter.emit(_event(2, id="client-id-1"), tenant="other")
    await emitter.close()
    # Committed when emit returned: what a test client reads right after the request.
    entries = journal.read_after(0, 10)
    assert [(e.tenant, orjson.loads(e.document)["source"]) for e in entries] == [
        ("acme", "eventlog"),
        ("other", "eventlog"),
    ]
    assert uuid_utils.UUID(entries[0].id).version == 7
    assert entries[1].id == "client-id-1"


async def test_journal_emitter_keeps_the_events_source_by_default_and_a_default_tenant(journal: Journal) -> None:
    emitter = JournalEmitter(journal, tenant="fixed")
    await emitter.emit(_event())
    await emitter.close()
    (entry,) = journal.read_after(0, 10)
    assert entry.tenant == "fixed"
    assert orjson.loads(entry.document)["source"] == "middleware"


async def test_journal_emitter_needs_a_tenant(journal: Journal) -> None:
    with pytest.raises(ValueError, match="needs a tenant"):
        await JournalEmitter(journal).emit(_event())


class _StalledJournal:
    """A journal whose commit waits for `release`."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.appended: list[tuple[str, Sequence[Prepared]]] = []

    async def append(self, tenant: str, items: Sequence[Prepared]) -> list[Appended]:
        await self.release.wait()
        self.appended.append((tenant, items))
        return []


async def test_journal_emitter_waits_for_a_stalled_commit_at_most_its_bound() -> None:
    stalled = _StalledJournal()
    emitter = JournalEmitter(stalled, commit_wait_seconds=0.2)  # type: ignore[arg-type]
    started = time.monotonic()
    await emitter.emit(_event(), tenant="acme")
    assert 0.15 < time.monotonic() - started < 2.0
    assert stalled.appended == []
    closing = asyncio.create_task(emitter.close())
    await asyncio.sleep(0.05)
    assert not closing.done(), "close must wait for the append still in flight"
    stalled.release.set()
    await closing
    assert [tenant for tenant, _ in stalled.appended] == ["acme"]


async def test_journal_emitter_logs_an_event_the_journal_refuses(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    journal.close()
    emitter = JournalEmitter(journal)
    await emitter.emit(_event(7), tenant="acme")  # never raises into the host
    await emitter.close()
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "not recorded" in record.message
    assert '"message":"m7"' in record.__dict__["event"]


# -- a scripted eventlog --------------------------------------------------------------

Mode = Literal["up", "down", "503", "401", "hang"]


class FakeEventlog:
    """POST /v1/events as scripted: up, down (connection refused), 503, 401 or hanging; dedups by id like eventlog."""

    def __init__(self) -> None:
        self.mode: Mode = "up"
        self.requests: list[list[dict[str, Any]]] = []
        self.stored: dict[str, dict[str, Any]] = {}
        self.max_events: int | None = None
        self.refuse: Callable[[dict[str, Any]], bool] = lambda event: False
        self.released = asyncio.Event()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/events"
        assert request.headers["authorization"] == "Bearer evl_test"
        events: list[dict[str, Any]] = orjson.loads(request.content)["events"]
        self.requests.append(events)
        if self.mode == "hang":
            await self.released.wait()
        if self.mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if self.mode in ("503", "401"):
            return httpx.Response(int(self.mode), json={"error": "nope", "message": "not now"})
        if self.max_events is not None and len(events) > self.max_events:
            return httpx.Response(413, json={"error": "too_many_events", "message": "split the batch"})
        bad = [i for i, e in enumerate(events) if self.refuse(e)]
        if bad:
            errors = [{"index": i, "pointer": f"/events/{i}/time", "message": "lies before the window"} for i in bad]
            return httpx.Response(422, json={"error": "invalid_events", "message": "fix", "errors": errors})
        for event in events:
            self.stored.setdefault(event["id"], event)
        return httpx.Response(
            201, json={"receipts": [{"id": e["id"], "hash": "h", "duplicate": False} for e in events]}
        )

    def messages(self) -> list[str]:
        return sorted(e["message"] for e in self.stored.values())


@pytest.fixture
def fake() -> FakeEventlog:
    return FakeEventlog()


def _emitter(fake: FakeEventlog, spool_dir: Path, **options: Any) -> HttpEmitter:
    defaults: dict[str, Any] = {
        "batch_max_events": 10,
        "flush_interval_seconds": 0.05,
        "max_backoff_seconds": 0.2,
        "close_timeout_seconds": 2.0,
        "transport": fake.transport(),
    }
    return HttpEmitter(URL, "evl_test", spool_dir, **{**defaults, **options})


@contextlib.asynccontextmanager
async def running(emitter: HttpEmitter) -> AsyncIterator[HttpEmitter]:
    await emitter.start()
    try:
        yield emitter
    finally:
        await emitter.close()


def _spooled(spool_dir: Path) -> int:
    with Spool(spool_dir) as spool:
        return spool.count()


def expected(n: int, start: int = 0) -> list[str]:
    return sorted(f"m{i}" for i in range(start, start + n))


async def test_batches_leave_by_size(fake: FakeEventlog, tmp_path: Path) -> None:
    async with running(_emitter(fake, tmp_path, flush_interval_seconds=30.0)) as emitter:
        for i in range(25):
            await emitter.emit(_event(i))
        await until(lambda: len(fake.requests) == 2, what="two full batches")
        assert [len(r) for r in fake.requests] == [10, 10]
    assert [len(r) for r in fake.requests] == [10, 10, 5]  # the rest on close
    assert fake.messages() == expected(25)


async def test_a_partial_batch_leaves_after_the_flush_interval(fake: FakeEventlog, tmp_path: Path) -> None:
    async with running(_emitter(fake, tmp_path, flush_interval_seconds=0.1)) as emitter:
        started = time.monotonic()
        await emitter.emit(_event(1))
        await until(lambda: bool(fake.stored), what="the flush")
        assert 0.08 < time.monotonic() - started < 2.0
        assert emitter.stats.delivered == 1


async def test_every_event_gets_a_uuid7_client_id_and_given_ids_stay(fake: FakeEventlog, tmp_path: Path) -> None:
    async with running(_emitter(fake, tmp_path)) as emitter:
        await emitter.emit(_event(0))
        await emitter.emit(_event(1, id="mine-1"))
    ids = [e["id"] for e in fake.requests[0]]
    assert uuid_utils.UUID(ids[0]).version == 7
    assert ids[1] == "mine-1"


async def test_a_failed_request_is_retried_with_the_same_ids(fake: FakeEventlog, tmp_path: Path) -> None:
    fake.mode = "503"
    async with running(_emitter(fake, tmp_path, send_attempts=5)) as emitter:
        await emitter.emit(_event(1))
        await until(lambda: len(fake.requests) >= 2, what="a retry")
        fake.mode = "up"
        await until(lambda: bool(fake.stored), what="the delivery")
    assert len({tuple(e["id"] for e in r) for r in fake.requests}) == 1
    assert _spooled(tmp_path) == 0


async def test_while_eventlog_is_down_events_wait_in_the_spool_and_arrive_after(
    fake: FakeEventlog, tmp_path: Path
) -> None:
    fake.mode = "down"
    async with running(_emitter(fake, tmp_path, send_attempts=2)) as emitter:
        for i in range(30):
            await emitter.emit(_event(i))
        await until(lambda: emitter.unreachable and _spooled(tmp_path) == 30, what="spooling")
        assert fake.stored == {}
        fake.mode = "up"
        await until(lambda: fake.messages() == expected(30), what="the drain")
        await until(lambda: not emitter.unreachable, what="back to direct sending")
        await emitter.emit(_event(30))
        await until(lambda: len(fake.stored) == 31, what="a direct send after recovery")
    assert _spooled(tmp_path) == 0
    assert emitter.stats.dead_lettered == 0


async def test_a_full_queue_spills_to_the_spool_and_nothing_is_dropped(fake: FakeEventlog, tmp_path: Path) -> None:
    fake.mode = "hang"
    options = {"queue_max_events": 20, "request_timeout_seconds": 30.0, "close_timeout_seconds": 5.0}
    async with running(_emitter(fake, tmp_path, **options)) as emitter:
        started = time.monotonic()
        for i in range(200):
            await emitter.emit(_event(i))
        assert time.monotonic() - started < 0.5, "emit must never wait for eventlog"
        assert emitter.stats.overflowed >= 170
        await until(lambda: _spooled(tmp_path) >= 170, what="the spill")
        fake.mode = "up"
        fake.released.set()
        await until(lambda: fake.messages() == expected(200), what="every event delivered")
    assert _spooled(tmp_path) == 0


async def test_close_sends_what_is_still_queued(fake: FakeEventlog, tmp_path: Path) -> None:
    async with running(_emitter(fake, tmp_path, flush_interval_seconds=60.0)) as emitter:
        for i in range(7):
            await emitter.emit(_event(i))
        assert fake.requests == []
    assert fake.messages() == expected(7)


async def test_a_restarted_host_delivers_what_the_last_one_spooled(fake: FakeEventlog, tmp_path: Path) -> None:
    fake.mode = "down"
    async with running(_emitter(fake, tmp_path, flush_interval_seconds=60.0, send_attempts=2)) as first:
        for i in range(7):
            await first.emit(_event(i))
    assert _spooled(tmp_path) == 7
    late = _event(99)
    await first.emit(late)  # after close: straight to the spool
    assert _spooled(tmp_path) == 8
    sent_ids = {e["id"] for r in fake.requests for e in r}

    fake.mode = "up"
    async with running(_emitter(fake, tmp_path)):
        await until(lambda: len(fake.stored) == 8, what="the spool of the last run")
    assert fake.messages() == sorted([*expected(7), "m99"])
    assert sent_ids <= set(fake.stored), "spooled events keep the ids of their first attempt"
    assert _spooled(tmp_path) == 0


async def test_close_before_start_keeps_the_events(fake: FakeEventlog, tmp_path: Path) -> None:
    emitter = _emitter(fake, tmp_path)
    await emitter.emit(_event(1))
    await emitter.close()
    assert _spooled(tmp_path) == 1


async def test_a_refused_event_goes_to_the_dead_letters_and_the_rest_is_delivered(
    fake: FakeEventlog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.refuse = lambda event: event["message"] in ("m3", "m7")
    async with running(_emitter(fake, tmp_path)) as emitter:
        for i in range(10):
            await emitter.emit(_event(i))
    assert fake.messages() == sorted(f"m{i}" for i in range(10) if i not in (3, 7))
    assert emitter.stats.dead_lettered == 2
    with Spool(tmp_path) as spool:
        letters = spool.dead_letters()
    assert sorted(orjson.loads(item)["message"] for item, _ in letters) == ["m3", "m7"]
    assert all(reason.startswith("422 /events/") for _, reason in letters)
    assert any("dead letters" in r.message for r in caplog.records)


async def test_a_batch_refused_as_a_whole_is_halved(fake: FakeEventlog, tmp_path: Path) -> None:
    fake.max_events = 3
    async with running(_emitter(fake, tmp_path)) as emitter:
        for i in range(10):
            await emitter.emit(_event(i))
    assert fake.messages() == expected(10)
    assert emitter.stats.dead_lettered == 0


async def test_batches_are_cut_by_bytes(fake: FakeEventlog, tmp_path: Path) -> None:
    async with running(_emitter(fake, tmp_path, batch_max_bytes=2048)) as emitter:
        for i in range(10):
            await emitter.emit(_event(i, details={"blob": "x" * 500}))
    assert len(fake.requests) >= 3
    assert all(len(orjson.dumps({"events": r})) <= 2048 for r in fake.requests)
    assert fake.messages() == expected(10)


async def test_a_refused_token_keeps_the_events(fake: FakeEventlog, tmp_path: Path) -> None:
    fake.mode = "401"
    async with running(_emitter(fake, tmp_path, send_attempts=1)) as emitter:
        await emitter.emit(_event(1))
        await until(lambda: _spooled(tmp_path) == 1, what="spooling")
        await until(lambda: len(fake.requests) >= 3, what="retries from the spool")
    assert emitter.stats.dead_lettered == 0
    assert _spooled(tmp_path) == 1


async def test_a_remote_emitter_takes_no_tenant(fake: FakeEventlog, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="token's tenant"):
        await _emitter(fake, tmp_path).emit(_event(), tenant="acme")


@pytest.mark.parametrize(
    "options",
    [{"batch_max_events": 0}, {"batch_max_events": 1001}, {"batch_max_bytes": 10}, {"queue_max_events": 5}],
)
def test_options_outside_eventlogs_limits_are_refused(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        HttpEmitter(URL, "t", tmp_path, **options)


def test_wire_form_is_what_ingest_accepts() -> None:
    event = _event(1, time=datetime.now(UTC) - timedelta(seconds=1), actor={"ip": "10.0.0.1"})
    parsed = orjson.loads(wire(event))
    assert EventIn.model_validate(parsed).model_dump(exclude={"id"}) == event.model_dump(exclude={"id"})
    assert "tenant" not in parsed


# -- against the real eventlog app, in process ------------------------------------------


class _LoseFirstAnswer(httpx.AsyncBaseTransport):
    """Delivers to the app, but the first answer is lost on the way back (a timeout after the commit)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not self.lost:
            self.lost += 1
            await response.aread()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


async def test_a_retry_after_a_lost_answer_is_stored_once_by_eventlog(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    app = create_app(settings)
    store = SqliteTokenStore(settings.tokens_path)
    try:
        secret = store.create(tenant="acme", scopes=parse_scopes("events:write,events:read")).secret
    finally:
        store.close()
    transport = _LoseFirstAnswer(httpx.ASGITransport(app=app))
    async with app.router.lifespan_context(app):
        emitter = HttpEmitter(URL, secret, tmp_path / "spool", flush_interval_seconds=0.01, transport=transport)
        async with running(emitter):
            for i in range(5):
                await emitter.emit(_event(i))
        assert transport.lost == 1
        journal = app.state.ctx.journal
        entries = journal.read_after(0, 100)
    assert sorted(orjson.loads(e.document)["message"] for e in entries) == expected(5)
    assert {e.tenant for e in entries} == {"acme"}
    assert {orjson.loads(e.document)["source"] for e in entries} == {"middleware"}
