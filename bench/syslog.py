"""Syslog benchmark: events/s from the journal to rsyslog through the syslog sink, over TCP and TLS.

One run per transport, each with a fresh rsyslog (tests/syslog_receivers.py:
Debian's rsyslogd on a loopback port, RFC 5424 parser, mmpstrucdata, every
message written to a file as JSON) and a journal filled beforehand with N
realistic events (bench/harness/events.py's generator, validated, chained and
committed through eventlog's own code; about 800 bytes each as stored).

The clock starts when the fan-out starts and stops when the syslog sink's
cursor reaches the last event, that is when the sink has confirmed every
batch (the receiver's TCP acknowledged every byte and the connection was
still open `--confirm-seconds` later; see eventlog/sinks/syslog.py). The
real fan-out loop reads the journal in batches of `--batch-events` and moves
the cursor after each confirmed batch, as in the service. Rate = N / that
time. The second figure is the time until rsyslog has written the N-th
message to its file (polled every 10 ms); the run checks that every event id
arrived.

Target: >= 20 000 events/s over TCP with the default settings.

Run from the repository root:
  .venv/bin/python -m bench.syslog
  .venv/bin/python -m bench.syslog --events 200000 --transports tcp
Needs `apt-get install rsyslog rsyslog-gnutls` (scripts/provision.sh installs them).
Exit status: 0 target met, 2 target missed, 1 error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import uuid_utils
from prometheus_client import CollectorRegistry

from bench.harness.cpu import own_cpu_seconds
from bench.harness.events import make_event
from bench.harness.report import Figure, at_least, print_header, say
from bench.harness.run import BenchError, Teardown, add_seed, benchmark_parser, run_benchmark
from eventlog.canonical import canonical_json
from eventlog.fanout import FanOut
from eventlog.journal import Journal, Prepared
from eventlog.metrics import Metrics
from eventlog.model import EventIn, to_document
from eventlog.settings import Settings
from eventlog.sinks.syslog import SyslogSink
from tests.syslog_receivers import Receiver, make_tls_files, start_receiver

Transport = Literal["tcp", "tls"]
TRANSPORTS: tuple[Transport, ...] = ("tcp", "tls")
TARGET_TCP_EVENTS_PER_S = 20_000.0
TENANT = "bench"
APPEND_CHUNK = 1_000
RECEIVED_TIMEOUT_S = 300.0


async def fill_journal(path: Path, n: int, seed: int) -> tuple[Journal, float]:
    """A journal holding n events; answers it (open) and the mean stored size in bytes."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    context = {"now": now, "retention_days": 14, "max_future_seconds": 300, "max_details_depth": 8}
    journal = Journal(path, stream="bench", max_group_events=5_000)
    journal.open()
    for start in range(0, n, APPEND_CHUNK):
        prepared = []
        for _ in range(min(APPEND_CHUNK, n - start)):
            event = EventIn.model_validate(make_event(rng, now), context=context)
            event_id = str(uuid_utils.uuid7())
            document = to_document(event, event_id=event_id, tenant=TENANT, received_at=now)
            prepared.append(Prepared(event_id, document, canonical_json(document), False))
        await journal.append(TENANT, prepared)
    sample = journal.read_after(0, 1_000)
    return journal, sum(len(e.document) for e in sample) / len(sample)


@dataclass(frozen=True)
class Result:
    transport: str
    events: int
    confirmed_seconds: float
    received_seconds: float
    connections: float
    unconfirmed: float
    failures: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.confirmed_seconds

    @property
    def received_rate(self) -> float:
        return self.events / self.received_seconds


