"""Search benchmark: p50/p95 of 20 representative reads on both backends, and the API's overhead over OpenSearch.

One run:

1. load: N events of the generated trail (tests/trail.py; default 1 000 000)
   spread over the 13 days before the run started, for five tenants of which
   one ("acme", 80 %) holds most of them, so that its queries scan a lot.
   Loading 1M events through `POST /v1/events` would take most of an hour on
   a 2-core machine, so they are loaded DIRECTLY into both stores, with the
   code the fan-out runs: `SqliteStore.deliver` (journal `Entry` objects,
   5 000 per transaction) into `<work>/sqlite/search.db`, and the OpenSearch
   sink's `bulk_lines`/`chunks`/`rejections` with `_bulk` into daily indices
   made from eventlog's own template (`template.install`, 1 shard, 0
   replicas) under a prefix of their own; then one refresh. The journals of
   the two services start empty: nothing but the services' own self-audit
   events goes through them.
2. conformance: every query once on both stores in-process (no HTTP),
   self-audit events left out, by `tests.search_cases.compare` (the check of
   tests/integration/search/test_conformance.py); the results (ids of the
   page, buckets, facet values) and each store's count of matches must agree.
3. embedded: `eventlog serve --data-dir <work>/sqlite` as a subprocess, a
   token of the big tenant (`eventlog tokens create --scopes events:read`),
   then `--runs` rounds (default 30); a round sends the 20 queries once each
   through the API, back to back from one httpx.Client (keep-alive), then
   once each straight to the store (`SqliteStore.search/histogram/facets` in
   this process, no HTTP).
4. OpenSearch: `eventlog serve` with EVENTLOG_OPENSEARCH_URL and
   EVENTLOG_OPENSEARCH_INDEX_PREFIX on the loaded indices. A round sends the
   20 queries through the API back to back, then the same compiled requests
   straight to OpenSearch, then (`--pace-ms`, default 50) the API requests
   again with a pause before each one. The direct requests are not rebuilt by
   hand: the backend (`OpenSearchBackend.search/histogram/facets`) is run on a
   recording client, and the index, body and params it would have sent are
   sent with an OpenSearch client built by `search.opensearch.client.build_client`
   from the same settings (routing by tenant, same params, same timeouts).

The queries (tests/search_cases.py): 16 that return events (GET /v1/events:
free text, fields, prefixes, ranges, a time window, CIDR v4 and v6, a
boolean, details, and a deep page: the 20th page of 100, reached once by
following `next_cursor` and then timed with that cursor) and 4 aggregations
(2 histograms, 2 facets), which carry `until` = the load time, so that the
services' self-audit events do not change their results.

Every API read also appends a self-audit event to the journal (fsync) after
its response is sent, which the fan-out then delivers to the store: that is
measured as it is. Three figures say how much of the overhead it explains:
GET /healthz (no auth, no self-audit: the HTTP floor), the API with a pause
before each request (the previous request's self-audit and delivery are done
by then: the difference to back to back is their interference), and the
journal's commit histogram from /metrics (commits and mean fsync time).

Targets: p95 <= 50 ms on OpenSearch and <= 150 ms embedded for each of the
16 non-aggregating queries; API overhead ratio on OpenSearch <= 1.3, as the
sum over the 20 queries of p50(API) divided by the sum of p50(direct) (the
median of the per-query ratios is printed too).

Run from the repository root (so that `bench`, `tests` and `search` import):
  .venv/bin/python -m bench.search
  .venv/bin/python -m bench.search --events 100000 --runs 10
  OPENSEARCH_URL=http://127.0.0.1:9200 .venv/bin/python -m bench.search --keep /tmp/bench-search

With OPENSEARCH_URL set that cluster is used as it is (plain HTTP, no
security plugin); otherwise tests/opensearch_node.start_opensearch() starts a
node (scripts/opensearch.sh) and stops it at the end. Nothing is cached
between runs: the work directory and the indices are deleted at the end,
unless --keep DIR, which keeps the loaded data in DIR (and, with
OPENSEARCH_URL, the indices) and reuses them on a later run with the same
--keep DIR, --events and --seed. Each line printed while it runs starts with
a phase name; the tables come last. Exit status: 0 all targets met, 2 a
target missed, 1 error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import queue
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
from opensearchpy import NotFoundError, OpenSearch

from bench.harness.cpu import CpuMeter, CpuUse, own_cpu_seconds
from bench.harness.opensearch import drop_indices, opensearch_cpu_seconds, start_opensearch_node
from bench.harness.report import Figure, at_most, code_version, percentile, print_header, say
from bench.harness.run import BenchError, Teardown, add_seed, benchmark_parser, run_benchmark
from bench.harness.server import CommitStats, Server
from eventlog.journal import Entry
from eventlog.model import format_time
from eventlog.settings import Settings
from search import cursor as cursors
from search.backend import EventQuery, SearchBackend, all_of
from search.opensearch.backend import OpenSearchBackend, scoped
from search.opensearch.client import build_client
from search.opensearch.sink import BulkRetry, chunks, rejections
from search.opensearch.template import alias, install
from search.query import Node, Range
from search.reads import Reads
from search.sqlite.query import ip_key, to_sqlite
from search.sqlite.store import SqliteStore
from tests.search_cases import (
    NOT_SELF_AUDIT,
    PAGE,
    SCOPE,
    Case,
    Comparison,
    Result,
    Spec,
    api_result,
    ask,
    build_cases,
    compare,
    same_result,
    walk,
)
from tests.trail import BIG_TENANT, Generator

TARGET_OPENSEARCH_P95_MS = 50.0
TARGET_EMBEDDED_P95_MS = 150.0
TARGET_RATIO = 1.3
LOAD_CHUNK = 5_000  # events per SQLite transaction and per batch handed to the OpenSearch writer
HTTP_TIMEOUT_S = 120.0
PROGRESS_EVERY_S = 5.0
MANIFEST = "manifest.json"


# -- load ----------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    events: int
    seconds: float
    mean_document_bytes: float
    big_tenant_events: int
    sqlite_bytes: int


class _Writer(threading.Thread):
    """Takes batches from a bounded queue and writes them into one store; the first error stops it."""

    def __init__(self, name: str, write: Callable[[list[Entry]], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.inbox: queue.Queue[list[Entry] | None] = queue.Queue(maxsize=4)
        self.write = write
        self.done = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            batch = self.inbox.get()
            if batch is None:
                return
            if self.error is not None:
                continue  # keep draining so that the producer never blocks
            try:
                self.write(batch)
                self.done += len(batch)
            except BaseException as exc:
                self.error = exc

    def put(self, batch: list[Entry] | None) -> None:
        if self.error is not None:
            raise BenchError(f"{self.name} failed: {self.error!r}") from self.error
        self.inbox.put(batch)


def bulk_into(client: OpenSearch, prefix: str, max_bytes: int) -> Callable[[list[Entry]], None]:
    """The OpenSearch sink's write path (bulk_lines, chunks, rejections), retried on transient refusals."""

    def write(entries: list[Entry]) -> None:
        for batch, body in chunks(entries, prefix, max_bytes):
            for attempt in range(10):
                answer = client.bulk(body=body, params={"filter_path": "errors,items.*.status,items.*.error"})
                try:
                    refused = rejections(batch, answer)
                except BulkRetry:
                    time.sleep(0.5 * (attempt + 1))
                    continue
                if refused:
                    raise BenchError(f"OpenSearch refused {len(refused)} events, e.g. {refused[0].reason}")
                break
            else:
                raise BenchError("OpenSearch kept answering 429/5xx to a _bulk request")

    return write


