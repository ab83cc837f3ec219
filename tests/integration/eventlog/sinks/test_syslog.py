"""The syslog sink against real receivers: rsyslog (with rsyslog-gnutls) and syslog-ng, over TCP, TLS and UDP."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from eventlog.app.service import create_app
from eventlog.journal import Entry
from eventlog.sinks.syslog import SyslogSink
from eventlog.sinks.syslog_message import BOM, MessageFormat
from eventlog.sinks.syslog_transport import parse_url, tls_context
from tests.app import Service, bearer, make_settings
from tests.syslog_receivers import Receiver, TlsFiles

pytestmark = pytest.mark.syslog

SD_ID = "eventlog@32473"
FORMAT = MessageFormat(facility=13, hostname="node-1.example", app_name="eventlog", procid="4242", sd_id=SD_ID)


def _document(seq: int, **fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": f"01JD{seq:06d}",
        "tenant": "acme",
        "time": f"2026-11-27T10:00:{seq % 60:02d}.{seq:06d}Z",
        "received_at": "2026-11-27T10:01:00.000000Z",
        "action": "storage.tables.create",
        "outcome": "success",
        "actor": {"type": "user", "id": "u-42", "name": "Jane", "ip": "192.0.2.7"},
        "target": {"type": "table", "id": "in.c-main.sales"},
        "request": {"method": "POST", "status": 201},
        "source": "api",
        "message": "Created table sales",
        "details": {},
        "chain": {"stream": "node-1", "seq": seq, "prev": "0" * 64, "hash": f"{seq:064x}"},
    }
    document.update(fields)
    return document


def _entry(document: dict[str, Any]) -> Entry:
    return Entry(document["chain"]["seq"], document["id"], document["tenant"], orjson.dumps(document), 0.0)


# Several events whose values carry unicode, quotes, brackets, backslashes and newlines.
DOCUMENTS = [
    _document(1),
    _document(
        2,
        tenant='Zürich "HQ" [eu]',
        outcome="failure",
        actor={"type": "user", "id": "José \\ Müller ]", "ip": "2001:db8::7"},
        message='line 1\nline 2 "quoted" [bracketed] \\ 東京 😀',
        details={"reason": 'denied "x"] [fake@1 a="b"]', "multi": "a\r\nb"},
    ),
    _document(
        3,
        action="ação.criar",
        outcome="unknown",
        actor={"id": 'x"] [fake@32473 admin="yes'},
        message="",
    ),
    _document(4, actor={}, message="ü" * 3000, details={"blob": "x" * 2000}),
    # Control characters where validation would refuse them: the sink must still not break the frame.
    _document(5, tenant="line\nbreak", actor={"id": "tab\there\u2028sep"}),
]
# What a receiver reads back from the SD element (unescaped; control characters stay as their escapes).
EXPECTED_SD = [
    {
        "id": "01JD000001",
        "tenant": "acme",
        "action": "storage.tables.create",
        "outcome": "success",
        "actor": "u-42",
        "ip": "192.0.2.7",
    },
    {
        "id": "01JD000002",
        "tenant": 'Zürich "HQ" [eu]',
        "action": "storage.tables.create",
        "outcome": "failure",
        "actor": "José \\ Müller ]",
        "ip": "2001:db8::7",
    },
    {
        "id": "01JD000003",
        "tenant": "acme",
        "action": "ação.criar",
        "outcome": "unknown",
        "actor": 'x"] [fake@32473 admin="yes',
    },
    {"id": "01JD000004", "tenant": "acme", "action": "storage.tables.create", "outcome": "success"},
    {
        "id": "01JD000005",
        "tenant": "line\\nbreak",
        "action": "storage.tables.create",
        "outcome": "success",
        "actor": "tab\\there\\u2028sep",
    },
]
EXPECTED_HEADER = [
    (13 * 8 + 6, 6, "storage.tables.create"),
    (13 * 8 + 4, 4, "storage.tables.create"),
    (13 * 8 + 5, 5, "a__o.criar"),
    (13 * 8 + 6, 6, "storage.tables.create"),
    (13 * 8 + 6, 6, "storage.tables.create"),
]


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["sd"][SD_ID]["id"]: r for r in records}


def _check_fields(receiver: Receiver, record: dict[str, Any], index: int) -> None:
    document = DOCUMENTS[index]
    pri, severity, msgid = EXPECTED_HEADER[index]
    assert record["pri"] == pri
    assert record["facility"] == 13
    assert record["severity"] == severity
    assert _time(record["timestamp"]) == _time(document["time"])
    assert record["timestamp"].split(".")[1][:6] == document["time"].split(".")[1][:6]  # microseconds
    assert record["hostname"] == "node-1.example"
    assert record["app_name"] == "eventlog"
    assert record["procid"] == "4242"
    assert record["msgid"] == msgid
    assert record["sd"] == {SD_ID: EXPECTED_SD[index]}
    assert orjson.loads(record["msg"]) == document
    # rsyslog keeps the BOM in msg; syslog-ng takes it as the mark of UTF-8 and drops it.
    assert record["bom"] is (receiver.kind == "rsyslog")


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_every_field_of_every_event_arrives(
    syslog_receiver: Receiver, syslog_tls: TlsFiles, transport: Literal["tcp", "tls"]
) -> None:
    url = syslog_receiver.url(transport, host="localhost" if transport == "tls" else "127.0.0.1")
    sink = SyslogSink(parse_url(url), FORMAT, max_message_bytes=65_536, tls=tls_context(syslog_tls.ca_cert))
    assert await sink.deliver([_entry(d) for d in DOCUMENTS]) == []
    await sink.close()
    records = _by_id(syslog_receiver.wait_for(len(DOCUMENTS)))
    assert len(records) == len(DOCUMENTS)
    for index, document in enumerate(DOCUMENTS):
        _check_fields(syslog_receiver, records[document["id"]], index)


async def test_plain_messages_with_newline_framing(start_syslog_receiver: Callable[..., Receiver]) -> None:
    receiver = start_syslog_receiver("rsyslog")  # syslog-ng's syslog() source takes octet counting only
    plain = MessageFormat(facility=16, hostname="h", app_name="eventlog", procid="1", sd_id=SD_ID, body="plain")
    sink = SyslogSink(parse_url(receiver.url("tcp")), plain, framing="newline", max_message_bytes=65_536)
    assert await sink.deliver([_entry(d) for d in DOCUMENTS]) == []
    await sink.close()
    records = _by_id(receiver.wait_for(len(DOCUMENTS)))
    assert records["01JD000001"]["msg"] == "Created table sales"
    assert records["01JD000002"]["msg"] == 'line 1\\nline 2 "quoted" [bracketed] \\\\ 東京 😀'
    assert records["01JD000003"]["msg"] == "ação.criar unknown"
    assert records["01JD000005"]["sd"][SD_ID]["tenant"] == "line\\nbreak"
    assert len(records) == len(DOCUMENTS)


async def test_udp_datagrams_are_cut_to_the_limit(syslog_receiver: Receiver) -> None:
    registry = CollectorRegistry()
    sink = SyslogSink(parse_url(syslog_receiver.url("udp")), FORMAT, max_message_bytes=1024, registry=registry)
    assert await sink.deliver([_entry(d) for d in DOCUMENTS]) == []
    await sink.close()
    records = _by_id(syslog_receiver.wait_for(len(DOCUMENTS)))
    assert orjson.loads(records["01JD000001"]["msg"]) == DOCUMENTS[0]
    assert records["01JD000004"]["sd"] == {SD_ID: EXPECTED_SD[3]}
    cut = records["01JD000004"]["msg"]
    assert orjson.dumps(DOCUMENTS[3]).decode().startswith(cut)
    sent = FORMAT.encode(_entry(DOCUMENTS[3]), 1024).message
    assert len(sent) in range(1021, 1025)  # full, but for a character that did not fit
    assert cut.encode() == sent.split(BOM, 1)[1]
    assert orjson.loads(records["01JD000002"]["msg"]) == DOCUMENTS[1]
    assert registry.get_sample_value("eventlog_syslog_truncated_messages_total") == 1


async def test_connection_closed_while_idle_is_replaced_without_loss_or_duplicates(syslog_receiver: Receiver) -> None:
    registry = CollectorRegistry()
    sink = SyslogSink(parse_url(syslog_receiver.url("tcp")), FORMAT, max_message_bytes=65_536, registry=registry)
    entries = [_entry(_document(seq)) for seq in range(1, 201)]
    await sink.deliver(entries[:100])
    syslog_receiver.restart()  # closes every connection, as an idle timeout does
    await sink.deliver(entries[100:])
    await sink.close()
    ids = [r["sd"][SD_ID]["id"] for r in syslog_receiver.wait_for(200)]
    assert sorted(ids) == sorted(e.id for e in entries)
    assert registry.get_sample_value("eventlog_syslog_connections_total") == 2
    assert registry.get_sample_value("eventlog_syslog_unconfirmed_events_total") == 0


async def test_certificate_of_another_host_is_refused(
    start_syslog_receiver: Callable[..., Receiver], syslog_tls: TlsFiles
) -> None:
    receiver = start_syslog_receiver("rsyslog", wrong_host=True)
    sink = SyslogSink(parse_url(receiver.url("tls", host="localhost")), FORMAT, tls=tls_context(syslog_tls.ca_cert))
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        await sink.deliver([_entry(DOCUMENTS[0])])
    await sink.close()
    # And a certificate the system store does not know (our test CA) is refused too.
    unknown = SyslogSink(parse_url(receiver.url("tls", host="localhost")), FORMAT)
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
        await unknown.deliver([_entry(DOCUMENTS[0])])
    await unknown.close()
    time.sleep(0.3)
    assert receiver.received() == []


# -- through the service: journal -> fan-out -> syslog --------------------------------------------------------------


def _post(service: Service, token: str, events: list[dict[str, Any]]) -> list[str]:
    answer = service.client.post("/v1/events", json={"events": events}, headers=bearer(token))
    assert answer.status_code == 201, answer.text
    return [r["id"] for r in answer.json()["receipts"]]


def _posted(record: dict[str, Any]) -> bool:
    """An event the test posted, not one of the service's own audit events."""
    return bool(record["sd"][SD_ID]["action"] != "" and record["app_name"] == "eventlog") and (
        orjson.loads(record["msg"])["source"] == "api"
    )


