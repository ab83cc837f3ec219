"""A real S3-compatible server on loopback for integration tests (CONTRIBUTING.md, "Real services").

``start_s3()`` returns the endpoint URL and a function that stops whatever it started:

1. ``S3_ENDPOINT_URL`` from the environment (nothing to stop);
2. moto's standalone server (``python -m moto.server``, from ``pip install "moto[server]"``)
   on a free loopback port, as a child process of the test run.

It raises RuntimeError, saying what to install, when neither works.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from tests.processes import terminate

__all__ = ["start_s3"]

INSTALL_HINT = (
    "To get an S3 server for the tests, do one of: set S3_ENDPOINT_URL to a running "
    "S3-compatible server on loopback (any credentials accepted); or "
    '`pip install "moto[server]"` (the `test` extra of eventlog has it).'
)
START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False


def start_s3() -> tuple[str, Callable[[], None]]:
    url = os.environ.get("S3_ENDPOINT_URL")
    if url:
        if not _answers(url):
            raise RuntimeError(f"S3_ENDPOINT_URL={url} does not answer. {INSTALL_HINT}")
        return url, lambda: None
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise RuntimeError(f"moto's server is not installed. {INSTALL_HINT}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def stop() -> None:
        terminate(process, 10.0)
        log.close()

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace")[-2000:]
            stop()
            raise RuntimeError(f"moto_server exited with {process.returncode}: {output}. {INSTALL_HINT}")
        if _answers(f"{url}/moto-api/"):
            return url, stop
        time.sleep(0.1)
    stop()
    raise RuntimeError(f"moto_server did not answer on {url} within {START_TIMEOUT_S:.0f} s. {INSTALL_HINT}")
