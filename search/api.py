"""The events API: search, get, histogram, facets, export and tail, always scoped to the caller's tenant."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, Field, WithJsonSchema
from starlette.responses import Response, StreamingResponse

from eventlog.auth import Principal, read_tenant
from eventlog.context import Context
from eventlog.dependencies import context, principal
from eventlog.errors import ApiError
from eventlog.model import Event, format_time, time_to_us
from eventlog.openapi import JSON, error_responses
from search import cursor as cursors
from search.backend import FACET_FIELDS, Bucket, EventQuery, Scope, SearchBackend, all_of
from search.query import (
    INSTANT_EXPECTED,
    KNOWN_FIELDS,
    MAX_TIME_US,
    MIN_TIME_US,
    Node,
    QueryError,
    Range,
    Term,
    parse,
    time_span,
)
from search.reads import Reads, while_connected
from search.tail import tail

router = APIRouter(tags=["events"])

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TenantParam = Annotated[
    str | None, Query(max_length=128, description="Admins only: read this tenant instead of the token's.")
]
QParam = Annotated[
    str | None, Query(max_length=2000, description="Query language, see docs/api.md (e.g. `status:>=500 -actor:ci`).")
]
_TIME_PARAM = "RFC 3339 with an offset (T or a space between date and time); a bare date is refused"
_TimeText = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time", "maxLength": 64})]
SinceParam = Annotated[
    _TimeText | None, Query(max_length=64, description=f"Inclusive lower bound on `time` ({_TIME_PARAM}).")
]
UntilParam = Annotated[
    _TimeText | None, Query(max_length=64, description=f"Exclusive upper bound on `time` ({_TIME_PARAM}).")
]

# A read's answers: bad parameters or query, and a `tenant=` that is not the token's without admin (403).
_READ_ERRORS = error_responses(400)


class EventPage(BaseModel):
    events: list[Event]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


class HistogramBucket(BaseModel):
    time: str = Field(description="Start of the bucket (RFC 3339).")
    count: int


class Histogram(BaseModel):
    interval: str = Field(description="Bucket width, e.g. 5m.")
    interval_seconds: int
    since: str
    until: str
    total: int
    buckets: list[HistogramBucket]


class FacetValue(BaseModel):
    value: str
    count: int


class Facets(BaseModel):
    field: str
    values: list[FacetValue]


@dataclass(frozen=True, slots=True)
class SearchParts:
    """What the search routes need of the running node."""

    backend: SearchBackend
    cursors: cursors.Cursors
    reads: Reads


async def backend(ctx: Annotated[Context, Depends(context)]) -> SearchBackend:
    return ctx.part(SearchParts).backend


async def cursor_codec(ctx: Annotated[Context, Depends(context)]) -> cursors.Cursors:
    return ctx.part(SearchParts).cursors


def _scope(caller: Principal, tenant: str | None) -> Scope:
    """The read's tenant scope, from the token or (admins) the `tenant` parameter."""
    if tenant == "":
        raise ApiError(
            400,
            "invalid_parameters",
            "`tenant` is empty; name a tenant, or drop the parameter to read the token's own",
            [{"parameter": "tenant", "message": "must not be empty"}],
        )
    return Scope(read_tenant(caller, tenant))


def _micros(value: str | None, name: str) -> int | None:
    """A `since` or `until` in µs, parsed like a time in the query language."""
    if value is None:
        return None
    try:
        start, end = time_span(value)
    except ValueError:
        start, end = None, None
    # A bound is an instant: whether a bare date means its first or its last moment is a guess.
    if start is None or start != end:
        raise ApiError(
            400,
            "invalid_parameters",
            f"`{name}` must be {INSTANT_EXPECTED}",
            [{"parameter": name, "message": f"expected {INSTANT_EXPECTED}"}],
        )
    # No store holds a time outside this range, so its nearest end selects the same events.
    return min(max(start, MIN_TIME_US), MAX_TIME_US)


def parse_q(q: str | None) -> Node:
    """The `q` parameter as a query tree; a 400 naming its position and what was expected when it does not parse."""
    try:
        return parse(q or "")
    except QueryError as exc:
        error: dict[str, Any] = {
            "parameter": "q",
            "position": exc.position,
            "found": exc.found,
            "expected": exc.expected,
        }
        if exc.expected.startswith("a known field"):
            error["known_fields"] = sorted(KNOWN_FIELDS)
        raise ApiError(400, "invalid_query", str(exc), [error]) from None


