"""/healthz, /readyz and /metrics: what operators and orchestrators poll."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from eventlog.auth import AuthError
from eventlog.context import Context
from eventlog.dependencies import client_ip, context

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """`status` and the state of each part (journal, sinks, ...)."""

    model_config = ConfigDict(extra="allow")

    status: Literal["ready", "unavailable"]


@router.get("/healthz", summary="The process is alive", response_model=Health)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _sinks(ctx: Context, *, detail: bool) -> dict[str, Any]:
    sinks: dict[str, Any] = {}
    for name, state in ctx.fanout.states.items():
        events, seconds = ctx.fanout.lag(name)
        ctx.metrics.sinks.lag_events.labels(name).set(events)
        ctx.metrics.sinks.lag_seconds.labels(name).set(seconds)
        sinks[name] = {"state": state.state, "lag_events": events, "lag_seconds": round(seconds, 3)}
        if detail:
            sinks[name].update(cursor=state.cursor, last_error=state.last_error)
    return sinks


async def _admin(request: Request, ctx: Context) -> bool:
    """Whether the caller asks for the detail: no credential, no; an admin token, yes; any other, refused."""
    credential = request.headers.get("authorization")
    if credential is None:
        return False
    caller = await ctx.auth.authenticate(credential, client_ip(request))
    if not caller.has("admin"):
        raise AuthError(
            403,
            "missing_scope",
            "the detail of /readyz needs a token with the `admin` scope; send no Authorization header for the"
            " public summary",
        )
    return True


@router.get(
    "/readyz",
    summary="The journal takes writes; each sink's lag and state",
    response_model=Readiness,
    responses={
        503: {"model": Readiness, "description": "The journal cannot write, or the node holds no claim on its stream."}
    },
    description=(
        "Without authentication (what orchestrators poll): `status`, whether the journal is writable, and each"
        " part's state and counts: per sink `state`, `lag_events`, `lag_seconds`; `cloudtrail` and `retention`"
        " (when on) their `state` and counts. With an `admin` token (`Authorization: Bearer <token>`): the"
        " detail too: the journal's stream and `last_seq`, each sink's cursor and last error, the CloudTrail"
        " bucket, queue, last runs and integrity failures, the last retention report (tenants, days, archive"
        " keys, holds, failures). Another token is refused (401/403). 503 when the journal takes no writes, or"
        " (with OpenSearch as the store) while the node has no claim on its stream (`cluster`)."
    ),
)
async def readyz(request: Request, ctx: Annotated[Context, Depends(context)]) -> Response:
    detail = await _admin(request, ctx)
    writable = ctx.journal.healthy
    blocked = {key: why for key, check in ctx.blockers.items() if (why := check()) is not None}
    ready = writable and not blocked
    journal: dict[str, Any] = {"writable": writable}
    if detail:
        journal.update(stream=ctx.journal.stream, last_seq=ctx.journal.last_seq)
    body: dict[str, Any] = {
        "status": "ready" if ready else "unavailable",
        "journal": journal,
        "sinks": _sinks(ctx, detail=detail),
    }
    for key, part in ctx.readiness.items():
        body[key] = part.status() if detail else part.summary()
    return Response(orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "The text exposition format.",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(ctx: Annotated[Context, Depends(context)]) -> Response:
    _sinks(ctx, detail=False)
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
