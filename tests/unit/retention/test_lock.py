"""The SQLite retention lock: one holder at a time, expiry, and the record of the last completed run."""

from __future__ import annotations

import time
from pathlib import Path

from retention.lock import SqliteLock


def test_one_holder_until_release_or_expiry(tmp_path: Path) -> None:
    lock = SqliteLock(tmp_path / "retention.db")
    other = SqliteLock(tmp_path / "retention.db")  # another process on the same data dir
    assert lock.acquire("node-a", 60)
    assert not other.acquire("node-b", 60)
    assert lock.acquire("node-a", 60)  # re-entrant for the same holder
    assert lock.last_completed() is None
    lock.release("node-b", completed=True)  # not the holder: no effect
    assert not other.acquire("node-b", 60)
    lock.release("node-a", completed=True)
    finished = lock.last_completed()
    assert finished is not None
    assert abs(finished - time.time()) < 5
    assert other.acquire("node-b", 0.01)
    time.sleep(0.05)
    assert lock.acquire("node-a", 60)  # node-b's lock expired (it died mid-run)
    lock.release("node-a", completed=False)
    assert lock.last_completed() == finished  # a failed run does not count as done
