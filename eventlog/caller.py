"""Who is calling, as the network shows it: the client's address behind trusted proxies, and the request id.

The service's access log and the audit middleware both resolve them here, so the address a log line
names and the one an audit event records are the same.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Final

import uuid_utils

REQUEST_ID_HEADER: Final = b"x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID when it is a safe one (`[A-Za-z0-9._:-]`, at most 128), else a new UUIDv7."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return str(uuid_utils.uuid7())


def _node_ip(node: str) -> str | None:
    """The address of one X-Forwarded-For / Forwarded `for=` node, without port; None if it is no address."""
    text = node.strip().strip('"')
    if text.startswith("["):  # [v6] or [v6]:port
        end = text.find("]")
        text = text[1:end] if end > 0 else ""
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _forwarded_for(value: str) -> list[str]:
    """The `for=` nodes of an RFC 7239 Forwarded header, in order."""
    nodes: list[str] = []
    for element in value.split(","):
        for pair in element.split(";"):
            key, _, node = pair.partition("=")
            if key.strip().lower() == "for":
                nodes.append(node)
    return nodes


class ClientAddress:
    """The client's address: the peer, or what trusted proxies say in Forwarded / X-Forwarded-For.

    Forwarding headers are believed only when the peer is a trusted proxy;
    the client is then the rightmost hop that is not itself a trusted proxy
    (what a client writes on the left cannot pose as it). A hop that is not an
    address (`unknown`, an obfuscated name) answers None: the address is not known.
    """

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self._trusted = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)
        self._peers: dict[str, tuple[str | None, bool]] = {}

    def _trusted_ip(self, ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        return any(address in network for network in self._trusted)

    def _peer(self, peer: str) -> tuple[str | None, bool]:
        known = self._peers.get(peer)
        if known is None:
            ip = _node_ip(peer)
            known = (ip, ip is not None and self._trusted_ip(ip))
            if len(self._peers) >= 4096:
                self._peers.clear()
            self._peers[peer] = known
        return known

    def __call__(
        self, peer: str | None, forwarded: str | None = None, x_forwarded_for: str | None = None
    ) -> str | None:
        if peer is None:
            return None
        ip, trusted = self._peer(peer)
        if not trusted or (forwarded is None and x_forwarded_for is None):
            return ip
        # Forwarded (RFC 7239) wins over the older X-Forwarded-For when a proxy sends both.
        hops = _forwarded_for(forwarded) if forwarded is not None else (x_forwarded_for or "").split(",")
        hops = [h for h in hops if h.strip()]
        for hop in reversed(hops):
            hop_ip = _node_ip(hop)
            if hop_ip is None:
                return None
            if not self._trusted_ip(hop_ip):
                return hop_ip
        # Every hop is a trusted proxy: the call started inside; the first hop is the furthest known.
        return _node_ip(hops[0]) if hops else ip
