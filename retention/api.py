"""/v1/holds (legal holds) and /v1/retention/run: admin endpoints, each call self-audited."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from eventlog.auth import Principal
from eventlog.context import Context
from eventlog.dependencies import context, principal
from eventlog.errors import ApiError
from eventlog.model import Rfc3339Time
from eventlog.openapi import error_responses
from eventlog.tenant import TenantName
from retention.scheduler import Scheduler
from search.retention import HoldNotFound, HoldStore, InvalidHold

router = APIRouter(tags=["retention"])


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: TenantName = Field(description="Tenant whose events are held.")
    since: Rfc3339Time | None = Field(None, description="Hold only events from this time on (default: all).")
    until: Rfc3339Time | None = Field(None, description="Hold only events before this time (default: all).")
    reason: str = Field(min_length=1, max_length=1024, description="Why: a case number, a request.")


class HoldOut(BaseModel):
    id: str
    tenant: str
    since: str | None
    until: str | None
    reason: str
    placed_at: str
    placed_by: str
    released_at: str | None
    released_by: str | None


class TenantDayOut(BaseModel):
    tenant: str
    day: str
    events: int
    location: str


class ArchivedDayOut(BaseModel):
    tenant: str
    day: str
    events: int
    objects: list[str] = Field(description="Archive object keys; empty on a dry run.")


class JournalExpiryOut(BaseModel):
    events: int
    dead_letters: int
    checkpoints: int
    first_kept_seq: int | None


class RetentionReportOut(BaseModel):
    today: str
    dry_run: bool
    removed: list[TenantDayOut]
    removed_events: int
    archived: list[ArchivedDayOut]
    held: list[TenantDayOut]
    journal: JournalExpiryOut | None
    failures: list[str]


@dataclass(frozen=True, slots=True)
class RetentionParts:
    """What the retention routes need of the running node."""

    holds: HoldStore
    scheduler: Scheduler


async def _holds(ctx: Annotated[Context, Depends(context)]) -> HoldStore:
    return ctx.part(RetentionParts).holds


async def _scheduler(ctx: Annotated[Context, Depends(context)]) -> Scheduler:
    return ctx.part(RetentionParts).scheduler


@router.post(
    "/v1/holds",
    status_code=201,
    response_model=HoldOut,
    summary="Put a tenant (optionally a time range) on legal hold",
    responses=error_responses(400),
)
async def place_hold(
    body: HoldRequest,
    request: Request,
    caller: Annotated[Principal, Depends(principal("admin", "eventlog.holds.place"))],
    holds: Annotated[HoldStore, Depends(_holds)],
) -> dict[str, Any]:
    try:
        hold = await asyncio.to_thread(
            holds.place,
            tenant=body.tenant,
            since=body.since,
            until=body.until,
            reason=body.reason,
            placed_by=caller.token_id,
        )
    except InvalidHold as exc:
        raise ApiError(
            400,
            "invalid_parameters",
            "fix the parameters listed in `errors`",
            [{"parameter": exc.parameter, "message": str(exc)}],
        ) from None
    request.state.audit_target = {"type": "hold", "id": hold.id, "name": body.tenant}
    return hold.as_dict()


@router.get(
    "/v1/holds",
    response_model=list[HoldOut],
    summary="List legal holds, released ones included",
    responses=error_responses(),
)
async def list_holds(
    _: Annotated[Principal, Depends(principal("admin", "eventlog.holds.list"))],
    holds: Annotated[HoldStore, Depends(_holds)],
) -> list[dict[str, Any]]:
    return [h.as_dict() for h in await asyncio.to_thread(holds.list)]


@router.delete(
    "/v1/holds/{hold_id}",
    response_model=HoldOut,
    summary="Release a legal hold",
    responses=error_responses(400, 404, notes={404: "No hold of that id."}),
)
async def release_hold(
    hold_id: Annotated[str, Path(max_length=64)],
    request: Request,
    caller: Annotated[Principal, Depends(principal("admin", "eventlog.holds.release"))],
    holds: Annotated[HoldStore, Depends(_holds)],
) -> dict[str, Any]:
    request.state.audit_target = {"type": "hold", "id": hold_id}
    try:
        hold = await asyncio.to_thread(holds.release, hold_id, released_by=caller.token_id)
    except HoldNotFound as exc:
        raise ApiError(404, "hold_not_found", str(exc)) from None
    return hold.as_dict()


@router.post(
    "/v1/retention/run",
    response_model=RetentionReportOut,
    summary="Run retention now (or show what would go with dry_run=true)",
    responses=error_responses(400, 409, notes={409: "A retention run is in progress on this or another node."}),
)
async def run_retention(
    _: Annotated[Principal, Depends(principal("admin", "eventlog.retention.request"))],
    scheduler: Annotated[Scheduler, Depends(_scheduler)],
    dry_run: bool = False,
) -> dict[str, Any]:
    report = await scheduler.run_now(dry_run=dry_run)
    if report is None:
        raise ApiError(409, "retention_running", "a retention run is in progress on this or another node; try later")
    return report.as_dict()
