"""The journal: group commit, chain links, idempotency, reopen."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import orjson
import pytest

from eventlog.canonical import canonical_json
from eventlog.chain import GENESIS, link_hash
from eventlog.journal import Journal, JournalClosed, Prepared


def _prepared(event_id: str, client_id: bool = False, message: str = "m") -> Prepared:
    body = {"id": event_id, "action": "a.b", "message": message}
    return Prepared(event_id, body, canonical_json(body), client_id)


def _open(path: Path) -> Journal:
    journal = Journal(path, stream="node-a")
    journal.open()
    return journal


async def test_concurrent_appends_share_commits_and_chain_in_order(tmp_path: Path) -> None:
    groups: list[int] = []
    journal = Journal(tmp_path / "j.db", stream="node-a", observe_commit=lambda _s, n: groups.append(n))
    journal.open()
    try:
        results = await asyncio.gather(*(journal.append("t", [_prepared(f"e{i}")]) for i in range(200)))
    finally:
        journal.close()
    assert sum(groups) == 200
    assert len(groups) < 200, "concurrent appends should be grouped into fewer transactions"
    seqs = sorted(r[0].seq for r in results)
    assert seqs == list(range(1, 201))

    conn = sqlite3.connect(tmp_path / "j.db")
    prev = GENESIS
    for seq, prev_col, digest, document in conn.execute("SELECT seq, prev, hash, document FROM events ORDER BY seq"):
        doc = orjson.loads(document)
        chain = doc.pop("chain")
        assert (chain["seq"], chain["prev"], chain["hash"], chain["stream"]) == (seq, prev, digest, "node-a")
        assert prev_col == prev
        assert link_hash(prev, canonical_json(doc)) == digest
        prev = digest
    conn.close()


async def test_client_ids_are_idempotent_per_tenant(tmp_path: Path) -> None:
    journal = _open(tmp_path / "j.db")
    try:
        (first,) = await journal.append("t", [_prepared("c1", client_id=True)])
        (again,) = await journal.append("t", [_prepared("c1", client_id=True, message="other")])
        (other_tenant,) = await journal.append("u", [_prepared("c1", client_id=True)])
    finally:
        journal.close()
    assert not first.duplicate
    assert again.duplicate
    assert (again.hash, again.seq) == (first.hash, first.seq)
    assert not other_tenant.duplicate
    assert other_tenant.seq == first.seq + 1


async def test_reopen_continues_the_chain(tmp_path: Path) -> None:
    journal = _open(tmp_path / "j.db")
    (last,) = await journal.append("t", [_prepared("a")])
    journal.close()
    reopened = Journal(tmp_path / "j.db", stream="ignored-after-first-open")
    reopened.open()
    try:
        assert reopened.stream == "node-a"
        (nxt,) = await reopened.append("t", [_prepared("b")])
        entries = reopened.read_after(0, 10)
    finally:
        reopened.close()
    assert nxt.seq == last.seq + 1
    assert orjson.loads(entries[1].document)["chain"]["prev"] == last.hash
    assert [e.id for e in entries] == ["a", "b"]


async def test_failed_commit_fails_its_callers_and_keeps_the_chain(tmp_path: Path) -> None:
    journal = _open(tmp_path / "j.db")
    try:
        await journal.append("t", [_prepared("a")])

        def sabotage(conn: sqlite3.Connection) -> None:
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.id = 'bad' BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
            )

        await journal.call(sabotage)
        with pytest.raises(sqlite3.IntegrityError, match="disk says no"):
            await journal.append("t", [_prepared("bad")])
        (after,) = await journal.append("t", [_prepared("c")])
    finally:
        journal.close()
    assert after.seq == 2, "a failed transaction must not consume sequence numbers"


async def test_a_dead_writer_answers_every_caller_instead_of_hanging(tmp_path: Path) -> None:
    journal = _open(tmp_path / "j.db")

    def explode(_conn: sqlite3.Connection) -> None:
        raise SystemExit("writer killed")

    try:
        with pytest.raises(SystemExit):
            await journal.call(explode)
        # SystemExit in a call is handed back, the writer lives on.
        (ok,) = await journal.append("t", [_prepared("a")])
        assert ok.seq == 1

        journal._run_call = _raise_outside_transaction  # type: ignore[method-assign,assignment]
        with pytest.raises(RuntimeError, match="outside"):
            await asyncio.wait_for(journal.call(lambda _c: None), 5)
        assert not journal.healthy
        with pytest.raises(JournalClosed, match="refuses writes"):
            await asyncio.wait_for(journal.append("t", [_prepared("b")]), 5)
    finally:
        journal.close()


def _raise_outside_transaction(_conn: sqlite3.Connection, _job: object) -> None:
    raise RuntimeError("failure outside the guarded SQL")
