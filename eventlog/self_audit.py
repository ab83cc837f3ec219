"""Pure ASGI middleware: every call to eventlog's own read and token endpoints becomes an event.

Endpoints opt in through their auth dependency (`audit_action`); the event is
appended to the journal in the caller's tenant after the response is sent.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import uuid_utils
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventlog.canonical import canonical_json
from eventlog.journal import Journal, Prepared
from eventlog.model import Actor, EventIn, RequestInfo, Target, to_document

log = logging.getLogger(__name__)


def self_event(
    *,
    tenant: str,
    action: str,
    status: int,
    token_id: str,
    client_ip: str,
    method: str,
    path: str,
    request_id: str,
    duration_ms: float,
    target: dict[str, Any] | None = None,
) -> Prepared:
    outcome = "success" if status < 400 else "failure"
    try:
        actor = Actor.model_validate({"type": "token", "id": token_id, "ip": client_ip})
    except ValueError:
        actor = Actor(type="token", id=token_id)
    event = EventIn(
        action=action,
        outcome=outcome,
        actor=actor,
        target=Target(**{k: v for k, v in (target or {}).items() if v is not None}),
        request=RequestInfo(
            method=method,
            path=path[:2048],
            status=status,
            duration_ms=round(duration_ms, 3),
            request_id=request_id or None,
        ),
        message=f"{method} {path[:256]} answered {status}",
    )
    now = datetime.now(UTC)
    event_id = str(uuid_utils.uuid7())
    document = to_document(event, event_id=event_id, tenant=tenant, received_at=now, source="eventlog")
    return Prepared(event_id, document, canonical_json(document), client_id=False)


class SelfAudit:
    def __init__(self, app: ASGIApp, *, journal: Journal) -> None:
        self.app = app
        self._journal = journal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def track(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, track)
        finally:
            state: dict[str, Any] = scope.get("state", {})
            action = state.get("audit_action")
            principal = state.get("principal")
            if action is not None and principal is not None:
                await self._record(scope, state, action, principal, status, started)

    async def _record(
        self, scope: Scope, state: dict[str, Any], action: str, principal: Any, status: int, started: float
    ) -> None:
        prepared = self_event(
            tenant=principal.tenant,
            action=action,
            status=status,
            token_id=principal.token_id,
            client_ip=state.get("client_ip", ""),
            method=scope["method"],
            path=scope["path"],
            request_id=state.get("request_id", ""),
            duration_ms=(time.perf_counter() - started) * 1000,
            target=state.get("audit_target"),
        )
        try:
            await self._journal.append(principal.tenant, [prepared])
        except Exception as exc:  # noqa: BLE001 - the caller already has its answer
            log.error("self-audit event not recorded", extra={"action": action, "error": str(exc)})
