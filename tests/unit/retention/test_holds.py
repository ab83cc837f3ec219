"""The hold stores refuse what the hold API refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from retention.holds import SqliteHoldStore
from search.retention import InvalidHold


@pytest.mark.parametrize("tenant", ["a\nb", "", " acme", "x" * 129])
def test_a_hold_of_a_tenant_outside_the_tenant_rule_is_refused(tmp_path: Path, tenant: str) -> None:
    store = SqliteHoldStore(tmp_path / "holds.db")
    try:
        with pytest.raises(InvalidHold) as refused:
            store.place(tenant=tenant, since=None, until=None, reason="case 9", placed_by="t")
        assert refused.value.parameter == "tenant"
        assert store.list() == []
        assert store.place(tenant="acme", since=None, until=None, reason="case 9", placed_by="t").tenant == "acme"
    finally:
        store.close()
