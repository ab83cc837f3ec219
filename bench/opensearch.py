"""OpenSearch benchmark: eventlog's indexing rate against raw `_bulk`, and the delay from 201 to searchable.

One run, one node, the same N events twice:

1. raw: N stored-form documents, prepared before the clock starts through
   eventlog's own code (`EventIn` validation, `to_document`, RFC 8785
   canonical JSON and the SHA-256 chain link, the `fulltext` tokens of
   search/text.py), are sent with `opensearch.helpers.bulk` (`create`, `_id`
   `<tenant>/<id>`, routing by tenant, daily index by event time) into fresh
   indices made from eventlog's own template (search/opensearch/template.py)
   under a prefix of their own; then one refresh. Rate = N / (bulk + refresh).
2. eventlog: `eventlog serve` runs as a subprocess on the same node with
   another prefix; a few asyncio httpx clients (one thread, pre-serialized
   bodies) post the same N events in batches of 100 to `POST /v1/events`; the
   fan-out indexes them (refresh interval 1 s, as in production). Rate =
   N / (first request sent -> the tenant's `_count` on the alias reaches N).
   `_count` is polled every 100 ms, so the end is known to about 0.1 s.

The 201 -> searchable delay: for every batch (`--sample-every 1`, the default)
the id of its last event is remembered with the time its 201 arrived. A probe
thread asks the alias every `--probe-interval` seconds (default 0.05) for all
remembered ids not yet seen, in one `terms` query on `id` (routing by tenant),
and notes the time its answer arrived for each id it sees for the first time.
The delay of a batch is that time minus its 201 time: an upper bound, too high
by at most one probe interval plus one query. The last event of a batch is
indexed no earlier than the rest of it (the sink delivers in journal order),
so the delay covers the whole batch. The figure is taken under full load: if
the sink indexes slower than the journal accepts, the backlog (and so the
delay) grows for the whole run; `--rate` caps the posting rate to measure the
delay at a sustainable load instead.

Targets: eventlog rate >= 0.7 x raw; p99 delay <= 2 s.

Run from the repository root (so that `bench` and `tests` import):
  .venv/bin/python -m bench.opensearch
  .venv/bin/python -m bench.opensearch --events 20000 --clients 4
  OPENSEARCH_URL=http://127.0.0.1:9200 .venv/bin/python -m bench.opensearch

With OPENSEARCH_URL set that cluster is used (plain HTTP, no security
plugin) and the benchmark's indices and templates are deleted at the end
(unless --keep-indices); otherwise tests/opensearch_node.start_opensearch()
starts a node (scripts/opensearch.sh) and stops it at the end. Each line
printed while it runs starts with a phase name; the table comes last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import uuid_utils
from opensearchpy import OpenSearch
from opensearchpy.helpers import bulk

from bench.harness.cpu import CpuMeter, CpuUse, own_cpu_seconds
from bench.harness.events import make_event
from bench.harness.opensearch import drop_indices, start_opensearch_node
from bench.harness.report import Figure, at_least, at_most, percentile, print_header, say
from bench.harness.run import BenchError, Teardown, add_seed, add_server_env, benchmark_parser, run_benchmark
from bench.harness.server import Server
from search.opensearch.sink import document_id
from search.opensearch.template import alias, index_for, install
from search.text import searchable_text
from tests.trail import Chain

TARGET_RATIO = 0.7
TARGET_P99_S = 2.0
TENANT = "bench"
ADMIN_TENANT = "bench-ops"  # its self-audit events stay out of the counted tenant
BATCH_EVENTS = 100
HTTP_TIMEOUT_S = 60.0
COUNT_EVERY_S = 0.1
PROGRESS_EVERY_S = 5.0
SEARCHABLE_TIMEOUT_S = 600.0
# Same bulk shape as eventlog's sink: EVENTLOG_FANOUT_BATCH_EVENTS and EVENTLOG_OPENSEARCH_BULK_MAX_BYTES.
DEFAULT_RAW_CHUNK = 2000
DEFAULT_RAW_MAX_BYTES = 5 * 1024 * 1024


def stored_documents(inputs: Sequence[dict[str, Any]], stream: str) -> list[dict[str, Any]]:
    """What eventlog stores for these inputs: validated, server fields set, chained; plus the `fulltext` tokens."""
    now = datetime.now(UTC)
    chain = Chain(stream, now)
    documents = [
        chain.document(raw, tenant=TENANT, event_id=str(uuid_utils.uuid7()), received_at=now) for raw in inputs
    ]
    for document in documents:
        document["fulltext"] = searchable_text(document)
    return documents


@dataclass(frozen=True)
class Workload:
    inputs: list[dict[str, Any]]
    documents: list[dict[str, Any]]
    bodies: list[bytes]  # POST /v1/events bodies of BATCH_EVENTS events each
    mean_event_bytes: float
    mean_document_bytes: float


def prepare(n: int, seed: int) -> Workload:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    inputs = [make_event(rng, now) for _ in range(n)]
    documents = stored_documents(inputs, stream="bench-raw")
    bodies = [orjson.dumps({"events": inputs[i : i + BATCH_EVENTS]}) for i in range(0, n, BATCH_EVENTS)]
    sample = inputs[:1000]
    event_bytes = sum(len(orjson.dumps(e)) for e in sample) / len(sample)
    document_bytes = sum(len(orjson.dumps(d)) for d in documents[:1000]) / len(sample)
    return Workload(inputs, documents, bodies, event_bytes, document_bytes)


# -- phase 1: raw helpers.bulk ------------------------------------------------------------


@dataclass(frozen=True)
class RawResult:
    events: int
    bulk_seconds: float
    refresh_seconds: float
    searchable: int

    @property
    def seconds(self) -> float:
        return self.bulk_seconds + self.refresh_seconds

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def count(client: OpenSearch, prefix: str) -> int:
    """Documents of TENANT behind the prefix's alias (0 before the first index exists)."""
    body = {"query": {"term": {"tenant": TENANT}}}
    answer = client.count(
        index=alias(prefix), body=body, params={"ignore_unavailable": "true", "allow_no_indices": "true"}
    )
    return int(answer["count"])


