"""Cluster benchmark: eventlog nodes behind the real HAProxy on OpenSearch, all on loopback.

Three figures, each from its own phase of one run:

1. scaling: batches of 100 events with client ids through HAProxy for --seconds, first with one node
   (both of HAProxy's server lines on it), then with two; the ratio two/one is printed.
2. single-event latency: one event per request, --clients at a time, with EVENTLOG_ACK=local and
   then EVENTLOG_ACK=replicated on two nodes: p99 from the client, HAProxy included.
3. failover: the load of 1 (retrying what got no acknowledgement, with the same body) while node A
   is SIGKILLed; the figure is the longest time one client went without a 201 or 200.

Every phase starts fresh nodes on fresh data dirs and a prefix of its own. Uses OPENSEARCH_URL when
set; otherwise starts a node (scripts/opensearch.sh). Needs haproxy (apt-get install haproxy).
Run from the repository root: .venv/bin/python -m bench.cluster [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.harness.opensearch import OpenSearchNode, drop_indices, start_opensearch_node
from bench.harness.report import Figure, at_least, at_most, percentile, say
from bench.harness.run import BenchError, Teardown, add_server_env, benchmark_parser, run_benchmark
from bench.harness.server import Server
from tests.haproxy import HAProxy, start_haproxy

BATCH = 100
TARGET_SCALING = 1.6
TARGET_LOCAL_P99_MS = 25.0
TARGET_REPLICATED_P99_MS = 100.0
TARGET_FAILOVER_S = 2.0


@dataclass
class Load:
    events: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    longest_wait_s: float = 0.0  # the longest one batch waited for its acknowledgement, retries included
    refused: dict[str, int] = field(default_factory=dict)


async def _producer(url: str, secret: str, size: int, until: float, load: Load, worker: int) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {secret}"}, timeout=30) as http:
        number = 0
        while time.monotonic() < until:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            events = [
                {"id": f"w{worker}-{number}-{k}", "time": stamp, "action": "bench.cluster", "message": f"event {k}"}
                for k in range(size)
            ]
            body = events[0] if size == 1 else {"events": events}
            number += 1
            first = time.monotonic()
            while True:
                started = time.monotonic()
                try:
                    answer = await http.post("/v1/events", json=body)
                    kind = str(answer.status_code)
                except httpx.HTTPError as exc:
                    kind = type(exc).__name__
                if kind in ("200", "201"):
                    load.latencies_ms.append((time.monotonic() - started) * 1000)
                    load.events += size
                    load.longest_wait_s = max(load.longest_wait_s, time.monotonic() - first)
                    break
                load.refused[kind] = load.refused.get(kind, 0) + 1
                if time.monotonic() - first > 60:
                    raise BenchError(f"a request got no acknowledgement within 60 s: {load.refused}")
                await asyncio.sleep(0.05)


async def _run_load(url: str, secret: str, size: int, clients: int, seconds: float, kill: Server | None) -> Load:
    load = Load()
    until = time.monotonic() + seconds
    tasks = [asyncio.create_task(_producer(url, secret, size, until, load, w)) for w in range(clients)]
    if kill is not None:
        await asyncio.sleep(seconds / 3)
        say("failover", f"SIGKILL node A (pid {kill.pid}) with {load.events:,} events acknowledged")
        kill.kill()
    await asyncio.gather(*tasks)
    return load


@contextlib.contextmanager
def _cluster(
    node: OpenSearchNode, work: Path, count: int, ack: str, server_env: Sequence[tuple[str, str]]
) -> Iterator[tuple[list[Server], HAProxy, str]]:
    """`count` fresh nodes (A, B) on a prefix of their own behind HAProxy, and a token they all take."""
    prefix = f"benchcluster{uuid.uuid4().hex[:8]}"
    phase = work / prefix
    servers = []
    try:
        for name in "ab"[:count]:
            env = {
                "EVENTLOG_OPENSEARCH_URL": node.url,
                "EVENTLOG_OPENSEARCH_INDEX_PREFIX": prefix,
                "EVENTLOG_STREAM": f"bench-{name}",
                "EVENTLOG_ACK": ack,
                "EVENTLOG_TRUSTED_PROXIES": '["127.0.0.1"]',
                **dict(server_env),
            }
            server = Server(phase / name, env=env, startup_timeout=60.0)
            server.start()
            servers.append(server)
        secret = servers[0].create_token("acme", ["events:write"])
        backends = [f"127.0.0.1:{s.port}" for s in servers]
        balancer = start_haproxy(backends * (2 // count), phase / "lb")
        try:
            yield servers, balancer, secret
        finally:
            balancer.stop()
    finally:
        for server in servers:
            server.close()
        drop_indices(node.client, prefix)


def benchmark(args: argparse.Namespace, teardown: Teardown) -> list[Figure]:
    node = start_opensearch_node(teardown, 120.0)
    work = Path(tempfile.mkdtemp(prefix="eventlog-bench-cluster-"))
    teardown.add(lambda: shutil.rmtree(work, ignore_errors=True))
    rates: dict[int, float] = {}
    for count in (1, 2):
        with _cluster(node, work, count, "local", args.server_env) as (_, balancer, secret):
            load = asyncio.run(_run_load(balancer.url, secret, BATCH, args.clients, args.seconds, None))
        rates[count] = load.events / args.seconds
        say(
            "scaling",
            f"{count} node(s): {rates[count]:,.0f} events/s in batches of {BATCH} ({load.refused or 'no refusals'})",
        )
    p99: dict[str, float] = {}
    for ack in ("local", "replicated"):
        with _cluster(node, work, 2, ack, args.server_env) as (_, balancer, secret):
            load = asyncio.run(_run_load(balancer.url, secret, 1, args.clients, args.seconds, None))
        p99[ack] = percentile(load.latencies_ms, 99)
        say(
            "latency",
            f"EVENTLOG_ACK={ack}: {len(load.latencies_ms):,} single events, p50 "
            f"{percentile(load.latencies_ms, 50):.1f} ms, p99 {p99[ack]:.1f} ms",
        )
    with _cluster(node, work, 2, "local", args.server_env) as (servers, balancer, secret):
        load = asyncio.run(_run_load(balancer.url, secret, BATCH, args.clients, args.seconds, servers[0]))
    say(
        "failover",
        f"{load.events:,} events acknowledged; longest wait of one batch {load.longest_wait_s:.2f} s; "
        f"refusals on the way {load.refused}",
    )
    return [
        at_least("cluster_scaling_two_over_one", rates[2] / rates[1], "ratio", TARGET_SCALING),
        at_most("cluster_single_p99_ack_local", p99["local"], "ms", TARGET_LOCAL_P99_MS),
        at_most("cluster_single_p99_ack_replicated", p99["replicated"], "ms", TARGET_REPLICATED_P99_MS),
        at_most("cluster_failover_gap", load.longest_wait_s, "s", TARGET_FAILOVER_S),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser(
        "cluster",
        "Two eventlog nodes behind HAProxy on OpenSearch: events/s with one node and with two, single-event p99 "
        "with EVENTLOG_ACK=local and replicated, and the failover gap while a node is killed.",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load phase (default: 10)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default: 8)")
    add_server_env(parser, "EVENTLOG_GROUP_COMMIT_MAX_EVENTS=2000")
    args = parser.parse_args(argv)
    return run_benchmark("bench/cluster.py", lambda teardown: benchmark(args, teardown))


if __name__ == "__main__":
    raise SystemExit(main())
