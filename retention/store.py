"""The seam between the retention run and a search store: what it holds, per tenant and UTC day."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol


@dataclass(frozen=True, slots=True, order=True)
class TenantDay:
    """The events of one tenant on one UTC day in one place of a store (an OpenSearch index; '' for SQLite)."""

    tenant: str
    day: date
    events: int
    location: str = ""


class ExpiringStore(Protocol):
    name: str

    async def inventory(self) -> list[TenantDay]:
        """Every tenant and day the store holds events of, with counts."""
        ...

    def documents(self, tenant: str, day: date) -> AsyncIterator[Sequence[bytes]]:
        """The tenant's stored events of that day, page by page (for the archive)."""
        ...

    async def remove(self, due: Sequence[TenantDay]) -> list[TenantDay]:
        """Delete exactly these tenant-days and nothing else; answer what went."""
        ...
