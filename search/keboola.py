"""A Keboola Storage API events facade: `POST/GET /v2/storage/events`, `GET /v2/storage/events/{id}`.

Tools that speak the Keboola dialect (the token in `X-StorageApi-Token`, events with `component`, `type`,
`params`, `runId`, ...) read and write eventlog's events through it. Every eventlog event has a Keboola
form, also the ones not written here; a Keboola event is stored as an ordinary eventlog event whose
Keboola-only fields live under `details.keboola`.

- Keboola `id` is the node's journal sequence (`chain.seq`) as a string, `uuid` the eventlog id; both are
  accepted wherever Keboola takes an id (`{id}`, `sinceId`, `maxId`).
- `sinceId` and `maxId` are both exclusive, as Keboola's own client tests show (since 1, max 3 → only 2).
- Errors keep eventlog's fields (`error`, `message`, `errors`) and add Keboola's `code` and `status`.
"""

from __future__ import annotations

import inspect
import ipaddress
import logging
import re
import urllib.parse
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from eventlog.append import prepare, validation_context
from eventlog.auth import AuthError, Principal
from eventlog.canonical import MAX_SAFE_INT
from eventlog.context import Context
from eventlog.dependencies import client_ip, context, principal
from eventlog.errors import ApiError, json_pointer
from eventlog.model import EventIn, error_path, parse_time, reserved_source
from eventlog.nesting import parse_too_deep, too_deep_in_text
from eventlog.openapi import JSON, error_responses, request_body
from eventlog.request_body import read_body
from eventlog.settings import Settings
from search.api import QParam, backend, parse_q
from search.backend import EventQuery, Position, Scope, SearchBackend, all_of
from search.query import And, Exists, Node, Not, Or, Range, Term
from search.reads import while_connected

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-StorageApi-Token"  # noqa: S105 - a header name, not a secret
TYPES = ("info", "success", "warn", "error")
MAX_LIMIT = 10_000
MAX_WINDOW = 20_000
"""Deepest `offset + limit` a list may reach: offsets are walked page by page, the store has no `from`."""

_PAGE = 1000
_KEBOOLA = "keboola"
_SOURCES = ("api", "middleware", "cloudtrail", "eventlog")
_OUTCOME = {"success": "success", "error": "failure"}  # info and warn say nothing about the result
_TYPE = {"failure": "error", "success": "success"}
_SERVER_FIELDS = {
    "id": "the id is the server's sequence number",
    "uuid": "the uuid is assigned by the server",
    "created": "created is the server's clock",
    "token": "the token is the one in X-StorageApi-Token",
}
_ID = re.compile(r"[0-9]{1,15}")
_INT = re.compile(r"-?[0-9]{1,16}")


# -- errors ------------------------------------------------------------------

# Keboola's string codes, as its API answers them (storage-api-php-client and go-client tests).
_CODES = {401: "storage.tokenInvalid", 403: "accessDenied", 404: "notFound", 413: "requestTooLarge"}
_MALFORMED = ("invalid_json", "invalid_form", "unsupported_media_type")


def keboola_code(status: int, code: str) -> str:
    if code in _MALFORMED:
        return "malformedRequest"
    if status in (400, 422):
        return "validation.failed"
    return _CODES.get(status, code)


async def _keboola_error(request: Request, exc: Exception) -> Response:
    """The app's own answer to `exc`, with Keboola's `code` and `status` added."""
    handlers: Mapping[Any, Callable[..., Any]] = request.app.exception_handlers
    handler = next((handlers[cls] for cls in type(exc).__mro__ if cls in handlers), None)
    if handler is None:
        raise exc
    answer = handler(request, exc)
    if inspect.isawaitable(answer):
        answer = await answer
    assert isinstance(answer, Response)
    body = orjson.loads(answer.body)
    body["code"] = keboola_code(answer.status_code, str(body.get("error", "")))
    body["status"] = "error"
    headers = {k: v for k, v in answer.headers.items() if k not in ("content-length", "content-type")}
    return Response(orjson.dumps(body), status_code=answer.status_code, media_type="application/json", headers=headers)


