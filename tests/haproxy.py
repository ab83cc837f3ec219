"""HAProxy from deploy/haproxy.cfg in front of loopback backends, for integration tests.

``start_haproxy(["127.0.0.1:8001", "127.0.0.1:8002"], workdir)`` runs the real
``haproxy`` binary in the foreground with the file docker-compose.yml mounts, its
frontend and stats page on free loopback ports (the LB_* variables the file reads),
its log (one line per request) in ``workdir/haproxy.log``, and returns once the
frontend answers. It raises HAProxyUnavailable, saying how to install it, when there
is no haproxy, and RuntimeError with the log's tail when it does not start.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.integration.server import free_port
from tests.processes import terminate

__all__ = ["CONFIG", "HAProxy", "HAProxyUnavailable", "start_haproxy"]

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG = REPO_ROOT / "deploy" / "haproxy.cfg"
INSTALL_HINT = "install HAProxy 2.6 or newer: apt-get install haproxy (scripts/provision.sh does)"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 3
PORT_TAKEN_MARKER = "cannot bind socket"
SERVERS = ("node1", "node2")  # the server lines of deploy/haproxy.cfg, in order
BACKEND = "eventlog_nodes"


class HAProxyUnavailable(RuntimeError):
    """No haproxy binary on this machine."""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").is_file() else None)
    if found is None:
        raise HAProxyUnavailable(f"haproxy not found on PATH or in /usr/sbin: {INSTALL_HINT}")
    return found


@dataclass
class HAProxy:
    """A running haproxy; ``url`` is its frontend, ``stats_url`` its stats page."""

    process: subprocess.Popen[bytes]
    port: int
    stats_port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.stats_port}/stats"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Return once the frontend answers its own liveness URI (no backend needed)."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/lb-healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not answer on {self.url} within {timeout_s:.0f}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def server_states(self) -> dict[str, str]:
        """Each server's state from the stats page: UP, DOWN, 'UP 1/2' while rising..."""
        answer = httpx.get(f"{self.stats_url};csv", timeout=5.0)
        answer.raise_for_status()
        rows = csv.DictReader(io.StringIO(answer.text.removeprefix("# ")))
        return {row["svname"]: row["status"] for row in rows if row["pxname"] == BACKEND and row["svname"] in SERVERS}

    def wait_state(self, server: str, state: str, timeout_s: float) -> float:
        """Wait until `server` is in `state`; answer the seconds it took."""
        started = time.monotonic()
        while (current := self.server_states()[server]) != state:
            if time.monotonic() - started > timeout_s:
                raise AssertionError(f"{server} is {current!r}, not {state!r}, after {timeout_s}s:\n{self.log_tail()}")
            time.sleep(0.05)
        return time.monotonic() - started

    def stop(self) -> None:
        terminate(self.process, STOP_TIMEOUT_S)


def start_haproxy(backends: list[str], workdir: Path) -> HAProxy:
    """HAProxy with deploy/haproxy.cfg in front of `backends` (two host:port), ready to take requests."""
    if len(backends) != len(SERVERS):
        raise ValueError(f"deploy/haproxy.cfg has {len(SERVERS)} server lines; got {len(backends)} backends")
    binary = haproxy_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "haproxy.log"
    last_error = ""
    for _ in range(PORT_ATTEMPTS):
        port, stats_port = free_port(), free_port()
        if port == stats_port:
            continue
        env = {
            **os.environ,
            "LB_BIND": f"127.0.0.1:{port}",
            "LB_STATS_BIND": f"127.0.0.1:{stats_port}",
            **{f"LB_NODE{i}": backend for i, backend in enumerate(backends, start=1)},
        }
        with log_path.open("ab") as log:
            # -db: stay in the foreground, so the log goes to our file and stop() ends it.
            process = subprocess.Popen(
                [binary, "-db", "-f", str(CONFIG)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=workdir,
            )
        haproxy = HAProxy(process, port, stats_port, log_path)
        try:
            haproxy.wait_ready()
        except RuntimeError as exc:
            haproxy.stop()
            last_error = str(exc)
            # Another process may grab a free port before haproxy binds it.
            if PORT_TAKEN_MARKER in last_error:
                continue
            raise
        return haproxy
    raise RuntimeError(f"haproxy could not bind free loopback ports {PORT_ATTEMPTS} times:\n{last_error}")
