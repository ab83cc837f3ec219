"""Finding JSON nested too deep, in parsed values and in text too deep to parse."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventlog.nesting import parse_too_deep, too_deep, too_deep_in_text


@pytest.mark.parametrize(
    ("value", "limit", "path"),
    [
        ({"a": 1}, 1, None),
        ({"a": {}}, 1, ("a",)),
        ({"a": [1, 2, {"b": []}]}, 2, ("a", 2)),
        ({"a": [1, 2, {"b": []}]}, 3, ("a", 2, "b")),
        ({"a": [1, 2, {"b": []}]}, 4, None),
        ({"x": 1, "y": [[]], "z": [[[]]]}, 2, ("y", 0)),
        ([[], [[]]], 2, (1, 0)),
        ("scalar", 0, None),
    ],
)
def test_too_deep_names_the_first_container_beyond_the_limit(value: Any, limit: int, path: Any) -> None:
    assert too_deep(value, limit) == path
    assert too_deep_in_text(orjson.dumps(value), limit) == path


def test_keys_and_strings_holding_brackets_escapes_or_commas_do_not_mislead_the_text_scan() -> None:
    text = rb'{"a\"[{,": "]}],\\", "k\u00e9y": [0, "[", {"\ud83d\ude00": [[]]}]}'
    assert too_deep_in_text(text, 3) == ("k\u00e9y", 2, "\U0001f600")
    assert too_deep_in_text(text, 4) == ("k\u00e9y", 2, "\U0001f600", 0)
    assert too_deep_in_text(text, 5) is None


def test_text_too_deep_for_orjson_is_located() -> None:
    text = b'{"events": [{"action": "a"}, {"details": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}]}"
    with pytest.raises(orjson.JSONDecodeError) as refused:
        orjson.loads(text)
    assert parse_too_deep(refused.value)
    assert too_deep_in_text(text, 6) == ("events", 1, "details", "x", 0, 0)


def test_a_syntax_error_is_not_taken_for_nesting() -> None:
    with pytest.raises(orjson.JSONDecodeError) as refused:
        orjson.loads(b'{"a": [1,,]}')
    assert not parse_too_deep(refused.value)


def test_a_parsed_value_deeper_than_python_recursion_is_located() -> None:
    deep: Any = []
    for _ in range(50_000):
        deep = [deep]
    assert too_deep({"a": deep}, 3) == ("a", 0, 0)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.text(alphabet='ab"\\[]{},:\u00e9', max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='ab"\\[]{},', max_size=3), inner),
    max_leaves=20,
)


@given(_json, st.integers(min_value=0, max_value=6))
def test_the_text_scan_agrees_with_the_walk_of_the_parsed_value(value: Any, limit: int) -> None:
    assert too_deep_in_text(orjson.dumps(value), limit) == too_deep(value, limit)