class KeboolaRoute(APIRoute):
    """A route whose error answers (also authentication and parameters) carry Keboola's fields too."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handle(request)
            except (ApiError, AuthError, RequestValidationError) as exc:
                return await _keboola_error(request, exc)

        return route_handler


router = APIRouter(tags=["keboola"], route_class=KeboolaRoute)


# -- read mapping: eventlog event → Keboola event ------------------------------


def _created(time: str) -> str:
    return parse_time(time).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _string(value: Any) -> str | None:
    """Keboola's text fields are strings: details.keboola of an event written elsewhere may hold anything."""
    return value if isinstance(value, str) else None


class KeboolaToken(BaseModel):
    id: str | None
    name: str | None


class KeboolaEvent(BaseModel):
    """An event in Keboola's form (any eventlog event has one)."""

    id: str | None = Field(description="The journal sequence (`chain.seq`) as a string.")
    uuid: str = Field(description="The eventlog id.")
    event: str
    component: str
    message: str
    description: str
    type: Literal["info", "success", "warn", "error"]
    runId: str | None  # noqa: N815 - Keboola's field names
    created: str = Field(description="Keboola's time form, e.g. 2026-11-27T14:00:00+0000.")
    configurationId: str | None  # noqa: N815
    objectId: str | None  # noqa: N815
    objectName: str | None  # noqa: N815
    objectType: str | None  # noqa: N815
    context: dict[str, str]
    params: dict[str, Any]
    results: dict[str, Any]
    performance: dict[str, int | float]
    token: KeboolaToken | None


def to_keboola(document: Mapping[str, Any]) -> dict[str, Any]:
    """The Keboola form of any stored eventlog event."""
    details = _object(document.get("details"))
    written_here = isinstance(details.get(_KEBOOLA), dict)
    keboola = _object(details.get(_KEBOOLA))
    actor = _object(document.get("actor"))
    target = _object(document.get("target"))
    seq = _object(document.get("chain")).get("seq")
    kind = keboola.get("type")
    if kind not in TYPES:
        kind = _TYPE.get(str(document.get("outcome")), "info")
    component = keboola.get("component")
    if not isinstance(component, str):
        component = document.get("source", "api")
    context = {
        key: value
        for key, value in (("remoteAddr", actor.get("ip")), ("httpUserAgent", actor.get("user_agent")))
        if value is not None
    }
    return {
        "id": None if seq is None else str(seq),
        "uuid": document.get("id"),
        "event": document.get("action"),
        "component": component,
        "message": document.get("message", ""),
        "description": _string(keboola.get("description")) or "",
        "type": kind,
        "runId": _string(keboola.get("runId")),
        "created": _created(str(document["time"])),
        "configurationId": _string(keboola.get("configurationId")),
        "objectId": target.get("id"),
        "objectName": target.get("name"),
        "objectType": target.get("type"),
        "context": context,
        # An event written elsewhere shows its whole `details` as Keboola params, so nothing is hidden.
        "params": _object(keboola.get("params")) if written_here else details,
        "results": _object(keboola.get("results")),
        "performance": {"duration": duration} if _is_number(duration := keboola.get("duration")) else {},
        "token": {"id": actor.get("id"), "name": actor.get("name")} if actor.get("type") == "token" else None,
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json(events: list[dict[str, Any]] | dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(events), status_code=status, media_type="application/json")


# -- write mapping: Keboola event → EventIn -----------------------------------


def _invalid(pointer: str, message: str) -> ApiError:
    return ApiError(
        422,
        "invalid_event",
        "no event was stored; fix the listed fields and resend",
        [{"pointer": pointer, "message": message}],
    )


def _too_deep(text: bytes, pointer: str, max_details_depth: int, exc: orjson.JSONDecodeError) -> ApiError | None:
    """422 naming where `text` (the body, or the form field at `pointer`) nests too deep, if that is why orjson refused it."""
    if not parse_too_deep(exc):
        return None
    # details.keboola.params is level 3 of details: level 2 of the body, level 1 of a form field's text.
    path = too_deep_in_text(text, max_details_depth - (2 if pointer else 1))
    if path is None:
        return None
    return _invalid(
        pointer + json_pointer(path),
        f"is nested too deep for details ({max_details_depth} levels in all, two of them details.keboola.<field>)",
    )


async def _fields(request: Request, settings: Settings) -> dict[str, Any]:
    """The posted event as a dict: a JSON object, or form fields (`params`/`results` as JSON text, `duration` a number)."""
    body = await read_body(request, settings.max_request_bytes, discard_bytes=settings.max_request_discard_bytes)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        try:
            pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApiError(400, "invalid_form", f"the form body is not valid UTF-8 ({exc})") from None
        fields: dict[str, Any] = {}
        for key, value in pairs:
            if "[" in key:
                raise _invalid(json_pointer([key]), 'send `params` and `results` as JSON text, e.g. params={"a":1}')
            fields[key] = value
        for key in ("params", "results"):
            if isinstance(fields.get(key), str) and fields[key] != "":
                try:
                    fields[key] = orjson.loads(fields[key])
                except orjson.JSONDecodeError as exc:
                    deep = _too_deep(fields[key].encode(), f"/{key}", settings.max_details_depth, exc)
                    raise deep or _invalid(f"/{key}", "must be a JSON object, as text in a form") from None
        if isinstance(fields.get("duration"), str) and fields["duration"] != "":
            # A form has only text: its duration is read as a number here; in JSON it must be one.
            text = fields["duration"]
            try:
                fields["duration"] = int(text) if _INT.fullmatch(text) else float(text)
            except ValueError:
                raise _invalid("/duration", "must be a number of seconds") from None
        return fields
    if media == "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the event as application/json or application/x-www-form-urlencoded",
        )
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        deep = _too_deep(body, "", settings.max_details_depth, exc)
        raise deep or ApiError(400, "invalid_json", f"the body is not JSON ({exc}); send application/json") from None
    if not isinstance(payload, dict):
        raise _invalid("", f"got a JSON {type(payload).__name__}, expected an event object")
    return payload


