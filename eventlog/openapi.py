"""The OpenAPI document's shared parts: the error body, the error answers of a route, inlined body schemas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

JSON = "application/json"


class ItemError(BaseModel):
    """One problem: where (a parameter, or an event's index and a JSON pointer) and why."""

    model_config = ConfigDict(extra="allow")

    message: str | None = Field(None, description="What is wrong and what to send instead.")
    parameter: str | None = Field(None, description="The query, path or body parameter at fault.")
    index: int | None = Field(None, description="Position of the event in the batch (null: the batch itself).")
    pointer: str | None = Field(None, description="RFC 6901 JSON pointer into the body.")
    # An `invalid_query` names the place in `q` instead of a message (the answer's `message` has the sentence).
    position: int | None = Field(None, description="Character offset in `q` where the query went wrong.")
    found: str | None = Field(None, description="What the query has there.")
    expected: str | None = Field(None, description="What the query language allows there.")
    known_fields: list[str] | None = Field(None, description="The fields `q` may name, when it named another.")


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: str = Field(description="A stable code, e.g. `invalid_parameters`, `missing_scope`.")
    message: str = Field(description="A sentence that says what to do next.")
    errors: list[ItemError] | None = Field(None, description="Each problem found, when there are several.")


class KeboolaErrorBody(ErrorBody):
    """An error of the Keboola facade: eventlog's fields and Keboola's `code` and `status`."""

    code: str = Field(description="Keboola's code, e.g. `validation.failed`, `storage.tokenInvalid`.")
    status: Literal["error"]


_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "required": True, "schema": {"type": "integer"}}
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "The scheme to authenticate with.",
        "required": True,
        "schema": {"type": "string"},
    }
}

# What each status means on any route; a route adds its own sentence through `notes`.
_MEANING: dict[int, str] = {
    400: "A malformed parameter, query or body; `errors` names each one.",
    401: "No token, or an unknown, revoked or expired one.",
    403: "The token lacks the scope, or names another tenant without `admin`.",
    404: "No such resource in the caller's tenant.",
    409: "A conflicting operation is in progress.",
    413: "The body is too large.",
    415: "The body's media type is not accepted.",
    422: "The body is well formed but invalid; nothing was stored.",
    429: "Too many failed authentications from this address; wait `Retry-After` seconds.",
    503: (
        "The node cannot do it now (the journal cannot commit, or a cluster's shared state in OpenSearch does not"
        " answer); nothing was stored, retry after `Retry-After` seconds."
    ),
}
_HEADERS: dict[int, dict[str, Any]] = {401: _WWW_AUTHENTICATE, 429: _RETRY_AFTER, 503: _RETRY_AFTER}
# With OpenSearch as the store, tokens are checked against the cluster's index: it may not answer (503).
AUTH_STATUSES = (401, 403, 429, 503)
"""What authentication and scopes can answer on every route that takes a token."""


def error_responses(
    *statuses: int,
    authenticated: bool = True,
    keboola: bool = False,
    notes: Mapping[int, str] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route for the error statuses it can answer (authenticated adds 401, 403, 429)."""
    wanted = {*statuses, *(AUTH_STATUSES if authenticated else ())}
    unknown = wanted - set(_MEANING)
    if unknown:
        raise ValueError(f"no meaning declared for status {sorted(unknown)}; add it to _MEANING")
    model = KeboolaErrorBody if keboola else ErrorBody
    answers: dict[int | str, dict[str, Any]] = {}
    for status in sorted(wanted):
        answer: dict[str, Any] = {"model": model, "description": (notes or {}).get(status, _MEANING[status])}
        if status in _HEADERS:
            answer["headers"] = _HEADERS[status]
        answers[status] = answer
    return answers


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its `$defs` put in place of their `$ref`s.

    Inside an OpenAPI document `#/$defs/...` would point at the document's root, so a
    schema given through `openapi_extra` must be self-contained. Models must not recurse.
    """
    definitions: dict[str, Any] = schema.get("$defs", {})

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name in seen:
                    raise ValueError(f"{name} refers to itself; a recursive model cannot be inlined")
                rest = {k: resolve(v, seen) for k, v in node.items() if k != "$ref"}
                return {**resolve(definitions[name], (*seen, name)), **rest}
            return {k: resolve(v, seen) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema, ())
    return resolved


def request_body(content: Mapping[str, dict[str, Any]], *, description: str) -> dict[str, Any]:
    """`openapi_extra` declaring the body of a route that reads it itself (content: media type → schema)."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {media: {"schema": schema} for media, schema in content.items()},
        }
    }


def _drop_validation_422(document: dict[str, Any]) -> None:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.get("responses", {})
            schema = answers.get("422", {}).get("content", {}).get(JSON, {}).get("schema", {})
            if schema.get("$ref", "").endswith("/HTTPValidationError"):
                del answers["422"]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def install(app: FastAPI) -> None:
    """The app's document without FastAPI's own 422: errors.install answers a bad parameter with a 400."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            _drop_validation_422(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
