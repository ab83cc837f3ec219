"""Connections to a syslog receiver, chosen by URL, and what the kernel knows about the peer.

`syslog+tls://host:port` (RFC 5425), `syslog+tcp://host:port` (RFC 6587) and
`syslog+udp://host:port` (RFC 5426). Sockets are blocking with a timeout; the
sink drives them from a worker thread.

Syslog has no application-level acknowledgement. For TCP and TLS a stream
connection answers two questions from the kernel (Linux): how many bytes the
peer's TCP has not acknowledged yet (`SIOCOUTQ`), and whether the peer has
closed or reset the connection (`TCP_INFO` state and `SO_ERROR`), without
reading from it. Elsewhere the first answer is unknown (None) and the second
comes from a non-blocking peek.
"""

from __future__ import annotations

import contextlib
import fcntl
import select
import socket
import ssl
import struct
import termios
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

Transport = Literal["tls", "tcp", "udp"]

DEFAULT_PORTS: dict[Transport, int] = {"tls": 6514, "tcp": 514, "udp": 514}
_TCP_ESTABLISHED = 1
_KEEPALIVE_IDLE_S = 60
_KEEPALIVE_INTERVAL_S = 10
_KEEPALIVE_PROBES = 6
_CLOSE_NOTIFY_TIMEOUT_S = 0.5
_SEND_CHUNK_BYTES = 256 * 1024


class ConnectionLost(ConnectionError):
    """The receiver closed or reset the connection, or it broke while writing."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    transport: Transport
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"syslog+{self.transport}://{host}:{self.port}"


def parse_url(url: str) -> Endpoint:
    """`syslog+tls://host:port`, `syslog+tcp://...` or `syslog+udp://...`; the port defaults to 6514 / 514 / 514."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    transports: dict[str, Transport] = {"syslog+tls": "tls", "syslog+tcp": "tcp", "syslog+udp": "udp"}
    if scheme not in transports:
        raise ValueError(
            f"syslog URL {url!r} must start with syslog+tls://, syslog+tcp:// or syslog+udp:// (e.g. syslog+tls://logs.example.com:6514)"
        )
    transport = transports[scheme]
    if parts.username or parts.password or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"syslog URL {url!r} must be only scheme, host and port")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"syslog URL {url!r} has an invalid port") from exc
    if not parts.hostname:
        raise ValueError(f"syslog URL {url!r} lacks a host")
    return Endpoint(transport, parts.hostname, port or DEFAULT_PORTS[transport])


def tls_context(ca_file: Path | None, *, verify: bool = True) -> ssl.SSLContext:
    """TLS 1.2 or later; server certificate and host name verified against the system store or `ca_file`."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class StreamConnection:
    """One TCP or TLS connection to the receiver."""

    def __init__(self, sock: socket.socket, *, tls: bool) -> None:
        self._sock = sock
        self._tls = tls

    def send(self, data: bytes) -> None:
        """Write everything; the socket timeout applies to each chunk, so a slow receiver that reads is not cut off."""
        view = memoryview(data)
        try:
            for start in range(0, len(view), _SEND_CHUNK_BYTES):
                self._sock.sendall(view[start : start + _SEND_CHUNK_BYTES])
        except OSError as exc:
            raise ConnectionLost(f"writing to the syslog receiver failed: {exc}") from exc

    def unacknowledged_bytes(self) -> int | None:
        """Bytes written that the peer's TCP has not acknowledged yet; None where the kernel does not say."""
        try:
            answer = fcntl.ioctl(self._sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # SIOCOUTQ on a socket
        except (OSError, AttributeError, ValueError):
            return None
        value: int = struct.unpack("i", answer)[0]
        return value

    def peer_open(self) -> bool:
        """False once the peer closed (FIN) or reset (RST) the connection, or it failed; reads nothing."""
        try:
            if self._sock.fileno() < 0 or self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                return False
        except OSError:
            return False
        state = self._tcp_state()
        if state is not None:
            return state == _TCP_ESTABLISHED
        return self._peek_open()

    def _tcp_state(self) -> int | None:
        tcp_info = getattr(socket, "TCP_INFO", None)
        if tcp_info is None:
            return None
        try:
            return self._sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 8)[0]
        except OSError:
            return None

    def _peek_open(self) -> bool:
        """Without TCP_INFO: readable means the peer closed (a syslog receiver sends nothing over plain TCP)."""
        readable, _, _ = select.select([self._sock], [], [], 0)
        if not readable or self._tls:
            return True
        try:
            return self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def close(self) -> None:
        """Close politely: TLS close_notify, read what the peer sent (else the kernel answers with a reset), close."""
        if isinstance(self._sock, ssl.SSLSocket) and self.peer_open():
            with contextlib.suppress(OSError, ValueError):
                self._sock.settimeout(_CLOSE_NOTIFY_TIMEOUT_S)
                self._sock = self._sock.unwrap()
        with contextlib.suppress(OSError, ValueError):
            self._sock.settimeout(0)
            for _ in range(64):
                if not self._sock.recv(65536):
                    break
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)
        self._sock.close()


class DatagramConnection:
    """A connected UDP socket: one message per datagram."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, datagram: bytes) -> None:
        try:
            self._sock.send(datagram)
        except OSError as exc:
            # A refused earlier datagram (ICMP port unreachable) shows up here.
            raise ConnectionLost(f"sending to the syslog receiver failed: {exc}") from exc

    def close(self) -> None:
        self._sock.close()


def open_stream(endpoint: Endpoint, *, context: ssl.SSLContext | None, timeout_seconds: float) -> StreamConnection:
    """Connect (and shake hands for TLS); raises OSError or ssl.SSLError with the reason."""
    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_seconds)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        # A peer that vanished without a FIN (a NAT that forgot us) is found within about two minutes.
        for option, value in (
            ("TCP_KEEPIDLE", _KEEPALIVE_IDLE_S),
            ("TCP_KEEPINTVL", _KEEPALIVE_INTERVAL_S),
            ("TCP_KEEPCNT", _KEEPALIVE_PROBES),
        ):
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
        if endpoint.transport == "tls":
            if context is None:
                raise ValueError("a TLS endpoint needs a TLS context")
            sock = context.wrap_socket(sock, server_hostname=endpoint.host)
    except BaseException:
        sock.close()
        raise
    return StreamConnection(sock, tls=endpoint.transport == "tls")


def open_datagram(endpoint: Endpoint) -> DatagramConnection:
    family, kind, proto, _, address = socket.getaddrinfo(endpoint.host, endpoint.port, 0, socket.SOCK_DGRAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return DatagramConnection(sock)
