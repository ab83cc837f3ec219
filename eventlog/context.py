"""The running core's parts, built once by the composition root and shared by the routers.

The other packages' parts (the search backend, the retention scheduler) are not fields:
eventlog/ does not know search/ or retention/. Each of those declares a frozen dataclass of
what its routers need; the composition root adds one with `add`, the routers get it back,
typed, with `part`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from eventlog.append import append_or_503
from eventlog.auth import Authenticator
from eventlog.claims import ClaimStore
from eventlog.fanout import FanOut
from eventlog.journal import Appended, Journal, Prepared
from eventlog.metrics import Metrics
from eventlog.settings import Settings
from eventlog.tokens import TokenStore

T = TypeVar("T")


class ReadinessPart(Protocol):
    """One part of /readyz's body, built when asked."""

    def summary(self) -> dict[str, Any]:
        """State and counts only: what anyone may see."""

    def status(self) -> dict[str, Any]:
        """The whole detail (tenants, keys, error texts): for admin tokens only."""


@dataclass
class Context:
    settings: Settings
    journal: Journal
    tokens: TokenStore
    auth: Authenticator
    fanout: FanOut
    metrics: Metrics
    # A cluster's client-id claims (None on one node: its journal is enough).
    claims: ClaimStore | None = None
    # EVENTLOG_ACK=replicated: waits until the search store holds every copy through a seq.
    replicated: Callable[[int], Awaitable[bool]] | None = None
    # Extra parts of /readyz's body, by key (e.g. "cloudtrail").
    readiness: dict[str, ReadinessPart] = field(default_factory=dict)
    # Besides a journal that cannot commit, what takes the node out of a balancer: each answers why, or None.
    blockers: dict[str, Callable[[], str | None]] = field(default_factory=dict)
    parts: dict[type, object] = field(default_factory=dict)

    async def append(self, tenant: str, prepared: Sequence[Prepared]) -> list[Appended]:
        """Append as an HTTP producer does: claimed across the cluster, committed, and acknowledged
        as EVENTLOG_ACK says; the errors are the API's (409, 503)."""
        return await append_or_503(self.journal, tenant, prepared, self.claims, self.replicated)

    def add(self, part: object) -> None:
        self.parts[type(part)] = part

    def part(self, kind: type[T]) -> T:
        found = self.parts.get(kind)
        if not isinstance(found, kind):
            raise LookupError(f"{kind.__name__} was not added to this app's context (see eventlog/app/service.py)")
        return found
