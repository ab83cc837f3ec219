"""`eventlog verify` catches an edited, deleted or re-hashed row, a cut tail, a deleted prefix or checkpoint, a forged checkpoint."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest

from eventlog.canonical import canonical_json
from eventlog.chain import link_hash
from eventlog.checkpoints import Checkpointer, load_or_create_key, public_key_path
from eventlog.journal import Journal, Prepared, purge_delivered
from eventlog.verify import Report, verify_journal
from retention.journal import expire_journal
from retention.policy import Policy
from search.retention import Hold


@pytest.fixture
async def journal_dir(tmp_path: Path) -> Path:
    journal = Journal(tmp_path / "journal.db", stream="node-a")
    journal.open()
    key = load_or_create_key(tmp_path / "signing.key")
    checkpointer = Checkpointer(journal, key, 300)
    try:
        for i in range(1, 11):
            body = {"id": f"e{i}", "tenant": "t", "action": "a.b", "message": f"event {i}"}
            await journal.append("t", [Prepared(f"e{i}", body, canonical_json(body), False)])
            if i == 5:
                await checkpointer.checkpoint()
        await checkpointer.checkpoint()
    finally:
        journal.close()
    return tmp_path


def _verify(path: Path) -> list[str]:
    return verify_journal(path / "journal.db", public_key_path(path / "signing.key")).problems


def _edit(path: Path, sql: str, *params: object) -> None:
    conn = sqlite3.connect(path / "journal.db")
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def test_untouched_journal_verifies(journal_dir: Path) -> None:
    report = verify_journal(journal_dir / "journal.db", public_key_path(journal_dir / "signing.key"))
    assert report.ok, report.problems
    assert (report.events, report.checkpoints) == (10, 2)


def test_signing_key_is_private(journal_dir: Path) -> None:
    assert (journal_dir / "signing.key").stat().st_mode & 0o777 == 0o600


def test_edited_document_is_named(journal_dir: Path) -> None:
    conn = sqlite3.connect(journal_dir / "journal.db")
    (document,) = conn.execute("SELECT document FROM events WHERE seq = 4").fetchone()
    conn.close()
    doc = orjson.loads(document)
    doc["message"] = "nothing happened"
    _edit(journal_dir, "UPDATE events SET document = ? WHERE seq = 4", orjson.dumps(doc))
    problems = _verify(journal_dir)
    assert problems[0] == "event seq=4 id=e4: hash does not match the event's content"


def test_rehashed_row_breaks_the_next_link_and_the_checkpoint(journal_dir: Path) -> None:
    """An attacker who recomputes the edited event's hash still breaks its successor and the signature."""
    conn = sqlite3.connect(journal_dir / "journal.db")
    prev, document = conn.execute("SELECT prev, document FROM events WHERE seq = 5").fetchone()
    conn.close()
    doc = orjson.loads(document)
    doc["message"] = "forged"
    chain = doc.pop("chain")
    chain["hash"] = link_hash(prev, canonical_json(doc))
    doc["chain"] = chain
    _edit(journal_dir, "UPDATE events SET document = ?, hash = ? WHERE seq = 5", orjson.dumps(doc), chain["hash"])
    problems = _verify(journal_dir)
    assert problems[0] == "event seq=6 id=e6: prev does not match the previous event's hash"
    assert "checkpoint seq=5: signed hash differs from the stored event's hash" in problems


def test_deleted_row_is_a_gap(journal_dir: Path) -> None:
    _edit(journal_dir, "DELETE FROM events WHERE seq = 7")
    assert _verify(journal_dir)[0] == "event seq=8 id=e8: sequence gap: expected seq 7"


def test_forged_checkpoint_signature_is_caught(journal_dir: Path) -> None:
    _edit(journal_dir, "UPDATE checkpoints SET hash = ? WHERE seq = 10", "0" * 64)
    assert _verify(journal_dir) == ["checkpoint seq=10: signature does not verify"]


async def _journal(
    path: Path, events: int, checkpoint_at: set[int], *, tenant_of: dict[int, str] | None = None
) -> None:
    """A journal of `events` events, signed after each seq in `checkpoint_at`."""
    journal = Journal(path / "journal.db", stream="node-a")
    journal.open()
    checkpointer = Checkpointer(journal, load_or_create_key(path / "signing.key"), 300)
    try:
        for i in range(1, events + 1):
            tenant = (tenant_of or {}).get(i, "t")
            body = {"id": f"e{i}", "tenant": tenant, "time": "2026-01-01T00:00:00.000000Z", "message": f"event {i}"}
            await journal.append(tenant, [Prepared(f"e{i}", body, canonical_json(body), False)])
            if i in checkpoint_at:
                await checkpointer.checkpoint()
    finally:
        journal.close()


