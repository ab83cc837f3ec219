"""A real OpenSearch 2.19 for integration tests (CONTRIBUTING.md, "Real services").

``start_opensearch()`` returns the cluster's base URL and a function that stops
whatever it started, trying in order:

1. ``OPENSEARCH_URL`` from the environment (nothing to stop);
2. testcontainers' ``OpenSearchContainer``, only where a Docker engine answers
   ``docker info`` and testcontainers (with opensearch-py) is installed;
3. ``scripts/opensearch.sh start`` on a free loopback port with its own run dir
   under a fresh temporary directory (the distribution from Maven Central, run
   by the machine's Java as an unprivileged user).

It raises RuntimeError, saying what to install, when none of them works.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["INSTALL_HINT", "LOG_ARCHIVE", "SCRIPT", "log_tail", "run_script", "start_opensearch"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "opensearch.sh"
LOG_ARCHIVE = REPO_ROOT / "test-artifacts" / "opensearch-logs"
DEFAULT_VERSION = "2.19.6"
# Download, unpack and up to 120 s of waiting for yellow inside the script.
SCRIPT_START_TIMEOUT_S = 900.0
SCRIPT_STOP_TIMEOUT_S = 120.0
PORT_ATTEMPTS = 3
PORT_TAKEN_MARKER = "is taken by another process"

INSTALL_HINT = (
    "To get an OpenSearch 2.19 for the tests, do one of: set OPENSEARCH_URL to a "
    "running cluster (plain HTTP, no security plugin); or run a Docker engine and "
    "`pip install 'testcontainers[opensearch]' opensearch-py`; or install what "
    "scripts/opensearch.sh needs: `apt-get install openjdk-17-jre-headless maven "
    "curl unzip` (Maven Central must be reachable for the first start; run as "
    "root so it can add and use the user 'opensearch')."
)


def _noop() -> None:
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _docker_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _start_container() -> tuple[str, Callable[[], None]] | None:
    """Start OpenSearch with testcontainers; None when that path is unavailable."""
    if not _docker_answers():
        return None
    try:
        module = importlib.import_module("testcontainers.opensearch")
    except ImportError:  # testcontainers or opensearch-py missing
        return None
    version = os.environ.get("OPENSEARCH_VERSION", DEFAULT_VERSION)
    container = module.OpenSearchContainer(
        image=f"opensearchproject/opensearch:{version}",
        security_enabled=False,
        # Images >= 2.12 refuse a weak initial admin password.
        initial_admin_password="Eventlog-Tests-2.19!",
    )
    container.start()
    host = str(container.get_container_host_ip())
    port = str(container.get_exposed_port(9200))

    def stop() -> None:
        container.stop()

    return f"http://{host}:{port}", stop


def log_tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_script(
    command: str, env: dict[str, str], timeout: float, args: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """`scripts/opensearch.sh <command> <args...>` with `env`, its output captured."""
    return subprocess.run(
        [shutil.which("bash") or "/bin/bash", str(SCRIPT), command, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _script_env(run_dir: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OPENSEARCH_URL", None)
    env["OPENSEARCH_PORT"] = str(port)
    env["EVENTLOG_RUN_DIR"] = str(run_dir)
    return env


def _start_with_script() -> tuple[str, Callable[[], None]]:
    if not SCRIPT.is_file():
        raise RuntimeError(f"{SCRIPT} is missing. {INSTALL_HINT}")
    if shutil.which("bash") is None:
        raise RuntimeError(f"bash is needed to run {SCRIPT}. {INSTALL_HINT}")
    base = Path(tempfile.mkdtemp(prefix="eventlog-opensearch-"))
    # mkdtemp makes it 0700; the node runs as another user and must get in.
    base.chmod(0o755)
    run_dir = base / "run"

    result: subprocess.CompletedProcess[str] | None = None
    env: dict[str, str] = {}
    for _ in range(PORT_ATTEMPTS):
        env = _script_env(run_dir, _free_port())
        try:
            result = run_script("start", env, SCRIPT_START_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            run_script("stop", env, SCRIPT_STOP_TIMEOUT_S)
            raise RuntimeError(
                f"{SCRIPT} start did not finish within {exc.timeout:.0f}s; "
                f"logs are in {run_dir / 'logs'}. {INSTALL_HINT}"
            ) from exc
        # Another process may grab the free port before the node binds it.
        if result.returncode == 0 or PORT_TAKEN_MARKER not in result.stderr:
            break
    if result is None:  # pragma: no cover - PORT_ATTEMPTS >= 1
        raise RuntimeError(f"{SCRIPT} start was not run")

    lines = result.stdout.strip().splitlines()
    prefix = "OPENSEARCH_URL="
    if result.returncode != 0 or not lines or not lines[-1].startswith(prefix):
        raise RuntimeError(
            f"{SCRIPT} start failed (exit {result.returncode}); logs are in "
            f"{run_dir / 'logs'}.\n{log_tail(result.stderr)}\n{INSTALL_HINT}"
        )
    url = lines[-1][len(prefix) :]
    stop_env = env
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        outcome = run_script("stop", stop_env, SCRIPT_STOP_TIMEOUT_S)
        if outcome.returncode != 0:
            raise RuntimeError(
                f"{SCRIPT} stop failed (exit {outcome.returncode}); run dir {run_dir} kept.\n{log_tail(outcome.stderr)}"
            )
        # Keep the node's log for a failure's post-mortem; the data can go.
        shutil.copytree(run_dir / "logs", LOG_ARCHIVE, dirs_exist_ok=True)
        shutil.rmtree(base, ignore_errors=True)

    return url, stop


def start_opensearch() -> tuple[str, Callable[[], None]]:
    """Return ``(base_url, stop)`` for a reachable OpenSearch 2.19 cluster.

    ``stop`` stops only what this call started (a no-op for OPENSEARCH_URL);
    calling it twice is harmless.
    """
    url = os.environ.get("OPENSEARCH_URL")
    if url:
        return url, _noop

    container_error: Exception | None = None
    try:
        started = _start_container()
    except Exception as exc:
        container_error = exc
        started = None
    if started is not None:
        return started

    try:
        return _start_with_script()
    except RuntimeError as exc:
        if container_error is not None:
            raise RuntimeError(f"{exc}\n(testcontainers also failed: {container_error!r})") from exc
        raise
