"""AuditMiddleware: what one HTTP call records, with plain ASGI, Starlette and FastAPI apps in process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import anyio
import anyio.to_thread
import pytest
import uuid_utils
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, HTTPException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from eventlog.caller import ClientAddress
from eventlog.model import Actor, EventIn, Target
from ingest.middleware import AuditMiddleware, Call, Redaction, default_action

PEER = ("10.9.8.7", 41000)


class Recorder:
    """An emitter that keeps what it gets (and when, relative to the response)."""

    def __init__(self, fail: bool = False) -> None:
        self.events: list[EventIn] = []
        self.tenants: list[str | None] = []
        self.fail = fail

    async def start(self) -> None:
        return None

    async def emit(self, event: EventIn, *, tenant: str | None = None) -> None:
        if self.fail:
            raise RuntimeError("emitter broke")
        self.events.append(event)
        self.tenants.append(tenant)

    async def close(self) -> None:
        return None

    @property
    def one(self) -> EventIn:
        assert len(self.events) == 1, self.events
        return self.events[0]


# -- a small Starlette app -------------------------------------------------------


async def _table(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["table_id"]})


async def _item(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["item_id"]})


async def _create(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"size": len(body)}, status_code=201)


async def _status(request: Request) -> Response:
    return PlainTextResponse("x", status_code=int(request.path_params["code"]))


async def _boom(request: Request) -> Response:
    raise RuntimeError("the endpoint failed")


async def _chunks() -> AsyncIterator[bytes]:
    for i in range(4):
        await asyncio.sleep(0.05)
        yield f"chunk-{i};".encode() * 10


async def _stream(request: Request) -> Response:
    return StreamingResponse(_chunks(), media_type="text/plain")


async def _broken_chunks() -> AsyncIterator[bytes]:
    yield b"first"
    raise RuntimeError("the stream failed")


async def _broken_stream(request: Request) -> Response:
    return StreamingResponse(_broken_chunks())


async def _own_request_id(request: Request) -> Response:
    return PlainTextResponse("x", headers={"X-Request-ID": "app-chosen"})


async def _echo_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


async def _healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def _starlette() -> Starlette:
    inner = [Route("/items/{item_id}", _item)]
    return Starlette(
        routes=[
            Route("/v2/storage/tables/{table_id}", _table),
            Route("/v2/storage/buckets", _create, methods=["POST"]),
            Route("/status/{code:int}", _status),
            Route("/boom", _boom),
            Route("/stream", _stream),
            Route("/broken-stream", _broken_stream),
            Route("/own-id", _own_request_id),
            Route("/healthz", _healthz),
            Mount("/api", routes=[Mount("/v2", routes=inner)]),
            Mount("/by-version/{version}", routes=inner),
            WebSocketRoute("/ws", _echo_ws),
        ]
    )


def _client(recorder: Recorder, **options: Any) -> TestClient:
    app = AuditMiddleware(_starlette(), recorder, **options)
    return TestClient(app, client=PEER)


# -- what is recorded --------------------------------------------------------------


def test_records_route_template_and_every_request_field() -> None:
    recorder = Recorder()
    with _client(recorder) as client:
        answer = client.get(
            "/v2/storage/tables/in.c-main.sales", params={"limit": "5"}, headers={"User-Agent": "kbc-cli/1.0"}
        )
    assert answer.status_code == 200
    event = recorder.one
    assert event.action == "http.GET /v2/storage/tables/{table_id}"
    assert event.outcome == "success"
    assert event.source == "middleware"
    assert event.actor == Actor(ip="10.9.8.7", user_agent="kbc-cli/1.0")
    request = event.request
    assert request.method == "GET"
    assert request.route == "/v2/storage/tables/{table_id}"
    assert request.path == "/v2/storage/tables/in.c-main.sales"
    assert request.query == "limit=5"
    assert request.status == 200
    assert request.bytes_in == 0
    assert request.bytes_out == len(answer.content)
    assert request.duration_ms is not None
    assert request.duration_ms >= 0
    assert request.request_id == answer.headers["x-request-id"]
    assert event.message == "GET /v2/storage/tables/in.c-main.sales answered 200"
    assert event.time is not None
    # What the emitter gets is what eventlog's ingest accepts.
    assert EventIn.model_validate_json(event.model_dump_json(exclude_none=True)) == event


def test_mounted_route_carries_the_mount_prefix() -> None:
    recorder = Recorder()
    with _client(recorder) as client:
        client.get("/api/v2/items/42")
        client.get("/by-version/7/items/42")
    # A Mount's own path parameters show with their values (only the innermost route's template is known).
    assert [e.request.route for e in recorder.events] == ["/api/v2/items/{item_id}", "/by-version/7/items/{item_id}"]


def test_fastapi_router_prefix_is_part_of_the_route() -> None:
    router = APIRouter(prefix="/v2/storage")

    @router.delete("/buckets/{bucket_id}", status_code=204)
    async def delete_bucket(bucket_id: str) -> None:
        return None

    app = FastAPI()
    app.include_router(router)
    recorder = Recorder()
    app.add_middleware(AuditMiddleware, emitter=recorder)
    with TestClient(app) as client:
        assert client.delete("/v2/storage/buckets/in.c-main").status_code == 204
    assert recorder.one.request.route == "/v2/storage/buckets/{bucket_id}"
    assert recorder.one.action == "http.DELETE /v2/storage/buckets/{bucket_id}"


def test_unmatched_path_has_no_route_and_a_plain_action() -> None:
    recorder = Recorder()
    with _client(recorder) as client:
        assert client.get("/nothing/here").status_code == 404
    event = recorder.one
    assert event.request.route is None
    assert event.action == "http.GET"
    assert event.outcome == "failure"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "success"), (204, "success"), (302, "success"), (399, "success"), (400, "failure"), (404, "failure")],
)
def test_outcome_follows_the_status(status: int, outcome: str) -> None:
    recorder = Recorder()
    with _client(recorder) as client:
        client.get(f"/status/{status}", follow_redirects=False)
    assert (recorder.one.request.status, recorder.one.outcome) == (status, outcome)


def test_request_body_bytes_are_counted() -> None:
    recorder = Recorder()
    with _client(recorder) as client:
        answer = client.post("/v2/storage/buckets", content=b"x" * 12345)
    assert answer.json() == {"size": 12345}
    assert recorder.one.request.bytes_in == 12345
    assert recorder.one.request.status == 201


async def test_declared_length_counts_when_the_app_reads_no_body() -> None:
    recorder = Recorder()

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("too large", status_code=413)(scope, receive, send)

    await _call(AuditMiddleware(refuse, recorder), method="PUT", headers=[(b"content-length", b"9000")], body=b"")
    assert recorder.one.request.bytes_in == 9000


def test_streaming_response_is_measured_to_its_end() -> None:
    recorder = Recorder()
    with _client(recorder) as client:
        answer = client.get("/stream")
    assert answer.status_code == 200
    event = recorder.one
    assert event.request.bytes_out == len(answer.content) == 4 * 10 * len(b"chunk-0;")
    assert event.request.duration_ms is not None
    assert event.request.duration_ms >= 190


def test_exception_is_recorded_as_500_and_raised() -> None:
    recorder = Recorder()
    with _client(recorder) as client, pytest.raises(RuntimeError, match="the endpoint failed"):
        client.get("/boom")
    event = recorder.one
    assert (event.request.status, event.outcome) == (500, "failure")
    assert event.details == {"error": "RuntimeError"}


def test_exception_mid_stream_keeps_the_status_sent_and_is_incomplete() -> None:
    recorder = Recorder()
    with _client(recorder) as client, pytest.raises(RuntimeError, match="the stream failed"):
        client.get("/broken-stream")
    assert (recorder.one.request.status, recorder.one.outcome) == (200, "failure")
    assert recorder.one.details == {"error": "RuntimeError", "incomplete": True}
    assert recorder.one.request.bytes_out == len(b"first")


async def test_a_client_gone_mid_stream_is_marked_incomplete() -> None:
    recorder = Recorder()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await StreamingResponse(_chunks())(scope, receive, send)

    disconnected: list[Message] = [{"type": "http.request", "body": b""}, {"type": "http.disconnect"}]

    async def receive() -> Message:
        return disconnected.pop(0) if disconnected else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        return None

    scope: Scope = {"type": "http", "method": "GET", "path": "/stream", "headers": [], "client": PEER}
    await AuditMiddleware(app, recorder)(scope, receive, send)
    assert recorder.one.details == {"incomplete": True}
    assert recorder.one.request.status == 200


# -- how the call ended: errors, errors after the response, cancellation -------------


async def _failing_teardown() -> AsyncIterator[str]:
    yield "session"
    raise RuntimeError("teardown failed")


async def _answering_teardown() -> AsyncIterator[str]:
    try:
        yield "session"
    except ValueError as exc:
        raise HTTPException(409, "conflict") from exc


def _fail() -> None:
    raise RuntimeError("background task failed")


def _behaviours() -> FastAPI:
    """A FastAPI app with one endpoint per way a call can end."""
    api = FastAPI()

    @api.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @api.get("/http-exception")
    async def http_exception() -> None:
        raise HTTPException(404, "no such table")

    @api.get("/raises")
    async def raises() -> None:
        raise RuntimeError("the endpoint failed")

    @api.get("/teardown-fails")
    async def teardown_fails(session: Annotated[str, Depends(_failing_teardown)]) -> dict[str, str]:
        return {"session": session}

    @api.get("/teardown-answers")
    async def teardown_answers(session: Annotated[str, Depends(_answering_teardown)]) -> None:
        raise ValueError(session)

    @api.get("/background-fails")
    async def background_fails(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(_fail)
        return {"queued": True}

    @api.post("/refused-then-background-fails")
    async def refused_then_background_fails(tasks: BackgroundTasks) -> Response:
        tasks.add_task(_fail)
        return JSONResponse({"error": "too large"}, status_code=413, background=tasks)

    @api.get("/stream-fails")
    async def stream_fails() -> StreamingResponse:
        return StreamingResponse(_broken_chunks())

    @api.get("/is-disconnected")
    async def is_disconnected(request: Request) -> dict[str, bool]:
        return {"disconnected": await request.is_disconnected()}

    @api.get("/cancelled")
    async def cancelled() -> None:
        raise asyncio.CancelledError

    @api.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await _echo_ws(websocket)

    return api


_ERROR = {"error": "RuntimeError"}
_AFTER = {"error": "RuntimeError", "error_after_response": True}

# method, path -> the status the client gets, the event's outcome and details.
BEHAVIOURS: list[tuple[str, str, int, str, dict[str, Any]]] = [
    ("GET", "/ok", 200, "success", {}),
    ("GET", "/http-exception", 404, "failure", {}),
    ("GET", "/raises", 500, "failure", _ERROR),
    ("GET", "/teardown-fails", 200, "success", _AFTER),
    ("GET", "/teardown-answers", 409, "failure", {}),
    ("GET", "/background-fails", 200, "success", _AFTER),
    ("POST", "/refused-then-background-fails", 413, "failure", _AFTER),
    ("GET", "/stream-fails", 200, "failure", {**_ERROR, "incomplete": True}),
    ("GET", "/is-disconnected", 200, "success", {}),
    ("GET", "/cancelled", 500, "failure", {"error": "CancelledError", "incomplete": True}),
]


@pytest.mark.parametrize(("method", "path", "status", "outcome", "details"), BEHAVIOURS)
def test_the_event_tells_the_status_the_client_got_and_how_the_call_ended(
    method: str, path: str, status: int, outcome: str, details: dict[str, Any]
) -> None:
    recorder = Recorder()
    with TestClient(AuditMiddleware(_behaviours(), recorder), raise_server_exceptions=False) as client:
        answer = client.request(method, path)
    assert answer.status_code == status
    event = recorder.one
    assert (event.request.status, event.outcome, event.details) == (status, outcome, details)
    assert EventIn.model_validate_json(event.model_dump_json(exclude_none=True)) == event


def test_every_http_call_is_one_event_whatever_the_app_did() -> None:
    recorder = Recorder()
    with TestClient(AuditMiddleware(_behaviours(), recorder), raise_server_exceptions=False) as client:
        for method, path, *_ in BEHAVIOURS:
            client.request(method, path)
        with client.websocket_connect("/ws") as ws:
            ws.send_text("hello")
            assert ws.receive_text() == "hello"
        client.get("/ok")
    assert [e.request.path for e in recorder.events] == [path for _, path, *_ in BEHAVIOURS] + ["/ok"]


def test_an_error_is_raised_again_unchanged_after_the_response_was_recorded() -> None:
    recorder = Recorder()
    with TestClient(AuditMiddleware(_behaviours(), recorder)) as client:
        with pytest.raises(RuntimeError, match="background task failed"):
            client.get("/background-fails")
        with pytest.raises(RuntimeError, match="teardown failed"):
            client.get("/teardown-fails")
    assert [(e.request.status, e.details) for e in recorder.events] == [(200, _AFTER), (200, _AFTER)]


def test_the_answer_of_an_exception_handler_is_not_an_error_after_the_response() -> None:
    async def unavailable(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "try again"}, status_code=503)

    api = _behaviours()
    api.add_exception_handler(Exception, unavailable)
    recorder = Recorder()
    with TestClient(AuditMiddleware(api, recorder), raise_server_exceptions=False) as client:
        assert client.get("/raises").status_code == 503
        assert client.get("/background-fails").status_code == 200
    assert [(e.request.status, e.outcome, e.details) for e in recorder.events] == [
        (503, "failure", _ERROR),
        (200, "success", _AFTER),
    ]


class _Pausing(Recorder):
    """An emitter that pauses before it keeps the event (where a cancellation would strike)."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = anyio.Event()
        self.resume = anyio.Event()

    async def emit(self, event: EventIn, *, tenant: str | None = None) -> None:
        self.paused.set()
        await self.resume.wait()
        assert await anyio.to_thread.run_sync(lambda: 42) == 42  # results flow back through the hand-over
        await super().emit(event, tenant=tenant)