def _syslog_state(service: Service) -> dict[str, Any]:
    state: dict[str, Any] = service.readiness()["sinks"]["syslog"]
    return state


def test_service_forwards_events_and_counts_them(tmp_path: Path, syslog_receiver: Receiver) -> None:
    settings = make_settings(
        tmp_path / "data", syslog_url=syslog_receiver.url("tcp"), syslog_hostname="node-1", syslog_facility="audit"
    )
    with TestClient(create_app(settings)) as http:
        service = Service(http, settings)
        token = service.token("acme")
        events: list[dict[str, Any]] = [
            {"action": "iam.roles.grant", "outcome": "success", "actor": {"id": "u-1", "ip": "10.0.0.1"}},
            {"action": "storage.tables.delete", "outcome": "failure", "message": 'a "quoted" ] line\nnext'},
        ]
        ids = _post(service, token, events)
        service.settle()
        records = _by_id(syslog_receiver.wait_for(2, where=_posted))
        records = {k: v for k, v in records.items() if _posted(v)}
        metrics = http.get("/metrics").text
    assert set(records) == set(ids)
    granted, deleted = records[ids[0]], records[ids[1]]
    assert granted["pri"] == 13 * 8 + 6
    assert granted["hostname"] == "node-1"
    assert granted["procid"] == str(os.getpid())
    assert granted["sd"][SD_ID] == {
        "id": ids[0],
        "tenant": "acme",
        "action": "iam.roles.grant",
        "outcome": "success",
        "actor": "u-1",
        "ip": "10.0.0.1",
    }
    assert orjson.loads(deleted["msg"])["message"] == 'a "quoted" ] line\nnext'
    assert orjson.loads(deleted["msg"])["chain"]["seq"] == 2
    assert 'eventlog_sink_delivered_events_total{sink="syslog"} 2.0' in metrics
    assert "eventlog_syslog_connections_total 1.0" in metrics


