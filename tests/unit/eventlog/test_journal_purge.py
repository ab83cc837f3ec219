"""Purging delivered events from the journal when OpenSearch holds them."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from eventlog.canonical import canonical_json
from eventlog.journal import Journal, Prepared, purge_delivered
from eventlog.verify import verify_journal


async def test_purge_drops_only_a_prefix_before_dead_letters_recent_events_and_the_head(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db", stream="s")
    journal.open()
    try:
        for i in range(1, 11):
            body = {"id": f"e{i}", "tenant": "t"}
            await journal.append("t", [Prepared(f"e{i}", body, canonical_json(body), False)])

        def age(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE events SET committed_at = ? WHERE seq <= 8", (time.time() - 7200,))
            conn.execute(
                "INSERT INTO dead_letters (sink, seq, event_id, tenant, reason, created_at) VALUES ('os', 3, 'e3', 't', 'x', 0)"
            )

        await journal.call(age)
        # Delivered up to 9, 9 and 10 are recent, 3 is a dead letter: only 1 and 2 may go, so no gap opens.
        dropped = await journal.call(lambda c: purge_delivered(c, up_to_seq=9, committed_before=time.time() - 3600))
        assert dropped == 2
        assert [e.seq for e in journal.read_after(0, 100)] == list(range(3, 11))
        # Without the dead letter, everything delivered and old goes but the newest row (the chain's head).
        await journal.call(lambda c: c.execute("DELETE FROM dead_letters"))
        await journal.call(lambda c: c.execute("UPDATE events SET committed_at = 0"))
        await journal.call(lambda c: purge_delivered(c, up_to_seq=10, committed_before=time.time()))
        assert [e.seq for e in journal.read_after(0, 100)] == [10]
    finally:
        journal.close()
    reopened = Journal(tmp_path / "j.db", stream="s")
    reopened.open()
    try:
        body = {"id": "e11", "tenant": "t"}
        (appended,) = await reopened.append("t", [Prepared("e11", body, canonical_json(body), False)])
        assert appended.seq == 11
    finally:
        reopened.close()
    assert verify_journal(tmp_path / "j.db", None).ok