async def _response(send: Send, *, complete: bool = True) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"part", "more_body": not complete})


async def _stuck_before_answering(send: Send) -> None:
    await anyio.sleep_forever()


async def _stuck_mid_answer(send: Send) -> None:
    await _response(send, complete=False)
    await anyio.sleep_forever()


async def _stuck_after_answering(send: Send) -> None:
    await _response(send)
    await anyio.sleep_forever()  # a background task that never ends


_CANCELLED = {
    "before the response": (_stuck_before_answering, 500, "failure", {"incomplete": True}),
    "mid-answer": (_stuck_mid_answer, 200, "failure", {"incomplete": True}),
    "after the response": (_stuck_after_answering, 200, "success", {"error_after_response": True}),
}


_CANCELLED_ERROR = {"asyncio": "CancelledError", "trio": "Cancelled"}


class _Run:
    """The middleware over an app that does `behaviour`, with what the app and the server saw raised."""

    def __init__(self, behaviour: Callable[[Send], Awaitable[None]], emitter: Recorder) -> None:
        self.reached = anyio.Event()
        self.raised_in_app: list[BaseException] = []
        self.raised_to_server: list[BaseException] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                self.reached.set()
                await behaviour(send)
            except BaseException as exc:
                self.raised_in_app.append(exc)
                raise

        self.middleware = AuditMiddleware(app, emitter)

    async def serve(self) -> None:
        scope: Scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "client": PEER}

        async def receive() -> Message:
            await anyio.sleep_forever()
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            return None

        try:
            await self.middleware(scope, receive, send)
        except BaseException as exc:
            self.raised_to_server.append(exc)
            raise

    def raised_unchanged(self) -> bool:
        """The server got the very exception the app raised, once."""
        return len(self.raised_in_app) == 1 and self.raised_to_server == self.raised_in_app


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("when", list(_CANCELLED))
def test_a_call_cancelled_by_a_cancel_scope_is_one_event_and_the_cancellation_goes_on(backend: str, when: str) -> None:
    behaviour, status, outcome, flags = _CANCELLED[when]
    emitter = _Pausing()
    emitter.resume.set()  # it still pauses: a cancelled scope would strike there without a shield
    run = _Run(behaviour, emitter)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(run.serve)
            await run.reached.wait()
            await anyio.sleep(0.01)
            group.cancel_scope.cancel()
        assert group.cancel_scope.cancelled_caught

    anyio.run(main, backend=backend)
    event = emitter.one
    assert (event.request.status, event.outcome) == (status, outcome)
    assert event.details == {"error": _CANCELLED_ERROR[backend], **flags}
    assert run.raised_unchanged()


