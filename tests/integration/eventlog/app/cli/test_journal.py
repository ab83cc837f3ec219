"""`eventlog journal drain`: a journal nobody serves any more reaches the shared store."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from eventlog.append import prepare
from eventlog.journal import Journal
from eventlog.model import EventIn

pytestmark = pytest.mark.opensearch

EVENTS = 250


async def _journal_with_backlog(data_dir: Path) -> None:
    """What a node leaves when it dies right after its commits: events in the journal, none delivered."""
    journal = Journal(data_dir / "journal.db", stream="dead-node")
    journal.open()
    try:
        now = datetime.now(UTC)
        for start in range(0, EVENTS, 100):
            batch = [
                prepare(EventIn(action="storage.tables.create", message=f"event {i}"), tenant="acme", received_at=now)
                for i in range(start, min(start + 100, EVENTS))
            ]
            await journal.append("acme", batch)
    finally:
        journal.close()


def _drain(data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventlog.app.cli", "journal", "drain", "--data-dir", str(data_dir)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _stored(url: str, prefix: str) -> int:
    httpx.post(f"{url}/{prefix}-events/_refresh", params={"ignore_unavailable": "true"}).raise_for_status()
    answer = httpx.get(f"{url}/{prefix}-events/_count", params={"ignore_unavailable": "true"})
    answer.raise_for_status()
    return int(answer.json()["count"])


async def test_a_dead_nodes_backlog_is_delivered_once(tmp_path: Path, opensearch_url: str, index_prefix: str) -> None:
    await _journal_with_backlog(tmp_path)
    env = {"EVENTLOG_OPENSEARCH_URL": opensearch_url, "EVENTLOG_OPENSEARCH_INDEX_PREFIX": index_prefix}
    drained = _drain(tmp_path, env)
    assert drained.returncode == 0, drained.stderr
    assert drained.stdout.startswith("ok:")
    assert "dead-node" in drained.stderr
    assert _stored(opensearch_url, index_prefix) == EVENTS
    again = _drain(tmp_path, env)  # nothing left: the cursors moved, and delivery is idempotent anyway
    assert again.returncode == 0, again.stderr
    assert _stored(opensearch_url, index_prefix) == EVENTS


def test_no_journal_is_a_clear_error(tmp_path: Path, opensearch_url: str) -> None:
    drained = _drain(tmp_path / "nothing", {"EVENTLOG_OPENSEARCH_URL": opensearch_url})
    assert drained.returncode == 2
    assert "no journal at" in drained.stderr
    assert "--data-dir" in drained.stderr