def _where(
    q: str | None,
    *,
    since_us: int | None = None,
    until_us: int | None = None,
    action: str | None = None,
    actor: str | None = None,
    outcome: str | None = None,
    source: str | None = None,
) -> Node:
    """The query language and the plain filter parameters, as one condition."""
    extra: list[Node] = [
        Term(field, value)
        for field, value in (("action", action), ("actor.id", actor), ("outcome", outcome), ("source", source))
        if value is not None
    ]
    if since_us is not None:
        extra.append(Range("time", ">=", since_us))
    if until_us is not None:
        extra.append(Range("time", "<", until_us))
    return all_of(parse_q(q), *extra)


@router.get("/v1/events", summary="Search events, newest first", response_model=EventPage, responses=_READ_ERRORS)
async def list_events(
    request: Request,
    caller: Annotated[Principal, Depends(principal("events:read", "eventlog.events.list"))],
    store: Annotated[SearchBackend, Depends(backend)],
    codec: Annotated[cursors.Cursors, Depends(cursor_codec)],
    q: QParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    action: Annotated[str | None, Query(max_length=256)] = None,
    actor: Annotated[str | None, Query(max_length=256, description="Exact actor.id.")] = None,
    outcome: Annotated[Literal["success", "failure", "unknown"] | None, Query()] = None,
    source: Annotated[Literal["api", "middleware", "cloudtrail", "eventlog"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    order: Annotated[Literal["desc", "asc"], Query()] = "desc",
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page.")] = None,
    tenant: TenantParam = None,
) -> Response:
    scope = _scope(caller, tenant)
    where = _where(
        q,
        since_us=_micros(since, "since"),
        until_us=_micros(until, "until"),
        action=action,
        actor=actor,
        outcome=outcome,
        source=source,
    )
    query = EventQuery(where=where, order=order, limit=limit)
    fingerprint = cursors.fingerprint(scope.tenant, query)
    if cursor:
        try:
            query = replace(query, after=codec.decode(cursor, fingerprint))
        except cursors.CursorError as exc:
            raise ApiError(400, "invalid_cursor", str(exc), [{"parameter": "cursor", "message": str(exc)}]) from None
    page = await while_connected(request, store.search(scope, query))
    next_cursor = codec.encode(page.last, fingerprint) if page.more and page.last is not None else None
    body = b'{"events":[' + b",".join(page.documents) + b'],"next_cursor":' + orjson.dumps(next_cursor) + b"}"
    return Response(body, media_type="application/json")


_INTERVALS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NICE_SECONDS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
_AUTO_BUCKETS = 60
MAX_BUCKETS = 2000


def _bucket_count(since_us: int, until_us: int, width_us: int) -> int:
    """Buckets from the one holding `since` (they start at multiples of the width) up to `until`."""
    start = since_us - since_us % width_us
    return -(-(until_us - start) // width_us)


def _interval_seconds(interval: str | None, since_us: int, until_us: int) -> int:
    if interval is None:
        # About 60 bars for the range, on a human step; past the longest step, on whole multiples of it.
        span_us = until_us - since_us
        longest = _NICE_SECONDS[-1]
        return next(
            (n for n in _NICE_SECONDS if span_us <= n * 1_000_000 * _AUTO_BUCKETS),
            -(-span_us // (longest * 1_000_000 * _AUTO_BUCKETS)) * longest,
        )
    match = re.fullmatch(r"([1-9][0-9]{0,5})([smhd])", interval)
    if match is None:
        raise ApiError(
            400,
            "invalid_parameters",
            "`interval` is a number and a unit: 30s, 5m, 1h, 1d",
            [{"parameter": "interval", "message": "e.g. 5m"}],
        )
    seconds = int(match.group(1)) * _INTERVALS[match.group(2)]
    count = _bucket_count(since_us, until_us, seconds * 1_000_000)
    if count > MAX_BUCKETS:
        raise ApiError(
            400,
            "invalid_parameters",
            f"that interval makes {count} buckets, more than {MAX_BUCKETS}; widen it, narrow the range or leave it out",
            [{"parameter": "interval", "message": "too small for the range"}],
        )
    return seconds


def _label(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _rfc3339(time_us: int) -> str:
    return format_time(_EPOCH + timedelta(microseconds=time_us))


def _histogram_body(found: Sequence[Bucket], *, since_us: int, until_us: int, seconds: int) -> bytes:
    """The answer with every bucket of the range, empty ones too (at most MAX_BUCKETS)."""
    width = seconds * 1_000_000
    counts = {bucket.start_us: bucket.count for bucket in found}
    starts = range(since_us - since_us % width, until_us, width)
    body = {
        "interval": _label(seconds),
        "interval_seconds": seconds,
        "since": _rfc3339(since_us),
        "until": _rfc3339(until_us),
        "total": sum(counts.get(at, 0) for at in starts),
        "buckets": [{"time": _rfc3339(at), "count": counts.get(at, 0)} for at in starts],
    }
    return orjson.dumps(body)


@router.get(
    "/v1/events/histogram",
    summary="Counts of matching events per interval",
    response_model=Histogram,
    responses=_READ_ERRORS,
)
async def histogram(
    request: Request,
    caller: Annotated[Principal, Depends(principal("events:read", "eventlog.events.histogram"))],
    store: Annotated[SearchBackend, Depends(backend)],
    ctx: Annotated[Context, Depends(context)],
    q: QParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    interval: Annotated[
        str | None,
        Query(
            max_length=16,
            description=f"Bucket width (30s, 5m, 1h, 1d); chosen from the range if absent. At most {MAX_BUCKETS} buckets.",
        ),
    ] = None,
    tenant: TenantParam = None,
) -> Response:
    scope = _scope(caller, tenant)
    where = parse_q(q)
    now = datetime.now(UTC)
    until_us = _micros(until, "until")
    if until_us is None:
        until_us = min(time_to_us(now + timedelta(seconds=ctx.settings.max_future_seconds)), MAX_TIME_US)
    since_us = _micros(since, "since")
    if since_us is None:
        since_us = max(time_to_us(now - timedelta(days=ctx.settings.retention_days)), MIN_TIME_US)
    if since_us >= until_us:
        raise ApiError(
            400,
            "invalid_parameters",
            f"`since` ({_rfc3339(since_us)}) must lie before `until` ({_rfc3339(until_us)})",
            [{"parameter": "since", "message": "not before until"}],
        )
    seconds = _interval_seconds(interval, since_us, until_us)
    found = await while_connected(
        request, store.histogram(scope, where, since_us=since_us, until_us=until_us, interval_us=seconds * 1_000_000)
    )
    # Up to MAX_BUCKETS dicts to build and encode: a few milliseconds kept off the event loop.
    body = await asyncio.to_thread(_histogram_body, found, since_us=since_us, until_us=until_us, seconds=seconds)
    return Response(body, media_type="application/json")


@router.get(
    "/v1/events/facets",
    summary="Top values of one field among matching events",
    response_model=Facets,
    responses=_READ_ERRORS,
)
async def facets(
    request: Request,
    caller: Annotated[Principal, Depends(principal("events:read", "eventlog.events.facets"))],
    store: Annotated[SearchBackend, Depends(backend)],
    field: Annotated[
        Literal["actor.id", "action", "outcome", "target.type", "source", "actor.ip", "actor", "ip"], Query()
    ] = "actor.id",
    size: Annotated[int, Query(ge=1, le=100)] = 10,
    q: QParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    tenant: TenantParam = None,
) -> dict[str, Any]:
    scope = _scope(caller, tenant)
    canonical = {"actor": "actor.id", "ip": "actor.ip"}.get(field, field)
    assert canonical in FACET_FIELDS
    where = _where(q, since_us=_micros(since, "since"), until_us=_micros(until, "until"))
    values = await while_connected(request, store.facets(scope, where, field=canonical, size=size))
    return {"field": canonical, "values": [{"value": v.value, "count": v.count} for v in values]}


CSV_COLUMNS = (
    "time",
    "id",
    "action",
    "outcome",
    "actor.type",
    "actor.id",
    "actor.name",
    "actor.ip",
    "target.type",
    "target.id",
    "target.name",
    "source",
    "request.method",
    "request.path",
    "request.status",
    "message",
    "details",
    "chain.seq",
    "chain.hash",
)


def _cell(document: dict[str, Any], column: str) -> str:
    value: Any = document
    for part in column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    text = orjson.dumps(value).decode() if isinstance(value, dict | list) else str(value)
    # Spreadsheets run cells that start like a formula (CSV injection); a quote defuses them.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(pages: AsyncIterator[Sequence[bytes]]) -> AsyncIterator[bytes]:
    async def rows() -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        async for page in pages:
            for raw in page:
                document = orjson.loads(raw)
                writer.writerow([_cell(document, c) for c in CSV_COLUMNS])
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
        if buffer.tell():  # the header alone, when nothing matched
            yield buffer.getvalue().encode()

    return rows()


async def ndjson_rows(pages: AsyncIterator[Sequence[bytes]]) -> AsyncIterator[bytes]:
    async for page in pages:
        yield b"\n".join(page) + b"\n"


async def _from(first: Sequence[bytes] | None, pages: AsyncIterator[Sequence[bytes]]) -> AsyncIterator[Sequence[bytes]]:
    if first is None:
        return
    yield first
    async for page in pages:
        yield page


@router.get(
    "/v1/events/export",
    summary="Every matching event as NDJSON or CSV, streamed",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One event per line (NDJSON), or a CSV with a header row.",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        **_READ_ERRORS,
    },
)
async def export(
    request: Request,
    caller: Annotated[Principal, Depends(principal("events:read", "eventlog.events.export"))],
    store: Annotated[SearchBackend, Depends(backend)],
    format: Annotated[Literal["ndjson", "csv"], Query()] = "ndjson",
    q: QParam = None,
    since: SinceParam = None,
    until: UntilParam = None,
    order: Annotated[Literal["desc", "asc"], Query()] = "desc",
    tenant: TenantParam = None,
) -> StreamingResponse:
    scope = _scope(caller, tenant)
    where = _where(q, since_us=_micros(since, "since"), until_us=_micros(until, "until"))
    exported = store.export(scope, EventQuery(where=where, order=order))
    # Read before the answer starts, so that the first page's refusal (deadline, busy) has its own status.
    pages = _from(await while_connected(request, anext(exported, None)), exported)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe_tenant = re.sub(r"[^A-Za-z0-9._-]", "_", scope.tenant)[:64]
    filename = f"eventlog-{safe_tenant}-{stamp}.{format}"
    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    body = csv_rows(pages) if format == "csv" else ndjson_rows(pages)
    return StreamingResponse(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


_MAX_SEQ = 2**63 - 1  # the journal's sequence is an SQLite INTEGER


def _resume_after(last_event_id: str | None) -> int | None:
    """The journal sequence a reconnecting tail resumes after; absent or empty: from now."""
    if not last_event_id:
        return None
    # ASCII digits only: str.isdigit() also takes '²' or '٣', which int() then refuses.
    if re.fullmatch(r"[0-9]{1,19}", last_event_id) is None or int(last_event_id) > _MAX_SEQ:
        raise ApiError(
            400,
            "invalid_parameters",
            "`Last-Event-ID` is the `id` of an event the tail sent (a journal sequence number); "
            "drop the header to start from now",
            [{"parameter": "Last-Event-ID", "message": f"a whole number from 0 to {_MAX_SEQ}"}],
        )
    return int(last_event_id)


@router.get(
    "/v1/events/tail",
    summary="New matching events as server-sent events",
    description=(
        "Events committed from now on (or after `Last-Event-ID`) that match `q`, as `event: event` frames whose"
        " id is the journal sequence. The token is checked again every few seconds"
        " (`EVENTLOG_TAIL_TOKEN_RECHECK_SECONDS`): once it is revoked or expired, an `event: end` frame says so"
        " and the stream closes."
    ),
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An endless stream: `event: event` frames, the journal sequence as `id`, keep-alives.",
            # One schema per server-sent event (comments and `retry:` carry no data and are no events).
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "required": ["event", "id", "data"],
                        "properties": {
                            "event": {"const": "event"},
                            "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The journal sequence."},
                            "data": {"type": "string", "contentMediaType": JSON, "description": "The event (Event)."},
                        },
                    }
                }
            },
        },
        **_READ_ERRORS,
    },
)
async def tail_events(
    caller: Annotated[Principal, Depends(principal("events:read", "eventlog.events.tail"))],
    ctx: Annotated[Context, Depends(context)],
    q: QParam = None,
    last_event_id: Annotated[
        str | None, Header(max_length=20, description="Resume after this journal sequence.")
    ] = None,
    tenant: TenantParam = None,
) -> StreamingResponse:
    scope = _scope(caller, tenant)
    where = parse_q(q)
    after = _resume_after(last_event_id)
    return StreamingResponse(
        tail(
            ctx.journal,
            scope.tenant,
            where,
            after_seq=after,
            still_valid=lambda: ctx.auth.still_valid(caller),
            recheck_seconds=ctx.settings.tail_token_recheck_seconds,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/v1/events/{event_id}",
    summary="One event by id",
    response_model=Event,
    responses=error_responses(400, 404, notes={404: "No event of that id in the tenant."}),
)
async def get_event(
    request: Request,
    event_id: Annotated[str, Path(max_length=128)],
    caller: Annotated[Principal, Depends(principal("events:read", "eventlog.events.get"))],
    store: Annotated[SearchBackend, Depends(backend)],
    ctx: Annotated[Context, Depends(context)],
    tenant: TenantParam = None,
) -> Response:
    scope = _scope(caller, tenant)
    document = await while_connected(request, store.get(scope, event_id))
    if document is None:
        # Acknowledged but not yet in the store: the journal is the source of truth.
        document = ctx.journal.get(scope.tenant, event_id)
    if document is None:
        raise ApiError(404, "event_not_found", f"no event {event_id!r} in tenant {scope.tenant!r}")
    return Response(document, media_type="application/json")
