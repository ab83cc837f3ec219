"""POST /v1/events: validate a whole request, commit it durably, answer receipts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

from eventlog.append import prepare, validation_context
from eventlog.auth import Principal
from eventlog.context import Context
from eventlog.dependencies import context, principal
from eventlog.errors import ApiError, json_pointer
from eventlog.model import EventIn, Receipts, error_path, too_deep_message
from eventlog.nesting import parse_too_deep, too_deep, too_deep_in_text
from eventlog.openapi import JSON, error_responses, inline_refs, request_body
from eventlog.request_body import read_body

log = logging.getLogger(__name__)
router = APIRouter(tags=["ingest"])

_EVENTS = TypeAdapter(list[EventIn])
_SERVER_FIELDS = {
    "tenant": "tenant comes from your token; remove it",
    "received_at": "received_at is set by the server; remove it",
    "chain": "chain is set by the server; remove it",
}
_MAX_REPORTED_ERRORS = 100


def _parse(body: bytes, max_details_depth: int) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if parse_too_deep(exc):
            # The deepest a batch may nest: the batch, `events`, the event, then details' own levels.
            path = too_deep_in_text(body, max_details_depth + 3)
            if path is not None:
                if path[:1] == ("events",) and len(path) > 1 and isinstance(path[1], int):
                    raise _too_deep(path[1], path[:2], path[2:], max_details_depth) from None
                raise _too_deep(0, (), path, max_details_depth) from None
        raise ApiError(400, "invalid_json", f"the body is not JSON ({exc}); send application/json") from None


def _too_deep(index: int, at: tuple[str | int, ...], inside: tuple[str | int, ...], max_details_depth: int) -> ApiError:
    """422 for event `index` (at `at` in the body) nesting a container at `inside` too deep."""
    # The event is level 1 and details level 2, so the first container too deep lies max_details_depth + 1 down.
    pointer = json_pointer((*at, *inside[: max_details_depth + 1]))
    if inside[:1] == ("details",):
        message = too_deep_message(max_details_depth)
    else:
        message = "is nested too deep: only details holds objects and lists"
    return ApiError(
        422,
        "invalid_events",
        "no event was stored; fix the listed fields and resend",
        [{"index": index, "pointer": pointer, "message": message}],
    )


def _items(payload: Any, max_events: int) -> tuple[list[Any], tuple[str | int, ...]]:
    """The list of raw events and the pointer prefix of each one."""
    if isinstance(payload, dict) and "events" in payload:
        extra = sorted(set(payload) - {"events"})
        if extra:
            raise ApiError(
                422,
                "invalid_batch",
                "a batch holds only `events`",
                [{"index": None, "pointer": json_pointer([extra[0]]), "message": "unexpected field; remove it"}],
            )
        events = payload["events"]
        if not isinstance(events, list):
            raise ApiError(
                422,
                "invalid_batch",
                "`events` must be a list of event objects",
                [{"index": None, "pointer": "/events", "message": "must be a list"}],
            )
        if not events:
            raise ApiError(
                422,
                "invalid_batch",
                "`events` is empty; send at least one event",
                [{"index": None, "pointer": "/events", "message": "must not be empty"}],
            )
        if len(events) > max_events:
            raise ApiError(
                413,
                "too_many_events",
                f"{len(events)} events in one request; the limit is {max_events}, split the batch",
            )
        return events, ("events",)
    if isinstance(payload, dict):
        return [payload], ()
    raise ApiError(
        422,
        "invalid_batch",
        'send one event object or {"events": [...]}',
        [{"index": None, "pointer": "", "message": f"got a JSON {type(payload).__name__}, expected an object"}],
    )


def _check_items(items: list[Any], prefix: tuple[str | int, ...], max_event_bytes: int, max_details_depth: int) -> None:
    too_large: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        at = (*prefix, index) if prefix else ()
        if not isinstance(item, dict):
            errors.append({"index": index, "pointer": json_pointer(at), "message": "must be a JSON object"})
            continue
        try:
            size = len(orjson.dumps(item))
        except orjson.JSONEncodeError:
            # orjson writes at most 254 levels; an event that deep is too deep by far.
            path = too_deep(item, max_details_depth + 1)
            if path is None:
                raise
            raise _too_deep(index, at, path, max_details_depth) from None
        if size > max_event_bytes:
            too_large.append(
                {
                    "index": index,
                    "pointer": json_pointer(at),
                    "message": f"{size} bytes; the limit is {max_event_bytes}",
                }
            )
        for key, why in _SERVER_FIELDS.items():
            if key in item:
                errors.append({"index": index, "pointer": json_pointer((*at, key)), "message": why})
    if too_large:
        raise ApiError(
            413, "event_too_large", "an event exceeds the size limit; shrink `details` or `message`", too_large
        )
    if errors:
        raise ApiError(422, "invalid_events", "no event was stored; fix the listed fields and resend", errors)


def _validate(
    items: list[Any], prefix: tuple[str | int, ...], ctx: Context, now: datetime, tenant: str
) -> list[EventIn]:
    settings = ctx.settings
    try:
        return _EVENTS.validate_python(
            items,
            context=validation_context(settings, tenant, now),
        )
    except ValidationError as exc:
        errors = []
        for error in exc.errors()[:_MAX_REPORTED_ERRORS]:
            index, *path = error_path(error)
            at = (*prefix, index, *path) if prefix else tuple(path)
            message = error["msg"].removeprefix("Value error, ")
            errors.append({"index": index, "pointer": json_pointer(at), "message": message})
        raise ApiError(422, "invalid_events", "no event was stored; fix the listed fields and resend", errors) from None


def _body_schema() -> dict[str, Any]:
    event = inline_refs(EventIn.model_json_schema())
    batch = {
        "type": "object",
        "title": "Batch",
        "properties": {"events": {"type": "array", "items": event, "minItems": 1}},
        "required": ["events"],
        "additionalProperties": False,
    }
    return {"oneOf": [event, batch]}


@router.post(
    "/v1/events",
    status_code=201,
    response_model=Receipts,
    summary="Append one event or a batch",
    responses={
        200: {"model": Receipts, "description": "Every event was a replay of an id already stored."},
        **error_responses(
            400,
            413,
            409,
            422,
            503,
            notes={
                400: "The body is not JSON.",
                413: "The body, the batch (EVENTLOG_MAX_REQUEST_EVENTS) or one event is too large.",
                422: "An event is invalid (`index` and `pointer` name each field); nothing was stored.",
                409: "In a cluster: an event with this client id is being committed by another node; retry after"
                " `Retry-After` seconds for its receipt. Nothing was stored.",
            },
        ),
    },
    openapi_extra=request_body(
        {JSON: _body_schema()},
        description='One event, or `{"events": [...]}` (at most EVENTLOG_MAX_REQUEST_EVENTS, 1000 by default).',
    ),
)
async def post_events(
    request: Request,
    caller: Annotated[Principal, Depends(principal("events:write"))],
    ctx: Annotated[Context, Depends(context)],
) -> Response:
    """Body: one event object or `{"events": [...]}`. All or nothing per request."""
    settings = ctx.settings
    metrics = ctx.metrics
    try:
        body = await read_body(
            request,
            settings.max_request_bytes,
            discard_bytes=settings.max_request_discard_bytes,
            advice="; send fewer events per request",
        )
        payload = _parse(body, settings.max_details_depth)
        items, prefix = _items(payload, settings.max_request_events)
        _check_items(items, prefix, settings.max_event_bytes, settings.max_details_depth)
        now = datetime.now(UTC)
        events = _validate(items, prefix, ctx, now, caller.tenant)
    except ApiError as exc:
        metrics.ingest.rejected.labels(exc.code).inc()
        raise

    prepared = [prepare(event, tenant=caller.tenant, received_at=now) for event in events]
    appended = await ctx.append(caller.tenant, prepared)

    created = sum(1 for a in appended if not a.duplicate)
    if created:
        metrics.ingest.accepted.labels("api").inc(created)
    if created < len(appended):
        metrics.ingest.duplicate.inc(len(appended) - created)
    receipts = [{"id": a.id, "hash": a.hash, "duplicate": a.duplicate} for a in appended]
    return Response(
        orjson.dumps({"receipts": receipts}), status_code=201 if created else 200, media_type="application/json"
    )
