"""Retention inside the service: once per interval, on one node of the cluster (the lock's holder)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

from retention.lock import Lock
from retention.run import Report, Retention

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        retention: Retention,
        lock: Lock,
        *,
        interval_seconds: float,
        check_seconds: float = 300.0,
        lock_ttl_seconds: float = 6 * 3600.0,
    ) -> None:
        self._retention = retention
        self._lock = lock
        self._interval = interval_seconds
        self._check = check_seconds
        self._ttl = lock_ttl_seconds
        self._holder = f"{socket.gethostname()}:{os.getpid()}"
        self.last: Report | None = None
        self.last_error: str | None = None
        self.last_finished_at: float | None = None
        self._running = asyncio.Lock()
        self._local_done_at: float | None = None

    async def run_now(self, *, dry_run: bool = False) -> Report | None:
        """Run unless another node (or this one) is running; None when the lock is taken."""
        if dry_run:
            return await self._retention.run(dry_run=True)
        if self._running.locked():
            return None
        async with self._running:
            if not await asyncio.to_thread(self._lock.acquire, self._holder, self._ttl):
                return None
            completed = False
            try:
                report = await self._retention.run()
                completed = report.ok
                self.last, self.last_error = report, None
                return report
            except Exception as exc:
                self.last_error = str(exc)[:500]
                raise
            finally:
                self.last_finished_at = time.time()
                await asyncio.to_thread(self._lock.release, self._holder, completed=completed)

    async def run_forever(self) -> None:
        while True:
            # Checking after a pause keeps start-up light (and a crash loop from running retention each time).
            await asyncio.sleep(self._check)
            try:
                last = await asyncio.to_thread(self._lock.last_completed)
                if (last is None or time.time() - last >= self._interval) and await self.run_now() is not None:
                    self._local_done_at = time.time()
                elif self._local_done_at is None or time.time() - self._local_done_at >= self._interval:
                    # Another node expires the shared store; this node's journal is still its own to expire.
                    await self._retention.run(shared=False)
                    self._local_done_at = time.time()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged, counted in /readyz, tried again at the next check
                self.last_error = str(exc)[:500]
                log.error("retention run failed; will retry", extra={"error": self.last_error})

    def summary(self) -> dict[str, Any]:
        """The public part of /readyz under "retention": no tenant, archive key or error text."""
        if self.last_error is not None or (self.last is not None and not self.last.ok):
            state = "failing"
        else:
            state = "ok" if self.last is not None else "not_run"
        last = self.last
        return {
            "state": state,
            "removed_events": sum(t.events for t in last.removed) if last is not None else 0,
            "failure_count": len(last.failures) if last is not None else 0,
        }

    def status(self) -> dict[str, Any]:
        """The part of /readyz under "retention" for admin tokens."""
        return {
            "last_finished_at": self.last_finished_at,
            "last_error": self.last_error,
            "last": self.last.as_dict() | {"removed": len(self.last.removed)} if self.last is not None else None,
        }
