"""The `eventlog` command, one module per command group. Its output is a contract scripts rely on."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from eventlog.app.cli import cloudtrail, dashboards, journal, retention, serve, tokens, verify
from eventlog.datadir import DataDirBusy
from eventlog.tokens import TokenError, TokenStoreUnavailable

_GROUPS = (serve, tokens, verify, journal, cloudtrail, retention, dashboards)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each group adds its own."""
    parser = argparse.ArgumentParser(
        prog="eventlog", description="eventlog: an immutable, tamper-evident audit log service."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in _GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except (TokenError, FileNotFoundError, ValueError, DataDirBusy) as exc:
        print(f"eventlog: error: {exc}", file=sys.stderr)
        return 2
    except TokenStoreUnavailable as exc:
        print(
            f"eventlog: error: {exc}; nothing was changed. Check EVENTLOG_OPENSEARCH_URL and that the cluster"
            " answers (curl $EVENTLOG_OPENSEARCH_URL/_cluster/health), then run the command again",
            file=sys.stderr,
        )
        return 1
    return code
