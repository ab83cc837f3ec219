"""The running core's parts, built once by the composition root and shared by the routers.

The search backend is not here: eventlog/ does not know search/; the composition
root hands it to the search router itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from eventlog.auth import Authenticator
from eventlog.fanout import FanOut
from eventlog.journal import Journal
from eventlog.metrics import Metrics
from eventlog.settings import Settings
from eventlog.tokens import TokenStore


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
    # Extra parts of /readyz's body, by key (e.g. "cloudtrail").
    readiness: dict[str, ReadinessPart] = field(default_factory=dict)
