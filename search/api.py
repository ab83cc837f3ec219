"""GET /v1/events and GET /v1/events/{id}: reads, always scoped to the caller's tenant."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from eventlog.auth import Principal, read_tenant
from eventlog.context import Context
from eventlog.dependencies import context, principal
from eventlog.errors import ApiError
from eventlog.model import Event, time_to_us
from search import cursor as cursors
from search.backend import EventQuery, Scope, SearchBackend

router = APIRouter(tags=["events"])

TenantParam = Annotated[
    str | None, Query(max_length=128, description="Admins only: read this tenant instead of the token's.")
]


def backend(request: Request) -> SearchBackend:
    found: SearchBackend = request.app.state.backend
    return found


def _micros(value: datetime | None, name: str) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ApiError(400, "invalid_parameters", f"`{name}` needs a UTC offset, e.g. 2026-11-27T14:00:00Z")
    return time_to_us(value)


@router.get("/v1/events", summary="Search events, newest first")
async def list_events(
    caller: Annotated[Principal, Depends(principal("events:read", "eventlog.events.list"))],
    store: Annotated[SearchBackend, Depends(backend)],
    q: Annotated[str | None, Query(max_length=1024, description="Words that must all appear (full text).")] = None,
    since: Annotated[datetime | None, Query(description="Inclusive lower bound on `time` (RFC 3339).")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive upper bound on `time` (RFC 3339).")] = None,
    action: Annotated[str | None, Query(max_length=256)] = None,
    actor: Annotated[str | None, Query(max_length=256, description="Exact actor.id.")] = None,
    outcome: Annotated[Literal["success", "failure", "unknown"] | None, Query()] = None,
    source: Annotated[Literal["api", "middleware", "cloudtrail", "eventlog"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    order: Annotated[Literal["desc", "asc"], Query()] = "desc",
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page.")] = None,
    tenant: TenantParam = None,
) -> Response:
    scope = Scope(read_tenant(caller, tenant))
    query = EventQuery(
        since_us=_micros(since, "since"),
        until_us=_micros(until, "until"),
        action=action,
        actor=actor,
        outcome=outcome,
        source=source,
        text=q,
        order=order,
        limit=limit,
    )
    fingerprint = cursors.fingerprint(scope.tenant, query)
    if cursor:
        try:
            position = cursors.decode(cursor, fingerprint)
        except cursors.CursorError as exc:
            raise ApiError(400, "invalid_cursor", str(exc)) from None
        query = replace(query, after=position)
    page = await store.search(scope, query)
    next_cursor = cursors.encode(page.last, fingerprint) if page.more and page.last is not None else None
    body = b'{"events":[' + b",".join(page.documents) + b'],"next_cursor":' + orjson.dumps(next_cursor) + b"}"
    return Response(body, media_type="application/json")


@router.get("/v1/events/{event_id}", response_model=Event, summary="One event by id")
async def get_event(
    event_id: Annotated[str, Path(max_length=128)],
    caller: Annotated[Principal, Depends(principal("events:read", "eventlog.events.get"))],
    store: Annotated[SearchBackend, Depends(backend)],
    ctx: Annotated[Context, Depends(context)],
    tenant: TenantParam = None,
) -> Response:
    scope = Scope(read_tenant(caller, tenant))
    document = await store.get(scope, event_id)
    if document is None:
        # Acknowledged but not yet in the store: the journal is the source of truth.
        document = ctx.journal.get(scope.tenant, event_id)
    if document is None:
        raise ApiError(404, "event_not_found", f"no event {event_id!r} in tenant {scope.tenant!r}")
    return Response(document, media_type="application/json")
