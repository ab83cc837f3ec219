"""Client ids claimed across nodes: a retry that lands on another node stores nothing new.

One node's journal already answers a retry it committed itself. In a cluster, the other nodes must
know too: before a node appends events with client ids it claims them in a store every node sees
(`search/opensearch/claims.py`), and records their receipts once committed. An id another node has
committed is answered with that node's receipt; one it is still committing is a 409 `in_progress`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from eventlog.journal import Appended


class ClaimsUnavailable(RuntimeError):
    """The shared claims could not be read or written."""


@dataclass(frozen=True, slots=True)
class Held:
    """A client id another stream holds: committed (with its receipt) or still being committed."""

    stream: str
    seq: int | None = None
    hash: str | None = None

    @property
    def committed(self) -> bool:
        return self.seq is not None and self.hash is not None

    def receipt(self, event_id: str) -> Appended | None:
        """The first attempt's receipt, answered as a duplicate; None while it is being committed."""
        if self.seq is None or self.hash is None:
            return None
        return Appended(event_id, self.hash, self.seq, True)


class ClaimStore(Protocol):
    def prepare(self) -> None:
        """Make ready what the first claim needs (at start; raises ClaimsUnavailable, retried at first use)."""
        ...

    def claim(self, tenant: str, ids: Sequence[str], stream: str) -> dict[str, Held]:
        """Claim `ids` of `tenant` for `stream`; answers those another stream holds, by id.

        An id this stream holds already (a retry on the same node, or after its restart) is not in the
        answer: its journal knows it. Raises ClaimsUnavailable.
        """
        ...

    def settle(self, tenant: str, appended: Sequence[Appended], stream: str) -> None:
        """Record the receipts of the ids `stream` committed. Raises ClaimsUnavailable."""
        ...
