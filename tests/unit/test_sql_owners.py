"""Every SQLite table has one owner: only the code under its owner's path names it in SQL.

A table names its database file's owner; two files may hold tables of the same name (`events` is in
`journal.db` and `search.db`), so a table name maps to the owners of every file that has one.
A table that no database below lists fails too: a new table must be given its owner here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("eventlog", "ingest", "search", "retention", "dashboards")

# database file -> (owner: a package folder ending in "/" or one module, its tables)
DATABASES: dict[str, tuple[str, frozenset[str]]] = {
    "journal.db": ("eventlog/journal/", frozenset({"events", "sink_cursors", "dead_letters", "checkpoints", "meta"})),
    "search.db": ("search/sqlite/", frozenset({"events", "events_fts", "details_leaves"})),
    "tokens.db": ("eventlog/tokens.py", frozenset({"tokens"})),
    "holds.db": ("retention/holds.py", frozenset({"holds"})),
    "retention.db": ("retention/lock.py", frozenset({"locks"})),
    "cloudtrail.db": ("ingest/cloudtrail/", frozenset({"checkpoints", "files", "digests", "digest_log_files"})),
    "spool.db": ("ingest/emitters.py", frozenset({"spool", "dead_letters"})),
}

# SQLite's own catalog, readable by every owner of a database.
CATALOG = frozenset({"sqlite_master", "sqlite_schema"})

_TABLE = re.compile(
    r"\b(?:FROM|INTO|UPDATE|JOIN|TABLE(?: IF NOT EXISTS)?|INDEX(?: IF NOT EXISTS)? \w+ ON|(?:INSERT|UPDATE|DELETE) ON)"
    r"\s+([a-z_]+)\b|\btable_info\(([a-z_]+)\)"
)


def owners() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for owner, tables in DATABASES.values():
        for table in tables:
            found.setdefault(table, set()).add(owner)
    return found


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring nodes: prose, not SQL."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def tables_named(source: str) -> Iterator[tuple[int, str]]:
    """(line, table) of every table a string literal of `source` names in SQL."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            for match in _TABLE.finditer(node.value):
                yield node.lineno, match.group(1) or match.group(2)


def _sources() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _owned_by(path: str, owner: str) -> bool:
    return path.startswith(owner) if owner.endswith("/") else path == owner


def test_every_table_is_touched_only_by_its_owner() -> None:
    table_owners = owners()
    problems: list[str] = []
    for source in _sources():
        path = source.relative_to(ROOT).as_posix()
        for line, table in tables_named(source.read_text(encoding="utf-8")):
            if table in CATALOG:
                continue
            allowed = table_owners.get(table)
            if allowed is None:
                problems.append(f"{path}:{line}: table {table!r} has no owner; add it to DATABASES")
            elif not any(_owned_by(path, owner) for owner in allowed):
                problems.append(f"{path}:{line}: table {table!r} belongs to {' or '.join(sorted(allowed))}")
    assert not problems, "\n".join(problems)


def test_every_listed_table_is_used_by_its_owner() -> None:
    """The map stays true: a table listed for an owner is named in that owner's code."""
    used: set[tuple[str, str]] = set()
    for source in _sources():
        path = source.relative_to(ROOT).as_posix()
        for _, table in tables_named(source.read_text(encoding="utf-8")):
            used.update((owner, table) for owner, _ in DATABASES.values() if _owned_by(path, owner))
    missing = [
        f"{owner}: {table}" for owner, tables in DATABASES.values() for table in tables if (owner, table) not in used
    ]
    assert not missing, missing


def test_the_scanner_finds_tables_in_statements() -> None:
    source = (
        'SQL = "CREATE TABLE IF NOT EXISTS a (x)"\n'
        'f"DELETE FROM b WHERE {x}"\n'
        '"INSERT OR IGNORE INTO c (x) VALUES (?)"\n'
        '"UPDATE d SET x = 1"\n'
        '"SELECT 1 FROM e JOIN f ON e.x = f.x"\n'
        '"CREATE INDEX IF NOT EXISTS g_x ON g (x)"\n'
        '"PRAGMA table_info(h)"\n'
        '"CREATE TRIGGER t AFTER DELETE ON i BEGIN SELECT 1; END"\n'
        'def f():\n    """Reads FROM nowhere: a docstring is prose."""\n'
    )
    assert {table for _, table in tables_named(source)} == set("abcdefghi")