def test_wrong_host_certificate_is_refused_and_events_wait(
    tmp_path: Path, start_syslog_receiver: Callable[..., Receiver], syslog_tls: TlsFiles
) -> None:
    receiver = start_syslog_receiver("rsyslog", wrong_host=True)
    settings = make_settings(
        tmp_path / "data",
        syslog_url=receiver.url("tls", host="localhost"),
        syslog_ca_file=syslog_tls.ca_cert,
        fanout_max_backoff_seconds=0.2,
    )
    with TestClient(create_app(settings)) as http:
        service = Service(http, settings)
        ids = _post(service, service.token("acme"), [{"action": "a.b"}] * 3)
        deadline = time.monotonic() + 10
        while (state := _syslog_state(service))["state"] != "retrying":
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        time.sleep(0.5)
        state = _syslog_state(service)
        assert state["lag_events"] == 3
        assert state["cursor"] == 0
        assert "Hostname mismatch" in state["last_error"]
        assert receiver.received() == []
        # The receiver gets the right certificate: the events that waited arrive.
        receiver.restart(right_host=True)
        records = receiver.wait_for(3, where=_posted)
        service.settle()
    assert {r["sd"][SD_ID]["id"] for r in records if _posted(r)} == set(ids)


def test_receiver_restart_in_the_middle_of_10000_events(tmp_path: Path, syslog_receiver: Receiver) -> None:
    settings = make_settings(tmp_path / "data", syslog_url=syslog_receiver.url("tcp"), fanout_max_backoff_seconds=0.5)
    batch = settings.fanout_batch_events
    restarted_after: list[int] = []

    def restart_when_half_arrived() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if syslog_receiver.output.exists() and syslog_receiver.output.stat().st_size > 0:
                count = syslog_receiver.output.read_bytes().count(b"\n")
                if count >= 4000:
                    restarted_after.append(count)
                    syslog_receiver.restart()
                    return
            time.sleep(0.01)

    with TestClient(create_app(settings)) as http:
        service = Service(http, settings)
        token = service.token("acme")
        restarter = threading.Thread(target=restart_when_half_arrived)
        restarter.start()
        ids: list[str] = []
        for start in range(0, 10_000, 100):
            ids += _post(service, token, [{"action": "a.b", "message": f"event {start + i}"} for i in range(100)])
        restarter.join(120)
        service.settle(60)
        records = syslog_receiver.wait_for(10_000, timeout_seconds=60, where=_posted)
        metrics = http.get("/metrics").text
    assert restarted_after, "the receiver was not restarted"
    assert restarted_after[0] < 10_000, "the restart came after the stream"
    received = Counter(r["sd"][SD_ID]["id"] for r in records if _posted(r))
    assert set(received) == set(ids), f"{len(set(ids) - set(received))} events never arrived"
    duplicates = sum(received.values()) - len(received)
    assert duplicates <= batch, f"{duplicates} duplicates, more than one batch of {batch}"
    connections = next(line for line in metrics.splitlines() if line.startswith("eventlog_syslog_connections_total"))
    assert float(connections.split()[1]) >= 2  # a new connection after the restart
    print(f"restart after {restarted_after[0]} received; duplicates {duplicates}")


def test_unknown_port_keeps_events_in_the_journal(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    settings = make_settings(tmp_path / "data", syslog_url=f"syslog+tcp://127.0.0.1:{port}")
    with TestClient(create_app(settings)) as http:
        service = Service(http, settings)
        _post(service, service.token("acme"), [{"action": "a.b"}])
        deadline = time.monotonic() + 10
        while "refused" not in str(_syslog_state(service)["last_error"]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert _syslog_state(service)["lag_events"] == 1
