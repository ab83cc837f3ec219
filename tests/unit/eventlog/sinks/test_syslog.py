"""The syslog sink's delivery rule against in-process loopback peers that misbehave on purpose.

Real receivers (rsyslog, syslog-ng) are in tests/integration/eventlog/sinks.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson
import pytest
from prometheus_client import CollectorRegistry

from eventlog.journal import Entry
from eventlog.settings import Settings
from eventlog.sinks.syslog import SyslogSink
from eventlog.sinks.syslog_message import MessageFormat, frame
from eventlog.sinks.syslog_transport import Endpoint, parse_url

FORMAT = MessageFormat(facility=16, hostname="host", app_name="eventlog", procid="1", sd_id="eventlog@32473")


def _entries(first: int, count: int, message: str = "hello") -> list[Entry]:
    out = []
    for seq in range(first, first + count):
        event = {
            "id": f"e{seq}",
            "tenant": "acme",
            "time": "2026-11-27T10:00:00.000000Z",
            "action": "a.b",
            "outcome": "success",
            "message": message,
        }
        out.append(Entry(seq, f"e{seq}", "acme", orjson.dumps(event), 0.0))
    return out


def _payload(entries: list[Entry]) -> bytes:
    return b"".join(frame(FORMAT.encode(e, 8192).message, "octet-counting") for e in entries)


Behaviour = Callable[[socket.socket, "Peer", int], None]


@dataclass
class Peer:
    """A loopback listener; connection i is served by behaviours[i] (the last one for the rest)."""

    behaviours: list[Behaviour]
    received: dict[int, bytearray] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    closed: dict[int, threading.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        index = 0
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.received[index] = bytearray()
            self.closed[index] = threading.Event()
            behaviour = self.behaviours[min(index, len(self.behaviours) - 1)]
            thread = threading.Thread(target=self._run, args=(behaviour, conn, index), daemon=True)
            thread.start()
            self._threads.append(thread)
            index += 1

    def _run(self, behaviour: Behaviour, conn: socket.socket, index: int) -> None:
        try:
            behaviour(conn, self, index)
        finally:
            conn.close()
            self.closed[index].set()

    def read(self, conn: socket.socket, index: int, limit: int | None = None) -> None:
        """Read until EOF, or until `limit` bytes arrived."""
        while limit is None or len(self.received[index]) < limit:
            want = 65536 if limit is None else min(65536, limit - len(self.received[index]))
            try:
                data = conn.recv(want)
            except OSError:
                return
            if not data:
                return
            self.received[index] += data

    def close(self) -> None:
        self.release.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(5)


def read_all(conn: socket.socket, peer: Peer, index: int) -> None:
    peer.read(conn, index)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def peer_factory() -> Iterator[Callable[[list[Behaviour]], Peer]]:
    peers: list[Peer] = []

    def make(behaviours: list[Behaviour]) -> Peer:
        peer = Peer(behaviours)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()


def _sink(
    port: int, registry: CollectorRegistry, *, confirm_seconds: float = 0.05, timeout_seconds: float = 5.0
) -> SyslogSink:
    return SyslogSink(
        Endpoint("tcp", "127.0.0.1", port),
        FORMAT,
        confirm_seconds=confirm_seconds,
        timeout_seconds=timeout_seconds,
        registry=registry,
    )


def _count(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(f"eventlog_syslog_{name}_total") or 0.0


async def test_batches_go_framed_on_one_connection(
    peer_factory: Callable[[list[Behaviour]], Peer], registry: CollectorRegistry
) -> None:
    peer = peer_factory([read_all])
    sink = _sink(peer.port, registry)
    first, second = _entries(1, 100), _entries(101, 100)
    assert await sink.deliver(first) == []
    assert await sink.deliver(second) == []
    await sink.close()
    peer.closed[0].wait(5)
    assert bytes(peer.received[0]) == _payload(first) + _payload(second)
    assert _count(registry, "connections") == 1
    assert _count(registry, "unconfirmed_events") == 0


async def test_connection_the_receiver_closed_while_idle_is_replaced_before_writing(
    peer_factory: Callable[[list[Behaviour]], Peer], registry: CollectorRegistry
) -> None:
    def close_when_released(conn: socket.socket, peer: Peer, index: int) -> None:
        conn.settimeout(0.05)
        while not peer.release.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            peer.received[index] += data

    peer = peer_factory([close_when_released, read_all])
    sink = _sink(peer.port, registry)
    first, second = _entries(1, 50), _entries(51, 50)
    await sink.deliver(first)
    peer.release.set()  # the receiver's idle timeout: it closes the connection
    assert peer.closed[0].wait(5)
    await sink.deliver(second)
    await sink.close()
    peer.closed[1].wait(5)
    assert bytes(peer.received[0]) == _payload(first)
    assert bytes(peer.received[1]) == _payload(second)
    assert _count(registry, "connections") == 2
    assert _count(registry, "unconfirmed_events") == 0  # nothing written into the dead connection


async def test_batch_is_not_confirmed_when_the_receiver_closes_right_after_taking_it(
    peer_factory: Callable[[list[Behaviour]], Peer], registry: CollectorRegistry
) -> None:
    batch = _entries(1, 20)
    size = len(_payload(batch))

    def read_batch_then_close(conn: socket.socket, peer: Peer, index: int) -> None:
        peer.read(conn, index, limit=size)

    peer = peer_factory([read_batch_then_close, read_all])
    sink = _sink(peer.port, registry, confirm_seconds=0.3)
    with pytest.raises(ConnectionError, match="closed the connection"):
        await sink.deliver(batch)
    # The fan-out's retry: the same batch again, on a new connection.
    assert await sink.deliver(batch) == []
    await sink.close()
    peer.closed[1].wait(5)
    assert bytes(peer.received[0]) == bytes(peer.received[1]) == _payload(batch)
    assert _count(registry, "unconfirmed_events") == 20


async def test_connection_reset_mid_batch_is_retried_at_once_on_a_new_one(
    peer_factory: Callable[[list[Behaviour]], Peer], registry: CollectorRegistry
) -> None:
    first, second = _entries(1, 10), _entries(11, 2000, message="x" * 200)
    first_size = len(_payload(first))

    def reset_during_second(conn: socket.socket, peer: Peer, index: int) -> None:
        peer.read(conn, index, limit=first_size + 1000)
        # Close with unread data and linger 0: the kernel answers with a reset.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    peer = peer_factory([reset_during_second, read_all])
    sink = _sink(peer.port, registry)
    await sink.deliver(first)
    assert await sink.deliver(second) == []
    await sink.close()
    peer.closed[1].wait(5)
    assert bytes(peer.received[0]).startswith(_payload(first))
    assert bytes(peer.received[1]) == _payload(second)
    assert _count(registry, "connections") == 2
    assert _count(registry, "unconfirmed_events") == 2000


async def test_receiver_that_does_not_read_makes_the_delivery_fail_in_time(
    peer_factory: Callable[[list[Behaviour]], Peer], registry: CollectorRegistry
) -> None:
    def never_read(conn: socket.socket, peer: Peer, index: int) -> None:
        peer.release.wait(10)

    peer = peer_factory([never_read])
    sink = _sink(peer.port, registry, timeout_seconds=0.5)
    with pytest.raises(OSError, match=r"acknowledged|writing to the syslog receiver failed"):
        await sink.deliver(_entries(1, 20_000, message="x" * 1000))
    await sink.close()


async def test_refused_connection_raises(registry: CollectorRegistry) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    sink = _sink(port, registry)
    with pytest.raises(ConnectionRefusedError):
        await sink.deliver(_entries(1, 1))
    await sink.close()


async def test_event_that_cannot_be_encoded_is_rejected_and_the_rest_delivered(
    peer_factory: Callable[[list[Behaviour]], Peer], registry: CollectorRegistry
) -> None:
    peer = peer_factory([read_all])
    sink = _sink(peer.port, registry)
    good = _entries(1, 2)
    broken = Entry(3, "e3", "acme", b"{not json", 0.0)
    rejected = await sink.deliver([good[0], broken, good[1]])
    assert [r.seq for r in rejected] == [3]
    assert "cannot be written as a syslog message" in rejected[0].reason
    await sink.close()
    peer.closed[0].wait(5)
    assert bytes(peer.received[0]) == _payload(good)


async def test_udp_sends_one_datagram_per_event_cut_to_the_limit(registry: CollectorRegistry) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        sink = SyslogSink(
            Endpoint("udp", "127.0.0.1", receiver.getsockname()[1]),
            FORMAT,
            max_message_bytes=1024,
            registry=registry,
        )
        entries = [*_entries(1, 1), *_entries(2, 1, message="ü" * 2000)]
        assert await sink.deliver(entries) == []
        small, big = receiver.recv(65536), receiver.recv(65536)
        await sink.close()
    assert small == FORMAT.encode(entries[0], 1024).message
    assert len(big) <= 1024
    assert len(big) >= 1022
    big.decode("utf-8")
    assert _count(registry, "truncated_messages") == 1


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("syslog+tls://logs.example.com:6514", Endpoint("tls", "logs.example.com", 6514)),
        ("syslog+tls://logs.example.com", Endpoint("tls", "logs.example.com", 6514)),
        ("syslog+tcp://127.0.0.1:1514", Endpoint("tcp", "127.0.0.1", 1514)),
        ("syslog+udp://[2001:db8::1]", Endpoint("udp", "2001:db8::1", 514)),
        ("SYSLOG+TCP://Host:601/", Endpoint("tcp", "host", 601)),
    ],
)
def test_parse_url(url: str, endpoint: Endpoint) -> None:
    assert parse_url(url) == endpoint


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("tcp://host:514", "must start with"),
        ("syslog+tcp://host:514/path", "only scheme, host and port"),
        ("syslog+tcp://user@host:514", "only scheme, host and port"),
        ("syslog+tcp://host:99999", "invalid port"),
        ("syslog+tcp://:514", "lacks a host"),
    ],
)
def test_parse_url_refuses(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_url(url)


def test_from_settings_builds_the_configured_sink(registry: CollectorRegistry) -> None:
    settings = Settings(
        syslog_url="syslog+udp://127.0.0.1:5514",
        syslog_facility="audit",
        syslog_hostname="node-1",
        syslog_app_name="audit-trail",
        syslog_message_format="plain",
        syslog_udp_max_message_bytes=2048,
    )
    sink = SyslogSink.from_settings(settings.syslog, registry=registry)
    encoded = sink.encode(_entries(1, 1))[0][0]
    assert encoded.startswith(b"<110>1 2026-11-27T10:00:00.000000Z node-1 audit-trail ")
    assert encoded.endswith(b"\xef\xbb\xbfhello")
