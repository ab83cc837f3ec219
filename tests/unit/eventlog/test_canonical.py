"""canonical_json must equal the RFC 8785 reference encoder on every JSON value."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog.canonical import MAX_SAFE_INT, canonical_json

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=2000)
@given(json_values)
def test_equals_reference_encoder(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_known_vectors() -> None:
    # From RFC 8785 section 3.2.2/3.2.3: key order by UTF-16 code units, ES6 numbers.
    assert canonical_json({"b": 1, "a": [1.0, 1e21, 1e-7, 0.000001], "\u20ac": "€", "\U0001f600": 0, "\ufb33": 1}) == (
        '{"a":[1,1e+21,1e-7,0.000001],"b":1,"\u20ac":"€","\U0001f600":0,"\ufb33":1}'.encode()
    )
    assert canonical_json({"s": '\u2028\x1f"\\'}) == b'{"s":"\xe2\x80\xa8\\u001f\\"\\\\"}'
