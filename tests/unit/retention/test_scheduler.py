"""The in-service schedule: a run when the last completed one is older than the interval, on one node only."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import orjson

from eventlog.canonical import canonical_json
from eventlog.journal import Journal, Prepared
from retention.lock import SqliteLock
from retention.policy import Policy
from retention.run import Report, Retention
from retention.scheduler import Scheduler
from search.retention import TenantDay
from search.sqlite.expiry import EmbeddedExpiry


def _scheduler(tmp_path: Path, interval_seconds: float) -> Scheduler:
    retention = Retention(
        store=EmbeddedExpiry(tmp_path / "search.db"),
        policy=lambda: Policy(default_days=14),
        archive=None,
        journal=None,
        sinks=[],
        operator_tenant="ops",
    )
    return Scheduler(
        retention, SqliteLock(tmp_path / "retention.db"), interval_seconds=interval_seconds, check_seconds=0.02
    )


async def test_runs_once_per_interval_and_only_where_the_lock_is_free(tmp_path: Path) -> None:
    node_a = _scheduler(tmp_path, interval_seconds=3600)
    task = asyncio.create_task(node_a.run_forever())
    try:
        for _ in range(200):
            if node_a.last is not None:
                break
            await asyncio.sleep(0.01)
        assert node_a.last is not None
        first = node_a.last_finished_at
        await asyncio.sleep(0.1)  # several checks later: the interval has not passed, no second run
        assert node_a.last_finished_at == first
    finally:
        task.cancel()
    status = node_a.status()
    assert status["last_error"] is None
    assert status["last"]["failures"] == []

    node_b = _scheduler(tmp_path, interval_seconds=0)
    lock = SqliteLock(tmp_path / "retention.db")
    assert lock.acquire("someone-else", 60)
    assert await node_b.run_now() is None  # another node holds the lock
    lock.release("someone-else", completed=False)
    assert await node_b.run_now() is not None


async def test_a_node_without_the_lock_still_expires_its_own_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db", stream="node-b")
    journal.open()
    try:
        for i, at in enumerate(["2020-01-01T00:00:00.000000Z"] * 3 + ["2999-01-01T00:00:00.000000Z"]):
            body = {"id": f"e{i}", "tenant": "t", "time": at}
            await journal.append("t", [Prepared(f"e{i}", body, canonical_json(body), False)])
        await journal.call(lambda c: c.execute("INSERT INTO sink_cursors VALUES ('opensearch', 4, 0)"))
        retention = Retention(
            store=EmbeddedExpiry(tmp_path / "search.db"),
            policy=lambda: Policy(default_days=14),
            archive=None,
            journal=journal,
            sinks=["opensearch"],
            operator_tenant="ops",
        )
        lock = SqliteLock(tmp_path / "retention.db")
        assert lock.acquire("node-a", 3600)  # node A holds the cluster's lock for the whole test
        scheduler = Scheduler(retention, lock, interval_seconds=3600, check_seconds=0.02)
        task = asyncio.create_task(scheduler.run_forever())
        try:
            for _ in range(200):
                if journal.read_after(0, 10)[0].seq == 4:
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
        # The three old, delivered events went; the newest of the seeded ones stays (the chain head then).
        assert journal.read_after(0, 10)[0].id == "e3"
        assert lock.last_completed() is None  # the shared run was never this node's
    finally:
        journal.close()


def test_the_public_summary_has_state_and_counts_but_no_tenant_key_or_error_text(tmp_path: Path) -> None:
    scheduler = _scheduler(tmp_path, interval_seconds=3600)
    assert scheduler.summary() == {"state": "not_run", "removed_events": 0, "failure_count": 0}
    scheduler.last = Report(
        today=date(2026, 3, 1),
        dry_run=False,
        removed=[TenantDay("gone-tenant", date(2026, 1, 1), 7)],
        archived=[{"tenant": "gone-tenant", "key": "eventlog-archive/gone-tenant/2026-01-01.ndjson.gz"}],
        held=[TenantDay("tenant-on-hold", date(2026, 1, 1), 3)],
        failures=["archive of secret-tenant 2026-01-02 failed: AccessDenied"],
    )
    summary = scheduler.summary()
    assert summary == {"state": "failing", "removed_events": 7, "failure_count": 1}
    status = orjson.dumps(scheduler.status()).decode()
    for private in ("gone-tenant", "tenant-on-hold", "secret-tenant", "eventlog-archive/", "AccessDenied"):
        assert private in status
        assert private not in orjson.dumps(summary).decode()
    scheduler.last, scheduler.last_error = Report(today=date(2026, 3, 2), dry_run=False), None
    assert scheduler.summary()["state"] == "ok"
    scheduler.last_error = "RuntimeError: the lock store is read-only"
    assert scheduler.summary() == {"state": "failing", "removed_events": 0, "failure_count": 0}
