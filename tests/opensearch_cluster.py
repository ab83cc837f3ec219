"""A real OpenSearch cluster of several nodes on loopback, for tests that lose a node.

``OpenSearchCluster`` drives ``scripts/opensearch.sh start --nodes N`` in a run dir
of its own under a fresh temporary directory, on free HTTP and transport ports,
never the shared node of the other tests (its nodes get SIGKILLed):

    cluster = OpenSearchCluster()
    urls = cluster.start(nodes=2)        # green, both nodes joined
    cluster.kill_node(1)                 # SIGKILL node 1 (the one at urls[1])
    cluster.start_node(1)                # back on its data dir and ports, rejoined
    cluster.stop()                       # every node; logs kept in test-artifacts/

Nodes are numbered from 0, as ``urls`` is (the script numbers them from 1). In a
two-node cluster only the node that is not the elected cluster manager can go
without stopping writes (``cluster_manager()`` says which one is elected).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from tests.integration.server import free_port
from tests.opensearch_node import INSTALL_HINT, LOG_ARCHIVE, SCRIPT, log_tail, run_script

__all__ = ["OpenSearchCluster"]

# Download and unpack on a first start, then up to 120 s plus 60 s per extra node inside the script.
START_TIMEOUT_S = 900.0
NODE_START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 120.0
KILL_TIMEOUT_S = 60.0
PORT_ATTEMPTS = 3
PORT_TAKEN_MARKER = "is taken by another process"
URLS_PREFIX = "OPENSEARCH_URLS="
URL_PREFIX = "OPENSEARCH_URL="
NODE_NAME_PREFIX = "eventlog-node-"  # node I of the script is eventlog-node-I


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class OpenSearchCluster:
    """N OpenSearch nodes started by scripts/opensearch.sh in a private run dir."""

    def __init__(self) -> None:
        # mkdtemp makes it 0700; the nodes run as the user `opensearch` and must get in.
        self.base = Path(tempfile.mkdtemp(prefix="eventlog-cluster-"))
        self.base.chmod(0o755)
        self.run_dir = self.base / "run"
        self.urls: list[str] = []
        self._env: dict[str, str] = {}

    @property
    def url(self) -> str:
        """The first node's URL."""
        return self.urls[0]

    def _script(self, command: str, timeout: float, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            return run_script(command, self._env, timeout, args)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(
                f"{SCRIPT} {command} {' '.join(args)} did not finish within {timeout:.0f}s; "
                f"logs are in {self.run_dir}/node-*/logs"
            ) from exc

    def _failed(self, what: str, result: subprocess.CompletedProcess[str]) -> RuntimeError:
        return RuntimeError(
            f"{SCRIPT} {what} failed (exit {result.returncode}); logs are in "
            f"{self.run_dir}/node-*/logs.\n{log_tail(result.stderr)}"
        )

    def start(self, nodes: int = 2) -> list[str]:
        """Start `nodes` nodes and return their URLs once the cluster is green with all of them."""
        if nodes < 2:
            raise ValueError("a cluster has 2 or more nodes; tests/opensearch_node.py starts one")
        if not SCRIPT.is_file() or shutil.which("bash") is None:
            raise RuntimeError(f"{SCRIPT} and bash are needed. {INSTALL_HINT}")
        result: subprocess.CompletedProcess[str] | None = None
        for _ in range(PORT_ATTEMPTS):
            ports = _distinct_free_ports(2 * nodes)
            self._env = dict(os.environ)
            self._env.pop("OPENSEARCH_URL", None)  # always nodes of our own, never a shared cluster
            self._env["EVENTLOG_RUN_DIR"] = str(self.run_dir)
            self._env["OPENSEARCH_PORTS"] = ",".join(map(str, ports[:nodes]))
            self._env["OPENSEARCH_TRANSPORT_PORTS"] = ",".join(map(str, ports[nodes:]))
            result = self._script("start", START_TIMEOUT_S, "--nodes", str(nodes))
            # Another process may grab a free port before its node binds it.
            if result.returncode == 0 or PORT_TAKEN_MARKER not in result.stderr:
                break
        assert result is not None
        lines = result.stdout.strip().splitlines()
        if result.returncode != 0 or len(lines) < 2 or not lines[-2].startswith(URLS_PREFIX):
            self.stop()
            raise RuntimeError(f"{self._failed(f'start --nodes {nodes}', result)}\n{INSTALL_HINT}")
        self.urls = lines[-2].removeprefix(URLS_PREFIX).split(",")
        return self.urls

    def pid(self, node: int) -> int:
        """The JVM pid of `node` (0-based), from the script's pid file."""
        return int((self.run_dir / f"node-{node + 1}" / "opensearch.pid").read_text().strip())

    def cluster_manager(self, asking: int = 0) -> int:
        """The index of the elected cluster manager, as node `asking` sees it."""
        answer = httpx.get(f"{self.urls[asking]}/_cat/cluster_manager", params={"h": "node"}, timeout=10.0)
        answer.raise_for_status()
        return int(answer.text.strip().removeprefix(NODE_NAME_PREFIX)) - 1

    def kill_node(self, node: int) -> None:
        """SIGKILL `node` (0-based; no shutdown code runs) and return once its JVM is gone."""
        result = self._script("kill-node", KILL_TIMEOUT_S, str(node + 1))
        if result.returncode != 0:
            raise self._failed(f"kill-node {node + 1}", result)

    def start_node(self, node: int) -> None:
        """Start `node` again on its data dir and ports; return once the cluster is green with it."""
        result = self._script("start-node", NODE_START_TIMEOUT_S, str(node + 1))
        if result.returncode != 0 or not result.stdout.strip().endswith(f"{URL_PREFIX}{self.urls[node]}"):
            raise self._failed(f"start-node {node + 1}", result)

    def stop(self) -> None:
        """Stop every node; keep the logs in test-artifacts/, drop the data. Harmless twice."""
        if not self.base.exists():
            return
        if self._env:
            result = self._script("stop", STOP_TIMEOUT_S)
            if result.returncode != 0:
                raise RuntimeError(f"{self._failed('stop', result)}\nrun dir {self.run_dir} kept")
        for logs in sorted(self.run_dir.glob("node-*/logs")):
            shutil.copytree(logs, LOG_ARCHIVE / "cluster" / logs.parent.name, dirs_exist_ok=True)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