def run_raw(
    client: OpenSearch,
    prefix: str,
    documents: Sequence[dict[str, Any]],
    chunk: int,
    max_bytes: int,
    phase: str = "raw",
) -> RawResult:
    install(client, prefix, shards=1, replicas=0)
    actions = [
        {
            "_op_type": "create",
            "_index": index_for(prefix, d["time"]),
            "_id": document_id(TENANT, d["id"]),
            "routing": TENANT,
            "_source": d,
        }
        for d in documents
    ]
    say(phase, f"helpers.bulk of {len(actions):,} documents, {chunk} per request (at most {max_bytes:,} bytes) ...")
    started = time.perf_counter()
    ok, errors = bulk(client, actions, chunk_size=chunk, max_chunk_bytes=max_bytes, request_timeout=HTTP_TIMEOUT_S)
    bulked = time.perf_counter()
    client.indices.refresh(index=alias(prefix))
    refreshed = time.perf_counter()
    if errors or ok != len(actions):
        raise BenchError(f"helpers.bulk indexed {ok} of {len(actions)}: {errors!r:.500}")
    result = RawResult(len(actions), bulked - started, refreshed - bulked, count(client, prefix))
    say(phase, f"{result.events:,} documents in {result.seconds:.2f} s = {result.rate:,.0f} docs/s")
    return result


# -- phase 2: through eventlog --------------------------------------------------------------


@dataclass
class Probe:
    """A thread that watches the alias: the tenant's count, and when each sampled id becomes searchable."""

    client: OpenSearch
    prefix: str
    interval: float
    pending: dict[str, float] = field(default_factory=dict)  # id -> monotonic time of its batch's 201
    delays: list[float] = field(default_factory=list)
    count: int = 0
    count_at: float = 0.0
    reached: dict[int, float] = field(default_factory=dict)  # target count -> first time seen
    errors: int = 0
    first_error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def watch(self, event_id: str, acked_at: float) -> None:
        with self._lock:
            self.pending[event_id] = acked_at

    def left(self) -> int:
        with self._lock:
            return len(self.pending)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        target_alias = alias(self.prefix)
        next_count = 0.0
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_count:
                    next_count = now + COUNT_EVERY_S
                    seen = count(self.client, self.prefix)
                    # count_at first: whoever sees the new count also sees its time.
                    self.count_at = time.monotonic()
                    self.count = seen
                with self._lock:
                    ids = list(self.pending)
                if ids:
                    self._look_for(target_alias, ids)
            except Exception as exc:  # a failed poll is tried again; counted for the report
                self.errors += 1
                self.first_error = self.first_error or repr(exc)[:300]
            self._stop.wait(self.interval)

    def _look_for(self, target_alias: str, ids: list[str]) -> None:
        body = {
            "query": {"bool": {"filter": [{"term": {"tenant": TENANT}}, {"terms": {"id": ids}}]}},
            "size": len(ids),
            "_source": ["id"],
            "track_total_hits": False,
        }
        params = {
            "routing": TENANT,
            "ignore_unavailable": "true",
            "allow_no_indices": "true",
            "filter_path": "hits.hits._source.id",
        }
        answer = self.client.search(index=target_alias, body=body, params=params)
        arrived = time.monotonic()
        found = [hit["_source"]["id"] for hit in answer.get("hits", {}).get("hits", [])]
        with self._lock:
            for event_id in found:
                acked_at = self.pending.pop(event_id, None)
                if acked_at is not None:
                    self.delays.append(arrived - acked_at)


