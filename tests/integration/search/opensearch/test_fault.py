"""OpenSearch down for 30 s: ingest keeps answering 201, and nothing is lost or doubled once it is back.

docs/architecture.md, "The path of one event", step 4: a sink that is down is retried with
backoff while the journal keeps the events. This test runs everything for real:

- its OWN OpenSearch node (scripts/opensearch.sh, own run dir and port), never
  the session node the other tests share, because it is SIGKILLed here;
- `eventlog serve` as a subprocess (tests/integration/server.py) on that node;
- four HTTP clients (single events and batches, server and client ids) that
  post for the whole test, 10-30 ms apart each (about 700 events/s in all).

Timeline: load for a few seconds with the node up; SIGKILL the node's JVM; keep
loading for 30 s, every answer a 201, /readyz showing the sink retrying with a
`last_error` and its cursor standing still (nothing dropped, nothing dead-
lettered); start the node again on the same data dir and port; load a little
more; stop the load; wait until the sink's lag is 0; then ask OpenSearch
directly: every acknowledged id exactly once (a composite aggregation counts
documents per `id`), the total equal to the acknowledged count, and no dead
letters.

The service runs with EVENTLOG_FANOUT_MAX_BACKOFF_SECONDS=2 so that it retries
within 2 s of the node's return (with the default of 30 s the catch-up alone
could take half a minute); the backoff itself is not what this test is about.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.server import ServerProcess
from tests.opensearch_node import run_script

pytestmark = [pytest.mark.opensearch, pytest.mark.slow, pytest.mark.timeout(240)]

REPO_ROOT = Path(__file__).resolve().parents[4]
SCRIPT = REPO_ROOT / "scripts" / "opensearch.sh"

TENANT = "fault"  # every ingested event; the admin's self-audit events go to another tenant
ADMIN_TENANT = "fault-ops"
CLIENTS = 4
WARM_UP_S = 4.0
OUTAGE_S = 30.0
AFTER_RESTART_S = 3.0
CATCH_UP_S = 40.0
HTTP_TIMEOUT_S = 10.0
NODE_START_TIMEOUT_S = 300.0
NODE_STOP_TIMEOUT_S = 90.0
READYZ_EVERY_S = 1.0


# -- our own OpenSearch node -----------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class Node:
    """A single OpenSearch node run by scripts/opensearch.sh in a private run dir on a fixed port."""

    def __init__(self) -> None:
        # mkdtemp makes 0700; the node runs as the user `opensearch` and must get in.
        self.base = Path(tempfile.mkdtemp(prefix="eventlog-fault-"))
        self.base.chmod(0o755)
        self.run_dir = self.base / "run"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _script(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env.pop("OPENSEARCH_URL", None)  # always a node of our own, never a shared cluster
        env["OPENSEARCH_PORT"] = str(self.port)
        env["EVENTLOG_RUN_DIR"] = str(self.run_dir)
        return run_script(command, env, timeout)

    def start(self) -> None:
        """Start (or start again, on the same data and port) and return once the cluster is yellow."""
        result = self._script("start", NODE_START_TIMEOUT_S)
        if result.returncode != 0 or not result.stdout.strip().endswith(f"OPENSEARCH_URL={self.url}"):
            raise RuntimeError(f"{SCRIPT} start failed (exit {result.returncode}):\n{_tail(result.stderr)}")

    def pid(self) -> int:
        """The JVM's pid, from the script's pid file, checked against /proc."""
        pid = int((self.run_dir / "opensearch.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        assert b"org.opensearch.bootstrap.OpenSearch" in cmdline, f"pid {pid} is not an OpenSearch JVM: {cmdline!r}"
        return pid

    def kill(self) -> None:
        """SIGKILL the JVM (no shutdown code runs) and wait until it is gone."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30.0
        while Path(f"/proc/{pid}").exists():
            # The launcher (runuser) reaps it; a zombie has no cmdline left.
            with contextlib.suppress(OSError):
                if not Path(f"/proc/{pid}/cmdline").read_bytes():
                    break
            assert time.monotonic() < deadline, f"OpenSearch pid {pid} outlived SIGKILL by 30 s"
            time.sleep(0.05)

    def stop(self) -> str:
        """Stop whatever runs from the run dir; answers a problem to report, or ''."""
        try:
            result = self._script("stop", NODE_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"{SCRIPT} stop timed out"
        if result.returncode != 0:
            return f"{SCRIPT} stop failed (exit {result.returncode}):\n{_tail(result.stderr)}"
        return ""

    def log_tail(self) -> str:
        try:
            return _tail((self.run_dir / "logs" / "eventlog-test.log").read_text(errors="replace"))
        except OSError:
            return "(no node log)"

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


# -- the load --------------------------------------------------------------------


@dataclass
class Load:
    """Clients posting in a thread of their own; what each request got, by phase."""

    url: str
    secret: str
    phase: str = "warm-up"
    acked: dict[str, str] = field(default_factory=dict)  # event id -> phase of its request
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)  # (phase, status or error) -> requests
    problems: list[str] = field(default_factory=list)
    slowest_s: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="fault-load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(HTTP_TIMEOUT_S + 10)
            assert not self._thread.is_alive(), "the load thread did not stop"

    # list() copies in one step, so the main thread may read while the load thread writes.
    def acked_in(self, phase: str) -> int:
        return sum(1 for p in list(self.acked.values()) if p == phase)

    def requests_in(self, phase: str) -> Counter[str]:
        return Counter({status: n for (p, status), n in list(self.answers.items()) if p == phase})

    async def _run(self) -> None:
        numbers = itertools.count()
        async with httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.secret}"},
            timeout=HTTP_TIMEOUT_S,
            trust_env=False,
            limits=httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS),
        ) as http:
            await asyncio.gather(*(self._client(http, k, numbers) for k in range(CLIENTS)))

    async def _client(self, http: httpx.AsyncClient, k: int, numbers: Iterator[int]) -> None:
        """Clients 0 and 1 send single events, 2 and 3 batches of 2-20; odd clients give their own ids."""
        rng = random.Random(k)
        while not self._stop.is_set():
            number = next(numbers)
            size = 1 if k < 2 else rng.randint(2, 20)
            events = []
            for i in range(size):
                event: dict[str, Any] = {
                    "action": "fault.write",
                    "outcome": "success",
                    "actor": {"type": "service", "id": f"client-{k}", "ip": f"192.0.2.{k + 1}"},
                    "target": {"type": "request", "id": str(number)},
                    "message": f"fault request {number} event {i} of {size}",
                    "details": {"request": number, "i": i, "client": k},
                }
                if k % 2 == 1:
                    event["id"] = f"f-{number}-{i}"
                events.append(event)
            body: dict[str, Any] = events[0] if size == 1 else {"events": events}
            phase = self.phase
            started = time.monotonic()
            try:
                answer = await http.post("/v1/events", json=body)
            except httpx.HTTPError as exc:
                self.answers[phase, type(exc).__name__] += 1
                self.problems.append(f"{phase}: request {number} failed: {exc!r}")
                await asyncio.sleep(0.1)
                continue
            elapsed = time.monotonic() - started
            self.slowest_s[phase] = max(self.slowest_s.get(phase, 0.0), elapsed)
            self.answers[phase, str(answer.status_code)] += 1
            if answer.status_code != 201:
                self.problems.append(f"{phase}: request {number} answered {answer.status_code}: {answer.text[:300]}")
                continue
            receipts = answer.json()["receipts"]
            if len(receipts) != size or any(r["duplicate"] for r in receipts):
                self.problems.append(f"{phase}: request {number} ({size} events) got receipts {receipts!r}")
            for receipt in receipts:
                if receipt["id"] in self.acked:
                    self.problems.append(f"{phase}: event id {receipt['id']} acknowledged twice")
                self.acked[receipt["id"]] = phase
            # A short think time: the point is a steady stream, not the highest rate.
            await asyncio.sleep(rng.uniform(0.01, 0.03))


