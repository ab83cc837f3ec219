"""The embedded store's pieces: FTS escaping, searchable text, and the tenant failsafe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from search.backend import EventQuery, Scope, TenantScopeMissing
from search.query import Text
from search.sqlite_store import SqliteStore, _checked


def test_failsafe_refuses_statements_without_the_tenant_condition() -> None:
    scope = Scope("acme")
    assert _checked(scope, "SELECT 1 FROM events WHERE tenant = ? AND x", ["acme"])[1] == ["acme"]
    refused: list[tuple[str, list[Any]]] = [
        ("SELECT 1 FROM events", []),
        ("SELECT 1 FROM events WHERE x = ? AND tenant = ?", [1, "acme"]),
        ("SELECT 1 FROM events WHERE tenant = ?", ["globex"]),
    ]
    for sql, params in refused:
        with pytest.raises(TenantScopeMissing):
            _checked(scope, sql, params)


def test_empty_tenant_scope_is_impossible() -> None:
    with pytest.raises(TenantScopeMissing):
        Scope("")


async def test_empty_store_answers_an_empty_page(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    page = await store.search(Scope("acme"), EventQuery(where=Text(("x",))))
    await store.close()
    assert (list(page.documents), page.last, page.more) == ([], None, False)
