"""One writer per data dir: `eventlog serve` holds the lock, the journal-writing CLI commands respect it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eventlog.app.cli import main
from eventlog.datadir import DataDirBusy, lock_data_dir


def test_a_second_writer_is_refused_and_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from eventlog.datadir import lock_data_dir; "
            "h = lock_data_dir(pathlib.Path(sys.argv[1]), 'eventlog serve'); print('locked', flush=True); sys.stdin.read()",
            str(tmp_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            with pytest.raises(DataDirBusy, match=rf"pid {holder.pid} \(eventlog serve\)"):
                lock_data_dir(tmp_path, "test")
        finally:
            holder.kill()
    lock_data_dir(tmp_path, "test").close()  # the kernel released the dead holder's lock


def test_retention_run_refuses_a_data_dir_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    held = lock_data_dir(tmp_path, "eventlog serve")
    try:
        assert main(["retention", "run", "--data-dir", str(tmp_path)]) == 2
    finally:
        held.close()
    err = capsys.readouterr().err
    assert "in use by" in err
    assert "HTTP API" in err