def _present(fields: Mapping[str, Any], key: str) -> bool:
    """Keboola clients send unset fields as null (JSON) or leave them empty (forms)."""
    return fields.get(key) not in (None, "")


def _text(
    fields: Mapping[str, Any], key: str, *, required: bool = False, max_length: int = 256, number: bool = False
) -> str | None:
    """A string field; `number`: an integer is taken too, as its digits (Keboola ids are often numbers)."""
    if not _present(fields, key):
        if required:
            raise _invalid(f"/{key}", f"`{key}` is required")
        return None
    value = fields[key]
    if number and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _invalid(f"/{key}", "must be a string" + (" or an integer" if number else ""))
    if len(value) > max_length:
        raise _invalid(f"/{key}", f"at most {max_length} characters")
    return value


def _ident(fields: Mapping[str, Any], key: str, *, required: bool = False, number: bool = False) -> str | None:
    value = _text(fields, key, required=required, number=number)
    if value is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise _invalid(f"/{key}", "must not contain control characters")
    return value


def _problem(value: Any, levels: int) -> str | None:
    """Why `value` cannot be stored under details.keboola (too deep, or an integer JSON cannot hold)."""
    if isinstance(value, dict | list):
        if levels < 1:
            return "is nested too deep for details (8 levels in all, two of them details.keboola.<field>)"
        items = value.values() if isinstance(value, dict) else value
        return next((p for p in (_problem(item, levels - 1) for item in items) if p is not None), None)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INT:
        return f"holds the integer {value}, beyond ±(2**53-1); send it as a string"
    return None


def _custom(fields: Mapping[str, Any], key: str, levels: int) -> dict[str, Any] | None:
    if not _present(fields, key):
        return None
    value = fields[key]
    if value == []:  # PHP clients encode an empty array as []
        return None
    if not isinstance(value, dict):
        raise _invalid(f"/{key}", "must be a JSON object")
    problem = _problem(value, levels)
    if problem is not None:
        raise _invalid(f"/{key}", problem)
    return value or None


def _duration(fields: Mapping[str, Any]) -> int | float | None:
    if not _present(fields, "duration"):
        return None
    value = fields["duration"]  # a form's text was read as a number by _fields
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_SAFE_INT:
        raise _invalid("/duration", "must be a number of seconds, at least 0")
    return value


def _actor(request: Request, caller: Principal) -> dict[str, Any]:
    """The writer is the token: Keboola events belong to the token that sent them."""
    actor: dict[str, Any] = {"type": "token", "id": caller.token_id}
    name = caller.token_name
    if name and name.isprintable() and len(name) <= 512:
        actor["name"] = name
    ip = client_ip(request)
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        pass
    else:
        actor["ip"] = ip
    agent = request.headers.get("user-agent")
    if agent:
        actor["user_agent"] = agent[:1024]
    return actor


