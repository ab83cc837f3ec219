"""deploy/haproxy.cfg with the real haproxy in front of two loopback stand-ins for eventlog nodes.

The stand-ins are tests/http_echo.py processes: /readyz answers what their ready file
says, every other request answers which server served it, and /drop/<name> makes
that server close the connection without answering. Checked: requests alternate
over both nodes with the client's address in X-Forwarded-For (and nothing a client
wrote there); a SIGKILLed node costs no request an error and is out of rotation
within 1.5 s; a node whose /readyz answers 503 leaves and comes back once it answers
200; a request that reached a node which then died is sent again to the other only
when it is read-only (a POST is never sent twice).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.haproxy import CONFIG, HAProxy, HAProxyUnavailable, haproxy_binary, start_haproxy
from tests.integration.server import free_port
from tests.processes import reap, terminate

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT_OF_ROTATION_S = 1.5  # fall 2 x inter 500 ms, plus a check's round trip
BACK_IN_ROTATION_S = 2.5  # rise 2 x downinter 1 s
HTTP_TIMEOUT_S = 10.0


@dataclass
class Backend:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    ready_file: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_ready(self, status: int) -> None:
        self.ready_file.write_text(str(status))


@dataclass
class Stack:
    lb: HAProxy
    a: Backend
    b: Backend
    hits_file: Path

    def hits(self, method: str) -> Counter[str]:
        """How many `method` requests reached each server (the stand-ins append one line each)."""
        lines = self.hits_file.read_text().splitlines() if self.hits_file.exists() else []
        return Counter(name for name, hit_method, _ in (line.split(" ", 2) for line in lines) if hit_method == method)


def _start_backend(name: str, workdir: Path, hits_file: Path) -> Backend:
    port = free_port()
    ready_file = workdir / f"{name}.ready"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.http_echo", "--name", name, "--port", str(port)),
            *("--ready-file", str(ready_file), "--hits-file", str(hits_file)),
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
    )
    backend = Backend(name, port, process, ready_file)
    deadline = time.monotonic() + 10.0
    while True:
        assert process.poll() is None, f"stand-in {name} exited with {process.returncode}"
        try:
            httpx.get(f"http://{backend.address}/readyz", timeout=1.0)
            return backend
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"stand-in {name} did not answer on {backend.address} within 10 s"
            time.sleep(0.05)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    hits_file = tmp_path / "hits"
    backends: list[Backend] = []
    lb: HAProxy | None = None
    try:
        backends = [_start_backend(name, tmp_path, hits_file) for name in ("a", "b")]
        try:
            lb = start_haproxy([backend.address for backend in backends], tmp_path / "haproxy")
        except HAProxyUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        for server in ("node1", "node2"):
            lb.wait_state(server, "UP", BACK_IN_ROTATION_S)
        yield Stack(lb, backends[0], backends[1], hits_file)
    finally:
        if lb is not None:
            lb.stop()
        for backend in backends:
            terminate(backend.process, 5.0)


def test_haproxy_accepts_the_config_with_the_compose_environment() -> None:
    """haproxy -c: what docker-compose.yml's `lb` runs (its node names do not resolve here: those servers wait)."""
    try:
        binary = haproxy_binary()
    except HAProxyUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    env = {"PATH": "/usr/bin:/bin", **{k: str(v) for k, v in compose["services"]["lb"]["environment"].items()}}
    check = subprocess.run([binary, "-c", "-f", str(CONFIG)], capture_output=True, text=True, env=env, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Configuration file is valid" in check.stdout + check.stderr


def _served_by(client: httpx.Client, method: str = "GET", path: str = "/api") -> tuple[int, str | None]:
    answer = client.request(method, path)
    return answer.status_code, answer.json()["server"] if answer.status_code == 200 else None


def test_requests_alternate_over_both_nodes_with_the_client_address(stack: Stack) -> None:
    with httpx.Client(base_url=stack.lb.url, timeout=HTTP_TIMEOUT_S) as client:
        served = Counter(_served_by(client)[1] for _ in range(20))
        assert served == {"a": 10, "b": 10}  # roundrobin

        spoofed = client.get("/api", headers={"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9"})
    body = spoofed.json()
    assert (body["x_forwarded_for"], body["forwarded"]) == ("127.0.0.1", None)
    # One log line per request, on haproxy's stdout.
    assert "eventlog eventlog_nodes/node1" in stack.lb.log_tail()


def test_a_killed_node_costs_no_request_and_leaves_rotation(stack: Stack) -> None:
    answers: list[tuple[float, str, int, str | None]] = []
    with httpx.Client(base_url=stack.lb.url, timeout=HTTP_TIMEOUT_S) as client:
        assert {_served_by(client)[1] for _ in range(4)} == {"a", "b"}
        stack.a.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        reap(stack.a.process)
        while (elapsed := time.monotonic() - killed) < 2 * OUT_OF_ROTATION_S:
            for method in ("GET", "POST"):
                answers.append((elapsed, method, *_served_by(client, method)))
            time.sleep(0.02)
        down_after = killed + stack.lb.wait_state("node1", "DOWN", OUT_OF_ROTATION_S) - killed
    # The connection to the dead node fails before the request is sent: every
    # request, POSTs too, goes to the other node instead of failing.
    assert {(status, server) for _, _, status, server in answers} == {(200, "b")}, answers
    assert {method for _, method, _, _ in answers} == {"GET", "POST"}
    assert down_after <= OUT_OF_ROTATION_S


def test_a_node_not_ready_leaves_rotation_and_returns(stack: Stack) -> None:
    stack.a.set_ready(503)
    assert stack.lb.wait_state("node1", "DOWN", OUT_OF_ROTATION_S) <= OUT_OF_ROTATION_S
    with httpx.Client(base_url=stack.lb.url, timeout=HTTP_TIMEOUT_S) as client:
        assert Counter(_served_by(client)[1] for _ in range(10)) == {"b": 10}
        stack.a.set_ready(200)
        stack.lb.wait_state("node1", "UP", BACK_IN_ROTATION_S)
        assert set(Counter(_served_by(client)[1] for _ in range(10))) == {"a", "b"}


def test_only_read_only_requests_are_sent_again_after_a_node_dropped_them(stack: Stack) -> None:
    with httpx.Client(base_url=stack.lb.url, timeout=HTTP_TIMEOUT_S) as client:
        gets = [_served_by(client, "GET", "/drop/a") for _ in range(10)]
    # One connection per POST: on a kept-alive connection HAProxy answers a request
    # after the first that the node dropped by closing the connection the same way,
    # instead of with a 502.
    posts = []
    for _ in range(10):
        with httpx.Client(base_url=stack.lb.url, timeout=HTTP_TIMEOUT_S) as client:
            posts.append(_served_by(client, "POST", "/drop/a"))
    get_hits, post_hits = stack.hits("GET"), stack.hits("POST")
    # GET: a request that reached `a` and got no answer is sent again to `b`.
    assert set(gets) == {(200, "b")}, gets
    assert get_hits["a"] > 0, get_hits
    assert get_hits["b"] == 10, get_hits
    # POST: it may have been acted on, so the client gets the 502; none reaches both nodes.
    statuses = Counter(status for status, _ in posts)
    assert statuses[502] == post_hits["a"] > 0, (posts, post_hits)
    assert statuses[200] == post_hits["b"] > 0, (posts, post_hits)
    assert post_hits.total() == 10, post_hits
    # Health checks do not see the drops: both nodes stay in rotation.
    assert stack.lb.server_states() == {"node1": "UP", "node2": "UP"}
