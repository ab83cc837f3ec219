"""`eventlog verify`: re-walk the journal's chain, check every signed checkpoint, and say what went unchecked.

Besides the chain, it holds the journal against its own bookkeeping (`eventlog.journal.history`): a tail
cut after the recorded head, a prefix gone that no purge removed, a recorded checkpoint gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from eventlog import checkpoints
from eventlog.chain import GENESIS, StoredLink, walk
from eventlog.journal import connect, first_seq, read_links, stream_of
from eventlog.journal.history import History
from eventlog.journal.history import read as history_of

_REOPEN = "start `eventlog serve` on the data dir once to record it"


@dataclass
class Report:
    stream: str = ""
    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoints: int = 0
    signatures_checked: bool = False
    # The newest seq whose stored hash a checkpoint matches (and signs, when signatures are checked).
    signed_through: int | None = None
    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing wrong was found."""
        return not self.problems

    @property
    def complete(self) -> bool:
        """Nothing wrong was found and nothing went unchecked."""
        return self.ok and not self.unchecked


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The key to check signatures with; a path that gives none is an error, never a silent skip."""
    hint = "pass --public-key with a copy of the node's signing.pub (next to signing.key in its data dir)"
    try:
        return checkpoints.load_public_key(path)
    except FileNotFoundError:
        raise ValueError(f"public key {path}: no such file; {hint}") from None
    except OSError as exc:
        raise ValueError(f"public key {path}: cannot be read ({exc.strerror}); {hint}") from None
    except ValueError as exc:
        raise ValueError(f"public key {path}: not an Ed25519 public key in PEM ({exc}); {hint}") from None


def verify_journal(
    journal_path: Path, public_key_path: Path | None, *, no_key_reason: str = "no public key was given"
) -> Report:
    if not journal_path.exists():
        raise FileNotFoundError(f"no journal at {journal_path}; pass --data-dir of a node that has run")
    key = load_public_key(public_key_path) if public_key_path is not None else None
    conn = connect(journal_path, readonly=True)
    try:
        report = Report(signatures_checked=key is not None)
        report.stream = stream_of(conn)
        history = history_of(conn)
        report.problems.extend(history.malformed)
        report.first_seq = first_seq(conn)
        start_prev = _check_prefix(report, history)
        hashes: dict[int, str] = {}
        links = _counted(read_links(conn), report, hashes)
        report.problems.extend(str(b) for b in walk(links, stream=report.stream, start_prev=start_prev))
        _check_tail(report, history)
        _check_checkpoints(report, history, checkpoints.load_all(conn, report.stream), hashes, key, no_key_reason)
        return report
    finally:
        conn.close()


def _check_prefix(report: Report, history: History) -> str | None:
    """Whether the journal starts where its last purge ended; answers the hash its first event must link to."""
    first, purged = report.first_seq, history.purged_seq
    if purged is None or history.purged_hash is None:
        if first is not None:
            report.unchecked.append(
                "deleted prefix: the journal records no purge, so events deleted from its start would go unseen; "
                + _REOPEN
            )
        # Only a stream that starts at seq 1 has a known predecessor.
        return GENESIS if first == 1 else None
    if first is None:
        return None
    if first == purged + 1:
        if purged:
            report.notes.append(
                f"events seq 1..{purged} were purged (retention, or the prune of delivered events): "
                "the journal no longer holds them to check"
            )
        return history.purged_hash
    if first <= purged:
        report.problems.append(f"event seq={first} is at or before the end of the last purge (seq {purged})")
    else:
        last_purge = f"the last purge went up to seq {purged}" if purged else "none is recorded"
        report.problems.append(
            f"events seq {purged + 1}..{first - 1} are gone, but no purge removed them ({last_purge})"
        )
    return None


def _check_tail(report: Report, history: History) -> None:
    head, last = history.head_seq, report.last_seq
    if head is None:
        if report.events:
            report.unchecked.append(
                "cut tail: the journal records no head seq, so events deleted from its end would go unseen; " + _REOPEN
            )
        return
    end = last if last is not None else (history.purged_seq or 0)
    if end < head:
        report.problems.append(
            f"events seq {end + 1}..{head} are gone from the end of the journal (it recorded seq {head} as its head)"
        )
    elif end > head:
        report.problems.append(
            f"events seq {head + 1}..{end} were not written by the journal (it recorded seq {head} as its head)"
        )


def _check_checkpoints(
    report: Report,
    history: History,
    signed: list[checkpoints.Checkpoint],
    hashes: dict[int, str],
    key: Ed25519PublicKey | None,
    no_key_reason: str,
) -> None:
    report.checkpoints = len(signed)
    purged = history.purged_seq
    for checkpoint in signed:
        where = f"checkpoint seq={checkpoint.seq}"
        if key is not None and not checkpoints.is_valid(key, checkpoint):
            report.problems.append(f"{where}: signature does not verify")
            continue
        stored = hashes.get(checkpoint.seq)
        if stored is not None:
            if stored != checkpoint.hash:
                report.problems.append(f"{where}: signed hash differs from the stored event's hash")
            else:
                report.signed_through = max(report.signed_through or 0, checkpoint.seq)
        elif report.last_seq is not None and checkpoint.seq > report.last_seq:
            report.problems.append(
                f"{where}: signs an event past the journal's end (its last event is seq {report.last_seq})"
            )
        elif purged is not None and checkpoint.seq > purged:
            report.problems.append(f"{where}: signs an event the journal does not hold, and no purge removed it")
    newest = signed[-1].seq if signed else None
    recorded = history.checkpoint_seq
    if recorded is None:
        if report.events:
            report.unchecked.append(
                "deleted checkpoints: the journal records no newest checkpoint, so deleted checkpoints would go "
                "unseen; " + _REOPEN
            )
    elif newest is None and recorded > 0:
        report.problems.append(
            f"checkpoint seq={recorded} is gone: the journal recorded it as its newest signed checkpoint (none is left)"
        )
    elif newest is not None and newest < recorded:
        report.problems.append(
            f"checkpoint seq={recorded} is gone: the journal recorded it as its newest signed checkpoint "
            f"(newest left: seq {newest})"
        )
    elif newest is not None and newest > recorded:
        report.problems.append(
            f"checkpoint seq={newest} was not recorded by the journal (its newest recorded is seq {recorded})"
        )
    if signed and key is None:
        report.unchecked.append(
            f"signatures: not checked ({no_key_reason}): the checkpoints' hashes were compared with the stored "
            "events, but a rewritten checkpoint would go unseen; pass --public-key with a copy of the node's signing.pub"
        )
    if report.last_seq is not None and (report.signed_through or 0) < report.last_seq:
        if report.signed_through is None:
            report.notes.append(
                f"events seq {report.first_seq}..{report.last_seq}: no signed checkpoint covers them; "
                "their chain holds, but no signature vouches for them yet"
            )
        else:
            report.notes.append(
                f"events seq {report.signed_through + 1}..{report.last_seq} come after the newest signed checkpoint "
                f"(seq {report.signed_through}): their chain holds, but no signature covers them yet"
            )


def _counted(links: Iterable[StoredLink], report: Report, hashes: dict[int, str]) -> Iterator[StoredLink]:
    for link in links:
        report.events += 1
        hashes[link.seq] = link.hash
        report.last_seq = link.seq
        yield link
