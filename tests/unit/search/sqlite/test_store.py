"""The embedded store's pieces: FTS escaping, searchable text, the tenant failsafe, the details index, deadlines."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventlog.journal import Entry
from search.backend import EventQuery, Scope, TenantScopeMissing
from search.query import Text, parse
from search.reads import ReadDeadlineExceeded, Reads
from search.sqlite.query import to_sqlite
from search.sqlite.store import SCHEMA, SqliteStore, scope_checked


def reads(deadline_seconds: float = 30.0) -> Reads:
    return Reads(threads=2, tenant_reads=1, tenant_queue=4, deadline_seconds=deadline_seconds)


def test_failsafe_refuses_statements_without_the_tenant_condition() -> None:
    scope = Scope("acme")
    assert scope_checked(scope, "SELECT 1 FROM events WHERE tenant = ? AND x", ["acme"])[1] == ["acme"]
    refused: list[tuple[str, list[Any]]] = [
        ("SELECT 1 FROM events", []),
        ("SELECT 1 FROM events WHERE x = ? AND tenant = ?", [1, "acme"]),
        ("SELECT 1 FROM events WHERE tenant = ?", ["globex"]),
    ]
    for sql, params in refused:
        with pytest.raises(TenantScopeMissing):
            scope_checked(scope, sql, params)


def test_empty_tenant_scope_is_impossible() -> None:
    with pytest.raises(TenantScopeMissing):
        Scope("")


async def test_empty_store_answers_an_empty_page(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", reads())
    page = await store.search(Scope("acme"), EventQuery(where=Text(("x",))))
    await store.close()
    assert (list(page.documents), page.last, page.more) == ([], None, False)


def _old_store(path: Path, ips: list[str | None]) -> None:
    """A store as written before the `actor_ip` column existed."""
    conn = sqlite3.connect(path)
    conn.executescript(
        SCHEMA.replace("    actor_ip BLOB,\n    status,\n    duration_ms,\n", "").split(
            "CREATE TABLE IF NOT EXISTS details_leaves"
        )[0]
    )
    for i, ip in enumerate(ips):
        actor = {"id": f"u{i}", **({"ip": ip} if ip else {})}
        request = {"status": 200 + i, "duration_ms": 1.5 * i}
        document = {
            "id": f"e{i}",
            "tenant": "acme",
            "time": "2026-11-27T10:00:00.000000Z",
            "actor": actor,
            "request": request,
            "details": {"n": i, "tags": ["old", f"t{i}"], "big": 1.5e300},
        }
        conn.execute(
            "INSERT INTO events (tenant, id, time_us, action, outcome, source, document) VALUES (?, ?, ?, 'a', 'success', 'api', ?)",
            ("acme", f"e{i}", i, orjson.dumps(document)),
        )
    conn.commit()
    conn.close()


async def test_an_older_store_gets_the_added_columns_filled_and_queries_use_their_indexes(tmp_path: Path) -> None:
    _old_store(tmp_path / "s.db", ["10.1.2.3", "2001:db8::7", None, "192.168.0.1"])
    store = SqliteStore(tmp_path / "s.db", reads())
    try:
        for query, expected in [
            ("ip:10.0.0.0/8", {"e0"}),
            ("ip:::ffff:10.1.2.3", {"e0"}),
            ("ip:2001:db8::/32", {"e1"}),
            ("-ip:10.0.0.0/8", {"e1", "e2", "e3"}),  # no address is "not in the network"
            ("ip:(10.1.2.3 OR 192.168.0.1)", {"e0", "e3"}),
            ("status:>=202", {"e2", "e3"}),
            ("request.duration_ms:<3", {"e0", "e1"}),
            ("details.n:2", {"e2"}),
            ("details.tags:(t1 OR t3)", {"e1", "e3"}),
            ("details.big:1.5e+300", {"e0", "e1", "e2", "e3"}),  # as written (orjson wrote it with '+')
            ("details.tags:ol*", {"e0", "e1", "e2", "e3"}),
        ]:
            page = await store.search(Scope("acme"), EventQuery(where=parse(query)))
            assert {orjson.loads(d)["id"] for d in page.documents} == expected, query
    finally:
        await store.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    for query, index in [
        ("ip:2001:db8::/32", "events_tenant_actor_ip"),
        ("status:>=500", "events_tenant_status"),
        ("request.duration_ms:>1000", "events_tenant_duration_ms"),
        ("details.tags:t1", "details_leaves"),
        ("details.tags:t*", "details_leaves"),
    ]:
        condition, params = to_sqlite(parse(query))
        sql = f"EXPLAIN QUERY PLAN SELECT id FROM events WHERE tenant = ? AND {condition}"
        plan = " ".join(str(r[3]) for r in conn.execute(sql, ["acme", *params]))
        assert index in plan, (query, plan)
    conn.close()


def _entry(seq: int, tenant: str, document: dict[str, Any]) -> Entry:
    return Entry(seq=seq, id=document["id"], tenant=tenant, document=orjson.dumps(document), committed_at=0.0)


def _event(n: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"e{n}", "time": "2026-11-27T10:00:00.000000Z", "action": "a", "outcome": "success", **fields}


async def test_details_index_rows_go_with_their_events(tmp_path: Path) -> None:
    """Inserted once with their event (also when it is delivered again), deleted with it (as retention does)."""
    store = SqliteStore(tmp_path / "s.db", reads())
    try:
        first = [_entry(1, "acme", _event(1, details={"k": ["a", "a", {"x": True}]})), _entry(2, "acme", _event(2))]
        await store.deliver(first)
        await store.deliver(first)
        await store.deliver([_entry(3, "globex", _event(1, details={"k": "a"}))])
        conn = sqlite3.connect(tmp_path / "s.db")
        leaves = conn.execute("SELECT tenant, leaf FROM details_leaves ORDER BY tenant, leaf").fetchall()
        assert leaves == [("acme", b".k.x=true"), ("acme", b".k=a"), ("globex", b".k=a")]
        page = await store.search(Scope("acme"), EventQuery(where=parse("details.k:a")))
        assert [orjson.loads(d)["id"] for d in page.documents] == ["e1"]
        conn.execute("DELETE FROM events WHERE tenant = 'acme'")
        conn.commit()
        assert conn.execute("SELECT tenant FROM details_leaves").fetchall() == [("globex",)]
        conn.close()
    finally:
        await store.close()


# A query the store answers by rewriting and parsing each document once per term (no column, no index
# holds actor.user_agent): with big documents, seconds of work, the kind a deadline is there for.
HEAVY_QUERY = " OR ".join(f"actor.user_agent:x{n}*" for n in range(80))


@pytest.fixture(scope="module")
def heavy_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("heavy") / "s.db"
    store = SqliteStore(path, reads())
    blob = ["y" * 4000] * 14  # as big as an event may be
    entries = [
        _entry(n, "hog", _event(n, actor={"id": "u", "user_agent": "agent"}, details={"blob": blob}))
        for n in range(300)
    ]
    entries.append(_entry(300, "other", _event(300)))
    asyncio.run(store.deliver(entries))
    asyncio.run(store.close())
    return path


@pytest.fixture
async def heavy(heavy_path: Path) -> AsyncIterator[Callable[[float], SqliteStore]]:
    opened: list[tuple[SqliteStore, Reads]] = []

    def open_store(deadline_seconds: float) -> SqliteStore:
        pool = reads(deadline_seconds)
        opened.append((SqliteStore(heavy_path, pool), pool))
        return opened[-1][0]

    yield open_store
    for store, pool in opened:
        pool.close()
        await store.close()


async def test_a_statement_is_stopped_at_the_deadline_and_the_connection_serves_on(
    heavy: Callable[[float], SqliteStore],
) -> None:
    store = heavy(0.05)
    with pytest.raises(ReadDeadlineExceeded) as stopped:
        await store.search(Scope("hog"), EventQuery(where=parse(HEAVY_QUERY), limit=1))
    assert stopped.value.status == 400
    for _ in range(3):  # the same reader connection, and the tenant's one slot, serve the next reads
        page = await store.search(Scope("hog"), EventQuery(where=parse("actor.user_agent:agent"), limit=1))
        assert len(page.documents) == 1


async def test_a_read_whose_caller_left_stops_its_statement(heavy: Callable[[float], SqliteStore]) -> None:
    store = heavy(600)
    pool = store._reads
    read = asyncio.create_task(store.search(Scope("hog"), EventQuery(where=parse(HEAVY_QUERY), limit=1)))
    deadline = time.monotonic() + 5
    while pool.running("hog") == 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)  # the statement is under way
    read.cancel()
    with pytest.raises(asyncio.CancelledError):
        await read
    deadline = time.monotonic() + 2
    while pool.running("hog"):  # the thread is free once the statement stopped
        assert time.monotonic() < deadline, "the statement ran on after its caller left"
        await asyncio.sleep(0.005)


async def test_trace_hands_over_the_statements_of_readers_old_and_new(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "search.db", reads())
    scope, query = Scope("acme"), EventQuery(where=parse("denied"), limit=5)
    await store.search(scope, query)  # a reader opened before the trace
    statements: list[str] = []
    store.trace(statements.append)
    await asyncio.gather(*(store.search(scope, query) for _ in range(4)))
    store.trace(None)
    await store.search(scope, query)
    # FTS5 may add statements of its own on a connection's first match.
    searches = [s for s in statements if s.startswith("SELECT time_us, id, document FROM events WHERE tenant = ")]
    assert len(searches) == 4, statements
    await store.close()
