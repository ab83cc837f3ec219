"""The `Sink` protocol: what the fan-out delivers committed events to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from eventlog.journal import Entry


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event a sink refuses for good; it goes to the dead-letter table."""

    seq: int
    reason: str


class Sink(Protocol):
    name: str

    async def deliver(self, entries: Sequence[Entry]) -> Sequence[Rejection]:
        """Deliver a batch. Raise to have it retried; return the events refused for good."""
        ...

    async def close(self) -> None: ...
