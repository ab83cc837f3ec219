"""Ending the real services the tests start (eventlog, rsyslog, moto, the example app)."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def terminate(process: subprocess.Popen[Any], timeout_seconds: float) -> bool:
    """SIGTERM and wait; SIGKILL once `timeout_seconds` passed. True when it ended without the SIGKILL."""
    if process.poll() is not None:
        return True
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_seconds)
    except subprocess.TimeoutExpired:
        reap(process)
        return False
    return True


def reap(process: subprocess.Popen[Any]) -> None:
    """SIGKILL and wait, ignoring a process that is already gone."""
    if process.poll() is None:
        process.kill()
    process.wait()
