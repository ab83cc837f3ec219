"""Middleware benchmark: the Storage API example bare and wrapped by AuditMiddleware, under the same load.

Starts `eventlog serve` (temporary data dir) and two uvicorn processes of
`examples/storage_api`: one bare (STORAGE_API_AUDIT=false) and one wrapped,
sending every call as an event to that eventlog through the remote
HttpEmitter (batches, disk spool). wrk drives one app at a time, alternating
bare and wrapped round by round, so both see the same machine state:

- throughput rounds: `--concurrency` connections for `--round-seconds`, requests/s;
- latency rounds: one connection (no queueing), p50 latency; the wrapped p50
  minus the bare p50 is what the middleware adds to one call.

The load rotates three authenticated GETs (token verify, table detail, bucket
list). At the end it checks that eventlog holds one event per wrapped call
and prints the CPU seconds every process used.

Targets: wrapped >= 0.95 x bare requests/s; added p50 latency <= 100 µs.

Run (from the repository root; wrk from `apt-get install wrk`):
  .venv/bin/python -m bench.middleware
  .venv/bin/python -m bench.middleware --rounds 6 --round-seconds 5 --concurrency 32

On a 2-core machine the load generator, eventlog and the app share the
cores; the app is one uvicorn worker (one core at most). The eventlog server
ingesting the wrapped app's events competes with wrk, not with the app, as
long as one core is left for the app.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench.harness.cpu import CpuMeter, children_cpu_seconds, process_cpu_seconds
from bench.harness.report import at_least, at_most, print_results
from bench.harness.run import BenchError
from bench.harness.server import Server
from bench.harness.wrk import WrkRun, run_wrk, wrk_script
from tests.integration.examples.example_process import ExampleProcess
from tests.integration.server import CLEAN_EXIT_CODES

TARGET_RATIO = 0.95
TARGET_ADDED_P50_US = 100.0
MASTER = "bench-master-token-0123456789"
TABLE = "in.c-bench.sales"

# wrk's requests (bench/harness/wrk.py's driver sends them in rotation): three authenticated GETs, the token args[1].
REQUESTS_LUA = r"""
function requests_for(args)
   local requests = {}
   local paths = {"/v2/storage/tokens/verify", "/v2/storage/tables/in.c-bench.sales", "/v2/storage/buckets"}
   for i, path in ipairs(paths) do
      requests[i] = wrk.format("GET", path, {["X-StorageApi-Token"] = args[1], ["User-Agent"] = "wrk"})
   end
   return requests
