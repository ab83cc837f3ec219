"""The API's error answers: a status, a code, a sentence that says what to do, and item errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match, Mount

from eventlog.auth import AuthError

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = list(errors)
        self.headers = headers or {}


def json_pointer(parts: Sequence[int | str]) -> str:
    """RFC 6901 pointer for a location such as ('events', 3, 'actor', 'ip')."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def error_response(
    status: int, code: str, message: str, errors: Sequence[dict[str, Any]] = (), headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"error": code, "message": message}
    if errors:
        body["errors"] = list(errors)
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on the request's path.

    Starlette's 405 names only the methods of the first route whose path matched, but
    one path often has several routes (GET and POST /v1/events). Mounts (the UI files)
    match any method and answer their own 405.
    """
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.errors, exc.headers)

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> Response:
        metrics = getattr(request.app.state, "ctx", None)
        if metrics is not None:
            metrics.metrics.auth.failures.labels(exc.code).inc()
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"parameter": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]), "message": e["msg"]}
            for e in exc.errors()
        ]
        return error_response(400, "invalid_parameters", "fix the parameters listed in `errors`", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and message == "Not Found":
            message = "no such endpoint; the API is described at /docs"
        if exc.status_code == 405:
            allowed = allowed_methods(request) or [m.strip() for m in headers.get("Allow", "").split(",") if m.strip()]
            headers["Allow"] = ", ".join(allowed)
            message = f"{request.method} is not served here; use {' or '.join(allowed) or 'another path'}"
        return error_response(exc.status_code, code, message, headers=headers)