@dataclass
class EventlogResult:
    events: int
    requests: int
    statuses: dict[int, int]
    # on the monotonic clock: the first request sent, the last 201 received, the count reaching `events`
    first_sent: float
    last_acked: float
    searchable_at: float
    probe: Probe  # the delays it measured, its errors
    cpu: CpuUse  # of "server" and "bench"
    dead_letters: int
    sinks: dict[str, dict[str, Any]]  # /readyz after the run

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def seconds(self) -> float:
        return self.searchable_at - self.first_sent

    @property
    def ingest_rate(self) -> float:
        return self.events / (self.last_acked - self.first_sent)


async def post_all(
    url: str,
    secret: str,
    bodies: Sequence[bytes],
    *,
    clients: int,
    rate: float | None,
    sample_every: int,
    probe: Probe,
    statuses: dict[int, int],
) -> tuple[float, float]:
    """Post every body from `clients` concurrent tasks; answers (first sent, last 201) on the monotonic clock."""
    next_batch = iter(range(len(bodies)))
    first_sent = time.monotonic()
    last_acked = first_sent
    done = 0
    interval = BATCH_EVENTS / rate if rate else 0.0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal last_acked, done
        for number in next_batch:
            if interval:
                await asyncio.sleep(max(0.0, first_sent + number * interval - time.monotonic()))
            answer = await http.post("/v1/events", content=bodies[number])
            acked_at = time.monotonic()
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            if answer.status_code != 201:
                raise BenchError(f"batch {number} answered {answer.status_code}: {answer.text[:300]}")
            last_acked = max(last_acked, acked_at)
            done += 1
            if number % sample_every == 0:
                probe.watch(answer.json()["receipts"][-1]["id"], acked_at)

    async def progress() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            elapsed = time.monotonic() - first_sent
            say(
                "eventlog",
                f"{elapsed:5.1f} s: {done * BATCH_EVENTS:>9,} acknowledged, {probe.count:>9,} searchable, "
                f"{probe.left():,} sampled batches not yet searchable",
            )

    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(
        base_url=url,
        headers=headers,
        timeout=HTTP_TIMEOUT_S,
        trust_env=False,
        limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients),
    ) as http:
        reporter = asyncio.create_task(progress())
        try:
            await asyncio.gather(*(client(http) for _ in range(clients)))
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
    return first_sent, last_acked


