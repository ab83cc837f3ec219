"""The `SearchBackend` protocol and the objects a read passes through it.

The user's query (`EventQuery`) and the security scope (`Scope`) are separate
objects: the API builds the scope from the token, the backend adds it to the
store request, and a last check refuses any request that lacks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

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


@dataclass(frozen=True, slots=True)
class EventQuery:
    since_us: int | None = None
    until_us: int | None = None
    action: str | None = None
    actor: str | None = None
    outcome: str | None = None
    source: str | None = None
    text: str | None = None
    order: Order = "desc"
    limit: int = 100
    after: Position | None = None


@dataclass(frozen=True, slots=True)
class Page:
    documents: Sequence[bytes]
    last: Position | None
    more: bool


class SearchBackend(Protocol):
    name: str

    async def search(self, scope: Scope, query: EventQuery) -> Page: ...

    async def get(self, scope: Scope, event_id: str) -> bytes | None: ...
