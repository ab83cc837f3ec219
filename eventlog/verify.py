"""`eventlog verify`: re-walk the journal's chain and check every signed checkpoint."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from eventlog import checkpoints
from eventlog.chain import GENESIS, StoredLink, walk
from eventlog.journal import connect, read_links


@dataclass
class Report:
    stream: str = ""
    events: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_journal(journal_path: Path, public_key_path: Path | None) -> Report:
    if not journal_path.exists():
        raise FileNotFoundError(f"no journal at {journal_path}; pass --data-dir of a node that has run")
    conn = connect(journal_path, readonly=True)
    try:
        report = Report()
        row = conn.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()
        report.stream = row[0] if row else ""
        first = conn.execute("SELECT seq FROM events ORDER BY seq LIMIT 1").fetchone()
        # Only a stream that starts at seq 1 has a known predecessor; after
        # expiry the walk starts from the oldest retained event instead.
        start_prev = GENESIS if first is not None and first[0] == 1 else None
        hashes: dict[int, str] = {}
        links = _counted(read_links(conn), report, hashes)
        report.problems.extend(str(b) for b in walk(links, stream=report.stream, start_prev=start_prev))

        signed = checkpoints.load_all(conn, report.stream)
        report.checkpoints = len(signed)
        if signed and public_key_path is not None:
            key = checkpoints.load_public_key(public_key_path)
            for checkpoint in signed:
                if not checkpoints.is_valid(key, checkpoint):
                    report.problems.append(f"checkpoint seq={checkpoint.seq}: signature does not verify")
                elif checkpoint.seq in hashes and hashes[checkpoint.seq] != checkpoint.hash:
                    report.problems.append(
                        f"checkpoint seq={checkpoint.seq}: signed hash differs from the stored event's hash"
                    )
        return report
    finally:
        conn.close()


def _counted(links: Iterable[StoredLink], report: Report, hashes: dict[int, str]) -> Iterator[StoredLink]:
    for link in links:
        report.events += 1
        hashes[link.seq] = link.hash
        yield link
