"""Pure ASGI middleware: every HTTP call of the host app becomes one audit event.

    app = AuditMiddleware(app, emitter, skip={"/healthz"})

It measures the exchange (method, route template, path, redacted query,
status, duration, bytes in and out, client address, user agent, request id),
asks the host's hooks who did what (`actor`, `action`, `target`, `tenant`),
builds an `EventIn` (source `middleware`) and hands it to an `Emitter` once
the app is done. Every call that reached the app is one event, also when the
app raised, was cancelled or ended with an exception group (raised again
unchanged afterwards); the status is the one the client got, an error after
the response is noted beside it. A cancellation cannot cut the hand-over
short. Websocket and lifespan scopes pass through untouched. An emitter or
hook failure is logged, never raised into the host.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import sys
import time
import types
from collections.abc import Callable, Collection, Coroutine, Generator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple, TypeVar
from urllib.parse import unquote_plus

import anyio
from pydantic import BaseModel
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventlog.caller import REQUEST_ID_HEADER, ClientAddress, request_id_of
from eventlog.model import METHOD_PATTERN, Actor, EventIn, RequestInfo, Target
from ingest.emitters import Emitter

_Model = TypeVar("_Model", bound=BaseModel)

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SECRET_HEADERS",
    "DEFAULT_SECRET_QUERY_WORDS",
    "AuditMiddleware",
    "Call",
    "ClientAddress",
    "Redaction",
    "default_action",
]

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")

# Limits of eventlog.model.RequestInfo / Actor / EventIn: what is longer is cut, never refused.
_MAX_PATH = 2048
_MAX_ROUTE = 512
_MAX_QUERY = 4096
_MAX_USER_AGENT = 1024
_MAX_ACTION = 256
_MAX_HEADER_VALUE = 1024
_METHOD = re.compile(METHOD_PATTERN)
_MAX_DURATION_MS = 86_400_000
_NO_TARGET: Final = Target()


_setattr = object.__setattr__


def _trusted(cls: type[_Model], values: dict[str, Any]) -> _Model:
    """`cls.model_construct(**values)` without its per-field loop: `values` holds every field, already checked.

    pydantic's own model_construct sets these four attributes and nothing else for a
    model without private attributes or post-init; the middleware's tests check
    that what it builds validates and serializes as eventlog's EventIn.
    """
    model = cls.__new__(cls)
    _setattr(model, "__dict__", values)
    _setattr(model, "__pydantic_fields_set__", set(values))
    _setattr(model, "__pydantic_extra__", None)
    _setattr(model, "__pydantic_private__", None)
    return model


@functools.lru_cache(maxsize=64)
def _method(method: str) -> str | None:
    """The method if RequestInfo.method accepts it (an RFC 9110 token), else None; an app knows few."""
    return method if _METHOD.fullmatch(method) else None


@functools.lru_cache(maxsize=4096)
def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(address)


DEFAULT_SECRET_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-storageapi-token",
    }
)
"""Request headers whose value is never recorded, even when named in `headers=`."""

DEFAULT_SECRET_QUERY_WORDS: Final = frozenset(
    {
        "token",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "key",
        "apikey",
        "auth",
        "authorization",
        "credential",
        "signature",
        "sig",
        "session",
        "sessionid",
        "cookie",
        "jwt",
        "otp",
        "accesstoken",
        "refreshtoken",
        "clientsecret",
        "privatekey",
    }
)
"""A query key is secret when one of its words (split at `_`, `-`, `.`, camelCase; a plural `s` dropped) is here."""


# -- redaction -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Redaction:
    """What the middleware never records: secret query values and secret header values."""

    query_words: frozenset[str] = DEFAULT_SECRET_QUERY_WORDS
    headers: frozenset[str] = DEFAULT_SECRET_HEADERS
    mask: str = "[REDACTED]"
    _verdicts: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def secret_key(self, key: str) -> bool:
        """Whether the query key `key` (raw, as in the URL) names a secret."""
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._judge(key)
            if len(self._verdicts) < 4096:  # keys of one app are few; hostile ones must not grow it
                self._verdicts[key] = verdict
        return verdict

    def _judge(self, key: str) -> bool:
        name = unquote_plus(key)
        words = [w for w in _NOT_ALNUM.split(_CAMEL.sub("_", name).lower()) if w]
        joined = "".join(words)
        candidates = {joined, joined.removesuffix("s"), *words, *(w.removesuffix("s") for w in words)}
        return not candidates.isdisjoint(self.query_words)

    def query(self, raw: str) -> str:
        """The query string with the value of every secret key replaced by the mask."""
        if not raw:
            return raw
        parts = raw.split("&")
        for index, part in enumerate(parts):
            key, equals, _ = part.partition("=")
            if self.secret_key(key):
                parts[index] = f"{key}={self.mask}" if equals else key
        return "&".join(parts)

    def header(self, name: str, value: str) -> str:
        return self.mask if name.lower() in self.headers else value


# -- what the hooks see --------------------------------------------------------


class Call(NamedTuple):
    """One finished HTTP exchange, as the hooks get it (after the app ran).

    `status` is the one the client got: 500 when the app sent none.
    """

    scope: Scope
    method: str
    path: str
    route: str | None
    status: int
    request_id: str
    client_ip: str | None
    user_agent: str | None

    @property
    def state(self) -> dict[str, Any]:
        """The request's state (what the app put in `request.state`)."""
        state: dict[str, Any] = self.scope.get("state", {})
        return state

    @property
    def request(self) -> HTTPConnection:
        """A Starlette view of the request: headers, path_params, state, url (the body is gone)."""
        return HTTPConnection(self.scope)


