"""Pure ASGI middleware: request id, client address, and one JSON log line per request."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventlog.caller import REQUEST_ID_HEADER, ClientAddress, request_id_of

log = logging.getLogger("eventlog.access")


class AccessLog:
    def __init__(self, app: ASGIApp, *, trusted_proxies: Sequence[str] = ()) -> None:
        self.app = app
        self._client = ClientAddress(trusted_proxies)

    def client_ip(self, scope: Scope) -> str:
        peer = scope["client"][0] if scope.get("client") else None
        forwarded = x_forwarded_for = None
        for name, value in scope["headers"]:
            if name == b"forwarded":
                forwarded = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                x_forwarded_for = value.decode("latin-1")
        return self._client(peer, forwarded, x_forwarded_for) or "unknown"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope["headers"])
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = self.client_ip(scope)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
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