@pytest.mark.parametrize("when", list(_CANCELLED))
async def test_a_cancelled_asyncio_task_is_one_event_and_stays_cancelled(when: str) -> None:
    behaviour, status, outcome, flags = _CANCELLED[when]
    emitter = _Pausing()
    emitter.resume.set()
    run = _Run(behaviour, emitter)
    task = asyncio.create_task(run.serve())
    await run.reached.wait()
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    event = emitter.one
    assert (event.request.status, event.outcome) == (status, outcome)
    assert event.details == {"error": "CancelledError", **flags}
    assert run.raised_unchanged()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_cancellation_while_the_emitter_pauses_does_not_cut_the_emit(backend: str) -> None:
    emitter = _Pausing()
    run = _Run(_response, emitter)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(run.serve)
            await emitter.paused.wait()
            group.cancel_scope.cancel()
            emitter.resume.set()

    anyio.run(main, backend=backend)
    assert (emitter.one.request.status, emitter.one.details) == (200, {})
    assert run.raised_in_app == run.raised_to_server == []


async def _group_before_answering(send: Send) -> None:
    raise BaseExceptionGroup("workers stopped", [KeyboardInterrupt(), ValueError("bad row")])


async def _group_after_answering(send: Send) -> None:
    await _response(send)
    raise BaseExceptionGroup("workers stopped", [SystemExit(1)])


