"""`eventlog journal drain`: deliver a journal's backlog to its sinks without running a node."""

from __future__ import annotations

import argparse
import asyncio
import sys

from eventlog.app.cli.options import Commands, command, command_group, settings_from
from eventlog.datadir import lock_data_dir


def _drain(args: argparse.Namespace) -> int:
    from eventlog.app.service import drain_journal  # the whole service: only for the command that needs it

    settings = settings_from(args)
    if not settings.journal_path.exists():
        raise FileNotFoundError(f"no journal at {settings.journal_path}; point --data-dir at the node's data directory")
    writer_lock = lock_data_dir(settings.data_dir, "eventlog journal drain")
    try:
        caught_up = asyncio.run(
            drain_journal(settings, args.timeout_seconds, lambda line: print(line, file=sys.stderr, flush=True))
        )
    finally:
        writer_lock.close()
    if not caught_up:
        print(
            f"eventlog: error: the sinks did not catch up within {args.timeout_seconds:g} s; what was delivered"
            " stays delivered (the cursors moved): run the command again, or check the sinks' logs above",
            file=sys.stderr,
        )
        return 1
    print("ok: every sink holds every event of the journal")
    return 0


def add_commands(commands: Commands) -> None:
    """Add the journal command to the `eventlog` parser."""
    journal_commands = command_group(
        commands, "journal", help="work with a node's journal", description="Work with a node's durable journal."
    )
    drain = command(
        journal_commands,
        "drain",
        _drain,
        help="deliver a journal's backlog to its sinks without running the node",
        description="Deliver every event of the journal in the data dir that a sink (the configured search store:"
        " EVENTLOG_OPENSEARCH_URL, else the embedded store; the syslog sink when EVENTLOG_SYSLOG_URL is set) has"
        " not acknowledged yet, from each sink's cursor on, then exit. For the disk of a node that died, mounted"
        " on another machine: its acknowledged events reach the shared store without starting it as a node."
        " Exit 0 when every sink caught up, 1 otherwise (run it again: delivery is idempotent).",
    )
    drain.add_argument(
        "--timeout-seconds",
        type=float,
        default=600.0,
        help="give up after this long if a sink still lags (default: 600)",
    )