end
"""


@dataclass
class Variant:
    name: str
    app: ExampleProcess
    throughput: list[WrkRun] = field(default_factory=list)
    latency: list[WrkRun] = field(default_factory=list)
    warmup: list[WrkRun] = field(default_factory=list)

    def rate(self) -> float:
        return sum(r.requests for r in self.throughput) / sum(r.seconds for r in self.throughput)

    def p50_us(self) -> float:
        return statistics.median(r.p50_us for r in self.latency)

    def requests(self) -> int:
        return sum(r.requests for r in self.warmup + self.throughput + self.latency)


def run_round(wrk: str, url: str, script: Path, connections: int, seconds: float) -> WrkRun:
    run = run_wrk(wrk, script, url, connections=connections, seconds=seconds, timeout_seconds=10, script_args=(MASTER,))
    if run.non2xx or run.socket_errors:
        raise BenchError(f"{url}: {run.non2xx} answers outside 2xx and {run.socket_errors} socket errors")
    return run


def prepare(app: ExampleProcess) -> None:
    headers = {"X-StorageApi-Token": MASTER}
    with httpx.Client(base_url=app.url, headers=headers, trust_env=False) as client:
        assert client.post("/v2/storage/buckets", json={"name": "bench"}).status_code == 201
        columns = {"name": "sales", "columns": ["id", "customer", "amount"]}
        assert client.post("/v2/storage/buckets/in.c-bench/tables", json=columns).status_code == 201


def middleware_events(url: str, token: str) -> int:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, trust_env=False) as client:
        answer = client.get("/v1/events/facets", params={"field": "source", "q": "source:middleware"})
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        values: list[dict[str, Any]] = body["values"]
        return sum(int(v.get("count", 0)) for v in values if v.get("value") == "middleware")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per variant and kind (default 5)")
    parser.add_argument("--round-seconds", type=float, default=5.0, help="seconds of load per round (default 5)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections of the throughput rounds")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        print("bench/middleware.py: error: wrk is not installed; `apt-get install wrk`", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-middleware-") as tmp:
        root = Path(tmp)
        script = root / "load.lua"
        script.write_text(wrk_script(REQUESTS_LUA))
        with Server(root / "data") as eventlog:
            writer = eventlog.create_token("bench", ["events:write"])
            reader = eventlog.create_token("bench", ["events:read"])
            common = {"STORAGE_API_MASTER_TOKEN": MASTER}
            wrapped_env = {
                **common,
                "STORAGE_API_EVENTLOG_URL": eventlog.url,
                "STORAGE_API_EVENTLOG_TOKEN": writer,
                "STORAGE_API_SPOOL_DIR": str(root / "spool"),
            }
            with (
                ExampleProcess(root / "bare", {**common, "STORAGE_API_AUDIT": "false"}) as bare_app,
                ExampleProcess(root / "wrapped", wrapped_env) as wrapped_app,
            ):
                bare, wrapped = Variant("bare", bare_app), Variant("wrapped", wrapped_app)
                for variant in (bare, wrapped):
                    prepare(variant.app)
                    variant.warmup.append(run_round(wrk, variant.app.url, script, args.concurrency, 2.0))
                pids = {"eventlog": eventlog.pid, "bare app": bare_app.pid, "wrapped app": wrapped_app.pid}
                meter = CpuMeter(
                    {
                        **{name: partial(process_cpu_seconds, pid) for name, pid in pids.items()},
                        "wrk": children_cpu_seconds,
                    }
                )
                meter.start()
                started = time.monotonic()
                for number in range(args.rounds):
                    order = (bare, wrapped) if number % 2 == 0 else (wrapped, bare)
                    for variant in order:
                        variant.throughput.append(
                            run_round(wrk, variant.app.url, script, args.concurrency, args.round_seconds)
                        )
                    for variant in order:
                        variant.latency.append(run_round(wrk, variant.app.url, script, 1, args.round_seconds))
                elapsed = time.monotonic() - started
                used = meter.stop()
                # What else ran on the machine meanwhile (other users' jobs skew the figures).
                cpu = {**used.seconds, "everything else": used.other}

                # Every wrapped call must be in eventlog (warm-up included), once.
                expected = wrapped.requests()
                deadline = time.monotonic() + 60
                events = middleware_events(eventlog.url, reader)
                while events < expected and time.monotonic() < deadline:
                    time.sleep(0.5)
                    events = middleware_events(eventlog.url, reader)
                assert wrapped_app.stop() in (0, -15)
            assert eventlog.stop() in CLEAN_EXIT_CODES

    print(f"machine: {os.cpu_count()} cores; app: 1 uvicorn worker each; load: wrk -t1, 3 authenticated GETs")
    print(f"{args.rounds} alternating rounds x {args.round_seconds:g} s per variant and kind, {elapsed:.0f} s in all")
    print()
    print(f"throughput, {args.concurrency} connections:")
    for variant in (bare, wrapped):
        rates = ", ".join(f"{r.rate:,.0f}" for r in variant.throughput)
        print(f"  {variant.name:<8} {variant.rate():>9,.0f} requests/s   (rounds: {rates})")
    ratio = wrapped.rate() / bare.rate()
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"  ratio wrapped/bare: {ratio:.3f}  (target >= {TARGET_RATIO}: {verdict})")
    print("latency, 1 connection (p50 per round, µs):")
    for variant in (bare, wrapped):
        p50s = ", ".join(f"{r.p50_us:.0f}" for r in variant.latency)
        print(f"  {variant.name:<8} p50 {variant.p50_us():>6.0f} µs   (rounds: {p50s})")
    added = wrapped.p50_us() - bare.p50_us()
    verdict = "met" if added <= TARGET_ADDED_P50_US else "NOT met"
    print(f"  added p50 latency: {added:.0f} µs  (target <= {TARGET_ADDED_P50_US:.0f} µs: {verdict})")
    per_call = {
        variant.name: cpu[f"{variant.name} app"] / sum(r.requests for r in variant.throughput + variant.latency) * 1e6
        for variant in (bare, wrapped)
    }
    print(
        f"app CPU per call: bare {per_call['bare']:.0f} µs, wrapped {per_call['wrapped']:.0f} µs "
        f"({per_call['wrapped'] - per_call['bare']:+.0f} µs: the middleware and the remote emitter)"
    )
    print("CPU seconds during the rounds: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items()))
    extra = events - expected
    print(
        f"eventlog holds {events:,} middleware events for {expected:,} wrapped calls counted by wrk ({extra:+d}: "
        "calls in flight when a round ended, and the setup calls)"
    )
    if events < expected:
        return 1
    return print_results(
        [
            at_least("middleware_throughput_ratio", ratio, "ratio", TARGET_RATIO),
            at_most("middleware_added_p50", added, "us", TARGET_ADDED_P50_US),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
