"""Full-text tokens, computed here once so that every backend matches the same words.

SQLite's unicode61 and OpenSearch's analyzers disagree at the edges (dots,
underscores, diacritics; the OpenSearch test node has no analysis-common
module at all), so eventlog tokenizes in Python and both stores only split the
result on spaces.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

_TOKEN = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    """Lower-cased words without diacritics; every run of letters or digits is one word."""
    decomposed = unicodedata.normalize("NFD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _TOKEN.findall(plain.lower())


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


def searchable_text(document: dict[str, Any]) -> str:
    """The tokens free text matches: the message, actor and target names, and every value in details."""
    parts = [
        document.get("message", ""),
        document.get("actor", {}).get("name", ""),
        document.get("target", {}).get("name", ""),
        *_strings(document.get("details", {})),
    ]
    return " ".join(token for part in parts if part for token in tokens(part))