def bench_reads(threads: int = 1) -> Reads:
    """Reads as the service runs them, with a deadline no measured query reaches."""
    return Reads(threads=threads, tenant_reads=threads, tenant_queue=1000, deadline_seconds=3600.0)


def load(args: argparse.Namespace, anchor: datetime, search_db: Path, client: OpenSearch, prefix: str) -> LoadResult:
    store = SqliteStore(search_db, bench_reads())
    install(client, prefix, shards=1, replicas=0)
    generator = Generator(args.events, args.seed, anchor)
    sqlite_writer = _Writer("sqlite writer", lambda batch: _raise_rejections(asyncio.run(store.deliver(batch))))
    opensearch_writer = _Writer("opensearch writer", bulk_into(client, prefix, 5 * 1024 * 1024))
    writers = (sqlite_writer, opensearch_writer)
    for writer in writers:
        writer.start()
    big = 0
    started = time.perf_counter()
    shown = started
    say(
        "load",
        f"generating {args.events:,} events over the 13 days before {format_time(anchor)} and writing them into "
        f"{search_db} and OpenSearch indices {prefix}-events-* (direct load, see --help) ...",
    )
    try:
        for batch in generator.chunks(LOAD_CHUNK):
            big += sum(1 for e in batch if e.tenant == BIG_TENANT)
            for writer in writers:
                writer.put(batch)
            now = time.perf_counter()
            if now - shown >= PROGRESS_EVERY_S:
                shown = now
                say(
                    "load",
                    f"{now - started:6.1f} s: generated {generator.seq:>9,} ({generator.seq / (now - started):,.0f}/s), "
                    f"SQLite {sqlite_writer.done:>9,}, OpenSearch {opensearch_writer.done:>9,}",
                )
    finally:
        for writer in writers:
            with contextlib.suppress(BenchError):
                writer.put(None)
        for writer in writers:
            writer.join()
        asyncio.run(store.close())
    for writer in writers:
        if writer.error is not None:
            raise BenchError(f"{writer.name} failed: {writer.error!r}") from writer.error
    client.indices.refresh(index=alias(prefix))
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in search_db.parent.glob(search_db.name + "*"))
    say(
        "load",
        f"{args.events:,} events in {seconds:.1f} s ({args.events / seconds:,.0f}/s); {big:,} in tenant {BIG_TENANT}; "
        f"search.db {size / 2**20:,.0f} MiB",
    )
    return LoadResult(args.events, seconds, generator.bytes_total / max(1, args.events), big, size)


