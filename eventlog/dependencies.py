"""FastAPI dependencies shared by every router: the context and the caller's principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request

from eventlog.auth import Principal, require_scope
from eventlog.context import Context


def _context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


async def context(request: Request) -> Context:
    """`async` so FastAPI runs it inline instead of in its thread pool."""
    return _context(request)


def client_ip(request: Request) -> str:
    state: dict[str, Any] = request.scope.get("state", {})
    ip = state.get("client_ip")
    if isinstance(ip, str):
        return ip
    return request.client.host if request.client else "unknown"


def principal(
    scope: str, audit_action: str | None = None, *, header: str = "authorization"
) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks one scope.

    `audit_action` marks the endpoint for self-audit: the call becomes an event
    of `source: eventlog` in the caller's tenant once the response is sent.
    `header` names where the token is; anything but `authorization` carries
    the bare token (the Keboola dialect's `X-StorageApi-Token`).
    """

    async def dependency(request: Request) -> Principal:
        if audit_action is not None:
            request.state.audit_action = audit_action
        ctx = _context(request)
        credential = request.headers.get(header)
        if header != "authorization" and credential:
            credential = f"Bearer {credential}"
        caller = ctx.auth.authenticate(credential, client_ip(request))
        request.state.principal = caller
        require_scope(caller, scope)
        return caller

    return dependency
