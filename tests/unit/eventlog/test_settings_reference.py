"""docs/configuration.md shows exactly the table generated from Settings."""

from __future__ import annotations

import pytest

from eventlog import settings_reference
from eventlog.settings import SECTIONS, Settings


def test_page_is_the_generated_table() -> None:
    page = settings_reference.PAGE.read_text()
    assert settings_reference.render(page) == page, (
        "docs/configuration.md is stale: run python -m eventlog.settings_reference"
    )


def test_every_setting_has_one_row_with_its_description() -> None:
    rows = [line for line in settings_reference.table().splitlines() if line.startswith("| `EVENTLOG_")]
    by_name = {row.split("`")[1]: row for row in rows}
    assert len(by_name) == len(rows) == len(Settings.model_fields)
    for name, info in Settings.model_fields.items():
        row = by_name[f"EVENTLOG_{name.upper()}"]
        assert info.description
        assert info.description.replace("|", "\\|") in row


def test_each_section_has_its_own_table() -> None:
    text = settings_reference.table()
    for kind in SECTIONS:
        heading = text.index(f"### {kind.TITLE}\n")
        following = text[heading:].split("\n### ")[0]
        names = [name for name in Settings.model_fields if name.startswith(kind.PREFIX)]
        assert names
        assert all(f"`EVENTLOG_{name.upper()}`" in following for name in names)


def test_a_page_without_markers_is_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="markers"):
        settings_reference.render("# Configuration\n\nno table here\n")
