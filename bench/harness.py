"""Running eventlog under load and measuring it: what every benchmark in bench/ does the same way.

- `Server`: `eventlog serve` as tests/integration/server.py runs it (a free
  loopback port, its own data dir, ready once /healthz answers), plus what a
  benchmark reads from it: /readyz (journal position, sink lag), /metrics
  (journal group commits), its CPU time, a graceful stop.
- CPU: `CpuMeter` takes the CPU seconds of named processes and of the whole
  machine between two points, so that every benchmark can print what other
  processes used meanwhile (a figure taken on a busy machine is low).
- wrk: `wrk_script` joins a benchmark's requests to the Lua that rotates
  them, counts answers outside 2xx and reports; `run_wrk` runs and parses it.
- OpenSearch: the node a benchmark runs against, and dropping its indices.
- `percentile`, `say` (progress lines), `print_header` (tables),
  `Teardown` (undo the setup, whatever failed).

What each benchmark measures, how it reports it and its targets stay in its
own script.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opensearchpy import NotFoundError, OpenSearch

from search.opensearch.template import template_name
from tests.integration.server import CLEAN_EXIT_CODES, ServerProcess
from tests.opensearch_node import start_opensearch


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why and what to do."""


def say(phase: str, text: str) -> None:
    """A progress line, flushed at once: the runs take minutes and go to logs."""
    print(f"[{phase}] {text}", flush=True)


def print_header(head: str) -> None:
    """A table's column heads, underlined to their width."""
    print(head)
    print("-" * len(head))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


# -- the server under test ---------------------------------------------------------------------


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


# -- CPU -----------------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all threads (Linux /proc; 0 where that is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process: the benchmark's own client when it runs in-process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_seconds() -> float:
    """CPU time of the child processes this process has waited for (each wrk run, once it ended)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine used so far, summed over cores (Linux /proc/stat; 0 elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user nice system idle iowait irq softirq steal


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds used between CpuMeter.start() and stop()."""

    seconds: dict[str, float]  # per source, in the order the meter was given them
    machine: float  # every process of the machine

    @property
    def other(self) -> float:
        """What processes other than the named ones used: they steal the cores from the system under test.

        Never negative: the per-process and the machine counters tick apart.
        """
        return max(0.0, self.machine - sum(self.seconds.values()))


class CpuMeter:
    """The CPU seconds of named sources (a process, this client, a node's stats) and of the machine over a run."""

    def __init__(self, sources: Mapping[str, Callable[[], float]]) -> None:
        self._sources = dict(sources)
        self._before: dict[str, float] = {}
        self._machine_before = 0.0

    def start(self) -> None:
        self._before = {name: read() for name, read in self._sources.items()}
        self._machine_before = machine_busy_seconds()

    def stop(self) -> CpuUse:
        seconds = {name: read() - self._before[name] for name, read in self._sources.items()}
        return CpuUse(seconds, machine_busy_seconds() - self._machine_before)


# -- wrk -----------------------------------------------------------------------------------------

_RESULT_TAG = "BENCH_RESULT "
_ERROR_TAG = "BENCH_FIRST_ERROR "

# The part of every wrk script that is the same: each thread takes the requests the benchmark's
# `requests_for(args)` builds (args: what follows `--` on wrk's command line), sends them in rotation from
# its own starting point, counts every answer outside 2xx, and `done` prints one JSON line with the
# latency percentiles (wrk records microseconds) and the first error answer.
_WRK_DRIVER_LUA = r"""
local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local requests = {}
local cursor = 1
non2xx = 0
first_error = nil

function init(args)
   requests = requests_for(args)
   assert(#requests > 0, "requests_for built no request")
   cursor = (id * 7919) % #requests + 1
end

function request()
   local r = requests[cursor]
   cursor = cursor % #requests + 1
   return r
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if first_error == nil then
         first_error = tostring(status) .. " " .. string.sub(body or "", 1, 400)
      end
   end
end

function done(summary, latency, requests)
   local bad, first = 0, nil
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("non2xx") or 0)
      first = first or thread:get("first_error")
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, '
         .. '"p50_us": %d, "p99_us": %d}\n',
      summary.requests, summary.duration, bad, e.connect + e.read + e.write + e.timeout,
      math.floor(latency:percentile(50.0)), math.floor(latency:percentile(99.0))))
   if first ~= nil then
      io.write("BENCH_FIRST_ERROR " .. string.gsub(first, "[\r\n]", " ") .. "\n")
   end
end
"""


def wrk_script(requests_for: str) -> str:
    """A whole wrk script from a benchmark's Lua that defines `requests_for(args)`, a table of wrk.format() requests."""
    return requests_for.strip() + "\n" + _WRK_DRIVER_LUA


