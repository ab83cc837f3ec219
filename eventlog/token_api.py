"""/v1/tokens: create, list and revoke API tokens over HTTP (admin scope)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from eventlog.auth import Principal
from eventlog.context import Context
from eventlog.dependencies import context, principal
from eventlog.errors import ApiError
from eventlog.openapi import error_responses
from eventlog.tenant import TenantName
from eventlog.tokens import MAX_NAME_CHARS, SCOPES, TokenError, TokenStoreUnavailable, parse_scopes

router = APIRouter(tags=["tokens"])

T = TypeVar("T")
_UNAVAILABLE = {503: "The shared token store (OpenSearch) did not answer; nothing was changed."}


async def _stored(call: Callable[[], T]) -> T:
    """A token store call off the event loop (a cluster's store answers over the network)."""
    try:
        return await asyncio.to_thread(call)
    except TokenStoreUnavailable as exc:
        raise ApiError(
            503, "token_store_unavailable", f"{exc}; nothing was changed, retry", headers={"Retry-After": "1"}
        ) from None


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: TenantName
    # Enumerated in the document only: parse_scopes refuses others with a 422 that names them.
    scopes: list[str] = Field(
        min_length=1,
        description="events:write, events:read, admin",
        json_schema_extra={"items": {"type": "string", "enum": [*sorted(SCOPES)]}},
    )
    name: str = Field("", max_length=MAX_NAME_CHARS, description="Printable characters, shown in listings.")
    expires_days: int | None = Field(None, ge=1, le=3650)


class TokenOut(BaseModel):
    id: str
    name: str
    tenant: str
    scopes: list[str]
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class IssuedOut(TokenOut):
    secret: str = Field(description="Shown once; only its SHA-256 hash is kept.")


@router.post(
    "/v1/tokens",
    status_code=201,
    response_model=IssuedOut,
    summary="Create a token",
    responses=error_responses(400, 422, notes={422: "The scopes or the expiry cannot be honoured."}),
)
async def create_token(
    body: TokenRequest,
    request: Request,
    _: Annotated[Principal, Depends(principal("admin", "eventlog.tokens.create"))],
    ctx: Annotated[Context, Depends(context)],
) -> dict[str, object]:
    try:
        scopes = parse_scopes(",".join(body.scopes))
        issued = await _stored(
            lambda: ctx.tokens.create(tenant=body.tenant, scopes=scopes, name=body.name, expires_days=body.expires_days)
        )
    except TokenError as exc:
        raise ApiError(422, "invalid_token_request", str(exc)) from None
    request.state.audit_target = {"type": "token", "id": issued.token.id, "name": body.name or None}
    return {**issued.token.as_dict(), "secret": issued.secret}


@router.get(
    "/v1/tokens",
    response_model=list[TokenOut],
    summary="List tokens (never their secrets)",
    responses=error_responses(),
)
async def list_tokens(
    _: Annotated[Principal, Depends(principal("admin", "eventlog.tokens.list"))],
    ctx: Annotated[Context, Depends(context)],
) -> list[dict[str, object]]:
    return [t.as_dict() for t in await _stored(ctx.tokens.list)]


@router.delete(
    "/v1/tokens/{token_id}",
    response_model=TokenOut,
    summary="Revoke a token",
    responses=error_responses(400, 404, notes={404: "No token of that id."}),
)
async def revoke_token(
    token_id: Annotated[str, Path(max_length=64)],
    request: Request,
    _: Annotated[Principal, Depends(principal("admin", "eventlog.tokens.revoke"))],
    ctx: Annotated[Context, Depends(context)],
) -> dict[str, object]:
    request.state.audit_target = {"type": "token", "id": token_id}
    try:
        return (await _stored(lambda: ctx.tokens.revoke(token_id))).as_dict()
    except TokenError as exc:
        raise ApiError(404, "token_not_found", str(exc)) from None