def _raise_rejections(rejected: Sequence[object]) -> None:
    if rejected:
        raise BenchError(f"the SQLite store refused {len(rejected)} events, e.g. {rejected[0]!r}")


# -- the queries and the stores in this process -------------------------------------------------


@dataclass
class Timings:
    values: list[float] = field(default_factory=list)  # milliseconds
    spent: float = 0.0  # seconds, to stop a slow query at the budget

    def add(self, seconds: float) -> None:
        self.values.append(seconds * 1000)
        self.spent += seconds

    def p(self, q: float) -> float:
        return percentile(self.values, q)


@dataclass
class Query:
    """A case of this run, and what the benchmark measured of it."""

    case: Case
    matches: dict[str, str] = field(default_factory=dict)  # backend -> what the query finds
    api: dict[str, Timings] = field(default_factory=dict)
    direct: dict[str, Timings] = field(default_factory=dict)
    paced: Timings = field(default_factory=Timings)
    took: list[float] = field(default_factory=list)  # OpenSearch's own `took`, ms
    walk_ms: dict[str, float] = field(default_factory=dict)  # deep page: following next_cursor to it, once

    @property
    def spec(self) -> Spec:
        return self.case.spec


class Recorder:
    """Stands in for the OpenSearch client: keeps what the backend would send, answers nothing found."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    def search(
        self, *, index: str, body: dict[str, Any], params: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        self.calls.append((index, orjson.loads(orjson.dumps(body)), dict(params)))
        return {"hits": {"hits": []}, "aggregations": {}}


@dataclass(frozen=True)
class Compiled:
    index: str
    body: dict[str, Any]
    params: dict[str, Any]


class Embedded:
    """The SQLite store opened in this process: the same object the service reads through."""

    def __init__(self, search_db: Path, runner: asyncio.Runner) -> None:
        self.path = search_db
        # One read thread, so that the store keeps one reader connection.
        self.store = SqliteStore(search_db, bench_reads(threads=1))
        self.runner = runner

    def run(self, case: Case) -> Result:
        return self.runner.run(ask(self.store, case))

    def count(self, where: Node) -> int:
        condition, params = to_sqlite(where)
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            row = conn.execute(
                f"SELECT COUNT(*) FROM events WHERE tenant = ? AND ({condition})", [BIG_TENANT, *params]
            ).fetchone()
        return int(row[0])

    def explain(self, case: Case) -> tuple[str, list[str]]:
        """The statement the store runs for this case (traced) and SQLite's plan for it."""
        if case.spec.page > 1:
            case = replace(case, after=self.runner.run(walk(self.store, case, case.where)))
        statements: list[str] = []
        self.store.trace(statements.append)
        try:
            self.run(case)
        finally:
            self.store.trace(None)
        sql = next((s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))), "")
        if not sql:
            return "(the store's statement could not be traced)", []
        plan: list[str] = []
        depth: dict[int, int] = {}
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            conn.create_function("ip_key", 1, ip_key, deterministic=True)  # the store's SQL calls it
            for node, parent, _, detail in conn.execute("EXPLAIN QUERY PLAN " + sql):
                depth[node] = depth.get(parent, -1) + 1
                plan.append("  " * depth[node] + str(detail))
        return sql, plan

    def close(self) -> None:
        self.runner.run(self.store.close())


