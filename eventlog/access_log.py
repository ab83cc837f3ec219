"""Pure ASGI middleware: request id, client address, and one JSON log line per request."""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Sequence
from typing import Any

import uuid_utils
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("eventlog.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class AccessLog:
    def __init__(self, app: ASGIApp, *, trusted_proxies: Sequence[str] = ()) -> None:
        self.app = app
        self._trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def _trusted_peer(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def client_ip(self, scope: Scope) -> str:
        peer = scope["client"][0] if scope.get("client") else "unknown"
        if not self._trusted or not self._trusted_peer(peer):
            return str(peer)
        forwarded = [
            v.strip()
            for name, value in scope["headers"]
            if name == b"x-forwarded-for"
            for v in value.decode("latin-1").split(",")
        ]
        # The rightmost address a trusted proxy did not add is the real client.
        for candidate in reversed(forwarded):
            if not self._trusted_peer(candidate):
                return str(candidate)
        return str(peer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        request_id = request_id or str(uuid_utils.uuid7())
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = self.client_ip(scope)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            principal = state.get("principal")
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "client_ip": state["client_ip"],
                    "tenant": getattr(principal, "tenant", None),
                    "token_id": getattr(principal, "token_id", None),
                },
            )