async def _exit_mid_answer(send: Send) -> None:
    await _response(send, complete=False)
    raise SystemExit(1)


@pytest.mark.parametrize(
    ("behaviour", "status", "details"),
    [
        (_group_before_answering, 500, {"error": "BaseExceptionGroup", "incomplete": True}),
        (_group_after_answering, 200, {"error": "BaseExceptionGroup", "error_after_response": True}),
        (_exit_mid_answer, 200, {"error": "SystemExit", "incomplete": True}),
    ],
)
async def test_a_base_exception_is_one_event_and_raised_again_unchanged(
    behaviour: Callable[[Send], Awaitable[None]], status: int, details: dict[str, Any]
) -> None:
    recorder = Recorder()
    run = _Run(behaviour, recorder)
    with pytest.raises((BaseExceptionGroup, SystemExit)):
        await run.serve()
    assert (recorder.one.request.status, recorder.one.details) == (status, details)
    assert run.raised_unchanged()


# -- the method -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PROPFIND", "M-SEARCH", "PRIVATE_METHOD", "BREW", "X.1~!#$%&'*+^`|"])
async def test_every_rfc_9110_method_token_is_recorded(method: str) -> None:
    recorder = Recorder()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("x")(scope, receive, send)

    await _call(AuditMiddleware(app, recorder), method=method)
    event = recorder.one
    assert (event.request.method, event.action) == (method, f"http.{method}")
    assert EventIn.model_validate_json(event.model_dump_json(exclude_none=True)) == event