class Remote:
    """OpenSearch from this process: eventlog's backend for the conformance check, raw requests for timing."""

    def __init__(self, client: OpenSearch, prefix: str, runner: asyncio.Runner) -> None:
        self.client = client
        self.prefix = prefix
        self.backend = OpenSearchBackend(client, prefix, bench_reads())
        self.runner = runner

    def count(self, where: Node) -> int:
        body = {"query": scoped(SCOPE, where)}
        params = {"routing": BIG_TENANT, "ignore_unavailable": "true", "allow_no_indices": "true"}
        return int(self.client.count(index=alias(self.prefix), body=body, params=params)["count"])

    def compile(self, case: Case) -> Compiled:
        """Index, body and params exactly as OpenSearchBackend would send them for this case."""
        recorder = Recorder()
        self.runner.run(ask(OpenSearchBackend(cast(OpenSearch, recorder), self.prefix, bench_reads()), case))
        index, body, params = recorder.calls[-1]
        return Compiled(index, body, params)

    def send(self, case: Case, compiled: Compiled) -> tuple[float, float, Result]:
        """One compiled request straight to OpenSearch: (seconds, OpenSearch's took in ms, result)."""
        started = time.perf_counter()
        answer = self.client.search(index=compiled.index, body=compiled.body, params=compiled.params)
        seconds = time.perf_counter() - started
        kind = case.spec.kind
        result: Result
        if kind == "list":
            hits = answer["hits"]["hits"][:PAGE]
            result = tuple((str(h["_source"]["id"]), str(h["_source"]["source"])) for h in hits)
        elif kind == "histogram":
            buckets = answer.get("aggregations", {}).get("buckets", {}).get("buckets", [])
            result = tuple((int(b["key"]) * 1000, int(b["doc_count"])) for b in buckets)
        else:
            buckets = answer.get("aggregations", {}).get("values", {}).get("buckets", [])
            result = tuple((str(b["key"]), int(b["doc_count"])) for b in buckets)
        return seconds, float(answer.get("took", 0)), result


def conformance(queries: Sequence[Query], embedded: Embedded, remote: Remote) -> list[str]:
    """Every query once on both stores in-process, self-audit events left out: counts and results must agree."""
    problems: list[str] = []
    by_name = {query.spec.name: query for query in queries}
    started = time.perf_counter()

    def seen(comparison: Comparison) -> None:
        nonlocal started
        case = comparison.case
        counted = all_of(case.where, NOT_SELF_AUDIT)
        if case.spec.kind == "histogram":
            assert case.since_us is not None
            assert case.until_us is not None
            counted = all_of(counted, Range("time", ">=", case.since_us), Range("time", "<", case.until_us))
        counts = embedded.count(counted), remote.count(counted)
        by_name[case.spec.name].matches = {"embedded": f"{counts[0]:,}", "opensearch": f"{counts[1]:,}"}
        same = counts[0] == counts[1] and comparison.same
        if not same:
            shown = comparison.difference() or "the same results"
            problems.append(f"{case.spec.name}: embedded {counts[0]:,} matches, OpenSearch {counts[1]:,}; {shown}")
        say(
            "check",
            f"{case.spec.name:<18} {counts[0]:>9,} matches, {len(comparison.results[0]):>3} results, "
            f"{'same on both stores' if same else 'DIFFERENT'} ({time.perf_counter() - started:.1f} s)",
        )
        started = time.perf_counter()

    backends: tuple[SearchBackend, SearchBackend] = (embedded.store, remote.backend)
    embedded.runner.run(compare([q.case for q in queries], *backends, seen=seen))
    return problems


# -- the services --------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    label: str
    healthz: Timings = field(default_factory=Timings)
    commits: CommitStats = field(default_factory=CommitStats)
    cpu: CpuUse = field(default_factory=lambda: CpuUse({}, 0.0))  # keys: server, bench, opensearch
    wall_s: float = 0.0
    mismatches: list[str] = field(default_factory=list)


Direct = Callable[[Query], tuple[float, float | None, Result]]


def get(http: httpx.Client, path: str, params: dict[str, str]) -> tuple[float, bytes]:
    started = time.perf_counter()
    answer = http.get(path, params=params)
    seconds = time.perf_counter() - started
    if answer.status_code != 200:
        raise BenchError(f"GET {path} {params} answered {answer.status_code}: {answer.text[:500]}")
    return seconds, answer.content


