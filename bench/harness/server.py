"""`eventlog serve` under a benchmark, and what it reads from it: /readyz, /metrics, CPU time, a graceful stop."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from bench.harness.cpu import process_cpu_seconds
from tests.integration.server import CLEAN_EXIT_CODES, ServerProcess


@dataclass(frozen=True)
class Readiness:
    """What /readyz says: the journal's last sequence number and how far the sinks are behind it."""

    last_seq: int
    lag_events: int  # summed over the sinks
    sinks: dict[str, dict[str, Any]]  # per sink: state, cursor, lag_events, lag_seconds, last_error


@dataclass(frozen=True)
class CommitStats:
    """The journal's group commits so far (eventlog_journal_commit_seconds, eventlog_journal_group_events)."""

    commits: float = 0.0
    seconds: float = 0.0
    events: float = 0.0

    def minus(self, before: CommitStats) -> CommitStats:
        return CommitStats(self.commits - before.commits, self.seconds - before.seconds, self.events - before.events)

    @property
    def mean_group(self) -> float:
        return self.events / self.commits if self.commits else 0.0

    @property
    def mean_commit_ms(self) -> float:
        return self.seconds / self.commits * 1000 if self.commits else 0.0


_COMMIT_METRIC = re.compile(r"^(eventlog_journal_(?:commit_seconds|group_events)_(?:sum|count)) (\S+)$", re.MULTILINE)


def parse_commit_stats(metrics: str) -> CommitStats:
    values = {name: float(value) for name, value in _COMMIT_METRIC.findall(metrics)}
    return CommitStats(
        commits=values.get("eventlog_journal_commit_seconds_count", 0.0),
        seconds=values.get("eventlog_journal_commit_seconds_sum", 0.0),
        events=values.get("eventlog_journal_group_events_sum", 0.0),
    )


def _get(url: str, timeout: float = 5.0, token: str | None = None) -> bytes:
    """The body of a loopback GET, whatever the status (/readyz answers 503 with the same JSON).

    urllib, not httpx: a progress thread polls this every second during the load, and an httpx client
    would build an SSL context at every call on the cores the server needs.
    """
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # loopback URL built here
            return bytes(answer.read())
    except urllib.error.HTTPError as exc:
        return bytes(exc.read())


class Server(ServerProcess):
    """`eventlog serve` under test, and what a benchmark reads from it.

    Network errors of the reads are OSErrors (urllib), so that a poller can skip one.
    """

    _admin: str | None = None

    def readiness(self) -> Readiness:
        # The journal's last_seq and the sinks' cursors are the detail /readyz shows an admin token.
        if self._admin is None:
            self._admin = self.create_token("ops", "admin")
        ready = json.loads(_get(self.url + "/readyz", token=self._admin))
        sinks: dict[str, dict[str, Any]] = ready["sinks"]
        lag = sum(int(sink["lag_events"]) for sink in sinks.values())
        return Readiness(int(ready["journal"]["last_seq"]), lag, sinks)

    def commit_stats(self) -> CommitStats:
        return parse_commit_stats(_get(self.url + "/metrics").decode())

    def wait_drained(self, timeout: float) -> tuple[float, int]:
        """Wait until every sink caught up with the journal: (seconds waited, events still behind)."""
        started = time.monotonic()
        lag = self.readiness().lag_events
        while lag and time.monotonic() - started < timeout:
            time.sleep(0.2)
            lag = self.readiness().lag_events
        return time.monotonic() - started, lag

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def stop_gracefully(self) -> tuple[bool, str]:
        """SIGTERM and wait for the graceful shutdown: (clean, how it ended).

        Clean takes both a clean exit code and uvicorn's last shutdown line in the log: an exit code alone
        does not show whether the journal was closed.
        """
        code = self.stop()
        completed = "Application shutdown complete" in self.log_tail(50)
        clean = code in CLEAN_EXIT_CODES and completed
        return clean, f"exit {code}, " + (
            "graceful shutdown completed" if completed else "NO graceful shutdown in the log"
        )