# Where an EventIn error comes from in the Keboola body.
_POINTERS = {
    ("action",): "/event",
    ("message",): "/message",
    ("target", "type"): "/objectType",
    ("target", "id"): "/objectId",
    ("target", "name"): "/objectName",
}


def to_event_in(
    fields: Mapping[str, Any], *, actor: dict[str, Any], ctx: Context, tenant: str, now: datetime
) -> EventIn:
    """A Keboola event body as an eventlog event; raises ApiError 422 with a pointer into the body."""
    for key, why in _SERVER_FIELDS.items():
        if key in fields:
            raise _invalid(f"/{key}", f"{why}; remove it")
    # Any other `source` is ignored, as Keboola ignores unknown fields; the service's own are refused outright.
    if reserved_source(fields.get("source")):
        raise _invalid("/source", f"`{fields['source']}` is reserved for the service's own events; remove `source`")
    component = _ident(fields, "component", required=True)
    assert component is not None
    message = fields.get("message")
    if not isinstance(message, str) or not message:
        raise _invalid("/message", "`message` is required" if not _present(fields, "message") else "must be a string")
    kind = _text(fields, "type") or "info"
    if kind not in TYPES:
        raise _invalid("/type", f"must be one of {', '.join(TYPES)}")
    levels = ctx.settings.max_details_depth - 2
    keboola: dict[str, Any] = {"component": component, "type": kind}
    description = _text(fields, "description", max_length=8192)
    optional: dict[str, Any] = {
        "description": description,
        "runId": _ident(fields, "runId", number=True),
        "configurationId": _ident(fields, "configurationId", number=True),
        "duration": _duration(fields),
        "params": _custom(fields, "params", levels),
        "results": _custom(fields, "results", levels),
    }
    keboola.update({key: value for key, value in optional.items() if value is not None})
    target = {
        part: value
        for part, key in (("type", "objectType"), ("id", "objectId"), ("name", "objectName"))
        if (value := _text(fields, key, max_length=512, number=key == "objectId")) is not None
    }
    data = {
        "action": _text(fields, "event") or f"ext.{component}.",
        "outcome": _OUTCOME.get(kind, "unknown"),
        "actor": actor,
        "target": target,
        "source": "api",
        "message": message,
        "details": {_KEBOOLA: keboola},
    }
    size = len(orjson.dumps(data))
    if size > ctx.settings.max_event_bytes:
        raise ApiError(
            413,
            "event_too_large",
            f"the event is {size} bytes; the limit is {ctx.settings.max_event_bytes}, shrink params, results or message",
        )
    try:
        return EventIn.model_validate(
            data,
            context=validation_context(ctx.settings, tenant, now),
        )
    except ValidationError as exc:
        errors = []
        for error in exc.errors()[:100]:
            path = error_path(error)
            loc = tuple(str(part) for part in path)
            pointer = _POINTERS.get(loc[:2]) or _POINTERS.get(loc[:1]) or ""
            if loc[:2] == ("details", _KEBOOLA) and len(path) > 2:
                pointer = json_pointer(path[2:])  # details.keboola.<field> is the body's <field>
            errors.append({"pointer": pointer, "message": error["msg"].removeprefix("Value error, ")})
        raise ApiError(422, "invalid_event", "no event was stored; fix the listed fields and resend", errors) from None


def _body_schema(*, form: bool) -> dict[str, Any]:
    """What `to_event_in` accepts, no narrower: unset fields may be null or empty; numbers stand for ids."""
    text: dict[str, Any] = {"type": "string"} if form else {"type": ["string", "integer", "null"]}
    custom: dict[str, Any] = (
        {"type": "string", "description": "A JSON object, as text."}
        if form
        else {"anyOf": [{"type": "object"}, {"type": "array", "maxItems": 0}, {"type": "null"}, {"const": ""}]}
    )
    duration: dict[str, Any] = (
        {"type": "string"} if form else {"anyOf": [{"type": "number", "minimum": 0}, {"type": ["string", "null"]}]}
    )
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["component", "message"],
        "properties": {
            "component": {**text, "description": "The writing component, e.g. keboola.ex-db-snowflake."},
            "message": {"type": "string", "minLength": 1, "maxLength": 8192},
            "type": {"enum": [*TYPES, ""] if form else [*TYPES, "", None], "default": "info"},
            "description": text,
            "runId": text,
            "configurationId": text,
            "duration": {**duration, "description": "Seconds."},
            "params": custom,
            "results": custom,
            "event": {**text, "description": "The eventlog action (default ext.<component>.)."},
            "objectType": text,
            "objectId": text,
            "objectName": text,
            # Set by the server; sending one is a 422.
            **dict.fromkeys(_SERVER_FIELDS, False),
        },
        "additionalProperties": True,
    }
    if form:
        schema["propertyNames"] = {"pattern": "^[^\\[]*$"}
    return schema


