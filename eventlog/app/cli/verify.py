"""`eventlog verify`: check the journal's hash chain and signed checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from eventlog.app.cli.options import Commands, command, settings_from


def _verify(args: argparse.Namespace) -> int:
    from eventlog.checkpoints import public_key_path
    from eventlog.verify import verify_journal

    settings = settings_from(args)
    key: Path | None = args.public_key
    no_key_reason = "no public key was given"
    if key is None:
        default = public_key_path(settings.signing_key_path)
        key = default if default.exists() else None
        no_key_reason = f"no --public-key, and no {default}"
    report = verify_journal(settings.journal_path, key, no_key_reason=no_key_reason)
    span = f" (seq {report.first_seq}..{report.last_seq})" if report.events else ""
    summary = f"stream {report.stream!r}, {report.events} events{span}, {report.checkpoints} signed checkpoints"
    if not report.ok:
        print(f"FAILED: stream {report.stream!r}: first bad: {report.problems[0]}")
        for problem in report.problems[1:20]:
            print(f"  also: {problem}")
        if len(report.problems) > 20:
            print(f"  ... {len(report.problems) - 20} more")
    elif report.unchecked:
        print(f"INCOMPLETE: {summary}: nothing wrong found, but not everything could be checked")
    else:
        checked = f"; signatures checked with {key}" if report.signatures_checked and report.checkpoints else ""
        print(f"ok: {summary} hold{checked}")
    for line in report.unchecked:
        print(f"  not checked: {line}")
    for line in report.notes:
        print(f"  note: {line}")
    if not report.ok:
        return 1
    # 3: nothing wrong was found, but part of the journal could not be checked (listed above).
    return 3 if report.unchecked else 0


def add_commands(commands: Commands) -> None:
    """Add the verify command to the `eventlog` parser."""
    verify = command(
        commands,
        "verify",
        _verify,
        help="check the hash chain and signed checkpoints",
        description="Walk the journal's hash chain, check every signed checkpoint's hash against the stored event "
        "and its signature, and hold the journal against its own records of its head, its last purge and its "
        "newest checkpoint (a cut tail, a prefix deleted outside retention, deleted checkpoints). "
        "The first line says ok:, INCOMPLETE: or FAILED: (with the first problem); then 'also:' lines for "
        "further problems, 'not checked:' lines for what could not be checked, and 'note:' lines (events newer "
        "than the newest checkpoint, which the node signs every EVENTLOG_CHECKPOINT_INTERVAL_SECONDS and at "
        "shutdown). Exit status: 0 everything was checked and holds; 1 a problem was found; 2 verify could not "
        "run (no journal, or a --public-key that is missing or not an Ed25519 public key); 3 nothing wrong was "
        "found, but something could not be checked (no public key, so signatures were not checked; a journal "
        "last written by an older eventlog).",
    )
    verify.add_argument(
        "--public-key",
        type=Path,
        default=None,
        help="Ed25519 public key (PEM) to check checkpoints with; it must exist "
        "(default: signing.pub in the data dir, if there; pin your own copy for real assurance)",
    )
