"""One writing process per data dir: `eventlog serve` and the CLI commands that append to the journal.

The journal's chain head lives in the writer's memory; a second process appending to
the same file would fork the chain. An advisory lock (flock) on `<data dir>/writer.lock`
makes the second one stop with a clear message instead; the kernel drops it when the
holder dies, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO


class DataDirBusy(RuntimeError):
    """Another process writes to this data dir."""


def lock_data_dir(data_dir: Path, purpose: str) -> IO[str]:
    """Hold the lock for the life of the returned file; raise DataDirBusy when another process holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "writer.lock"
    handle = open(path, "a+")  # noqa: SIM115 - held open for the life of the process on purpose
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise DataDirBusy(
            f"{data_dir} is in use by {holder}; stop it first (or, for a running service, use its HTTP API)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} ({purpose})\n")
    handle.flush()
    return handle