@router.post(
    "/v2/storage/events",
    status_code=201,
    summary="Keboola: create an event",
    response_model=KeboolaEvent,
    responses={
        201: {"description": "The stored event in Keboola's form (`id`, `uuid`, ...)."},
        **error_responses(
            400,
            413,
            415,
            409,
            422,
            503,
            keboola=True,
            notes={
                400: "The body is not JSON or not a UTF-8 form.",
                413: "The body or the event is too large.",
                415: "multipart/form-data; send JSON or a urlencoded form.",
                422: "An invalid field, named by a JSON pointer; nothing was stored.",
                409: "In a cluster: an event with this client id is being committed by another node; retry after"
                " `Retry-After` seconds for its receipt. Nothing was stored.",
            },
        ),
    },
    openapi_extra=request_body(
        {JSON: _body_schema(form=False), "application/x-www-form-urlencoded": _body_schema(form=True)},
        description="A Keboola event; fields other than those listed are ignored, as Keboola does.",
    ),
)
async def create_event(
    request: Request,
    caller: Annotated[Principal, Depends(principal("events:write", "eventlog.keboola.create", header=TOKEN_HEADER))],
    ctx: Annotated[Context, Depends(context)],
) -> Response:
    """Body (JSON or urlencoded form): `component` and `message` required; `type` (info, success, warn, error),
    `description`, `params`, `results`, `runId`, `configurationId`, `duration`, `event`, `objectType`, `objectId`,
    `objectName` optional. Other fields are ignored, as Keboola does; `id`, `uuid`, `created`, `token` are 422."""
    now = datetime.now(UTC)
    try:
        fields = await _fields(request, ctx.settings)
        event = to_event_in(fields, actor=_actor(request, caller), ctx=ctx, tenant=caller.tenant, now=now)
    except ApiError as exc:
        ctx.metrics.ingest.rejected.labels(exc.code).inc()
        raise
    prepared = prepare(event, tenant=caller.tenant, received_at=now)
    appended = await ctx.append(caller.tenant, [prepared])
    ctx.metrics.ingest.accepted.labels("api").inc()
    stored = {
        **prepared.body,
        "chain": {"stream": ctx.journal.stream, "seq": appended[0].seq, "hash": appended[0].hash},
    }
    return _json(to_keboola(stored), status=201)


# -- reads ---------------------------------------------------------------------


def _seq_is(seq: int) -> Node:
    return Term("chain.seq", seq)


async def _by_seq(store: SearchBackend, ctx: Context, scope: Scope, seq: int) -> dict[str, Any] | None:
    page = await store.search(scope, EventQuery(where=_seq_is(seq), limit=1))
    if page.documents:
        found: dict[str, Any] = orjson.loads(page.documents[0])
        return found
    # Acknowledged but not yet in the store: the journal is the source of truth.
    for entry in ctx.journal.read_seqs([seq]):
        if entry.tenant == scope.tenant:
            document: dict[str, Any] = orjson.loads(entry.document)
            return document
    return None


async def _by_uuid(store: SearchBackend, ctx: Context, scope: Scope, event_id: str) -> dict[str, Any] | None:
    raw = await store.get(scope, event_id)
    if raw is None:
        raw = ctx.journal.get(scope.tenant, event_id)
    if raw is None:
        return None
    document: dict[str, Any] = orjson.loads(raw)
    return document


async def _find(store: SearchBackend, ctx: Context, scope: Scope, key: str) -> dict[str, Any] | None:
    """An event by Keboola id (the sequence) or uuid (the eventlog id)."""
    if _ID.fullmatch(key):
        found = await _by_seq(store, ctx, scope, int(key))
        if found is not None:
            return found
    return await _by_uuid(store, ctx, scope, key)