async def _call(path: Path, fn: Callable[[sqlite3.Connection], object]) -> None:
    """Run `fn` the way the service does: in the journal's writer thread."""
    journal = Journal(path / "journal.db", stream="node-a")
    journal.open()
    try:
        await journal.call(fn)
    finally:
        journal.close()


def _report(path: Path) -> Report:
    return verify_journal(path / "journal.db", public_key_path(path / "signing.key"))


def test_cut_tail_with_its_checkpoint_is_reported(journal_dir: Path) -> None:
    _edit(journal_dir, "DELETE FROM events WHERE seq > 8")
    problems = _verify(journal_dir)
    assert problems[0] == "events seq 9..10 are gone from the end of the journal (it recorded seq 10 as its head)"
    assert "checkpoint seq=10: signs an event past the journal's end (its last event is seq 8)" in problems


async def test_cut_tail_after_the_newest_checkpoint_is_reported(tmp_path: Path) -> None:
    await _journal(tmp_path, 12, {10})
    _edit(tmp_path, "DELETE FROM events WHERE seq > 10")
    assert _verify(tmp_path) == [
        "events seq 11..12 are gone from the end of the journal (it recorded seq 12 as its head)"
    ]


def test_every_event_deleted_is_reported(journal_dir: Path) -> None:
    _edit(journal_dir, "DELETE FROM events")
    problems = _verify(journal_dir)
    assert problems[0] == "events seq 1..10 are gone from the end of the journal (it recorded seq 10 as its head)"
    assert "checkpoint seq=5: signs an event the journal does not hold, and no purge removed it" in problems


def test_checkpoint_hash_is_compared_without_a_key(journal_dir: Path) -> None:
    _edit(journal_dir, "UPDATE checkpoints SET hash = ? WHERE seq = 10", "0" * 64)
    report = verify_journal(journal_dir / "journal.db", None)
    assert report.problems == ["checkpoint seq=10: signed hash differs from the stored event's hash"]
    assert not report.signatures_checked
    assert report.unchecked[0].startswith("signatures: not checked (no public key was given)")


def test_without_a_key_an_untouched_journal_says_signatures_were_not_checked(journal_dir: Path) -> None:
    report = verify_journal(journal_dir / "journal.db", None)
    assert report.ok
    assert not report.complete
    assert len(report.unchecked) == 1
    assert "signatures" in report.unchecked[0]


def test_a_public_key_path_that_does_not_exist_is_an_error(journal_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"no such file.*signing\.pub"):
        verify_journal(journal_dir / "journal.db", journal_dir / "elsewhere.pub")


def test_a_public_key_file_that_is_not_a_key_is_an_error(journal_dir: Path) -> None:
    (journal_dir / "bad.pub").write_text("not a key")
    with pytest.raises(ValueError, match=r"bad\.pub"):
        verify_journal(journal_dir / "journal.db", journal_dir / "bad.pub")


def test_every_checkpoint_deleted_is_reported(journal_dir: Path) -> None:
    _edit(journal_dir, "DELETE FROM checkpoints")
    assert _verify(journal_dir) == [
        "checkpoint seq=10 is gone: the journal recorded it as its newest signed checkpoint (none is left)"
    ]


def test_newest_checkpoint_deleted_is_reported(journal_dir: Path) -> None:
    _edit(journal_dir, "DELETE FROM checkpoints WHERE seq = 10")
    assert _verify(journal_dir) == [
        "checkpoint seq=10 is gone: the journal recorded it as its newest signed checkpoint (newest left: seq 5)"
    ]


async def test_a_purged_prefix_verifies_and_is_fully_checked(journal_dir: Path) -> None:
    await _call(journal_dir, lambda c: purge_delivered(c, up_to_seq=10, committed_before=time.time() + 1))
    report = _report(journal_dir)
    assert (report.ok, report.complete, report.first_seq, report.events) == (True, True, 10, 1)
    assert report.signed_through == 10
    assert report.notes == [
        "events seq 1..9 were purged (retention, or the prune of delivered events): "
        "the journal no longer holds them to check"
    ]


GONE_SIGNED = "checkpoint seq=5: signs an event the journal does not hold, and no purge removed it"