@pytest.mark.parametrize("method", ["GÉT", "G T", "A/B", "GET\n", "X" * 17, ""])
async def test_a_method_that_is_no_token_is_left_out(method: str) -> None:
    recorder = Recorder()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("x")(scope, receive, send)

    await _call(AuditMiddleware(app, recorder), method=method)
    assert recorder.one.request.method is None
    assert EventIn.model_validate_json(recorder.one.model_dump_json(exclude_none=True)) == recorder.one


def test_health_checks_in_skip_are_not_recorded() -> None:
    recorder = Recorder()
    with _client(recorder, skip={"/healthz"}) as client:
        client.get("/healthz")
        client.get("/status/200")
    assert [e.request.path for e in recorder.events] == ["/status/200"]


def test_websocket_passes_through_unrecorded() -> None:
    recorder = Recorder()
    with _client(recorder) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("hello")
        assert ws.receive_text() == "hello"
    assert recorder.events == []


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
async def test_non_http_scopes_get_the_servers_receive_and_send_untouched(kind: str) -> None:
    seen: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {"type": f"{kind}.startup" if kind == "lifespan" else "websocket.connect"}

    async def send(message: Message) -> None:
        return None

    scope: Scope = {"type": kind, "path": "/ws", "headers": []}
    recorder = Recorder()
    await AuditMiddleware(app, recorder)(scope, receive, send)
    assert seen == [(scope, receive, send)]
    assert "state" not in scope
    assert recorder.events == []


# -- the request id ------------------------------------------------------------------


def test_request_id_from_the_client_is_kept_and_returned() -> None:
    recorder = Recorder()
    with _client(recorder) as client:
        answer = client.get("/status/200", headers={"X-Request-ID": "req-42.a:b"})
    assert answer.headers.get_list("x-request-id") == ["req-42.a:b"]
    assert recorder.one.request.request_id == "req-42.a:b"


