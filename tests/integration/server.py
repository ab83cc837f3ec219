"""A real `eventlog serve` in a subprocess, for integration tests.

``ServerProcess(data_dir)`` runs the service the way an operator does: the
console script next to ``sys.executable`` (or ``python -m eventlog.app.cli``), a
free loopback port, its own data dir. Its stdout and stderr go to
``<data_dir.parent>/<data_dir.name>.server.log`` (appended to across restarts,
one header line per start), and every failure message ends with the tail of
that log.

    with ServerProcess(tmp_path / "data") as server:
        secret = server.create_token("acme", ["events:write", "events:read"])
        ...                              # talk to server.url
        server.kill()                    # SIGKILL, like a crash
        server.start()                   # same data dir, a fresh port
        assert server.stop() == 0        # SIGTERM, graceful shutdown

Leaving the ``with`` block always ends the process (SIGTERM, then SIGKILL),
also when the test failed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from tests.processes import reap, terminate

__all__ = ["CLEAN_EXIT_CODES", "ServerError", "ServerProcess", "eventlog_command", "free_port"]

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 60.0
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 40
_PORT_TAKEN = ("address already in use", "errno 98")
# uvicorn re-raises the SIGTERM it handled once its shutdown is complete, so a
# clean stop ends with 0 or "terminated by SIGTERM" (-15); see the log for the rest.
CLEAN_EXIT_CODES = (0, -signal.SIGTERM)


class ServerError(RuntimeError):
    """The server did not start, stop or answer as expected; the message holds its log tail."""


class _PortTaken(Exception):
    """Another process bound the port between our probe and the server's bind."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def eventlog_command() -> list[str]:
    """The `eventlog` console script of this interpreter's environment, else `python -m eventlog.app.cli`."""
    script = Path(sys.executable).parent / "eventlog"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "eventlog.app.cli"]


def _clean_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """This process's environment without EVENTLOG_* settings, so only the test's own reach the server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLOG_")}
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


class ServerProcess:
    """One `eventlog serve` process on ``data_dir``; start it again after stop() or kill()."""

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        startup_timeout: float = STARTUP_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.startup_timeout = startup_timeout
        self.log_path = data_dir.parent / f"{data_dir.name}.server.log"
        self.env = _clean_env(env)
        self.command = eventlog_command()
        self.starts = 0
        self.last_exit_code: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    # -- state -----------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        return self._require().pid

    @property
    def port(self) -> int:
        self._require()
        assert self._port is not None
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. http://127.0.0.1:40123 (changes at every start)."""
        return f"http://{self.host}:{self.port}"

    def _require(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise ServerError(f"the server on {self.data_dir} is not started")
        return self._process

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        """Start the server and return once GET /healthz answers 200."""
        if self.running:
            raise ServerError(f"the server on {self.data_dir} already runs (pid {self.pid})")
        self._process, self._port = None, None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(PORT_ATTEMPTS):
            port = free_port(self.host)
            offset = self._log_size()
            process = self._spawn(port)
            try:
                self._wait_healthy(process, port, offset)
            except _PortTaken:
                continue
            except BaseException:
                reap(process)
                raise
            self._process, self._port = process, port
            self.starts += 1
            return
        raise ServerError(
            f"eventlog serve found its port taken {PORT_ATTEMPTS} times; log {self.log_path} ends with:\n"
            f"{self.log_tail()}"
        )

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        command = [
            *self.command,
            "serve",
            "--host",
            self.host,
            "--port",
            str(port),
            "--data-dir",
            str(self.data_dir),
        ]
        with self.log_path.open("ab") as log:
            header = f"--- start {self.starts + 1} at {time.strftime('%H:%M:%S')}: {' '.join(command)}\n"
            log.write(header.encode())
            log.flush()
            # The child gets its own copy of the descriptor; ours closes with the block.
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    def _wait_healthy(self, process: subprocess.Popen[bytes], port: int, log_offset: int) -> None:
        url = f"http://{self.host}:{port}/healthz"
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while True:
                code = process.poll()
                if code is not None:
                    text = self._log_text(log_offset)
                    if any(marker in text.lower() for marker in _PORT_TAKEN):
                        raise _PortTaken(port)
                    raise ServerError(
                        f"eventlog serve exited with code {code} before /healthz answered; "
                        f"log {self.log_path} ends with:\n{_tail(text)}"
                    )
                try:
                    if client.get(url).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    reap(process)
                    raise ServerError(
                        f"eventlog serve (pid {process.pid}) did not answer {url} within "
                        f"{self.startup_timeout:g} s; log {self.log_path} ends with:\n"
                        f"{_tail(self._log_text(log_offset))}"
                    )
                time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM (graceful shutdown) and wait; returns the exit code (one of CLEAN_EXIT_CODES when clean).

        Raises ServerError (after a SIGKILL) when it does not exit within `timeout`.
        """
        process = self._require()
        if not terminate(process, timeout):
            self.last_exit_code = process.returncode
            raise ServerError(
                f"eventlog serve (pid {process.pid}) ignored SIGTERM for {timeout:.0f} s and was killed; "
                f"log {self.log_path} ends with:\n{self.log_tail()}"
            ) from None
        self.last_exit_code = process.returncode
        return process.returncode

    def kill(self) -> int:
        """SIGKILL (a crash: no shutdown code runs) and wait; returns the exit code (-9)."""
        process = self._require()
        reap(process)
        self.last_exit_code = process.returncode
        return process.returncode

    def close(self) -> None:
        """End the process whatever its state: SIGTERM, then SIGKILL after 10 s. Never raises."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        terminate(process, 10.0)
        self.last_exit_code = process.returncode

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        if exc_type is not None and self.starts:
            # pytest shows this under "Captured stdout" of the failed test.
            print(f"\n--- {self.log_path} (last {LOG_TAIL_LINES} lines) ---\n{self.log_tail()}")

    # -- the CLI on the same data dir -------------------------------------

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """Run `eventlog <args> --data-dir <data_dir>`; never raises on a non-zero exit."""
        return subprocess.run(
            [*self.command, *args, "--data-dir", str(self.data_dir)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    def create_token(self, tenant: str, scopes: Iterable[str] | str) -> str:
        """A new token's secret (works whether or not the server runs)."""
        scope_list = scopes if isinstance(scopes, str) else ",".join(scopes)
        result = self.cli("tokens", "create", "--tenant", tenant, "--scopes", scope_list, "--json")
        if result.returncode != 0:
            raise ServerError(
                f"`eventlog tokens create` exited with {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        try:
            issued = json.loads(result.stdout)
        except json.JSONDecodeError as exc:
            raise ServerError(f"`eventlog tokens create --json` printed no JSON ({exc}): {result.stdout!r}") from None
        if not isinstance(issued, dict) or set(issued) != {"id", "secret"} or not isinstance(issued["secret"], str):
            raise ServerError(f'`eventlog tokens create --json` should print {{"id", "secret"}}, got {issued!r}')
        return issued["secret"]

    def verify(self) -> subprocess.CompletedProcess[str]:
        """`eventlog verify` on the data dir (exit 0: the chain and checkpoints hold)."""
        return self.cli("verify")

    # -- the log ---------------------------------------------------------

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _log_text(self, offset: int = 0) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        """The whole server log, every start included."""
        return self._log_text()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return _tail(self._log_text(), lines)


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    kept = text.rstrip().splitlines()[-lines:]
    return "\n".join(kept) if kept else "(empty)"