def run_eventlog(
    url: str,
    client: OpenSearch,
    prefix: str,
    workload: Workload,
    work: Path,
    args: argparse.Namespace,
    server_env: dict[str, str],
) -> EventlogResult:
    n = len(workload.inputs)
    env = {"EVENTLOG_OPENSEARCH_URL": url, "EVENTLOG_OPENSEARCH_INDEX_PREFIX": prefix, **server_env}
    with Server(work / "data", env=env) as server:
        secret = server.create_token(TENANT, ["events:write"])
        admin = server.create_token(ADMIN_TENANT, ["admin"])
        say("eventlog", f"eventlog serve (pid {server.pid}) on {server.url}, data in {server.data_dir}")
        probe = Probe(client, prefix, args.probe_interval)
        probe.start()
        statuses: dict[int, int] = {}
        cpu = CpuMeter({"server": server.cpu_seconds, "bench": own_cpu_seconds})
        cpu.start()
        try:
            say(
                "eventlog",
                f"posting {n:,} events in {len(workload.bodies):,} batches of {BATCH_EVENTS} from {args.clients} "
                f"clients" + (f" at {args.rate:,.0f} events/s" if args.rate else " as fast as they are answered"),
            )
            first_sent, last_acked = asyncio.run(
                post_all(
                    server.url,
                    secret,
                    workload.bodies,
                    clients=args.clients,
                    rate=args.rate,
                    sample_every=args.sample_every,
                    probe=probe,
                    statuses=statuses,
                )
            )
            say("eventlog", f"all {n:,} acknowledged after {last_acked - first_sent:.2f} s; waiting until searchable")
            deadline = time.monotonic() + SEARCHABLE_TIMEOUT_S
            shown = time.monotonic()
            while probe.count < n:
                if time.monotonic() > deadline:
                    raise BenchError(f"only {probe.count:,} of {n:,} searchable after {SEARCHABLE_TIMEOUT_S:.0f} s")
                if time.monotonic() - shown >= PROGRESS_EVERY_S:
                    shown = time.monotonic()
                    say("eventlog", f"{shown - first_sent:5.1f} s: {probe.count:>9,} of {n:,} searchable")
                time.sleep(0.02)
            searchable_at = probe.count_at
            used = cpu.stop()
            # The sampled ids are all there now; give the probe a few rounds to see them.
            settle = time.monotonic() + 5.0
            while probe.left() and time.monotonic() < settle:
                time.sleep(0.05)
        finally:
            probe.stop()
        sinks = server.readiness().sinks
        with httpx.Client(base_url=server.url, timeout=30.0, trust_env=False) as http:
            letters = http.get("/v1/admin/deadletters", headers={"Authorization": f"Bearer {admin}"}).json()
        if probe.left():
            raise BenchError(f"{probe.left()} sampled ids were never seen although the count reached {probe.count}")
        found = count(client, prefix)
        if found != n:
            raise BenchError(f"{found:,} documents of tenant {TENANT} in OpenSearch for {n:,} events posted")
        code = server.stop()
        say("eventlog", f"eventlog serve stopped (exit {code})")
    return EventlogResult(
        events=n,
        requests=len(workload.bodies),
        first_sent=first_sent,
        last_acked=last_acked,
        searchable_at=searchable_at,
        statuses=statuses,
        probe=probe,
        cpu=used,
        dead_letters=len(letters),
        sinks=sinks,
    )


# -- the report ---------------------------------------------------------------------------------


def report(raw: RawResult, evl: EventlogResult, workload: Workload, args: argparse.Namespace) -> list[Figure]:
    ratio = evl.rate / raw.rate
    p50, p99 = percentile(evl.probe.delays, 50), percentile(evl.probe.delays, 99)
    worst = max(evl.probe.delays) if evl.probe.delays else float("nan")
    ratio_ok, p99_ok = ratio >= TARGET_RATIO, p99 <= TARGET_P99_S
    sink = evl.sinks.get("opensearch", {})
    n = len(workload.inputs)
    print()
    print(
        f"Results: {n:,} events (producer JSON {workload.mean_event_bytes:.0f} B, stored document with fulltext "
        f"{workload.mean_document_bytes:.0f} B on average), 1 shard, 0 replicas, refresh 1 s"
    )
    head = f"{'path':<44} {'seconds':>8} {'events/s':>10}"
    print_header(head)
    print(f"{'raw helpers.bulk (+ refresh)':<44} {raw.seconds:>8.2f} {raw.rate:>10,.0f}")
    print(
        f"{'POST /v1/events -> all searchable':<44} {evl.seconds:>8.2f} {evl.rate:>10,.0f}"
        f"   ratio {ratio:.3f} (target >= {TARGET_RATIO}) {'OK' if ratio_ok else 'MISSED'}"
    )
    print(f"{'  of which: all 201s received':<44} {evl.last_acked - evl.first_sent:>8.2f} {evl.ingest_rate:>10,.0f}")
    print()
    print(f"201 -> searchable delay over {len(evl.probe.delays):,} sampled batches (1 in {args.sample_every}):")
    print(
        f"  p50 {p50:.3f} s   p99 {p99:.3f} s (target <= {TARGET_P99_S:g} s) {'OK' if p99_ok else 'MISSED'}"
        f"   max {worst:.3f} s"
    )
    print()
    print(
        f"CPU during the eventlog phase: eventlog serve {evl.cpu.seconds['server']:.1f} s, this client {evl.cpu.seconds['bench']:.1f} s "
        f"(over {evl.seconds:.1f} s wall on {os.cpu_count()} cores)"
    )
    print(
        f"answers {dict(sorted(evl.statuses.items()))}; dead letters {evl.dead_letters}; probe errors "
        f"{evl.probe.errors}; /readyz sink after: state {sink.get('state')}, lag {sink.get('lag_events')}"
    )
    if evl.probe.first_error:
        print(f"first probe error (retried): {evl.probe.first_error}")
    return [
        at_least("opensearch_ratio_to_raw_bulk", ratio, "ratio", TARGET_RATIO),
        at_most("opensearch_searchable_p99", p99, "s", TARGET_P99_S),
    ]


