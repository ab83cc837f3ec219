"""Journal expiry: a prefix of delivered, expired, unheld events; dead letters; checkpoints."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

from eventlog.canonical import canonical_json
from eventlog.journal import Journal, Prepared
from eventlog.verify import verify_journal
from retention.journal import expire_journal
from retention.policy import Policy
from search.retention import Hold

TODAY = date(2026, 11, 27)
OLD, NEW = "2026-10-01T10:00:00.000000Z", "2026-11-26T10:00:00.000000Z"


async def _journal(path: Path, times: list[tuple[str, str]]) -> Journal:
    journal = Journal(path, stream="s")
    journal.open()
    for i, (tenant, at) in enumerate(times, start=1):
        body = {"id": f"e{i}", "tenant": tenant, "time": at}
        await journal.append(tenant, [Prepared(f"e{i}", body, canonical_json(body), False)])
    return journal


def _seqs(conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT seq FROM events ORDER BY seq")]


async def test_only_a_delivered_expired_prefix_goes_and_verify_still_holds(tmp_path: Path) -> None:
    journal = await _journal(tmp_path / "j.db", [("a", OLD)] * 4 + [("a", NEW), ("a", OLD), ("a", NEW)])
    try:
        await journal.call(lambda c: c.execute("INSERT INTO sink_cursors VALUES ('sqlite', 7, 0)"))
        policy = Policy(default_days=14)
        dry = await journal.call(lambda c: expire_journal(c, policy, TODAY, ["sqlite"], dry_run=True))
        assert dry.events == 4
        assert await journal.call(_seqs) == list(range(1, 8))
        # The syslog sink has delivered only up to 2: nothing past it may go.
        await journal.call(lambda c: c.execute("INSERT INTO sink_cursors VALUES ('syslog', 2, 0)"))
        partial = await journal.call(lambda c: expire_journal(c, policy, TODAY, ["sqlite", "syslog"]))
        assert partial.events == 2
        done = await journal.call(lambda c: expire_journal(c, policy, TODAY, ["sqlite"]))
        # 3 and 4 go; 5 is recent, so 6 (old) stays behind it: no gap.
        assert done.events == 2
        assert done.first_kept_seq == 5
        assert await journal.call(_seqs) == [5, 6, 7]
    finally:
        journal.close()
    assert verify_journal(tmp_path / "j.db", None).ok


async def test_holds_and_dead_letters_pin_the_prefix_until_they_expire(tmp_path: Path) -> None:
    journal = await _journal(tmp_path / "j.db", [("a", OLD), ("held", OLD), ("a", OLD), ("a", NEW)])
    try:
        await journal.call(lambda c: c.execute("INSERT INTO sink_cursors VALUES ('sqlite', 4, 0)"))
        hold = Hold("h", "held", None, None, "case", datetime(2026, 11, 1, tzinfo=UTC), "tok")
        held = await journal.call(lambda c: expire_journal(c, Policy(14, holds=(hold,)), TODAY, ["sqlite"]))
        assert held.events == 1
        assert await journal.call(_seqs) == [2, 3, 4]
        await journal.call(
            lambda c: c.execute(
                "INSERT INTO dead_letters (sink, seq, event_id, tenant, reason, created_at) "
                "VALUES ('sqlite', 3, 'e3', 'a', 'mapping', 0)"
            )
        )
        # Held no more: 2 goes; 3 is a dead letter, but an expired one, so it goes too, with its dead letter.
        result = await journal.call(lambda c: expire_journal(c, Policy(14), TODAY, ["sqlite"]))
        assert (result.events, result.dead_letters) == (2, 1)
        assert await journal.call(_seqs) == [4]
        assert await journal.call(lambda c: c.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]) == 0
    finally:
        journal.close()


async def _checkpoints_at(journal: Journal, *times: str) -> None:
    """Checkpoints of seq 1, 2, ... signed at these times (stream 's', placeholder hash and signature)."""

    def add(c: sqlite3.Connection) -> None:
        for seq, at in enumerate(times, 1):
            c.execute("INSERT INTO checkpoints VALUES ('s', ?, 'h', ?, 'sig')", (seq, at))

    await journal.call(add)


async def _checkpoint_seqs(journal: Journal) -> list[int]:
    return await journal.call(lambda c: [int(r[0]) for r in c.execute("SELECT seq FROM checkpoints ORDER BY seq")])


async def test_checkpoints_older_than_the_longest_retention_go_unless_a_hold_reaches_back(tmp_path: Path) -> None:
    journal = await _journal(tmp_path / "j.db", [("a", NEW)])
    try:
        await _checkpoints_at(journal, "2026-09-01T00:00:00Z", "2026-11-01T00:00:00Z", "2026-11-26T00:00:00Z")
        hold = Hold("h", "x", datetime(2026, 10, 15, tzinfo=UTC), None, "case", datetime(2026, 11, 1, tzinfo=UTC), "t")
        kept = await journal.call(lambda c: expire_journal(c, Policy(14, holds=(hold,)), TODAY, ["sqlite"]))
        assert kept.checkpoints == 1  # 2026-09-01 only: the hold reaches back to 2026-10-15
        longest = await journal.call(lambda c: expire_journal(c, Policy(14, tenant_days={"b": 60}), TODAY, ["sqlite"]))
        assert longest.checkpoints == 0  # tenant b keeps 60 days: 2026-11-01 is still needed
        plain = await journal.call(lambda c: expire_journal(c, Policy(14), TODAY, ["sqlite"]))
        assert plain.checkpoints == 1
        assert await _checkpoint_seqs(journal) == [3]
    finally:
        journal.close()


async def test_the_newest_checkpoint_stays_however_old(tmp_path: Path) -> None:
    """It signs the chain the journal still holds; without it `eventlog verify` reports the checkpoints gone."""
    journal = await _journal(tmp_path / "j.db", [("a", OLD), ("a", OLD)])
    try:
        await _checkpoints_at(journal, "2026-09-01T00:00:00Z", "2026-09-02T00:00:00Z")
        expired = await journal.call(lambda c: expire_journal(c, Policy(14), TODAY, ["sqlite"]))
        assert expired.checkpoints == 1
        assert await _checkpoint_seqs(journal) == [2]
    finally:
        journal.close()