def _received_lines(receiver: Receiver) -> int:
    try:
        with receiver.output.open("rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


async def run(transport: Transport, journal: Journal, receiver: Receiver, ca: Path, args: argparse.Namespace) -> Result:
    host = "localhost" if transport == "tls" else "127.0.0.1"
    settings = Settings(
        syslog_url=receiver.url(transport, host=host),
        syslog_ca_file=ca,
        syslog_confirm_seconds=args.confirm_seconds,
        syslog_max_message_bytes=65_536,
        fanout_batch_events=args.batch_events,
    )
    metrics = Metrics()
    registry: CollectorRegistry = metrics.registry
    sink = SyslogSink.from_settings(settings.syslog, registry=registry)
    fanout = FanOut(
        journal,
        [sink],
        metrics.sinks,
        batch_events=settings.fanout_batch_events,
        poll_seconds=settings.fanout_poll_seconds,
        max_backoff_seconds=settings.fanout_max_backoff_seconds,
    )
    # Each run forwards the whole journal: forget the cursor the previous run left.
    await journal.call(lambda conn: conn.execute("DELETE FROM sink_cursors"))
    n = journal.last_seq
    cpu_before = own_cpu_seconds()
    started = time.perf_counter()
    fanout.start()
    state = fanout.states[sink.name]
    while state.cursor < n:
        await asyncio.sleep(0.002)
        if state.failures > args.max_failures:
            raise BenchError(f"{transport}: the sink failed {state.failures} times: {state.last_error}")
    confirmed = time.perf_counter() - started
    cpu_after = own_cpu_seconds()
    await fanout.stop()
    deadline = time.monotonic() + RECEIVED_TIMEOUT_S
    while (lines := _received_lines(receiver)) < n:
        if time.monotonic() > deadline:
            raise BenchError(f"{transport}: rsyslog wrote {lines:,} of {n:,} messages within {RECEIVED_TIMEOUT_S:g} s")
        await asyncio.sleep(0.01)
    received = max(time.perf_counter() - started, confirmed)
    ids = {r["sd"]["eventlog@32473"]["id"] for r in receiver.received()}
    expected = {e.id for e in journal.read_after(0, n)}
    if not expected <= ids:
        raise BenchError(f"{transport}: {len(expected - ids):,} events never reached rsyslog")

    def count(name: str) -> float:
        return registry.get_sample_value(name) or 0.0

    return Result(
        transport=transport,
        events=n,
        confirmed_seconds=confirmed,
        received_seconds=received,
        connections=count("eventlog_syslog_connections_total"),
        unconfirmed=count("eventlog_syslog_unconfirmed_events_total"),
        failures=count("eventlog_sink_failures_total"),
        cpu_seconds=cpu_after - cpu_before,
    )


def report(results: Sequence[Result], mean_bytes: float, args: argparse.Namespace) -> list[Figure]:
    print()
    print(
        f"Results: {results[0].events:,} events (stored JSON {mean_bytes:.0f} B on average), fan-out batches of "
        f"{args.batch_events:,}, confirm delay {args.confirm_seconds:g} s, octet counting, MSG = event JSON"
    )
    head = (
        f"{'transport':<10} {'confirmed s':>11} {'events/s':>10} {'written by rsyslog s':>21} {'events/s':>10} "
        f"{'eventlog CPU s':>15} {'connections':>11} {'resent':>7}"
    )
    print_header(head)
    figures = []
    for r in results:
        verdict = ""
        if r.transport == "tcp":
            ok = r.rate >= TARGET_TCP_EVENTS_PER_S
            figures.append(at_least("syslog_tcp_events_per_s", r.rate, "events/s", TARGET_TCP_EVENTS_PER_S))
            verdict = f"   target >= {TARGET_TCP_EVENTS_PER_S:,.0f} {'OK' if ok else 'MISSED'}"
        print(
            f"{r.transport:<10} {r.confirmed_seconds:>11.2f} {r.rate:>10,.0f} {r.received_seconds:>21.2f} "
            f"{r.received_rate:>10,.0f} {r.cpu_seconds:>15.1f} {r.connections:>11.0f} {r.unconfirmed:>7.0f}{verdict}"
        )
    return figures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Settings()
    parser = benchmark_parser(
        "syslog",
        "Forward N journal events to a real rsyslog through the syslog sink over TCP and TLS; "
        "print events/s (target >= 20 000 over TCP).",
    )
    parser.add_argument("--events", type=int, default=100_000, help="events N (default: 100000)")
    parser.add_argument("--transports", default="tcp,tls", help="comma-separated, of tcp, tls (default: tcp,tls)")
    parser.add_argument(
        "--batch-events",
        type=int,
        default=defaults.fanout_batch_events,
        help=f"EVENTLOG_FANOUT_BATCH_EVENTS (default: {defaults.fanout_batch_events})",
    )
    parser.add_argument(
        "--confirm-seconds",
        type=float,
        default=defaults.syslog_confirm_seconds,
        help=f"EVENTLOG_SYSLOG_CONFIRM_SECONDS (default: {defaults.syslog_confirm_seconds:g})",
    )
    parser.add_argument("--max-failures", type=int, default=3, help="give up after this many failed deliveries")
    add_seed(parser)
    args = parser.parse_args(argv)
    args.transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    if not args.transports or set(args.transports) - {"tcp", "tls"}:
        parser.error("--transports takes tcp, tls or both")
    if args.events < 1 or args.batch_events < 1 or args.confirm_seconds < 0:
        parser.error("--events and --batch-events must be positive, --confirm-seconds not negative")
    return args


async def main_async(args: argparse.Namespace, work: Path) -> list[Figure]:
    say("prepare", f"committing {args.events:,} events to a journal through eventlog's code ...")
    started = time.perf_counter()
    journal, mean_bytes = await fill_journal(work / "journal.db", args.events, args.seed)
    say("prepare", f"done in {time.perf_counter() - started:.1f} s")
    tls = make_tls_files(work / "tls")
    results = []
    try:
        for transport in (t for t in TRANSPORTS if t in args.transports):
            receiver = start_receiver("rsyslog", work / f"rsyslog-{transport}", tls)
            say(
                transport, f"rsyslog listening on port {receiver.tcp_port if transport == 'tcp' else receiver.tls_port}"
            )
            try:
                result = await run(transport, journal, receiver, tls.ca_cert, args)
            finally:
                receiver.stop()
            say(transport, f"{result.rate:,.0f} events/s confirmed, {result.received_rate:,.0f} events/s written")
            results.append(result)
    finally:
        journal.close()
    return report(results, mean_bytes, args)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # OSError too: rsyslog that cannot start or bind is an error of the run, not of this script.
    return run_benchmark("bench/syslog.py", lambda teardown: benchmark(args, teardown), (RuntimeError, OSError))


def benchmark(args: argparse.Namespace, teardown: Teardown) -> list[Figure]:
    """One run: its figures."""
    work = Path(tempfile.mkdtemp(prefix="eventlog-bench-syslog-"))
    teardown.add(lambda: shutil.rmtree(work, ignore_errors=True))
    figures = asyncio.run(main_async(args, work))
    print(f"(load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores; rsyslog runs on the same machine)")
    return figures


if __name__ == "__main__":
    sys.exit(main())
