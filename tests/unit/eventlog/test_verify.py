"""`eventlog verify` catches an edited, deleted or re-hashed row and a forged checkpoint."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from eventlog.canonical import canonical_json
from eventlog.chain import link_hash
from eventlog.checkpoints import Checkpointer, load_or_create_key, public_key_path
from eventlog.journal import Journal, Prepared
from eventlog.verify import verify_journal


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
