"""RFC 8785 (JCS) canonical JSON, fast for the documents eventlog hashes.

orjson with sorted keys writes exactly the JCS bytes for strings, booleans,
null, integers up to 2**53 and "ordinary" floats, at ~1/70 of the cost of a
pure-Python JCS encoder. Where the two could differ (integral or very large or
small floats, big integers, keys that sort differently in UTF-16), the whole
document goes through the reference encoder instead.
"""

from __future__ import annotations

from typing import Any

import orjson
import rfc8785

# I-JSON (RFC 7493) and RFC 8785 allow integers only where doubles are exact.
MAX_SAFE_INT = 2**53 - 1


def _orjson_is_jcs(value: Any) -> bool:
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -MAX_SAFE_INT <= value <= MAX_SAFE_INT
    if isinstance(value, float):
        magnitude = abs(value)
        return 1e-5 <= magnitude < 1e15 and not value.is_integer()
    if isinstance(value, dict):
        return all(k.isascii() and _orjson_is_jcs(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_orjson_is_jcs(v) for v in value)
    return False


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 serialization of a JSON value."""
    if _orjson_is_jcs(value):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return rfc8785.dumps(value)
