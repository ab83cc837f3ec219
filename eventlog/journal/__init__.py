"""The journal: the one owner of `journal.db` and of every SQL statement on its tables.

`store` holds the events and the writer (group commit, chain links); `history` what the
journal records of its own head, purges and checkpoints; `delivery` the sinks' cursors and
dead letters; `checkpoints` the signed checkpoints' rows; `expiry` the reads and deletes
retention decides on. Other packages call these; none of them writes SQL on `journal.db`.
"""

from eventlog.journal.store import (
    SCHEMA,
    Appended,
    DeadLetter,
    Entry,
    Journal,
    JournalClosed,
    JournalMetrics,
    Prepared,
    connect,
    first_seq,
    purge_delivered,
    read_links,
    stream_of,
)

__all__ = [
    "SCHEMA",
    "Appended",
    "DeadLetter",
    "Entry",
    "Journal",
    "JournalClosed",
    "JournalMetrics",
    "Prepared",
    "connect",
    "first_seq",
    "purge_delivered",
    "read_links",
    "stream_of",
]
