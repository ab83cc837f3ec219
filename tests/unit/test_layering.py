"""The packages stand on each other in one direction only, as docs/architecture.md draws them.

Every import in the source (top level or inside a function) is read from the syntax tree, so a
lazy import that reaches upward is caught as well as a top-level one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("eventlog", "ingest", "search", "retention", "dashboards")
COMPOSITION_ROOT = "eventlog.app"

# What each room may import of the project, besides itself.
ALLOWED: dict[str, frozenset[str]] = {
    "eventlog": frozenset(),
    "ingest": frozenset({"eventlog"}),
    "search": frozenset({"eventlog"}),
    "retention": frozenset({"eventlog", "search"}),
    "dashboards": frozenset({"eventlog"}),
}


def room(module: str) -> str:
    """The room a dotted module name belongs to: `eventlog.app`, or its top-level package."""
    if module == COMPOSITION_ROOT or module.startswith(COMPOSITION_ROOT + "."):
        return COMPOSITION_ROOT
    return module.split(".")[0]


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in a file, relative imports resolved."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                yield node.lineno, ".".join([*base, node.module] if node.module else base)
            elif node.module:
                yield node.lineno, node.module


def violations(root: Path = ROOT) -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            here = room(module_name(path, root))
            if here == COMPOSITION_ROOT:
                continue  # it assembles every package
            for line, name in imports(path, root):
                there = room(name)
                if there not in (*PACKAGES, COMPOSITION_ROOT) or there == here:
                    continue
                if there not in ALLOWED[here]:
                    found.append(
                        f"{path.relative_to(root).as_posix()}:{line} imports {name} ({here} may not import {there})"
                    )
    return found


def private_imports(root: Path = ROOT) -> list[str]:
    """`from x import _name` across modules of the project, in the source, the tests and the benchmarks."""
    found = []
    for folder in (*PACKAGES, "tests", "bench", "examples"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if not isinstance(node, ast.ImportFrom) or room(node.module or "") not in (*PACKAGES, COMPOSITION_ROOT):
                    continue
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(root).as_posix()}:{node.lineno} imports {alias.name}")
    return found


def test_no_private_name_is_imported_from_another_module() -> None:
    # A name with a leading underscore may change without notice; one another module needs is public.
    assert private_imports() == []


def test_a_private_import_is_found(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("from search.api import parse_q, _where\nfrom os import _exit\n")
    assert private_imports(tmp_path) == ["tests/test_x.py:1 imports _where"]


def test_no_room_imports_against_the_direction_of_the_layers() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "expected"),
    [("eventlog.app.cli.serve", "eventlog.app"), ("eventlog.model", "eventlog"), ("search.opensearch.sink", "search")],
)
def test_room_of_a_module(module: str, expected: str) -> None:
    assert room(module) == expected


def test_an_upward_import_is_found(tmp_path: Path) -> None:
    # The walk must see lazy and relative imports, or the rule above could never fail.
    files = {
        "eventlog/model.py": "def f():\n    from search.query import parse\n",
        "eventlog/app/service.py": "import search.api\nimport retention.run\n",
        "search/reader.py": "from .query import parse\nfrom ..eventlog.app import service\n",
        "ingest/api.py": "import search\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert violations(tmp_path) == [
        "eventlog/model.py:2 imports search.query (eventlog may not import search)",
        "ingest/api.py:1 imports search (ingest may not import search)",
        "search/reader.py:2 imports eventlog.app (search may not import eventlog.app)",
    ]
