"""/v1/admin/deadletters: what the sinks refused for good, and the redrive (admin scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from eventlog.auth import Principal
from eventlog.context import Context
from eventlog.dependencies import context, principal
from eventlog.journal import DeadLetter
from eventlog.openapi import error_responses

router = APIRouter(tags=["admin"])


class RedriveOut(BaseModel):
    delivered: int
    failed_again: int


@router.get(
    "/v1/admin/deadletters",
    response_model=list[DeadLetter],
    summary="Events a sink refused for good",
    responses=error_responses(400),
)
async def list_dead_letters(
    _: Annotated[Principal, Depends(principal("admin", "eventlog.deadletters.list"))],
    ctx: Annotated[Context, Depends(context)],
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[DeadLetter]:
    return ctx.journal.dead_letters(limit)


@router.post(
    "/v1/admin/deadletters/redrive",
    response_model=RedriveOut,
    summary="Deliver every dead letter again",
    responses=error_responses(),
)
async def redrive(
    _: Annotated[Principal, Depends(principal("admin", "eventlog.deadletters.redrive"))],
    ctx: Annotated[Context, Depends(context)],
) -> RedriveOut:
    return RedriveOut(**await ctx.fanout.redrive())
