"""wrk: `wrk_script` joins a benchmark's requests to the Lua that rotates them, counts answers outside 2xx
and reports; `run_wrk` runs it and parses what it printed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.harness.run import BenchError

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
    """What the load generator saw in one run: wrk, or a client of a benchmark's own where wrk is missing."""

    requests: int  # answered, whatever the status
    seconds: float
    non2xx: int
    socket_errors: int  # connect, read and write errors, timeouts
    p50_us: float
    p99_us: float
    first_error: str  # the first answer outside 2xx, status and start of the body

    @property
    def ok(self) -> int:
        return self.requests - self.non2xx

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def p50_ms(self) -> float:
        return self.p50_us / 1000

    @property
    def p99_ms(self) -> float:
        return self.p99_us / 1000


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