@pytest.mark.parametrize("sent", [None, "", "has space", "x" * 129, "semi;colon"])
def test_missing_or_unsafe_request_id_is_replaced_by_a_uuid7(sent: str | None) -> None:
    recorder = Recorder()
    headers = {} if sent is None else {"X-Request-ID": sent}
    with _client(recorder) as client:
        answer = client.get("/status/200", headers=headers)
    returned = answer.headers.get_list("x-request-id")
    assert len(returned) == 1
    assert uuid_utils.UUID(returned[0]).version == 7
    assert recorder.one.request.request_id == returned[0]


def test_a_request_id_set_by_the_app_is_not_doubled() -> None:
    recorder = Recorder()
    with _client(recorder) as client:
        answer = client.get("/own-id")
    assert answer.headers.get_list("x-request-id") == ["app-chosen"]


async def test_request_id_of_an_outer_middleware_is_adopted_and_not_added_again() -> None:
    recorder = Recorder()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("x")(scope, receive, send)

    sent = await _call(AuditMiddleware(app, recorder), state={"request_id": "from-access-log"})
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert all(name != b"x-request-id" for name, _ in start["headers"])
    assert recorder.one.request.request_id == "from-access-log"


# -- redaction -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ""),
        ("limit=5&offset=10", "limit=5&offset=10"),
        ("token=abc", "token=[REDACTED]"),
        ("access_token=abc&x=1", "access_token=[REDACTED]&x=1"),
        ("apiKey=abc", "apiKey=[REDACTED]"),
        ("api-key=abc", "api-key=[REDACTED]"),
        ("API_KEY=abc", "API_KEY=[REDACTED]"),
        ("key=abc", "key=[REDACTED]"),
        ("keys=a,b", "keys=[REDACTED]"),
        ("password=hunter2&user=jane", "password=[REDACTED]&user=jane"),
        ("client_secret=s&grant_type=x", "client_secret=[REDACTED]&grant_type=x"),
        ("X-Amz-Signature=ab12&X-Amz-Credential=AKIA%2F", "X-Amz-Signature=[REDACTED]&X-Amz-Credential=[REDACTED]"),
        ("sessionid=1&session_id=2&sid=3", "sessionid=[REDACTED]&session_id=[REDACTED]&sid=3"),
        ("refresh%5Ftoken=abc", "refresh%5Ftoken=[REDACTED]"),
        ("token", "token"),
        ("token=", "token=[REDACTED]"),
        ("keyword=audit&monkey=1&tokenizer=icu", "keyword=audit&monkey=1&tokenizer=icu"),
        ("a=1&&token=x&=y", "a=1&&token=[REDACTED]&=y"),
        ("q=token:abc", "q=token:abc"),
    ],
)
def test_query_redaction(raw: str, expected: str) -> None:
    assert Redaction().query(raw) == expected


def test_redaction_words_can_be_extended() -> None:
    redaction = Redaction(query_words=Redaction().query_words | {"sid"})
    assert redaction.query("sid=3&a=1") == "sid=[REDACTED]&a=1"


def test_recorded_query_is_redacted() -> None:
    recorder = Recorder()
    with _client(recorder) as client:
        client.get("/status/200?token=s3cr3t&limit=5&password=p")
    assert recorder.one.request.query == "token=[REDACTED]&limit=5&password=[REDACTED]"
    assert "s3cr3t" not in recorder.one.model_dump_json()


def test_recorded_headers_mask_secrets() -> None:
    recorder = Recorder()
    headers = {
        "Authorization": "Bearer abc",
        "Cookie": "session=1",
        "X-StorageApi-Token": "kbc-token",
        "X-Tenant": "acme",
    }
    names = ["authorization", "cookie", "x-storageapi-token", "x-tenant", "x-absent"]
    with _client(recorder, headers=names) as client:
        client.get("/status/200", headers=headers)
    assert recorder.one.details["headers"] == {
        "authorization": "[REDACTED]",
        "cookie": "[REDACTED]",
        "x-storageapi-token": "[REDACTED]",
        "x-tenant": "acme",
    }
    assert "kbc-token" not in recorder.one.model_dump_json()


# -- the client address -----------------------------------------------------------


TRUSTED = ["10.0.0.0/8", "192.168.1.1", "2001:db8::/32"]


