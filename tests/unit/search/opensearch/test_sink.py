"""Bulk bodies, batching by bytes, and how item answers are classified."""

from __future__ import annotations

import orjson
import pytest

from eventlog.journal import Entry
from eventlog.sink import Rejection
from search.opensearch.sink import BulkRetry, bulk_lines, chunks, document_id, rejections
from search.opensearch.template import index_for


def _entry(seq: int, message: str = "Created table Sales") -> Entry:
    event_id = f"e{seq:03d}"
    document = {"id": event_id, "tenant": "acme", "time": "2026-11-27T23:59:59.999999Z", "message": message}
    return Entry(seq, event_id, "acme", orjson.dumps(document), 0.0)


def test_daily_index_by_event_time_in_utc() -> None:
    assert index_for("evl", "2026-11-27T23:59:59.999999Z") == "evl-events-2026.11.27"


def test_document_id_is_unique_per_tenant() -> None:
    assert document_id("acme", "x-1") != document_id("globex", "x-1")


def test_bulk_lines_create_by_id_with_routing_and_tokens() -> None:
    action, source, end = bulk_lines(_entry(1), "evl").split(b"\n")
    assert orjson.loads(action) == {
        "create": {"_index": "evl-events-2026.11.27", "_id": "acme/e001", "routing": "acme"}
    }
    assert orjson.loads(source)["fulltext"] == "created table sales"
    assert end == b""


def test_chunks_respect_the_byte_limit_and_keep_order() -> None:
    entries = [_entry(i, "x" * 500) for i in range(1, 21)]
    one = len(bulk_lines(entries[0], "evl"))
    parts = list(chunks(entries, "evl", one * 6))
    assert [len(batch) for batch, _ in parts] == [6, 6, 6, 2]
    assert all(len(body) <= one * 6 for _, body in parts)
    assert [e.seq for batch, _ in parts for e in batch] == list(range(1, 21))


def test_an_event_larger_than_the_limit_goes_alone() -> None:
    parts = list(chunks([_entry(1, "x" * 5000), _entry(2)], "evl", 1000))
    assert [[e.seq for e in batch] for batch, _ in parts] == [[1], [2]]


def _answer(*statuses: int) -> dict[str, object]:
    items = [
        {"create": {"status": s, **({"error": {"type": "t", "reason": f"r{s}"}} if s >= 300 else {})}} for s in statuses
    ]
    return {"errors": any(s >= 300 for s in statuses), "items": items}


def test_created_and_conflicting_items_are_delivered() -> None:
    assert rejections([_entry(1), _entry(2)], _answer(201, 409)) == []


def test_permanent_item_errors_become_rejections() -> None:
    assert rejections([_entry(1), _entry(2), _entry(3)], _answer(201, 400, 409)) == [Rejection(2, "400 t: r400")]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_item_errors_retry_the_batch(status: int) -> None:
    with pytest.raises(BulkRetry):
        rejections([_entry(1), _entry(2)], _answer(400, status))
