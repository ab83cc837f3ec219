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
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.integration.examples.example_process import ExampleProcess
from tests.integration.server import CLEAN_EXIT_CODES, ServerProcess

TARGET_RATIO = 0.95
TARGET_ADDED_P50_US = 100.0
MASTER = "bench-master-token-0123456789"
TABLE = "in.c-bench.sales"
RESULT_TAG = "BENCH_RESULT "

WRK_LUA = r"""
local paths = {"/v2/storage/tokens/verify", "/v2/storage/tables/in.c-bench.sales", "/v2/storage/buckets"}
local requests = {}
local cursor = 1
local threads = {}
non2xx = 0

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   for i, path in ipairs(paths) do
      requests[i] = wrk.format("GET", path, {["X-StorageApi-Token"] = args[1], ["User-Agent"] = "wrk"})
   end
end

function request()
   local r = requests[cursor]
   cursor = cursor % #requests + 1
   return r
end

function response(status, headers, body)
   if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
   local bad = 0
   for _, thread in ipairs(threads) do bad = bad + (thread:get("non2xx") or 0) end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "errors": %d, "p50_us": %d, "p99_us": %d}\n',
      summary.requests, summary.duration, bad, e.connect + e.read + e.write + e.timeout,
      math.floor(latency:percentile(50.0)), math.floor(latency:percentile(99.0))))
end
"""


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


@dataclass
class Round:
    requests: int
    seconds: float
    p50_us: float
    p99_us: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


@dataclass
class Variant:
    name: str
    app: ExampleProcess
    throughput: list[Round] = field(default_factory=list)
    latency: list[Round] = field(default_factory=list)
    warmup: list[Round] = field(default_factory=list)

    def rate(self) -> float:
        return sum(r.requests for r in self.throughput) / sum(r.seconds for r in self.throughput)

    def p50_us(self) -> float:
        return statistics.median(r.p50_us for r in self.latency)

    def requests(self) -> int:
        return sum(r.requests for r in self.warmup + self.throughput + self.latency)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far (all processes, all cores)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_wrk(wrk: str, url: str, script: Path, connections: int, seconds: float) -> Round:
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        MASTER,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=seconds + 60)
    result: dict[str, int] | None = None
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG) :])
    if done.returncode != 0 or result is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    if result["non2xx"] or result["errors"]:
        raise BenchError(f"{url}: {result['non2xx']} answers outside 2xx and {result['errors']} socket errors")
    return Round(result["requests"], result["duration_us"] / 1e6, result["p50_us"], result["p99_us"])


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
        script.write_text(WRK_LUA)
        with ServerProcess(root / "data") as eventlog:
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
                    variant.warmup.append(run_wrk(wrk, variant.app.url, script, args.concurrency, 2.0))
                pids = {"eventlog": eventlog.pid, "bare app": bare_app.pid, "wrapped app": wrapped_app.pid}
                cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                machine_before = machine_cpu_seconds()
                wrk_before = os.times()
                started = time.monotonic()
                for number in range(args.rounds):
                    order = (bare, wrapped) if number % 2 == 0 else (wrapped, bare)
                    for variant in order:
                        variant.throughput.append(
                            run_wrk(wrk, variant.app.url, script, args.concurrency, args.round_seconds)
                        )
                    for variant in order:
                        variant.latency.append(run_wrk(wrk, variant.app.url, script, 1, args.round_seconds))
                elapsed = time.monotonic() - started
                cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
                wrk_after = os.times()
                cpu["wrk"] = (wrk_after.children_user + wrk_after.children_system) - (
                    wrk_before.children_user + wrk_before.children_system
                )
                # What else ran on the machine meanwhile (other users' jobs skew the figures).
                cpu["everything else"] = machine_cpu_seconds() - machine_before - sum(cpu.values())

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
    cpu["everything else"] = max(cpu["everything else"], 0.0)  # per-process and machine counters round apart
    print("CPU seconds during the rounds: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items()))
    extra = events - expected
    print(
        f"eventlog holds {events:,} middleware events for {expected:,} wrapped calls counted by wrk ({extra:+d}: "
        "calls in flight when a round ended, and the setup calls)"
    )
    return 0 if events >= expected else 1


if __name__ == "__main__":
    sys.exit(main())
