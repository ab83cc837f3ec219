"""Tokens shared by both stores."""

from __future__ import annotations

import pytest

from search.text import searchable_text, tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Created table Sales", ["created", "table", "sales"]),
        ("foo.bar baz_qux a-b", ["foo", "bar", "baz", "qux", "a", "b"]),
        ("Café Straße", ["cafe", "straße"]),
        ("3.14 x²y", ["3", "14", "x²y"]),
        ("日本語テキスト", ["日本語テキスト"]),
        ("emoji😀ok", ["emoji", "ok"]),
        ("* ( --", []),
    ],
)
def test_tokens(text: str, expected: list[str]) -> None:
    assert tokens(text) == expected


def test_searchable_text_takes_message_names_and_detail_values() -> None:
    text = searchable_text(
        {
            "message": "Hello",
            "actor": {"name": "Alice", "id": "not-searched"},
            "target": {"name": "Sales"},
            "details": {"a": ["x", {"b": 42, "c": True}]},
        }
    )
    assert text == "hello alice sales x 42"
