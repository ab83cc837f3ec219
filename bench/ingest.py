"""Ingest benchmark: durable events/s and latency of `POST /v1/events`.

Starts `eventlog serve` on a free loopback port with a temporary data
directory, drives it with wrk (one load thread, a Lua script that rotates
realistic request bodies) for a fixed time per batch size, and prints
requests/s, events/s, p50/p99 latency and whether the targets are met. Every
answer counted is a 201, sent only after the journal commit was fsynced, so
the figures are durable throughput. Then it prints the journal's group-commit
figures from /metrics, stops the server with SIGTERM and runs
`eventlog verify` on the data it wrote.

Targets (2-core machine):
  batches of 100: >= 20 000 events/s
  single events:  >= 1 500 requests/s with p99 <= 25 ms

Run:
  .venv/bin/python bench/ingest.py
  .venv/bin/python bench/ingest.py --duration-seconds 30 --batch-sizes 100 --concurrency 64

The load generator is wrk (`apt-get install wrk`): written in C, it needs a
few percent of one core for this load, so the server keeps the CPU. Where wrk
cannot be installed, `--client httpx` uses an asyncio httpx client instead;
it is much heavier and competes with the server for the two cores, so its
figures are lower bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.harness.cpu import CpuMeter, children_cpu_seconds, own_cpu_seconds
from bench.harness.events import make_event
from bench.harness.report import Figure, at_least, at_most, percentile, print_header, print_results
from bench.harness.run import BenchError, add_server_env
from bench.harness.server import CommitStats, Server
from bench.harness.wrk import WrkRun, run_wrk, wrk_script, wrk_version
from tests.integration.server import ServerError

TARGET_BATCH_SIZE = 100
TARGET_BATCH_EVENTS_PER_S = 20_000.0
TARGET_SINGLE_REQUESTS_PER_S = 1_500.0
TARGET_SINGLE_P99_MS = 25.0

# Chosen from runs on the 2-core machine (10 s each, quiet machine). The server is
# CPU-bound on one core (the GIL), so more connections add latency, not throughput:
#   batches of 100, connections 8/16/32/64: 11.1k/11.1k/10.5-11.4k/9.0-9.6k events/s, p99 126/205/360-470/760-900 ms
#   single events, connections 16/24/32/48: 2.2k/2.2k/2.0k/1.9k requests/s, p99 57/54/69/86 ms
# 16 connections reach the peak in both modes with the lowest latency there.
DEFAULT_CONCURRENCY = {1: 16, TARGET_BATCH_SIZE: 16}
FALLBACK_CONCURRENCY = 16
BODY_POOL_EVENTS = 2_000  # distinct events per batch size; wrk cycles through them
READY_TIMEOUT_SECONDS = 30.0
DRAIN_TIMEOUT_SECONDS = 120.0
NOISY_OTHER_CPU = 0.15  # cores used by other processes above which a run's figures are suspect

# wrk's requests (bench/harness/wrk.py's driver sends them in rotation): one pre-formatted POST per line of
# the bodies file (args[1]), with the token args[2].
REQUESTS_LUA = r"""
function requests_for(args)
   local requests = {}
   local headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. args[2],
   }
   local file = assert(io.open(args[1], "r"))
   for line in file:lines() do
      if #line > 0 then
         requests[#requests + 1] = wrk.format("POST", wrk.path, headers, line)
      end
   end
   file:close()
   assert(#requests > 0, "no request bodies in " .. args[1])
   return requests
end
"""


def make_bodies(batch_size: int, seed: int) -> tuple[list[bytes], float]:
    """Request bodies of `batch_size` events each, and the mean size of one event in bytes."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    requests = max(1, BODY_POOL_EVENTS // batch_size)
    bodies: list[bytes] = []
    event_bytes = 0
    for _ in range(requests):
        events = [make_event(rng, now) for _ in range(batch_size)]
        event_bytes += sum(len(json.dumps(e, separators=(",", ":"))) for e in events)
        payload: object = events[0] if batch_size == 1 else {"events": events}
        bodies.append(json.dumps(payload, separators=(",", ":")).encode())
    return bodies, event_bytes / (requests * batch_size)


# -- load generators -----------------------------------------------------------


class Progress(threading.Thread):
    """Prints the server's committed events/s and sink lag once a second while load runs."""

    def __init__(self, server: Server, label: str, seconds: float) -> None:
        super().__init__(name="progress", daemon=True)
        self._server = server
        self._label = label
        self._seconds = seconds
        self._stop_event = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        try:
            last = self._server.readiness()
        except OSError:
            return
        last_at = started
        while not self._stop_event.wait(1.0):
            try:
                now_ready = self._server.readiness()
            except OSError:
                continue
            now = time.monotonic()
            rate = (now_ready.last_seq - last.last_seq) / (now - last_at)
            print(
                f"    {self._label}: {now - started:5.1f}/{self._seconds:.0f} s  "
                f"committed {rate:>9,.0f} events/s  sink lag {now_ready.lag_events:>8,} events",
                flush=True,
            )
            last, last_at = now_ready, now

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


async def _httpx_load(url: str, token: str, bodies: Sequence[bytes], concurrency: int, seconds: int) -> WrkRun:
    import httpx

    latencies: list[float] = []
    counts = {"ok": 0, "non2xx": 0, "errors": 0}
    first_error: list[str] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.perf_counter()
    deadline = started + seconds
    async with httpx.AsyncClient(limits=limits, timeout=30.0, headers=headers) as client:

        async def worker(offset: int) -> None:
            index = offset
            while time.perf_counter() < deadline:
                body = bodies[index % len(bodies)]
                index += concurrency
                sent = time.perf_counter()
                try:
                    answer = await client.post(url, content=body)
                except httpx.HTTPError as exc:
                    counts["errors"] += 1
                    if not first_error:
                        first_error.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append(time.perf_counter() - sent)
                if 200 <= answer.status_code < 300:
                    counts["ok"] += 1
                else:
                    counts["non2xx"] += 1
                    if not first_error:
                        first_error.append(f"{answer.status_code} {answer.text[:400]}")

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return WrkRun(
        requests=counts["ok"] + counts["non2xx"],
        seconds=time.perf_counter() - started,
        non2xx=counts["non2xx"],
        socket_errors=counts["errors"],
        p50_us=percentile(latencies, 50) * 1e6,
        p99_us=percentile(latencies, 99) * 1e6,
        first_error=first_error[0] if first_error else "",
    )


def run_httpx(url: str, token: str, bodies: Sequence[bytes], concurrency: int, seconds: int) -> WrkRun:
    return asyncio.run(_httpx_load(url, token, bodies, concurrency, seconds))


# -- one mode, the whole benchmark ---------------------------------------------


@dataclass
class Result:
    batch_size: int
    concurrency: int
    load: WrkRun
    commits: CommitStats
    lag_at_end: int
    drain_seconds: float
    server_cpu: float  # cores busy on average (1.0 = one core)
    client_cpu: float
    other_cpu: float  # everything else on the machine: other processes steal from the server

    @property
    def mode(self) -> str:
        return "single" if self.batch_size == 1 else f"batch {self.batch_size}"

    @property
    def requests_per_s(self) -> float:
        return self.load.ok / self.load.seconds if self.load.seconds else 0.0

    @property
    def events_per_s(self) -> float:
        return self.requests_per_s * self.batch_size

    def target(self) -> tuple[str, bool | None]:
        """The target in words, and whether it was met (None: no target for this batch size)."""
        figures = self.figures()
        words = {
            1: f">= {TARGET_SINGLE_REQUESTS_PER_S:,.0f} req/s, p99 <= {TARGET_SINGLE_P99_MS:.0f} ms",
            TARGET_BATCH_SIZE: f">= {TARGET_BATCH_EVENTS_PER_S:,.0f} events/s",
        }
        return words.get(self.batch_size, "(none)"), all(f.met for f in figures) if figures else None

    def figures(self) -> list[Figure]:
        if self.batch_size == 1:
            return [
                at_least("ingest_single_requests_per_s", self.requests_per_s, "req/s", TARGET_SINGLE_REQUESTS_PER_S),
                at_most("ingest_single_p99", self.load.p99_ms, "ms", TARGET_SINGLE_P99_MS),
            ]
        if self.batch_size == TARGET_BATCH_SIZE:
            name = f"ingest_batch{TARGET_BATCH_SIZE}_events_per_s"
            return [at_least(name, self.events_per_s, "events/s", TARGET_BATCH_EVENTS_PER_S)]
        return []


@dataclass
class Bench:
    args: argparse.Namespace
    server: Server
    token: str
    work: Path
    wrk: str | None
    acknowledged_events: int = 0
    results: list[Result] = field(default_factory=list)

    def concurrency_for(self, batch_size: int) -> int:
        if self.args.concurrency is not None:
            return int(self.args.concurrency)
        return DEFAULT_CONCURRENCY.get(batch_size, FALLBACK_CONCURRENCY)

    def _load(self, bodies: list[bytes], bodies_file: Path, concurrency: int, seconds: int) -> WrkRun:
        url = self.server.url + "/v1/events"
        if self.wrk is not None:
            return run_wrk(
                self.wrk,
                self.work / "post.lua",
                url,
                connections=concurrency,
                seconds=seconds,
                timeout_seconds=30,
                threads=self.args.wrk_threads,
                script_args=(str(bodies_file), self.token),
            )
        return run_httpx(url, self.token, bodies, concurrency, seconds)

    def _checked(self, load: WrkRun, what: str) -> WrkRun:
        if load.non2xx or load.socket_errors:
            raise BenchError(
                f"{what}: {load.non2xx} answers outside 2xx and {load.socket_errors} socket errors/timeouts "
                f"out of {load.ok + load.non2xx} answers; first: {load.first_error or '(none recorded)'}\n"
                f"server log tail:\n{self.server.log_tail(20)}"
            )
        if load.ok == 0:
            raise BenchError(f"{what}: no request was answered\nserver log tail:\n{self.server.log_tail(20)}")
        return load

    def run_mode(self, batch_size: int) -> Result:
        concurrency = self.concurrency_for(batch_size)
        bodies, event_bytes = make_bodies(batch_size, seed=batch_size)
        bodies_file = self.work / f"bodies-{batch_size}.ndjson"
        bodies_file.write_bytes(b"\n".join(bodies) + b"\n")
        label = "single" if batch_size == 1 else f"batch {batch_size}"
        mean_body = sum(map(len, bodies)) / len(bodies)
        print(
            f"\n== {label}: {concurrency} connections, {len(bodies)} distinct bodies "
            f"({event_bytes:.0f} B/event, {mean_body / 1024:.1f} KiB/request)",
            flush=True,
        )
        if self.args.warmup_seconds > 0:
            print(f"    warm-up {self.args.warmup_seconds} s ...", flush=True)
            warm = self._checked(
                self._load(bodies, bodies_file, concurrency, self.args.warmup_seconds), f"{label} warm-up"
            )
            self.acknowledged_events += warm.ok * batch_size
            waited, lag = self.server.wait_drained(DRAIN_TIMEOUT_SECONDS)
            if waited > 1:
                print(f"    sink caught up with the warm-up in {waited:.1f} s (lag now {lag:,})", flush=True)

        before = self.server.commit_stats()
        # The load generator: wrk is a child process, the httpx client runs in this one.
        cpu = CpuMeter(
            {"server": self.server.cpu_seconds, "client": children_cpu_seconds if self.wrk else own_cpu_seconds}
        )
        cpu.start()
        progress = Progress(self.server, label, self.args.duration_seconds)
        progress.start()
        try:
            load = self._load(bodies, bodies_file, concurrency, self.args.duration_seconds)
        finally:
            progress.stop()
        used = cpu.stop()
        server_cpu = used.seconds["server"] / load.seconds
        client_cpu = used.seconds["client"] / load.seconds
        other_cpu = used.other / load.seconds
        commits = self.server.commit_stats().minus(before)
        self._checked(load, label)
        self.acknowledged_events += load.ok * batch_size
        lag_at_end = self.server.readiness().lag_events
        drain_seconds, left = self.server.wait_drained(DRAIN_TIMEOUT_SECONDS)
        if left:
            print(f"    WARNING: the search store is still {left:,} events behind after {drain_seconds:.0f} s")
        result = Result(
            batch_size, concurrency, load, commits, lag_at_end, drain_seconds, server_cpu, client_cpu, other_cpu
        )
        print(
            f"    {label}: {result.requests_per_s:,.0f} req/s, {result.events_per_s:,.0f} events/s, "
            f"p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms",
            flush=True,
        )
        return result


def print_tables(results: Sequence[Result], client: str) -> bool:
    """The result table and the journal figures; True when every target with a figure is met."""
    all_met = True
    head = (
        f"{'mode':<10} {'conc':>5} {'requests/s':>11} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8}  "
        f"{'target':<34} {'met':<4}"
    )
    print(f"\nResults (durable: every 2xx was sent after the fsynced journal commit; client: {client})")
    print_header(head)
    for r in results:
        target, met = r.target()
        mark = "-" if met is None else ("yes" if met else "NO")
        all_met = all_met and met is not False
        print(
            f"{r.mode:<10} {r.concurrency:>5} {r.requests_per_s:>11,.0f} {r.events_per_s:>10,.0f} "
            f"{r.load.p50_ms:>8.1f} {r.load.p99_ms:>8.1f}  {target:<34} {mark:<4}"
        )
    head = (
        f"{'mode':<10} {'commits':>8} {'commits/s':>10} {'mean group':>11} {'mean commit':>12} "
        f"{'sink lag at end':>16} {'drained in':>11} {'server CPU':>11} {'client CPU':>11} {'other CPU':>10}"
    )
    print(
        "\nServer during each run: journal group commits (eventlog_journal_commit_seconds, "
        "eventlog_journal_group_events), search-store lag, CPU in cores"
    )
    print_header(head)
    for r in results:
        c = r.commits
        print(
            f"{r.mode:<10} {c.commits:>8,.0f} {c.commits / r.load.seconds:>10,.0f} {c.mean_group:>8,.1f} ev "
            f"{c.mean_commit_ms:>9.2f} ms {r.lag_at_end:>9,} events {r.drain_seconds:>9.1f} s "
            f"{r.server_cpu:>11.2f} {r.client_cpu:>11.2f} {r.other_cpu:>10.2f}"
        )
    busy = [r for r in results if r.other_cpu > NOISY_OTHER_CPU]
    if busy:
        print(
            f"WARNING: other processes used > {NOISY_OTHER_CPU} cores during {', '.join(r.mode for r in busy)}; "
            "those figures are low, rerun on a quiet machine"
        )
    return all_met


def journal_events(verify_output: str) -> int:
    """The number of events `eventlog verify` walked, from its first line; -1 when it names none."""
    match = re.search(r", (\d+) events\b", verify_output)
    return int(match.group(1)) if match else -1


def run_verify(server: Server, acknowledged: int) -> bool:
    done = server.verify()
    output = (done.stdout + done.stderr).strip()
    stored = journal_events(done.stdout)
    if done.returncode == 0 and stored >= acknowledged:
        print(f"\neventlog verify: passed: {output}")
        print(f"    {stored:,} events in the journal >= {acknowledged:,} acknowledged with 2xx")
        return True
    print(f"\neventlog verify: FAILED (exit {done.returncode}): {output}")
    if 0 <= stored < acknowledged:
        print(f"    only {stored:,} events in the journal, but {acknowledged:,} were acknowledged with 2xx")
    return False


def _batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 100,1") from None
    if not sizes or any(s < 1 or s > 1_000 for s in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: batch sizes must be 1-1000 (the server's per-request limit)")
    return sizes


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    defaults = ", ".join(
        f"{DEFAULT_CONCURRENCY[b]} for {'single events' if b == 1 else f'batches of {b}'}" for b in DEFAULT_CONCURRENCY
    )
    parser = argparse.ArgumentParser(
        prog="bench/ingest.py",
        description="Durable ingest throughput and latency of POST /v1/events against a fresh local server. "
        f"Targets: >= {TARGET_BATCH_EVENTS_PER_S:,.0f} events/s with batches of {TARGET_BATCH_SIZE}; "
        f">= {TARGET_SINGLE_REQUESTS_PER_S:,.0f} single-event requests/s with p99 <= {TARGET_SINGLE_P99_MS:.0f} ms.",
    )
    parser.add_argument(
        "--duration-seconds", type=_positive, default=10, help="measured time per batch size (default: 10)"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        default=None,
        help=f"open connections, each with one request in flight (default: {defaults}; {FALLBACK_CONCURRENCY} otherwise)",
    )
    parser.add_argument(
        "--batch-sizes",
        type=_batch_sizes,
        default=_batch_sizes("100,1"),
        help="events per request, comma-separated, run in this order; 1 sends a bare event (default: 100,1)",
    )
    parser.add_argument(
        "--warmup-seconds", type=int, default=2, help="unmeasured load before each batch size (default: 2; 0: none)"
    )
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the temporary data dir (journal, search store) and the server log",
    )
    parser.add_argument(
        "--client",
        choices=("wrk", "httpx"),
        default="wrk",
        help="load generator (default: wrk; httpx is a fallback where wrk cannot be installed, and "
        "shares the CPU with the server)",
    )
    parser.add_argument("--wrk-threads", type=_positive, default=1, help="wrk threads (default: 1, enough here)")
    add_server_env(parser, "EVENTLOG_LOG_LEVEL=WARNING")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    wrk: str | None = None
    if args.client == "wrk":
        wrk = shutil.which("wrk")
        if wrk is None:
            print(
                "bench/ingest.py: error: wrk is not installed. Install it with `apt-get install wrk` "
                "(Debian/Ubuntu; run `apt-get update` first), or run with --client httpx, "
                "whose figures are lower bounds on a 2-core machine.",
                file=sys.stderr,
            )
            return 2
    # Given in full, EVENTLOG_* included: Server (the tests' ServerProcess) drops this process's EVENTLOG_*
    # settings unless it is handed them, and a setting exported for a benchmark run must reach the server.
    env = dict(os.environ)
    env.update(args.server_env)

    work = Path(tempfile.mkdtemp(prefix="eventlog-bench-"))
    data_dir = work / "data"
    data_dir.mkdir()
    (work / "post.lua").write_text(wrk_script(REQUESTS_LUA))
    server = Server(data_dir, env=env, startup_timeout=READY_TIMEOUT_SECONDS)
    ok = False
    figures: list[Figure] = []
    try:
        token = server.create_token("bench", ["events:write", "events:read"])
        server.start()
        client = f"wrk {wrk_version(wrk)}, {args.wrk_threads} thread(s)" if wrk else "httpx (asyncio)"
        print(
            f"eventlog server pid {server.pid} on {server.url}, data in {data_dir}; "
            f"{os.cpu_count()} CPUs; client {client}; {args.duration_seconds} s per batch size",
            flush=True,
        )
        bench = Bench(args, server, token, work, wrk)
        for batch_size in args.batch_sizes:
            bench.results.append(bench.run_mode(batch_size))
        stopped_clean, how = server.stop_gracefully()
        print(f"\nserver stopped with SIGTERM ({how})")
        all_met = print_tables(bench.results, client)
        verified = run_verify(server, bench.acknowledged_events)
        ok = verified and stopped_clean
        print("\nall targets met" if all_met else "\nsome targets were NOT met (see the table)")
        figures = [figure for result in bench.results for figure in result.figures()]
    except (BenchError, ServerError) as exc:
        print(f"\nbench/ingest.py: error: {exc}", file=sys.stderr)
        return 1
    finally:
        server.close()
        if args.keep_data or not ok:
            print(f"data kept in {work}" + ("" if ok else " (for the post-mortem)"))
        else:
            shutil.rmtree(work, ignore_errors=True)
    status = print_results(figures)
    return status if ok else 1


if __name__ == "__main__":
    sys.exit(main())