@pytest.mark.parametrize(
    ("peer", "forwarded", "xff", "expected"),
    [
        # No forwarding header, or an untrusted peer: the peer.
        ("203.0.113.9", None, None, "203.0.113.9"),
        ("203.0.113.9", None, "1.2.3.4", "203.0.113.9"),
        ("203.0.113.9", "for=1.2.3.4", None, "203.0.113.9"),
        ("10.0.0.5", None, None, "10.0.0.5"),
        # A trusted proxy: the rightmost hop that is not a trusted proxy.
        ("10.0.0.5", None, "1.2.3.4", "1.2.3.4"),
        ("10.0.0.5", None, "6.6.6.6, 1.2.3.4", "1.2.3.4"),
        ("10.0.0.5", None, "6.6.6.6, 1.2.3.4, 10.1.1.1, 192.168.1.1", "1.2.3.4"),
        ("192.168.1.1", None, "1.2.3.4", "1.2.3.4"),
        ("192.168.1.2", None, "1.2.3.4", "192.168.1.2"),
        ("10.0.0.5", None, "1.2.3.4:5555", "1.2.3.4"),
        ("10.0.0.5", None, "[2001:db9::1]:443", "2001:db9::1"),
        ("10.0.0.5", None, "2001:db9::1", "2001:db9::1"),
        ("10.0.0.5", None, "10.2.2.2, 10.3.3.3", "10.2.2.2"),
        ("10.0.0.5", None, "garbage", None),
        ("10.0.0.5", None, "1.2.3.4, unknown", None),
        ("10.0.0.5", None, " , 1.2.3.4 ,", "1.2.3.4"),
        # RFC 7239 Forwarded, which wins over X-Forwarded-For.
        ("10.0.0.5", "for=1.2.3.4", None, "1.2.3.4"),
        ("10.0.0.5", "for=6.6.6.6, for=1.2.3.4;proto=https;by=10.0.0.5", None, "1.2.3.4"),
        ("10.0.0.5", 'for="[2001:db9::17]:4711"', None, "2001:db9::17"),
        ("10.0.0.5", "For=1.2.3.4", "5.5.5.5", "1.2.3.4"),
        ("10.0.0.5", "for=unknown", None, None),
        ("10.0.0.5", "for=_hidden", None, None),
        ("10.0.0.5", "proto=https", None, "10.0.0.5"),
        # IPv6 peers and proxies.
        ("2001:db8::1", None, "1.2.3.4", "1.2.3.4"),
        ("2001:db9::1", None, "1.2.3.4", "2001:db9::1"),
        # A peer that is no address (a unix socket, a test client) has none.
        ("testclient", None, "1.2.3.4", None),
        (None, None, "1.2.3.4", None),
    ],
)
def test_client_address(peer: str | None, forwarded: str | None, xff: str | None, expected: str | None) -> None:
    assert ClientAddress(TRUSTED)(peer, forwarded, xff) == expected


