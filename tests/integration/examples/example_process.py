"""The Storage API example as a real uvicorn process, for integration tests and benchmarks.

    with ExampleProcess(tmp_path / "example", env={"STORAGE_API_MASTER_TOKEN": ...}) as example:
        ...                       # talk to example.url
        example.stop()            # SIGTERM: the emitter sends or spools what is pending
        example.start()           # a new process (a fresh port), same spool dir

Its output goes to ``<workdir>/example.log`` (appended across starts).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from tests.integration.server import free_port
from tests.processes import terminate

REPO = Path(__file__).resolve().parents[3]
APP = "examples.storage_api.app:create_app"
STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 30.0


class ExampleError(RuntimeError):
    """The example did not start or stop as expected; the message holds its log tail."""


class ExampleProcess:
    def __init__(self, workdir: Path, env: Mapping[str, str], *, host: str = "127.0.0.1") -> None:
        self.workdir = workdir
        self.host = host
        self.log_path = workdir / "example.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_API_", "EVENTLOG_"))}
        self.env.update(env)
        self.env["PYTHONUNBUFFERED"] = "1"
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise ExampleError("the example is not started")
        return f"http://{self.host}:{self._port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ExampleError("the example is not started")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            raise ExampleError("the example already runs")
        self.workdir.mkdir(parents=True, exist_ok=True)
        port = free_port(self.host)
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            APP,
            "--factory",
            "--host",
            self.host,
            "--port",
            str(port),
            "--no-access-log",
        ]
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} at {time.strftime('%H:%M:%S')}: {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while True:
                if process.poll() is not None:
                    raise ExampleError(f"the example exited with {process.returncode}:\n{self.log_tail()}")
                try:
                    if client.get(f"http://{self.host}:{port}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    raise ExampleError(f"the example did not answer within {STARTUP_TIMEOUT_S} s:\n{self.log_tail()}")
                time.sleep(0.05)
        self._process, self._port = process, port
        self.starts += 1

    def stop(self) -> int:
        """SIGTERM and wait: uvicorn finishes requests, then the lifespan closes the emitter."""
        process = self._process
        if process is None:
            raise ExampleError("the example is not started")
        if not terminate(process, STOP_TIMEOUT_S):
            raise ExampleError(f"the example ignored SIGTERM for {STOP_TIMEOUT_S} s:\n{self.log_tail()}")
        return process.returncode

    def close(self) -> None:
        process = self._process
        if process is not None:
            terminate(process, 10.0)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().rstrip().splitlines()[-lines:]) or "(empty)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        if exc_type is not None:
            print(f"\n--- {self.log_path} (tail) ---\n{self.log_tail()}")
