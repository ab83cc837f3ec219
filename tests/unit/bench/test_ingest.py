"""bench.ingest reads what `eventlog verify` prints, so the benchmark's durability check follows verify's output."""

from __future__ import annotations

import pytest

from bench.ingest import journal_events
from eventlog.app.cli import main
from tests.app import Service, bearer


def test_the_event_count_is_read_from_real_verify_output(service: Service, capsys: pytest.CaptureFixture[str]) -> None:
    token = service.token("acme")
    events = [{"action": "a.b", "message": str(i)} for i in range(7)]
    assert service.client.post("/v1/events", json={"events": events}, headers=bearer(token)).status_code == 201
    assert main(["verify", "--data-dir", str(service.settings.data_dir)]) == 0
    # The service's own self-audit events are in the journal too.
    assert journal_events(capsys.readouterr().out) >= len(events)


def test_output_without_a_count_is_minus_one() -> None:
    assert journal_events("eventlog: error: no journal in data") == -1
