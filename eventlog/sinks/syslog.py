"""The syslog sink: every event as an RFC 5424 message to a receiver over TLS, TCP or UDP.

Delivery is at-least-once over TCP and TLS. Syslog has no acknowledgement of
its own, and a write into a connection the receiver already closed succeeds
and is lost, so `deliver` returns (and the fan-out moves this sink's cursor)
only once the batch is confirmed:

1. before writing, a connection whose peer has closed or reset it (an idle
   timeout, a restarted receiver) is replaced by a new one;
2. the whole batch is written;
3. the kernel must report that the peer's TCP acknowledged every byte
   written (`SIOCOUTQ` is 0); a peer that acknowledges nothing more for
   `timeout_seconds` fails the batch;
4. `confirm_seconds` later the connection must still be open (no FIN, no RST).

A receiver that stops between taking the bytes into its kernel and reading
them closes or resets the connection; step 4 gives it the time to do so. If
any step fails the batch is not confirmed: the connection is dropped, and the
batch is written again whole on a new connection (at once when a connection
that had worked broke, else by the fan-out's retry with backoff). Receivers
may therefore see one batch twice; the event id in the structured data lets
them drop duplicates. What plain syslog cannot tell is an event that a
receiver acknowledged, kept for longer than `confirm_seconds` without reading
and then lost (kill -9 of a receiver that lags): that needs an acknowledging
protocol such as RELP.

UDP has no connection and no acknowledgement: a batch counts as delivered
once its datagrams are handed to the kernel.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter

from eventlog.journal import Entry
from eventlog.settings import SyslogSettings
from eventlog.sink import Rejection
from eventlog.sinks.syslog_message import FACILITIES, Framing, MessageFormat, frame
from eventlog.sinks.syslog_transport import (
    ConnectionLost,
    DatagramConnection,
    Endpoint,
    StreamConnection,
    open_datagram,
    open_stream,
    parse_url,
    tls_context,
)

log = logging.getLogger(__name__)

_FIRST_POLL_S = 0.0005
_LONGEST_POLL_S = 0.01


class NotConfirmed(ConnectionError):
    """The receiver did not confirm a batch; it is sent again."""


class SyslogSink:
    name = "syslog"

    def __init__(
        self,
        endpoint: Endpoint,
        message_format: MessageFormat,
        *,
        framing: Framing = "octet-counting",
        max_message_bytes: int = 8192,
        tls: ssl.SSLContext | None = None,
        timeout_seconds: float = 10.0,
        confirm_seconds: float = 0.05,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if endpoint.transport == "tls" and tls is None:
            tls = tls_context(None)
        self.endpoint = endpoint
        self._format = message_format
        self._framing: Framing = framing
        self._max_bytes = max_message_bytes
        self._tls = tls
        self._timeout = timeout_seconds
        self._confirm = confirm_seconds
        self._lock = threading.Lock()
        self._stream: StreamConnection | None = None
        self._datagram: DatagramConnection | None = None
        registry = registry if registry is not None else CollectorRegistry()
        self.truncated = Counter(
            "eventlog_syslog_truncated_messages",
            "Syslog messages cut to the size limit.",
            registry=registry,
        )
        self.connections = Counter(
            "eventlog_syslog_connections", "Connections opened to the syslog receiver.", registry=registry
        )
        self.resent = Counter(
            "eventlog_syslog_unconfirmed_events",
            "Events written to a syslog connection that failed before confirming them (they are sent again).",
            registry=registry,
        )

    @classmethod
    def from_settings(cls, settings: SyslogSettings, *, registry: CollectorRegistry | None = None) -> SyslogSink:
        if settings.url is None:
            raise ValueError("EVENTLOG_SYSLOG_URL is not set")
        try:
            endpoint = parse_url(settings.url)
        except ValueError as exc:
            raise ValueError(f"EVENTLOG_SYSLOG_URL: {exc}") from exc
        message_format = MessageFormat(
            facility=FACILITIES[settings.facility],
            hostname=settings.hostname or socket.gethostname(),
            app_name=settings.app_name,
            procid=str(os.getpid()),
            sd_id=settings.sd_id,
            body=settings.message_format,
        )
        udp = endpoint.transport == "udp"
        tls = None
        if endpoint.transport == "tls":
            tls = tls_context(settings.ca_file, verify=settings.verify_tls)
        return cls(
            endpoint,
            message_format,
            framing=settings.framing,
            max_message_bytes=settings.udp_max_message_bytes if udp else settings.max_message_bytes,
            tls=tls,
            timeout_seconds=settings.timeout_seconds,
            confirm_seconds=settings.confirm_seconds,
            registry=registry,
        )

    # -- the Sink protocol ---------------------------------------------------------------

    async def deliver(self, entries: Sequence[Entry]) -> Sequence[Rejection]:
        return await asyncio.to_thread(self._deliver, entries)

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    # -- in the worker thread -----------------------------------------------------------------

    def encode(self, entries: Sequence[Entry]) -> tuple[list[bytes], list[Rejection]]:
        """The messages of a batch (framed for a stream, bare for UDP), and the events that cannot be sent."""
        messages: list[bytes] = []
        rejected: list[Rejection] = []
        truncated = 0
        udp = self.endpoint.transport == "udp"
        for entry in entries:
            try:
                encoded = self._format.encode(entry, self._max_bytes)
            except (ValueError, TypeError) as exc:  # Oversize, not JSON, not an object
                rejected.append(Rejection(entry.seq, f"cannot be written as a syslog message: {exc}"[:1000]))
                continue
            truncated += encoded.truncated
            messages.append(encoded.message if udp else frame(encoded.message, self._framing))
        if truncated:
            self.truncated.inc(truncated)
            log.warning(
                "syslog messages truncated to the size limit",
                extra={"sink": self.name, "count": truncated, "max_message_bytes": self._max_bytes},
            )
        return messages, rejected

    def _deliver(self, entries: Sequence[Entry]) -> list[Rejection]:
        with self._lock:
            messages, rejected = self.encode(entries)
            if not messages:
                return rejected
            if self.endpoint.transport == "udp":
                self._send_datagrams(messages)
            else:
                self._send_stream(b"".join(messages), len(messages))
            return rejected

    def _send_datagrams(self, datagrams: list[bytes]) -> None:
        if self._datagram is None:
            self._datagram = open_datagram(self.endpoint)
            self.connections.inc()
        try:
            for datagram in datagrams:
                self._datagram.send(datagram)
        except ConnectionLost:
            self._datagram.close()
            self._datagram = None
            raise

    def _send_stream(self, payload: bytes, count: int) -> None:
        while True:
            connection, fresh = self._connection()
            try:
                connection.send(payload)
                self._await_confirmation(connection)
            except (ConnectionLost, NotConfirmed, TimeoutError) as exc:
                self._drop_stream()
                self.resent.inc(count)
                if fresh:
                    raise
                # A connection that had worked broke (e.g. the receiver restarted): once more on a new one.
                log.info(
                    "syslog connection broke; sending the batch again on a new one",
                    extra={"sink": self.name, "events": count, "error": str(exc)},
                )
                continue
            return

    def _connection(self) -> tuple[StreamConnection, bool]:
        """The open connection, or a new one when there is none or the receiver closed it (`fresh`)."""
        if self._stream is not None:
            if self._stream.peer_open():
                return self._stream, False
            log.info("syslog receiver closed the connection; reconnecting", extra={"sink": self.name})
            self._drop_stream()
        self._stream = open_stream(self.endpoint, context=self._tls, timeout_seconds=self._timeout)
        self.connections.inc()
        return self._stream, True

    def _await_confirmation(self, connection: StreamConnection) -> None:
        """Return once the peer acknowledged every byte and kept the connection open `confirm_seconds` after.

        A receiver that acknowledges nothing more for `timeout_seconds` fails the batch; a slow one that
        keeps reading does not.
        """
        deadline = time.monotonic() + self._timeout
        pause = _FIRST_POLL_S
        before: int | None = None
        while True:
            if not connection.peer_open():
                raise NotConfirmed("the syslog receiver closed the connection before acknowledging the batch")
            waiting = connection.unacknowledged_bytes()
            if not waiting:  # 0, or None where the kernel cannot tell
                break
            now = time.monotonic()
            if before is not None and waiting < before:
                deadline = now + self._timeout
            elif now > deadline:
                raise TimeoutError(
                    f"the syslog receiver acknowledged nothing more for {self._timeout:g} s ({waiting} bytes waiting)"
                )
            before = waiting
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST_POLL_S)
        if self._confirm > 0:
            time.sleep(self._confirm)
        if not connection.peer_open():
            raise NotConfirmed(
                f"the syslog receiver closed the connection within {self._confirm:g} s of acknowledging the batch"
            )

    def _drop_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _close(self) -> None:
        with self._lock:
            self._drop_stream()
            if self._datagram is not None:
                self._datagram.close()
                self._datagram = None
