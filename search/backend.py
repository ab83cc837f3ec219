"""The `SearchBackend` protocol and the objects a read passes through it.

The user's query (`EventQuery`) and the security scope (`Scope`) are separate
objects: the API builds the scope from the token, the backend adds it to the
store request, and a last check refuses any request that lacks it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from search.query import All, And, Node

Order = Literal["desc", "asc"]


class TenantScopeMissing(RuntimeError):
    """A store request was about to leave without its tenant condition."""


@dataclass(frozen=True, slots=True)
class Scope:
    tenant: str

    def __post_init__(self) -> None:
        if not self.tenant:
            raise TenantScopeMissing("a read needs a tenant scope")


@dataclass(frozen=True, slots=True)
class Position:
    """Keyset position of the last event on a page."""

    time_us: int
    id: str


def all_of(*nodes: Node) -> Node:
    """AND of the given conditions, leaving out the ones that match everything."""
    kept = tuple(node for node in nodes if not isinstance(node, All))
    if not kept:
        return All()
    return kept[0] if len(kept) == 1 else And(kept)


@dataclass(frozen=True, slots=True)
class EventQuery:
    """The user's side of a read: conditions (never the tenant), order and the page wanted."""

    where: Node = field(default_factory=All)
    order: Order = "desc"
    limit: int = 100
    after: Position | None = None


@dataclass(frozen=True, slots=True)
class Bucket:
    start_us: int
    count: int


@dataclass(frozen=True, slots=True)
class FacetValue:
    value: str
    count: int


@dataclass(frozen=True, slots=True)
class Page:
    documents: Sequence[bytes]
    last: Position | None
    more: bool


FACET_FIELDS = ("actor.id", "action", "outcome", "target.type", "source", "actor.ip")


class SearchBackend(Protocol):
    name: str

    async def search(self, scope: Scope, query: EventQuery) -> Page: ...

    async def get(self, scope: Scope, event_id: str) -> bytes | None: ...

    async def histogram(
        self, scope: Scope, where: Node, *, since_us: int, until_us: int, interval_us: int
    ) -> list[Bucket]:
        """Counts per interval in [since, until); buckets start at multiples of the interval since the epoch."""
        ...

    async def facets(self, scope: Scope, where: Node, *, field: str, size: int) -> list[FacetValue]:
        """The most frequent values of one of FACET_FIELDS, by count then value."""
        ...

    def export(self, scope: Scope, query: EventQuery) -> AsyncIterator[Sequence[bytes]]:
        """Every matching event, page by page, in constant memory."""
        ...