def default_action(call: Call) -> str:
    """`http.<METHOD> <route>`, or `http.<METHOD>` when no route matched."""
    return f"http.{call.method} {call.route}" if call.route else f"http.{call.method}"


ActorHook = Callable[[Call], Actor | None]
ActionHook = Callable[[Call], str | None]
TargetHook = Callable[[Call], Target | None]
TenantHook = Callable[[Call], str | None]


def _no_actor(call: Call) -> Actor | None:
    return None


def _no_target(call: Call) -> Target | None:
    return None


def _no_tenant(call: Call) -> str | None:
    return None


def _clean(value: str, limit: int) -> str:
    """`value` cut to `limit` characters with control characters replaced (eventlog refuses them)."""
    if len(value) > limit:
        value = value[:limit]
    if value.isprintable():
        return value
    return "".join(c if 0x20 <= ord(c) != 0x7F else "\ufffd" for c in value)


def _route_template(scope: Scope, root_path: str) -> str | None:
    """The matched route's template, with the (concrete) prefix of any Mount it sits in."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    inner_root: str = scope.get("root_path", "")
    if inner_root != root_path and inner_root.startswith(root_path):
        template = inner_root[len(root_path) :] + template
    return template


# -- the middleware ------------------------------------------------------------


class _Exchange:
    """What one request measured while it ran: the wrapped receive and send."""

    __slots__ = (
        "_receive",
        "_send",
        "answering",
        "bytes_in",
        "bytes_out",
        "ended",
        "request_id",
        "request_id_header",
        "root_path",
        "start_headers",
        "started",
        "status",
        "wall",
        "whole_file",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send, request_id: str, add_header: bool) -> None:
        self.started = time.perf_counter()
        self.wall = time.time()
        self.root_path: str = scope.get("root_path", "")  # the outer one: mounted apps change it on the way in
        self._receive = receive
        self._send = send
        self.request_id = request_id
        self.request_id_header = request_id.encode() if add_header else None
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.ended = 0.0
        self.start_headers: Iterable[tuple[bytes, bytes]] = ()
        self.whole_file = False
        self.answering: BaseException | None = None

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.bytes_in += len(message.get("body", b""))
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start" and self.request_id_header is not None:
            headers = message.get("headers", ())
            for name, _ in headers:
                if name.lower() == REQUEST_ID_HEADER:  # the app named the request itself
                    break
            else:
                message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, self.request_id_header)]}
        await self._send(message)
        # Counted once the server took it: a message whose send raised never reached the client.
        if kind == "http.response.body":
            self.bytes_out += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.ended = time.perf_counter()
        elif kind == "http.response.start":
            self.status = message["status"]
            self.start_headers = message.get("headers", ())
            # An error handler (Starlette's ServerErrorMiddleware) answers from inside its `except`, then
            # raises the error again: that error is the cause of this response, not something after it.
            self.answering = sys.exception()
        elif kind == "http.response.pathsend":
            self.whole_file = True
            self.ended = time.perf_counter()

    def received(self, declared: bytes | None) -> int:
        """Body bytes the app read; the declared Content-Length when it read none."""
        if not self.bytes_in and declared is not None and declared.isdigit():
            return int(declared)
        return self.bytes_in

    def sent(self) -> int:
        """Body bytes sent; for a file sent whole (pathsend), its Content-Length."""
        if self.whole_file:
            for name, value in self.start_headers:
                if name.lower() == b"content-length" and value.isdigit():
                    return int(value)
        return self.bytes_out


class _Answer(NamedTuple):
    """How the exchange ended for the client: the status it got, whether the call failed, and why."""

    status: int
    failed: bool
    details: dict[str, Any]


def _answer(exchange: _Exchange, error: BaseException | None) -> _Answer:
    """The status the client got and how the answer ended, from what was sent and what the app raised.

    An error raised after the last body part left (a dependency's teardown, a
    background task) changes nothing the client got: it is noted, the status
    stays. An error the response answers (an error handler's 500) is the call's
    failure. An error or a cancellation before the end cut the answer short
    (`incomplete`); when nothing was sent the server answers 500, and only a
    cancellation (or another BaseException) may leave the client without even that.
    """
    sent = exchange.status
    status = sent if 100 <= sent <= 599 else 500
    details: dict[str, Any] = {}
    if error is None:
        incomplete = not exchange.ended  # the client went away mid-answer, or the app sent nothing
    else:
        details["error"] = type(error).__name__
        if exchange.ended and error is not exchange.answering:
            details["error_after_response"] = True
            return _Answer(status, status >= 400, details)
        incomplete = not exchange.ended and (bool(sent) or not isinstance(error, Exception))
    if incomplete:
        details["incomplete"] = True
    return _Answer(status, status >= 400 or error is not None, details)


class _Seen(NamedTuple):
    """What the middleware reads from the request headers."""

    user_agent: str | None
    forwarded: str | None
    x_forwarded_for: str | None
    content_length: bytes | None
    recorded: dict[str, str]


@types.coroutine
def _resume(emitting: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, Any, None]:
    """Await the rest of `emitting`, which already ran up to its first pause (where it waits on `waiting`)."""
    while True:
        try:
            sent = yield waiting
        except BaseException as exc:  # noqa: BLE001 - thrown in by the event loop: the coroutine's to handle
            try:
                waiting = emitting.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting = emitting.send(sent)
            except StopIteration:
                return


async def _hand_over(emitting: Coroutine[Any, Any, None], *, after_error: bool) -> None:
    """Await `emitting` (the emitter's `emit`) so that no cancellation of the request can cut it short.

    A shield costs microseconds, so it is raised only where it may matter: when the
    app raised (its cancel scope may be cancelled already) and when `emit` pauses at
    all. An emit that hands over without pausing (HttpEmitter) has run to its end
    before anything could cancel it. The shield holds off anyio and trio cancel
    scopes; a plain asyncio `Task.cancel()` strikes once: in the app, or in an emit
    that pauses before it handed the event over (which `Emitter` asks it not to do).
    """
    if after_error:
        with anyio.CancelScope(shield=True):
            await emitting
        return
    try:
        waiting = emitting.send(None)
    except StopIteration:
        return
    with anyio.CancelScope(shield=True):
        await _resume(emitting, waiting)


class AuditMiddleware:
    """Records every HTTP call of the wrapped app as an audit event through `emitter`.

    Hooks (each gets the finished `Call`):
      actor   -> Actor | None: who; the client address and user agent are filled in when it leaves them out.
      action  -> str | None: what; default `http.<METHOD> <route>`; None leaves the call unrecorded.
      target  -> Target | None: what was acted on.
      tenant  -> str | None: handed to the emitter (in-process emitters that write for several tenants).
    `skip`: exact paths never recorded (health checks). `headers`: request headers
    copied into `details.headers` (secret ones masked). `trusted_proxies`: addresses
    or CIDRs whose Forwarded / X-Forwarded-For is believed.
    """

    def __init__(
        self,
        app: ASGIApp,
        emitter: Emitter,
        *,
        actor: ActorHook = _no_actor,
        action: ActionHook = default_action,
        target: TargetHook = _no_target,
        tenant: TenantHook = _no_tenant,
        redact: Redaction | None = None,
        trusted_proxies: Iterable[str] = (),
        skip: Collection[str] = (),
        headers: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.emitter = emitter
        self._actor = actor
        self._action = action
        self._target = target
        self._tenant = tenant
        self._redact = redact or Redaction()
        self._client = ClientAddress(trusted_proxies)
        self._skip = frozenset(skip)
        self._headers = frozenset(h.lower().encode("latin-1") for h in headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._skip:
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        # An outer middleware that already named the request (eventlog's access log) owns the id and its header.
        request_id = state.get("request_id")
        owner = not isinstance(request_id, str) or not request_id
        if owner:
            request_id = request_id_of(scope["headers"])
            state["request_id"] = request_id
        exchange = _Exchange(scope, receive, send, str(request_id), owner)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except BaseException as exc:  # cancellation and exception groups too: every call that ran is recorded
            await self._record(scope, exchange, exc)
            raise
        await self._record(scope, exchange, None)

    async def _record(self, scope: Scope, exchange: _Exchange, error: BaseException | None) -> None:
        try:
            event, tenant = self._event(scope, exchange, error)
        except Exception:
            log.exception("audit event not built", extra={"path": scope.get("path"), "request_id": exchange.request_id})
            return
        if event is None:
            return
        try:
            await _hand_over(self.emitter.emit(event, tenant=tenant), after_error=error is not None)
        except Exception as exc:  # noqa: BLE001 - the host's answer never depends on its audit trail
            log.error(
                "audit event not handed to the emitter",
                extra={"error": repr(exc), "request_id": exchange.request_id, "event": event.model_dump_json()},
            )

    def _event(
        self, scope: Scope, exchange: _Exchange, error: BaseException | None
    ) -> tuple[EventIn | None, str | None]:
        duration = (exchange.ended or time.perf_counter()) - exchange.started
        answer = _answer(exchange, error)
        seen = self._read_headers(scope["headers"])
        call = self._call(scope, exchange, answer.status, seen)
        action = self._action_of(call)
        if action is None:
            return None, None
        path = _clean(call.path, _MAX_PATH)
        request = self._request_info(call, exchange, path, duration, seen.content_length)
        target = self._target_of(call)
        tenant = self._hook(self._tenant, call, "tenant")
        event = _trusted(
            EventIn,
            {
                "id": None,
                "time": datetime.fromtimestamp(exchange.wall, UTC),
                "action": action,
                "outcome": "failure" if answer.failed else "success",
                "actor": self._actor_of(call),
                "target": target,
                "request": request,
                "source": "middleware",
                "message": f"{call.method} {path[:256]} answered {answer.status}",
                "details": {"headers": seen.recorded, **answer.details} if seen.recorded else answer.details,
            },
        )
        return event, tenant if isinstance(tenant, str) else None

    def _read_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> _Seen:
        user_agent = forwarded = x_forwarded_for = None
        content_length: bytes | None = None
        recorded: dict[str, str] = {}
        for name, value in headers:
            if name == b"user-agent":
                user_agent = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                text = value.decode("latin-1")
                x_forwarded_for = f"{x_forwarded_for},{text}" if x_forwarded_for else text
            elif name == b"forwarded":
                text = value.decode("latin-1")
                forwarded = f"{forwarded},{text}" if forwarded else text
            elif name == b"content-length":
                content_length = value
            if name in self._headers:
                key = name.decode("latin-1")
                recorded[key] = _clean(self._redact.header(key, value.decode("latin-1")), _MAX_HEADER_VALUE)
        return _Seen(user_agent, forwarded, x_forwarded_for, content_length, recorded)

    def _call(self, scope: Scope, exchange: _Exchange, status: int, seen: _Seen) -> Call:
        client = scope.get("client")
        return Call(
            scope=scope,
            method=scope["method"],
            path=scope["path"],
            route=_route_template(scope, exchange.root_path),
            status=status,
            request_id=exchange.request_id,
            client_ip=self._client(client[0] if client else None, seen.forwarded, seen.x_forwarded_for),
            user_agent=_clean(seen.user_agent, _MAX_USER_AGENT) if seen.user_agent is not None else None,
        )

    def _action_of(self, call: Call) -> str | None:
        """The action hook's answer cut to what eventlog takes; the default when the hook fails or gives no text."""
        try:
            action: Any = self._action(call)
        except Exception:
            log.exception("audit action hook failed; the default action is recorded", extra={"path": call.path})
            action = default_action(call)
        if action is None:
            return None
        text = _clean(action, _MAX_ACTION) if isinstance(action, str) else ""
        if not text:
            log.error("audit action hook gave no action; the default is recorded", extra={"path": call.path})
            text = _clean(default_action(call), _MAX_ACTION)
        return text

    def _request_info(
        self, call: Call, exchange: _Exchange, path: str, duration: float, declared: bytes | None
    ) -> RequestInfo:
        raw_query: bytes = call.scope.get("query_string", b"")
        # Every value below is checked or cut here to what EventIn accepts, so the models are built
        # without validating them again (validation would cost more than the rest of the middleware);
        # tests/unit/ingest/test_middleware.py proves the result validates, hostile input included.
        return _trusted(
            RequestInfo,
            {
                "method": _method(call.method),
                "path": path,
                "route": _clean(call.route, _MAX_ROUTE) if call.route is not None else None,
                "query": _clean(self._redact.query(raw_query.decode("latin-1")), _MAX_QUERY) if raw_query else None,
                "status": call.status,
                "duration_ms": min(round(max(duration, 0.0) * 1000, 3), _MAX_DURATION_MS),
                "request_id": exchange.request_id,
                "bytes_in": exchange.received(declared),
                "bytes_out": exchange.sent(),
            },
        )

    def _target_of(self, call: Call) -> Target:
        target = self._hook(self._target, call, "target")
        if target is not None and not isinstance(target, Target):
            log.error("audit target hook gave no Target; recorded without it", extra={"path": call.path})
            target = None
        return target or _NO_TARGET

    def _actor_of(self, call: Call) -> Actor:
        """The hook's actor, with the client address and user agent the middleware saw when it left them out."""
        ip = _ip(call.client_ip) if call.client_ip is not None else None
        actor = self._hook(self._actor, call, "actor")
        if actor is not None and not isinstance(actor, Actor):
            log.error("audit actor hook gave no Actor; recorded without it", extra={"path": call.path})
            actor = None
        if actor is None:
            return _trusted(Actor, {"type": None, "id": None, "name": None, "ip": ip, "user_agent": call.user_agent})
        return _trusted(
            Actor,
            {
                "type": actor.type,
                "id": actor.id,
                "name": actor.name,
                "ip": actor.ip if actor.ip is not None else ip,
                "user_agent": actor.user_agent if actor.user_agent is not None else call.user_agent,
            },
        )

    def _hook(self, hook: Callable[[Call], Any], call: Call, name: str) -> Any:
        try:
            return hook(call)
        except Exception:
            log.exception("audit hook failed; recorded without it", extra={"hook": name, "path": call.path})
            return None