# -- what the service and the node say ----------------------------------------------


@dataclass(frozen=True)
class SinkView:
    at_s: float
    status: int
    state: str
    cursor: int
    lag_events: int
    last_error: str | None


def sink_view(http: httpx.Client, started: float, admin: str) -> SinkView:
    answer = http.get("/readyz", headers={"Authorization": f"Bearer {admin}"})
    sink = answer.json()["sinks"]["opensearch"]
    return SinkView(
        round(time.monotonic() - started, 1),
        answer.status_code,
        str(sink["state"]),
        int(sink["cursor"]),
        int(sink["lag_events"]),
        sink["last_error"],
    )


def dead_letters(http: httpx.Client, admin: str) -> list[dict[str, Any]]:
    answer = http.get("/v1/admin/deadletters", headers={"Authorization": f"Bearer {admin}"})
    assert answer.status_code == 200, answer.text
    letters: list[dict[str, Any]] = answer.json()
    return letters


def indexed_ids(search: httpx.Client, alias: str) -> tuple[Counter[str], int]:
    """Documents per event `id` of TENANT (a composite aggregation, paged), and the total hit count."""
    query = {"bool": {"filter": [{"term": {"tenant": TENANT}}]}}
    counts: Counter[str] = Counter()
    after: dict[str, Any] | None = None
    total = -1
    while True:
        composite: dict[str, Any] = {"size": 10_000, "sources": [{"id": {"terms": {"field": "id"}}}]}
        if after is not None:
            composite["after"] = after
        body = {"size": 0, "track_total_hits": True, "query": query, "aggs": {"ids": {"composite": composite}}}
        answer = search.post(f"/{alias}/_search", json=body, params={"routing": TENANT})
        assert answer.status_code == 200, answer.text
        result = answer.json()
        total = int(result["hits"]["total"]["value"])
        buckets = result["aggregations"]["ids"]["buckets"]
        for bucket in buckets:
            counts[str(bucket["key"]["id"])] += int(bucket["doc_count"])
        after = result["aggregations"]["ids"].get("after_key")
        if not buckets or after is None:
            return counts, total


