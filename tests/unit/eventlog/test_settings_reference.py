"""docs/configuration.md shows exactly the table generated from Settings."""

from __future__ import annotations

import pytest

from eventlog import settings_reference
from eventlog.settings import Settings


def test_page_is_the_generated_table() -> None:
    page = settings_reference.PAGE.read_text()
    assert settings_reference.render(page) == page, (
        "docs/configuration.md is stale: run python -m eventlog.settings_reference"
    )


def test_every_setting_has_one_row_with_its_description() -> None:
    rows = settings_reference.table().splitlines()[2:]
    assert len(rows) == len(Settings.model_fields)
    for row, (name, info) in zip(rows, Settings.model_fields.items(), strict=True):
        assert row.startswith(f"| `EVENTLOG_{name.upper()}` |")
        assert info.description
        assert info.description.replace("|", "\\|") in row


def test_a_page_without_markers_is_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="markers"):
        settings_reference.render("# Configuration\n\nno table here\n")