def test_forwarded_headers_reach_the_event_only_from_trusted_proxies() -> None:
    recorder = Recorder()
    with _client(recorder, trusted_proxies=["10.9.8.7"]) as client:
        client.get("/status/200", headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.4"})
    with _client(recorder) as client:
        client.get("/status/200", headers={"X-Forwarded-For": "198.51.100.4"})
    assert [str(e.actor.ip) for e in recorder.events] == ["198.51.100.4", "10.9.8.7"]


# -- hooks -------------------------------------------------------------------------


def test_hooks_name_actor_action_target_and_tenant() -> None:
    recorder = Recorder()

    def actor(call: Call) -> Actor:
        return Actor(type="token", id=call.request.headers["x-token-id"], name="CI")

    def action(call: Call) -> str | None:
        return None if call.status == 404 else f"storage.tables.{call.method.lower()}"

    def target(call: Call) -> Target | None:
        table = call.request.path_params.get("table_id")
        return Target(type="table", id=table) if table else None

    with _client(recorder, actor=actor, action=action, target=target, tenant=lambda call: "acme") as client:
        client.get("/v2/storage/tables/in.c-main.t", headers={"X-Token-ID": "t-1", "User-Agent": "ua"})
        client.get("/nothing")
    event = recorder.one
    assert event.action == "storage.tables.get"
    assert event.actor == Actor(type="token", id="t-1", name="CI", ip="10.9.8.7", user_agent="ua")
    assert event.target == Target(type="table", id="in.c-main.t")
    assert recorder.tenants == ["acme"]


def test_a_failing_hook_falls_back_to_what_the_middleware_measured(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()

    def broken(call: Call) -> Any:
        raise KeyError("nope")

    with _client(recorder, actor=broken, action=broken, target=broken) as client:
        assert client.get("/status/200").status_code == 200
    event = recorder.one
    assert event.action == "http.GET /status/{code:int}"
    assert event.actor == Actor(ip="10.9.8.7", user_agent="testclient")
    assert sum("hook failed" in r.message for r in caplog.records) == 3


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ({"action": lambda call: ""}, "gave no action"),
        ({"action": lambda call: 42}, "gave no action"),
        ({"actor": lambda call: {"id": "u1"}}, "gave no Actor"),
        ({"target": lambda call: "table"}, "gave no Target"),
    ],
)
def test_a_wrong_hook_value_is_replaced_by_the_default(
    hooks: dict[str, Any], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    with _client(recorder, **hooks) as client:
        client.get("/status/200")
    event = recorder.one
    assert event.action == "http.GET /status/{code:int}"
    assert event.actor == Actor(ip="10.9.8.7", user_agent="testclient")
    assert event.target == Target()
    assert any(message in r.message for r in caplog.records)
    assert EventIn.model_validate_json(event.model_dump_json(exclude_none=True)) == event


def test_an_actor_hook_may_name_the_address_itself() -> None:
    recorder = Recorder()
    with _client(recorder, actor=lambda call: Actor(id="u1", ip="192.0.2.1", user_agent="own")) as client:
        client.get("/status/200")
    assert recorder.one.actor == Actor(id="u1", ip="192.0.2.1", user_agent="own")


def test_default_action() -> None:
    call = Call({}, "PATCH", "/a/1", "/a/{id}", 200, "r", None, None)
    assert default_action(call) == "http.PATCH /a/{id}"


# -- the emitter never hurts the host ------------------------------------------------


def test_a_failing_emitter_does_not_fail_the_request(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR), _client(Recorder(fail=True)) as client:
        answer = client.get("/status/200")
    assert answer.status_code == 200
    assert any("not handed to the emitter" in r.message for r in caplog.records)


async def test_the_event_is_emitted_after_the_response_is_complete() -> None:
    sent: list[Message] = []
    at_emit: list[int] = []

    class Watcher(Recorder):
        async def emit(self, event: EventIn, *, tenant: str | None = None) -> None:
            at_emit.append(len(sent))
            await super().emit(event, tenant=tenant)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await StreamingResponse(iter([b"a", b"b", b"c"]))(scope, receive, send)

    await _call(AuditMiddleware(app, Watcher()), sent=sent)
    assert at_emit == [len(sent)]
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


# -- hostile input always makes a valid event ----------------------------------------


async def _call(
    app: ASGIApp,
    *,
    method: str = "GET",
    path: str = "/",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    client: tuple[str, int] | None = PEER,
    state: dict[str, Any] | None = None,
    sent: list[Message] | None = None,
) -> list[Message]:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": query,
        "headers": headers or [],
        "client": client,
        "server": ("127.0.0.1", 8000),
    }
    if state is not None:
        scope["state"] = state
    sent = [] if sent is None else sent
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=3000)
_LATIN1 = st.binary(max_size=2000).map(lambda b: b.decode("latin-1").encode("latin-1"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST", "M-SEARCH", "PROPFIND", "X" * 20, "GÉT", "get"]),
    path=_TEXT,
    query=_LATIN1,
    user_agent=_LATIN1,
    request_id=_LATIN1,
    forwarded=_LATIN1,
    status=st.sampled_from([100, 200, 404, 599, 600, 999]),
    peer=st.sampled_from(["10.0.0.1", "::1", "testclient", "999.1.1.1"]),
)
def test_hostile_input_still_makes_an_event_eventlog_accepts(
    method: str,
    path: str,
    query: bytes,
    user_agent: bytes,
    request_id: bytes,
    forwarded: bytes,
    status: int,
    peer: str,
) -> None:
    recorder = Recorder()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    headers = [
        (b"user-agent", user_agent),
        (b"x-request-id", request_id),
        (b"x-forwarded-for", forwarded),
        (b"forwarded", forwarded),
    ]
    middleware = AuditMiddleware(app, recorder, trusted_proxies=["0.0.0.0/0", "::/0"], headers=["user-agent"])
    asyncio.run(_call(middleware, method=method, path=path, query=query, headers=headers, client=(peer, 1)))
    event = recorder.one
    assert EventIn.model_validate_json(event.model_dump_json(exclude_none=True)) == event
    assert event.source == "middleware"