@pytest.mark.parametrize(
    ("purged_through", "deleted_through", "problems"),
    [
        (None, 3, ["events seq 1..3 are gone, but no purge removed them (none is recorded)"]),
        (None, 6, ["events seq 1..6 are gone, but no purge removed them (none is recorded)", GONE_SIGNED]),
        (3, 6, ["events seq 4..6 are gone, but no purge removed them (the last purge went up to seq 3)", GONE_SIGNED]),
    ],
)
async def test_a_deleted_prefix_is_reported(
    journal_dir: Path, purged_through: int | None, deleted_through: int, problems: list[str]
) -> None:
    if purged_through is not None:
        await _call(
            journal_dir, lambda c: purge_delivered(c, up_to_seq=purged_through, committed_before=time.time() + 1)
        )
        assert _report(journal_dir).ok
    _edit(journal_dir, f"DELETE FROM events WHERE seq <= {deleted_through}")
    assert _verify(journal_dir) == problems


async def test_a_replaced_first_event_after_a_purge_is_caught(journal_dir: Path) -> None:
    """The purge records the hash of the last event it removed: the first one left must link to it."""
    await _call(journal_dir, lambda c: purge_delivered(c, up_to_seq=3, committed_before=time.time() + 1))
    _edit(journal_dir, "UPDATE events SET prev = ? WHERE seq = 4", "1" * 64)
    assert _verify(journal_dir)[0] == "event seq=4 id=e4: prev does not match the previous event's hash"


async def test_deleted_events_under_legal_hold_are_reported(tmp_path: Path) -> None:
    """Retention's expiry stops at a held event; deleting it and what follows it by hand is caught."""
    await _journal(tmp_path, 6, {6}, tenant_of={3: "held"})
    hold = Hold("h", "held", None, None, "case", datetime(2026, 1, 2, tzinfo=UTC), "tok")

    def expire(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO sink_cursors VALUES ('sqlite', 6, 0)")
        assert expire_journal(conn, Policy(14, holds=(hold,)), date(2026, 3, 1), ["sqlite"]).first_kept_seq == 3

    await _call(tmp_path, expire)
    assert _report(tmp_path).complete
    _edit(tmp_path, "DELETE FROM events WHERE seq <= 4")
    assert _verify(tmp_path) == [
        "events seq 3..4 are gone, but no purge removed them (the last purge went up to seq 2)"
    ]


async def test_events_after_the_newest_checkpoint_are_named_as_not_yet_signed(tmp_path: Path) -> None:
    await _journal(tmp_path, 12, {10})
    report = _report(tmp_path)
    assert report.complete
    assert report.signed_through == 10
    assert report.notes == [
        "events seq 11..12 come after the newest signed checkpoint (seq 10): their chain holds, "
        "but no signature covers them yet"
    ]


async def test_a_journal_never_checkpointed_verifies_with_a_note(tmp_path: Path) -> None:
    await _journal(tmp_path, 3, set())
    report = _report(tmp_path)
    assert report.complete
    assert report.signed_through is None
    assert report.notes == [
        "events seq 1..3: no signed checkpoint covers them; their chain holds, but no signature vouches for them yet"
    ]


def test_a_journal_without_bookkeeping_says_what_went_unchecked(journal_dir: Path) -> None:
    """A journal last written by an older eventlog (or whose bookkeeping was deleted) is not taken as whole."""
    _edit(journal_dir, "DELETE FROM meta WHERE key != 'stream'")
    report = _report(journal_dir)
    assert report.ok
    assert [line.split(":")[0] for line in report.unchecked] == ["deleted prefix", "cut tail", "deleted checkpoints"]


async def test_opening_a_journal_without_bookkeeping_records_it(journal_dir: Path) -> None:
    _edit(journal_dir, "DELETE FROM meta WHERE key != 'stream'")
    await _call(journal_dir, lambda c: None)
    assert _report(journal_dir).complete
    _edit(journal_dir, "DELETE FROM events WHERE seq = 10")
    assert _verify(journal_dir)[0].startswith("events seq 10..10 are gone from the end of the journal")


def test_a_checkpoint_the_journal_did_not_record_is_reported(journal_dir: Path) -> None:
    _edit(journal_dir, "UPDATE meta SET value = '5' WHERE key = 'checkpoint_seq'")
    assert _verify(journal_dir) == ["checkpoint seq=10 was not recorded by the journal (its newest recorded is seq 5)"]


def test_a_bookkeeping_value_that_is_not_a_number_is_reported(journal_dir: Path) -> None:
    _edit(journal_dir, "UPDATE meta SET value = 'x' WHERE key = 'head_seq'")
    assert _verify(journal_dir) == ["the journal's record of head_seq is not a number: 'x'"]