def run_phase(
    phase: Phase,
    server: Server,
    secret: str,
    queries: Sequence[Query],
    prepare_direct: Callable[[], None],
    direct: Direct,
    args: argparse.Namespace,
    opensearch: OpenSearch,
    *,
    paced: bool,
) -> None:
    name = phase.name
    headers = {"Authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=HTTP_TIMEOUT_S, trust_env=False) as http:
        params = {q.spec.name: dict(q.case.params) for q in queries}
        for query in queries:
            query.api[name], query.direct[name] = Timings(), Timings()
            if query.spec.page <= 1:
                continue
            # The deep page: follow next_cursor like a client, once; then time the last page with its cursor.
            started = time.perf_counter()
            for _ in range(query.spec.page - 1):
                _, body = get(http, query.case.path, params[query.spec.name])
                cursor = orjson.loads(body)["next_cursor"]
                if cursor is None:
                    raise BenchError(f"{query.spec.name}: fewer than {query.spec.page} pages")
                params[query.spec.name]["cursor"] = cursor
            query.walk_ms[name] = (time.perf_counter() - started) * 1000
            # The server signs its cursors with the key in its data dir; read with the same key.
            codec = cursors.Cursors(cursors.FileCursorKey(server.data_dir / "cursor.key", create=False))
            try:
                after = codec.decode(cursor, cursors.fingerprint(BIG_TENANT, EventQuery(where=query.case.where)))
            except cursors.CursorError as exc:
                raise BenchError(f"{query.spec.name}: the API built another condition than this benchmark") from exc
            query.case = replace(query.case, after=after)
        prepare_direct()

        say(name, f"warm-up: {args.warmup} runs of each query through the API and straight to the store")
        for query in queries:
            for attempt in range(args.warmup):
                _, body = get(http, query.case.path, params[query.spec.name])
                _, _, result = direct(query)
                if attempt == 0 and not same_result(query.case, api_result(query.case, body), result):
                    phase.mismatches.append(query.spec.name)

        before = server.commit_stats()
        cpu = CpuMeter(
            {
                "server": server.cpu_seconds,
                "bench": own_cpu_seconds,
                "opensearch": lambda: opensearch_cpu_seconds(opensearch),
            }
        )
        cpu.start()
        started = time.perf_counter()
        shown = started
        for round_number in range(1, args.runs + 1):
            for query in queries:
                timings = query.api[name]
                if _within(timings, args):
                    timings.add(get(http, query.case.path, params[query.spec.name])[0])
            for query in queries:
                timings = query.direct[name]
                if _within(timings, args):
                    seconds, took, _ = direct(query)
                    timings.add(seconds)
                    if took is not None:
                        query.took.append(took)
            if paced:
                for query in queries:
                    if _within(query.paced, args):
                        time.sleep(args.pace_ms / 1000)
                        query.paced.add(get(http, query.case.path, params[query.spec.name])[0])
            for _ in range(5):
                phase.healthz.add(get(http, "/healthz", {})[0])
            now = time.perf_counter()
            if now - shown >= PROGRESS_EVERY_S or round_number == args.runs:
                shown = now
                say(name, f"round {round_number}/{args.runs} done ({now - started:.0f} s)")
        phase.commits = server.commit_stats().minus(before)
        phase.cpu = cpu.stop()
        phase.wall_s = time.perf_counter() - started


def _within(timings: Timings, args: argparse.Namespace) -> bool:
    """Another run, unless a slow query used up its budget (after at least 5 runs)."""
    return len(timings.values) < 5 or timings.spent < args.budget_seconds


def start_server(data_dir: Path, env: dict[str, str], phase: str) -> tuple[Server, str]:
    server = Server(data_dir, env=env, startup_timeout=60.0)
    secret = server.create_token(BIG_TENANT, ["events:read"])
    server.start()
    say(phase, f"eventlog serve (pid {server.pid}) on {server.url}, data dir {data_dir}")
    return server, secret


# -- the report --------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def report(
    queries: Sequence[Query],
    phases: dict[str, Phase],
    loaded: LoadResult,
    anchor: datetime,
    problems: Sequence[str],
    args: argparse.Namespace,
) -> list[Figure]:
    print()
    print(f"\nCode: {code_version()}; command: {' '.join(sys.orig_argv)}")
    print(
        f"Results: {loaded.events:,} events over 13 days ({loaded.big_tenant_events:,} in tenant {BIG_TENANT}, "
        f"the one queried; stored documents {loaded.mean_document_bytes:.0f} B on average), "
        f"T = load time {format_time(anchor)}"
    )
    print("Queries (tenant acme, pages of 100, newest first):")
    for number, query in enumerate(queries, 1):
        print(f"  {number:>2} {query.spec.name:<18} {query.case.describe()}")
    print(
        f"conformance on {len(queries)} queries (in-process, self-audit events left out): "
        + ("the same results on both stores" if not problems else f"DIFFERENT: {'; '.join(problems)}")
    )

    embedded, remote = phases["embedded"], phases["opensearch"]
    print()
    print(
        f"Embedded store (SQLite), milliseconds; 'store' = SqliteStore called in this process (no HTTP); "
        f"{args.runs} runs per query unless a slow one reached its {args.budget_seconds:g} s budget first"
    )
    head = (
        f"{'#':>2} {'query':<18} {'matches':>9} {'runs':>4} {'API p50':>8} {'API p95':>8} "
        f"{'store p50':>9} {'store p95':>9} {'API/store':>9}"
    )
    print_header(head)
    for number, query in enumerate(queries, 1):
        api, store = query.api["embedded"], query.direct["embedded"]
        flag = "!" if not query.spec.aggregates and api.p(95) > TARGET_EMBEDDED_P95_MS else " "
        print(
            f"{number:>2} {query.spec.name:<18} {query.matches.get('embedded', '?'):>9} {len(api.values):>4} "
            f"{_ms(api.p(50)):>8} {_ms(api.p(95)):>7}{flag} {_ms(store.p(50)):>9} {_ms(store.p(95)):>9} "
            f"{api.p(50) / store.p(50):>9.2f}"
        )
    print(f"('!': p95 above the {TARGET_EMBEDDED_P95_MS:g} ms target of a non-aggregating query)")

    print()
    print(
        f"OpenSearch (one index per day, 1 shard each, 0 replicas), milliseconds; 'direct' = the compiled request "
        f"sent straight to OpenSearch; 'paced' = the API with {args.pace_ms:g} ms of pause before each request; "
        f"'took' = OpenSearch's own time"
    )
    head = (
        f"{'#':>2} {'query':<18} {'matches':>9} {'runs':>4} {'API p50':>8} {'API p95':>8} {'paced p50':>9} "
        f"{'direct p50':>10} {'direct p95':>10} {'took p50':>8} {'API/direct':>10}"
    )
    print_header(head)
    ratios: list[float] = []
    for number, query in enumerate(queries, 1):
        api, direct = query.api["opensearch"], query.direct["opensearch"]
        flag = "!" if not query.spec.aggregates and api.p(95) > TARGET_OPENSEARCH_P95_MS else " "
        ratio = api.p(50) / direct.p(50)
        ratios.append(ratio)
        print(
            f"{number:>2} {query.spec.name:<18} {query.matches.get('opensearch', '?'):>9} {len(api.values):>4} "
            f"{_ms(api.p(50)):>8} {_ms(api.p(95)):>7}{flag} {_ms(query.paced.p(50)):>9} "
            f"{_ms(direct.p(50)):>10} {_ms(direct.p(95)):>10} {_ms(percentile(query.took, 50)):>8} {ratio:>10.2f}"
        )
    print(f"('!': p95 above the {TARGET_OPENSEARCH_P95_MS:g} ms target of a non-aggregating query)")
    for phase in (embedded, remote):
        walks = [f"{q.spec.name} {q.walk_ms[phase.name]:.0f} ms" for q in queries if phase.name in q.walk_ms]
        if walks:
            print(f"{phase.label}: following next_cursor to the deep page once took {', '.join(walks)}")
        if phase.mismatches:
            print(f"{phase.label}: API and direct answers differed at warm-up for {', '.join(phase.mismatches)}")

    # -- targets
    print()
    print("Targets")
    figures = []
    for phase, target in ((remote, TARGET_OPENSEARCH_P95_MS), (embedded, TARGET_EMBEDDED_P95_MS)):
        listed = [(q.api[phase.name].p(95), q.spec.name) for q in queries if not q.spec.aggregates]
        worst, worst_name = max(listed)
        missed = [f"{n} ({_ms(v)} ms)" for v, n in listed if v > target]
        ok = not missed
        figures.append(Figure(f"search_{phase.name}_worst_p95", worst, "ms", f"<={target:g}", ok))
        print(
            f"  {phase.label:<10} p95 of each of the {len(listed)} non-aggregating queries <= {target:g} ms: worst "
            f"{_ms(worst)} ms ({worst_name}) -> {'OK' if ok else 'MISSED by ' + ', '.join(missed)}"
        )
    api_sum = sum(q.api["opensearch"].p(50) for q in queries)
    direct_sum = sum(q.direct["opensearch"].p(50) for q in queries)
    paced_sum = sum(q.paced.p(50) for q in queries)
    ratio = api_sum / direct_sum
    ratio_ok = ratio <= TARGET_RATIO
    figures.append(at_most("search_api_overhead_ratio", ratio, "ratio", TARGET_RATIO))
    median_ratio = statistics.median(ratios)
    worst_ratio, worst_ratio_name = max(zip(ratios, (q.spec.name for q in queries), strict=True))
    print(
        f"  API overhead on OpenSearch, sum of p50(API) / sum of p50(direct) over the {len(queries)} queries: "
        f"{api_sum:.1f} / {direct_sum:.1f} ms = {ratio:.2f} (target <= {TARGET_RATIO:g}) "
        f"-> {'OK' if ratio_ok else 'MISSED'}"
    )
    print(
        f"    median of the per-query ratios {median_ratio:.2f} "
        f"({'<=' if median_ratio <= TARGET_RATIO else '>'} {TARGET_RATIO:g}); highest {worst_ratio:.2f} ({worst_ratio_name})"
    )

    # -- where the overhead goes
    overhead = api_sum - direct_sum
    floor = remote.healthz.p(50)
    interference = api_sum - paced_sum
    commits = remote.commits
    print()
    print(f"Where the API's overhead on OpenSearch goes (p50s summed over the {len(queries)} queries)")
    print(f"  API - direct: {overhead:.1f} ms, {overhead / len(queries):.2f} ms per request")
    print(
        f"  GET /healthz p50 {floor:.2f} ms (HTTP round trip + ASGI middleware, no auth, no self-audit): "
        f"{floor * len(queries):.1f} ms = {_share(floor * len(queries), overhead)} of it"
    )
    if args.pace_ms > 0:
        print(
            f"  self-audit, back to back minus paced ({args.pace_ms:g} ms pause, the previous request's journal "
            f"append and its delivery to OpenSearch done by then): {interference:.1f} ms = "
            f"{_share(interference, overhead)}"
        )
    else:
        interference = 0.0
    if commits.commits:
        print(
            f"  journal during the measured rounds: {commits.commits:,.0f} commits of {commits.events:,.0f} "
            f"self-audit events, {commits.seconds / commits.commits * 1000:.2f} ms per commit (fsync included) on "
            "average; appended after the response is sent, so off the measured path except for the CPU it and "
            "the fan-out take"
        )
    rest = overhead - floor * len(queries) - interference
    print(
        f"  the rest: {rest:.1f} ms = {_share(rest, overhead)} (token check, parsing, the thread hop, "
        "re-serialising each _source, building the answer)"
    )
    print()
    for phase in (embedded, remote):
        used, others = phase.cpu.seconds, phase.cpu.other
        wall = max(phase.wall_s, 1e-9)
        print(
            f"CPU during the {phase.label} rounds ({phase.wall_s:.0f} s wall, {os.cpu_count()} cores): eventlog serve "
            f"{used['server']:.1f} s, this client {used['bench']:.1f} s, OpenSearch {used['opensearch']:.1f} s, "
            f"other processes {others:.1f} s = {others / wall:.2f} cores on average"
            + (" (a busy machine: the figures are pessimistic)" if others / wall > 0.25 else "")
        )
    if problems:
        # The stores disagreed: no figure of this run counts.
        figures = [Figure(f.name, f.value, f.unit, f.target, False) for f in figures]
    return figures