# -- main -------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = benchmark_parser(
        "opensearch",
        "Index the same N events into OpenSearch twice on one node: raw opensearch.helpers.bulk, then "
        "through POST /v1/events and eventlog's fan-out; print both rates, their ratio (target >= 0.7) "
        "and the p99 delay from 201 to searchable (target <= 2 s).",
        "Uses OPENSEARCH_URL when set; otherwise starts a node with scripts/opensearch.sh and stops it after.",
    )
    parser.add_argument("--events", type=int, default=100_000, help="events N (default: 100000)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients posting batches (default: 4)")
    parser.add_argument(
        "--rate", type=float, default=None, help="cap the posting rate at this many events/s (default: no cap)"
    )
    parser.add_argument(
        "--sample-every", type=int, default=1, help="track the delay of 1 batch in this many (default: 1, every batch)"
    )
    parser.add_argument(
        "--probe-interval",
        type=float,
        default=0.05,
        help="seconds between two searches for sampled ids (default: 0.05)",
    )
    parser.add_argument(
        "--raw-chunk",
        type=int,
        default=DEFAULT_RAW_CHUNK,
        help=f"documents per raw _bulk (default: {DEFAULT_RAW_CHUNK}, as the sink)",
    )
    parser.add_argument(
        "--raw-max-bytes",
        type=int,
        default=DEFAULT_RAW_MAX_BYTES,
        help="largest raw _bulk body (default: 5 MiB, as the sink)",
    )
    parser.add_argument(
        "--warmup-events",
        type=int,
        default=20_000,
        help="documents bulk-indexed into a throwaway index before the raw phase, to warm the JVM (default: 20000)",
    )
    add_seed(parser)
    add_server_env(parser, "EVENTLOG_FANOUT_BATCH_EVENTS=5000")
    parser.add_argument("--keep-indices", action="store_true", help="keep the benchmark's indices and templates")
    args = parser.parse_args(argv)
    if args.events < BATCH_EVENTS or args.events % BATCH_EVENTS:
        parser.error(f"--events must be a positive multiple of {BATCH_EVENTS}")
    if (
        args.clients < 1
        or args.sample_every < 1
        or args.probe_interval <= 0
        or (args.rate is not None and args.rate <= 0)
    ):
        parser.error("--clients, --sample-every, --probe-interval and --rate must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark("bench/opensearch.py", lambda teardown: benchmark(args, teardown))


def benchmark(args: argparse.Namespace, teardown: Teardown) -> list[Figure]:
    """One run: its figures."""
    server_env = dict(args.server_env)
    run = uuid.uuid4().hex[:8]
    raw_prefix, evl_prefix = f"benchraw{run}", f"benchevl{run}"
    work = Path(tempfile.mkdtemp(prefix="eventlog-bench-opensearch-"))
    teardown.add(lambda: shutil.rmtree(work, ignore_errors=True))

    say("prepare", f"generating {args.events:,} events and their stored documents through eventlog's code ...")
    started = time.perf_counter()
    workload = prepare(args.events, args.seed)
    say("prepare", f"done in {time.perf_counter() - started:.1f} s")
    load_before = os.getloadavg()[0]

    node = start_opensearch_node(teardown, HTTP_TIMEOUT_S)
    url, client = node.url, node.client
    if not args.keep_indices:
        teardown.add(lambda: drop_indices(client, raw_prefix))
        teardown.add(lambda: drop_indices(client, evl_prefix))

    if args.warmup_events:
        # A cold JVM indexes slower; neither measured phase should pay for its warm-up.
        warm_prefix = f"benchwarm{run}"
        teardown.add(lambda: drop_indices(client, warm_prefix))
        warm = workload.documents[: args.warmup_events]
        run_raw(client, warm_prefix, warm, args.raw_chunk, args.raw_max_bytes, phase="warm-up")
        drop_indices(client, warm_prefix)
    raw = run_raw(client, raw_prefix, workload.documents, args.raw_chunk, args.raw_max_bytes)
    if raw.searchable != args.events:
        raise BenchError(f"raw: {raw.searchable:,} documents searchable for {args.events:,} sent")
    if not args.keep_indices:
        drop_indices(client, raw_prefix)  # so that its merges do not run during the eventlog phase
    time.sleep(2.0)
    evl = run_eventlog(url, client, evl_prefix, workload, work, args, server_env)
    figures = report(raw, evl, workload, args)
    print(
        f"(1-minute load average: {load_before:.2f} before the node started, {os.getloadavg()[0]:.2f} at the end; "
        "anything else running on the machine lowers both rates)"
    )
    return figures


if __name__ == "__main__":
    sys.exit(main())