def _sample(items: set[str] | list[str], n: int = 5) -> list[str]:
    return sorted(items)[:n]


# -- the test ------------------------------------------------------------------------


def test_ingest_survives_opensearch_outage_and_every_event_is_indexed_exactly_once(tmp_path: Path) -> None:
    node = Node()
    prefix = f"fault{uuid.uuid4().hex[:10]}"
    alias = f"{prefix}-events"
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        stack.callback(node.remove)

        def stop_node() -> None:
            problem = node.stop()
            if problem:
                notes.append(problem)

        stack.callback(stop_node)

        def show_node_log(exc_type: type[BaseException] | None, *_: object) -> None:
            if exc_type is not None:
                print(f"\n--- OpenSearch log {node.run_dir}/logs (last lines) ---\n{node.log_tail()}")

        stack.push(show_node_log)
        node.start()

        server = stack.enter_context(
            ServerProcess(
                tmp_path / "data",
                env={
                    "EVENTLOG_OPENSEARCH_URL": node.url,
                    "EVENTLOG_OPENSEARCH_INDEX_PREFIX": prefix,
                    "EVENTLOG_FANOUT_MAX_BACKOFF_SECONDS": "2",
                    "EVENTLOG_OPENSEARCH_TIMEOUT_SECONDS": "5",
                    "EVENTLOG_LOG_LEVEL": "WARNING",
                },
            )
        )
        writer = server.create_token(TENANT, ["events:write"])
        admin = server.create_token(ADMIN_TENANT, ["admin"])
        http = stack.enter_context(httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT_S, trust_env=False))
        search = stack.enter_context(httpx.Client(base_url=node.url, timeout=30.0, trust_env=False))

        load = Load(server.url, writer)
        load.start()
        stack.callback(load.stop)  # runs before the server and the node go, also on failure
        started = time.monotonic()

        # 1. Warm-up with the node up: the sink delivers.
        time.sleep(WARM_UP_S)
        before = sink_view(http, started, admin)
        assert load.acked_in("warm-up") > 0, f"no event acknowledged in {WARM_UP_S} s: {load.problems[:5]}"
        assert before.last_error is None, before
        search.post(f"/{alias}/_refresh")
        early = search.get(f"/{alias}/_count").json().get("count", 0)
        assert early > 0, f"nothing reached OpenSearch during the warm-up: {before}"

        # 2. SIGKILL the node, keep loading for OUTAGE_S, watch /readyz.
        load.phase = "outage"
        node.kill()
        killed_at = time.monotonic()
        views: list[SinkView] = []
        letters_during: list[dict[str, Any]] = []
        while time.monotonic() - killed_at < OUTAGE_S:
            time.sleep(READYZ_EVERY_S)
            views.append(sink_view(http, started, admin))
            if len(views) == int(OUTAGE_S / READYZ_EVERY_S) // 2:
                letters_during = dead_letters(http, admin)
        assert not load.problems, "\n".join(load.problems[:20])

        # 3. Start the node again on the same data and port (the load goes on), then a little more load.
        load.phase = "restart"
        node.start()
        load.phase = "after"
        time.sleep(AFTER_RESTART_S)
        load.stop()
        stopped_at = time.monotonic()

        # 4. The sink catches up.
        final = sink_view(http, started, admin)
        while final.lag_events > 0 and time.monotonic() - stopped_at < CATCH_UP_S:
            time.sleep(0.2)
            final = sink_view(http, started, admin)
        caught_up_s = time.monotonic() - stopped_at
        refreshed = search.post(f"/{alias}/_refresh")
        assert refreshed.status_code == 200, refreshed.text
        counts, total = indexed_ids(search, alias)
        letters_after = dead_letters(http, admin)

        # -- what happened, for the log of a run (pytest -s) or a failure ----------------
        per_phase = {
            phase: (dict(load.requests_in(phase)), load.acked_in(phase))
            for phase in ("warm-up", "outage", "restart", "after")
        }
        print(f"\nrequests (status -> count) and events acknowledged per phase: {per_phase}")
        print(f"slowest answer per phase (s): { {p: round(s, 3) for p, s in load.slowest_s.items()} }")
        print(f"/readyz during the outage: first {views[0]}\n  last {views[-1]}")
        print(f"caught up {caught_up_s:.1f} s after the load stopped: {final}")
        print(f"indexed: {total} documents, {len(counts)} distinct ids; acknowledged {len(load.acked)}")

        # -- ingest answered 201 all along -----------------------------------------------
        assert not load.problems, "\n".join(load.problems[:20])
        for phase, (statuses, acked_events) in per_phase.items():
            assert set(statuses) <= {"201"}, f"{phase}: {statuses}"
            if phase != "restart":
                assert acked_events > 0, f"no event acknowledged during {phase}: {per_phase}"
        assert load.acked_in("outage") >= 100, per_phase

        # -- /readyz during the outage: ready, the sink retrying with an error, nothing dropped --
        assert all(v.status == 200 for v in views), views
        assert any(v.state == "retrying" and v.last_error for v in views), views
        assert views[-1].last_error, views[-1]
        assert views[-1].cursor == views[0].cursor, f"the cursor moved while OpenSearch was down: {views}"
        assert views[-1].lag_events > views[0].lag_events > 0, views
        assert letters_during == [], letters_during

        # -- after the node is back: caught up, every acknowledged event exactly once -----
        assert final.lag_events == 0, f"lag still {final} {CATCH_UP_S} s after the load stopped"
        assert final.last_error is None, final
        acked = set(load.acked)
        missing = acked - set(counts)
        extra = set(counts) - acked
        doubled = [event_id for event_id, n in counts.items() if n != 1]
        assert not missing, f"{len(missing)} acknowledged events are not in OpenSearch, e.g. {_sample(missing)}"
        assert not extra, f"{len(extra)} documents no client was told about, e.g. {_sample(extra)}"
        assert not doubled, f"{len(doubled)} ids indexed more than once, e.g. {_sample(doubled)}"
        assert total == len(acked), f"{total} documents for {len(acked)} acknowledged events"
        assert letters_after == [], letters_after
    assert not notes, "\n".join(notes)
