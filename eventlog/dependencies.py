"""FastAPI dependencies shared by every router: the context and the caller's principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from eventlog.auth import Principal, require_scope
from eventlog.context import Context

# Declared for the OpenAPI document (and so for clients and fuzzers); `auto_error=False` leaves every
# answer to `Authenticator`, which alone counts failures and words the 401.
BEARER = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="evl_…",
    description="An eventlog API token: `eventlog tokens create` or `POST /v1/tokens`.",
    auto_error=False,
)


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

    bare = header.lower() != "authorization"
    scheme: HTTPBearer | APIKeyHeader = BEARER
    if bare:
        scheme = APIKeyHeader(
            name=header,
            scheme_name=header,
            description="An eventlog API token, bare (no `Bearer `).",
            auto_error=False,
        )

    async def dependency(request: Request, _: object = Security(scheme)) -> Principal:
        if audit_action is not None:
            request.state.audit_action = audit_action
        ctx = _context(request)
        credential = request.headers.get(header)
        if bare and credential:
            credential = f"Bearer {credential}"
        caller = await ctx.auth.authenticate(credential, client_ip(request))
        request.state.principal = caller
        require_scope(caller, scope)
        return caller

    return dependency
