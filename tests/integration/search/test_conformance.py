"""The search benchmark's 20 cases give the same results on the embedded store and on OpenSearch.

A few thousand events of the generated trail (tests/trail.py) go into a SqliteStore and into OpenSearch
indices made from eventlog's template, each through its sink's `deliver`, as the fan-out hands them over;
then every case of tests/search_cases.py runs on both stores in this process.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opensearchpy import NotFoundError, OpenSearch

from search.opensearch.backend import OpenSearchBackend
from search.opensearch.sink import OpenSearchSink
from search.opensearch.template import alias, template_name
from search.reads import Reads
from search.sqlite.store import SqliteStore
from tests.search_cases import build_cases, compare, differences
from tests.trail import Generator

pytestmark = pytest.mark.opensearch

EVENTS = 5_000


@pytest.fixture
async def client(opensearch_url: str, index_prefix: str) -> AsyncIterator[OpenSearch]:
    client = OpenSearch(hosts=[opensearch_url], timeout=60)
    yield client
    with contextlib.suppress(NotFoundError):
        client.indices.delete(index=f"{index_prefix}-events-*", params={"expand_wildcards": "all"})
    with contextlib.suppress(NotFoundError):
        client.indices.delete_index_template(name=template_name(index_prefix))
    client.close()


async def test_every_case_gives_the_same_results_on_both_stores(
    tmp_path: Path, client: OpenSearch, index_prefix: str
) -> None:
    anchor = datetime.now(UTC).replace(microsecond=0)
    reads = Reads(threads=2, tenant_reads=2, tenant_queue=100, deadline_seconds=60.0)
    store = SqliteStore(tmp_path / "search.db", reads)
    sink = OpenSearchSink(client, index_prefix, max_bytes=5 * 1024 * 1024)
    try:
        for batch in Generator(EVENTS, seed=1, anchor=anchor).chunks(1_000):
            assert await store.deliver(batch) == []
            assert await sink.deliver(batch) == []
        client.indices.refresh(index=alias(index_prefix))
        cases = build_cases(anchor)
        comparisons = await compare(cases, store, OpenSearchBackend(client, index_prefix, reads))
    finally:
        await store.close()
        reads.close()

    assert differences(comparisons) == []
    assert len(comparisons) == len(cases) == 20
    lists = [c for c in comparisons if not c.case.spec.aggregates]
    found = [c.case.spec.name for c in lists if c.results[0]]
    assert len(found) >= 0.75 * len(lists), f"only {found} find events"
    assert all(c.results[0] for c in comparisons if c.case.spec.aggregates)