@dataclass(frozen=True)
class WrkRun:
    """What wrk saw in one run."""

    requests: int  # answered, whatever the status
    seconds: float
    non2xx: int
    socket_errors: int  # connect, read and write errors, timeouts
    p50_us: int
    p99_us: int
    first_error: str  # the first answer outside 2xx, status and start of the body

    @property
    def ok(self) -> int:
        return self.requests - self.non2xx

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def run_wrk(
    wrk: str,
    script: Path,
    url: str,
    *,
    connections: int,
    seconds: float,
    timeout_seconds: float,
    threads: int = 1,
    script_args: Sequence[str] = (),
) -> WrkRun:
    """One wrk run of a script made by wrk_script(); BenchError when wrk fails or prints no result."""
    command = [
        wrk,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        f"{timeout_seconds:g}s",
        "-s",
        str(script),
        url,
        "--",
        *script_args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=seconds + 60)
    result: dict[str, int] | None = None
    first_error = ""
    for line in done.stdout.splitlines():
        if line.startswith(_RESULT_TAG):
            result = json.loads(line[len(_RESULT_TAG) :])
        elif line.startswith(_ERROR_TAG):
            first_error = line[len(_ERROR_TAG) :]
    if done.returncode != 0 or result is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return WrkRun(
        requests=result["requests"],
        seconds=result["duration_us"] / 1e6,
        non2xx=result["non2xx"],
        socket_errors=result["socket_errors"],
        p50_us=result["p50_us"],
        p99_us=result["p99_us"],
        first_error=first_error,
    )


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" [")[0].removeprefix("wrk ").strip() if first else "?"


# -- OpenSearch and the end of a run --------------------------------------------------------------


class Teardown:
    """What undoes a run's setup (node, indices, work dir), run newest first at the end.

    A step that fails is printed and the others still run: a benchmark must not leave a node or indices
    behind because one step of the cleanup failed.
    """

    def __init__(self, program: str) -> None:
        self._program = program
        self._steps: list[Callable[[], None]] = []

    def add(self, step: Callable[[], None]) -> None:
        self._steps.append(step)

    def run(self) -> None:
        for step in reversed(self._steps):
            try:
                step()
            except Exception as exc:  # clean up as much as possible
                print(f"{self._program}: cleanup: {exc!r}", file=sys.stderr)
        self._steps.clear()


@dataclass(frozen=True)
class Figure:
    """One measured figure against its target, printed as the machine-readable RESULT line."""

    name: str
    value: float
    unit: str
    target: str  # e.g. ">=20000", "<=2"
    met: bool

    def line(self) -> str:
        return f"RESULT {self.name} {self.value:.6g} {self.unit} target {self.target} {'met' if self.met else 'missed'}"


def print_results(figures: Sequence[Figure]) -> int:
    """Print one RESULT line per figure, last of all output; the exit status: 0 all met, 2 one missed."""
    print()
    for figure in figures:
        print(figure.line(), flush=True)
    return 0 if all(figure.met for figure in figures) else 2


def run_benchmark(
    program: str,
    benchmark: Callable[[Teardown], Sequence[Figure]],
    errors: tuple[type[Exception], ...] = (RuntimeError,),
) -> int:
    """The exit status of one run: 0 every target met, 2 a target missed, 1 an error (printed).

    `benchmark` answers its figures and adds to the teardown what it set up; the teardown runs
    whatever happened, and the RESULT lines come after it. RuntimeError covers BenchError, the
    server's and the node's.
    """
    teardown = Teardown(program)
    try:
        figures = benchmark(teardown)
    except errors as exc:
        print(f"\n{program}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        teardown.run()
    return print_results(figures)


@dataclass(frozen=True)
class OpenSearchNode:
    url: str
    client: OpenSearch
    given: bool  # OPENSEARCH_URL named it: it outlives the run, so the run's indices must be dropped


def start_opensearch_node(teardown: Teardown, timeout_seconds: float) -> OpenSearchNode:
    """OPENSEARCH_URL's cluster, or a node tests/opensearch_node.py starts (and teardown stops)."""
    given = os.environ.get("OPENSEARCH_URL")
    say("node", f"using OPENSEARCH_URL={given}" if given else "starting a node with scripts/opensearch.sh ...")
    url, stop_node = start_opensearch()
    teardown.add(stop_node)
    client = OpenSearch(hosts=[url], timeout=timeout_seconds, max_retries=0)
    teardown.add(client.close)
    say("node", f"OpenSearch {client.info()['version']['number']} at {url}")
    return OpenSearchNode(url, client, bool(given))


def drop_indices(client: OpenSearch, prefix: str) -> None:
    """Delete a prefix's daily indices and its template."""
    with contextlib.suppress(NotFoundError):
        client.indices.delete(index=f"{prefix}-events-*", params={"expand_wildcards": "all"})
    with contextlib.suppress(NotFoundError):
        client.indices.delete_index_template(name=template_name(prefix))