async def _bound(store: SearchBackend, ctx: Context, scope: Scope, name: str, key: str | None) -> int | None:
    if key is None or key == "":
        return None
    if _ID.fullmatch(key):
        return int(key)
    found = await _by_uuid(store, ctx, scope, key)
    seq = _object(found.get("chain") if found else None).get("seq")
    if not isinstance(seq, int):
        raise ApiError(
            400,
            "invalid_parameters",
            f"`{name}` is an event id (a number) or uuid of your tenant; {key!r} is neither",
            [{"parameter": name, "message": "no such event id or uuid in your tenant"}],
        )
    return seq


def _component_is(component: str) -> Node:
    """What `to_keboola` shows as `component`: details.keboola.component, else the event's source."""
    written = Term(f"details.{_KEBOOLA}.component", component)
    if component not in _SOURCES:
        return written
    return Or((written, And((Not(Exists(f"details.{_KEBOOLA}.component")), Term("source", component)))))


@router.get(
    "/v2/storage/events",
    summary="Keboola: list events",
    response_model=list[KeboolaEvent],
    responses=error_responses(400, keboola=True),
)
async def list_events(
    request: Request,
    caller: Annotated[Principal, Depends(principal("events:read", "eventlog.keboola.list", header=TOKEN_HEADER))],
    store: Annotated[SearchBackend, Depends(backend)],
    ctx: Annotated[Context, Depends(context)],
    q: QParam = None,
    since_id: Annotated[
        str | None, Query(alias="sinceId", max_length=128, description="Only events after this id or uuid.")
    ] = None,
    max_id: Annotated[
        str | None, Query(alias="maxId", max_length=128, description="Only events before this id or uuid.")
    ] = None,
    component: Annotated[str | None, Query(max_length=256)] = None,
    configuration_id: Annotated[str | None, Query(alias="configurationId", max_length=256)] = None,
    run_id: Annotated[str | None, Query(alias="runId", max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    sort_order: Annotated[Literal["desc", "asc"], Query(alias="sortOrder", description="By time.")] = "desc",
) -> Response:
    if offset + limit > MAX_WINDOW:
        raise ApiError(
            400,
            "invalid_parameters",
            f"offset + limit may reach {MAX_WINDOW} events at most; page further with maxId (desc) or sinceId (asc)",
            [{"parameter": "offset", "message": f"offset + limit is {offset + limit}, above {MAX_WINDOW}"}],
        )
    scope = Scope(caller.tenant)
    conditions: list[Node] = [parse_q(q)]
    since = await while_connected(request, _bound(store, ctx, scope, "sinceId", since_id))
    if since is not None:
        conditions.append(Range("chain.seq", ">", since))
    before = await while_connected(request, _bound(store, ctx, scope, "maxId", max_id))
    if before is not None:
        conditions.append(Range("chain.seq", "<", before))
    if component:
        conditions.append(_component_is(component))
    if configuration_id:
        conditions.append(Term(f"details.{_KEBOOLA}.configurationId", configuration_id))
    if run_id:
        conditions.append(Term(f"details.{_KEBOOLA}.runId", run_id))
    where = all_of(*conditions)
    # The backend pages by keyset only: walk past `offset` events a page at a time.
    wanted = offset + limit
    documents: list[bytes] = []
    after: Position | None = None
    while len(documents) < wanted:
        query = EventQuery(where, sort_order, min(_PAGE, wanted - len(documents)), after)
        page = await while_connected(request, store.search(scope, query))
        documents.extend(page.documents)
        if not page.more or page.last is None:
            break
        after = page.last
    return _json([to_keboola(orjson.loads(raw)) for raw in documents[offset:wanted]])


@router.get(
    "/v2/storage/events/{event_id}",
    summary="Keboola: one event by id or uuid",
    response_model=KeboolaEvent,
    responses=error_responses(400, 404, keboola=True),
)
async def get_event(
    request: Request,
    event_id: Annotated[str, Path(max_length=128)],
    caller: Annotated[Principal, Depends(principal("events:read", "eventlog.keboola.get", header=TOKEN_HEADER))],
    store: Annotated[SearchBackend, Depends(backend)],
    ctx: Annotated[Context, Depends(context)],
) -> Response:
    scope = Scope(caller.tenant)
    document = await while_connected(request, _find(store, ctx, scope, event_id))
    if document is None:
        raise ApiError(404, "event_not_found", f"Event {event_id} not found")
    return _json(to_keboola(document))
