"""The running core's parts, built once by the composition root and shared by the routers.

The search backend is not here: eventlog/ does not know search/; the composition
root hands it to the search router itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eventlog.auth import Authenticator
from eventlog.fanout import FanOut
from eventlog.journal import Journal
from eventlog.metrics import Metrics
from eventlog.settings import Settings
from eventlog.tokens import TokenStore


@dataclass
class Context:
    settings: Settings
    journal: Journal
    tokens: TokenStore
    auth: Authenticator
    fanout: FanOut
    metrics: Metrics
    # Extra parts of /readyz's body, by key (e.g. "cloudtrail"), each built when asked.
    readiness: dict[str, Callable[[], Any]] = field(default_factory=dict)