def _share(part: float, whole: float) -> str:
    return f"{part / whole * 100:.0f} %" if whole > 0 else "-"


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = benchmark_parser(
        "search",
        "Load N generated events into the embedded store and into OpenSearch, run 20 representative queries "
        "through `eventlog serve` on each, print p50/p95 per query and backend (targets: p95 <= 50 ms on "
        "OpenSearch, <= 150 ms embedded, non-aggregating queries) and the ratio of the API's latency to the "
        "same compiled request sent straight to OpenSearch (target <= 1.3).",
        "Events are loaded directly into the stores with the fan-out's own code, not through the HTTP API "
        "(see the module docstring). Uses OPENSEARCH_URL when set; otherwise starts a node with "
        "scripts/opensearch.sh and stops it after.",
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events N to load (default: 1000000)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each query per path (default: 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each query first (default: 3)")
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=30.0,
        help="stop repeating a query on one path after this many seconds, once it ran 5 times (default: 30)",
    )
    parser.add_argument(
        "--pace-ms",
        type=float,
        default=50.0,
        help="pause before each request of the paced API pass on OpenSearch (default: 50; 0 skips the pass)",
    )
    add_seed(parser)
    parser.add_argument(
        "--explain", action="store_true", help="print SQLite's EXPLAIN QUERY PLAN of every query on the embedded store"
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        default=None,
        help="keep the loaded data in DIR (and, with OPENSEARCH_URL, the indices) and reuse them on a later run "
        "with the same DIR, --events and --seed (default: a temporary directory, deleted at the end)",
    )
    args = parser.parse_args(argv)
    if args.events < 40_000:
        parser.error("--events must be at least 40000 (the deep page needs 20 pages of 100 failures in one tenant)")
    if args.runs < 1 or args.warmup < 1 or args.budget_seconds <= 0 or args.pace_ms < 0:
        parser.error("--runs and --warmup must be at least 1, --budget-seconds positive, --pace-ms not negative")
    return args


def reusable(work: Path, args: argparse.Namespace, url: str, client: OpenSearch) -> dict[str, Any] | None:
    """The manifest of a kept load that matches this run and is still complete in both stores."""
    try:
        manifest: dict[str, Any] = orjson.loads((work / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    if (manifest.get("events"), manifest.get("seed"), manifest.get("url")) != (args.events, args.seed, url):
        return None
    not_self_audit = {"query": {"bool": {"must_not": [{"term": {"source": "eventlog"}}]}}}
    try:
        found = client.count(
            index=alias(manifest["prefix"]),
            body=not_self_audit,
            params={"ignore_unavailable": "true", "allow_no_indices": "true"},
        )["count"]
        with contextlib.closing(sqlite3.connect(work / "sqlite" / "search.db")) as conn:
            stored = conn.execute("SELECT COUNT(*) FROM events WHERE source != 'eventlog'").fetchone()[0]
    except (NotFoundError, sqlite3.Error):
        return None
    return manifest if found == stored == args.events else None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark("bench/search.py", lambda teardown: benchmark(args, teardown))


def benchmark(args: argparse.Namespace, teardown: Teardown) -> list[Figure]:
    """One run: its figures."""
    if args.keep:
        work = Path(args.keep).resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="eventlog-bench-search-"))
        teardown.add(lambda: shutil.rmtree(work, ignore_errors=True))
    node = start_opensearch_node(teardown, HTTP_TIMEOUT_S)
    url, load_client = node.url, node.client

    manifest = reusable(work, args, url, load_client) if args.keep else None
    if manifest is not None:
        anchor = datetime.fromisoformat(manifest["anchor"])
        prefix = str(manifest["prefix"])
        loaded = LoadResult(**manifest["loaded"])
        say("load", f"reusing the {args.events:,} events loaded at {format_time(anchor)} in {work} ({prefix})")
    else:
        for sub in ("sqlite", "opensearch"):
            shutil.rmtree(work / sub, ignore_errors=True)
        (work / MANIFEST).unlink(missing_ok=True)
        anchor = datetime.now(UTC).replace(microsecond=0)
        prefix = f"benchsearch{uuid.uuid4().hex[:8]}"
        if node.given and not args.keep:
            teardown.add(lambda: drop_indices(load_client, prefix))
        loaded = load(args, anchor, work / "sqlite" / "search.db", load_client, prefix)
        if args.keep:
            manifest = {
                "events": args.events,
                "seed": args.seed,
                "url": url,
                "anchor": anchor.isoformat(),
                "prefix": prefix,
                "loaded": loaded.__dict__,
            }
            (work / MANIFEST).write_bytes(orjson.dumps(manifest))

    runner = asyncio.Runner()
    teardown.add(runner.close)
    client = build_client(Settings(opensearch_url=url).opensearch)  # the service's client settings
    teardown.add(client.close)
    embedded = Embedded(work / "sqlite" / "search.db", runner)
    teardown.add(embedded.close)
    remote = Remote(client, prefix, runner)
    queries = [Query(case) for case in build_cases(anchor)]

    say("check", "every query once on both stores, in this process ...")
    problems = conformance(queries, embedded, remote)
    if args.explain:
        for query in queries:
            sql, plan = embedded.explain(query.case)
            print(f"\n[explain] {query.spec.name}: {sql[:600]}{' ...' if len(sql) > 600 else ''}")
            for line in plan:
                print(f"[explain]   {line}")

    phases = {"embedded": Phase("embedded", "embedded"), "opensearch": Phase("opensearch", "OpenSearch")}
    server, secret = start_server(work / "sqlite", {}, "embedded")
    with server:

        def embedded_direct(query: Query) -> tuple[float, float | None, Result]:
            started = time.perf_counter()
            result = embedded.run(query.case)
            return time.perf_counter() - started, None, result

        run_phase(phases["embedded"], server, secret, queries, lambda: None, embedded_direct, args, client, paced=False)
        say("embedded", f"eventlog serve stopped (exit {server.stop()})")

    env = {"EVENTLOG_OPENSEARCH_URL": url, "EVENTLOG_OPENSEARCH_INDEX_PREFIX": prefix}
    server, secret = start_server(work / "opensearch", env, "opensearch")
    with server:
        compiled: dict[str, Compiled] = {}

        def compile_all() -> None:
            compiled.update({q.spec.name: remote.compile(q.case) for q in queries})

        def remote_direct(query: Query) -> tuple[float, float | None, Result]:
            return remote.send(query.case, compiled[query.spec.name])

        run_phase(
            phases["opensearch"],
            server,
            secret,
            queries,
            compile_all,
            remote_direct,
            args,
            client,
            paced=args.pace_ms > 0,
        )
        say("opensearch", f"eventlog serve stopped (exit {server.stop()})")

    return report(queries, phases, loaded, anchor, problems, args)


if __name__ == "__main__":
    sys.exit(main())
