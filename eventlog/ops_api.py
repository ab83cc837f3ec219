"""/healthz, /readyz and /metrics: what operators and orchestrators poll."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from eventlog.context import Context
from eventlog.dependencies import context

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


def _sinks(ctx: Context) -> dict[str, Any]:
    sinks: dict[str, Any] = {}
    for name, state in ctx.fanout.states.items():
        events, seconds = ctx.fanout.lag(name)
        ctx.metrics.sink_lag_events.labels(name).set(events)
        ctx.metrics.sink_lag_seconds.labels(name).set(seconds)
        sinks[name] = {
            "state": state.state,
            "cursor": state.cursor,
            "lag_events": events,
            "lag_seconds": round(seconds, 3),
            "last_error": state.last_error,
        }
    return sinks


@router.get(
    "/readyz",
    summary="The journal takes writes; each sink's lag and state",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The journal cannot write."}},
)
async def readyz(ctx: Annotated[Context, Depends(context)]) -> Response:
    ready = ctx.journal.healthy
    body = {
        "status": "ready" if ready else "unavailable",
        "journal": {"writable": ready, "stream": ctx.journal.stream, "last_seq": ctx.journal.last_seq},
        "sinks": _sinks(ctx),
    }
    for key, part in ctx.readiness.items():
        body[key] = part()
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
    _sinks(ctx)
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
