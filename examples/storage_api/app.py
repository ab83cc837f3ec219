"""The Storage API example: routes, and the composition root that mounts eventlog's audit middleware.

    uvicorn examples.storage_api.app:create_app --factory

Every call (but /healthz) becomes one event in eventlog through a remote
`HttpEmitter` that batches, retries and spools to disk when eventlog is away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp

from eventlog.model import Target
from examples.storage_api import audit
from examples.storage_api.settings import Settings
from examples.storage_api.store import Bucket, Conflict, NotFound, Storage, Table, Token
from ingest.emitters import HttpEmitter
from ingest.middleware import AuditMiddleware

# -- request and response bodies ---------------------------------------------------


class BucketIn(BaseModel):
    name: str = Field(min_length=1, max_length=96, pattern=r"^[A-Za-z0-9_-]+$")
    stage: Literal["in", "out"] = "in"
    description: str = Field("", max_length=1024)


class TableIn(BaseModel):
    name: str = Field(min_length=1, max_length=96, pattern=r"^[A-Za-z0-9_-]+$")
    columns: list[str] = Field(min_length=1, max_length=100)


class RowsIn(BaseModel):
    rows: list[list[str]] = Field(max_length=10_000)


class TokenIn(BaseModel):
    description: str = Field(min_length=1, max_length=256)


def _bucket(bucket: Bucket) -> dict[str, Any]:
    return {
        "id": bucket.id,
        "name": bucket.name,
        "stage": bucket.stage,
        "description": bucket.description,
        "created": bucket.created.isoformat(),
    }


def _table(table: Table) -> dict[str, Any]:
    return {
        "id": table.id,
        "bucket": {"id": table.bucket_id},
        "name": table.name,
        "columns": table.columns,
        "rowsCount": len(table.rows),
        "created": table.created.isoformat(),
    }


def _token(token: Token) -> dict[str, Any]:
    return {"id": token.id, "description": token.description, "created": token.created.isoformat()}


# -- dependencies ------------------------------------------------------------------


async def storage(request: Request) -> Storage:
    store: Storage = request.app.state.storage
    return store


async def caller(
    request: Request,
    store: Annotated[Storage, Depends(storage)],
    x_storageapi_token: Annotated[str | None, Header()] = None,
) -> Token:
    token = store.authenticate(x_storageapi_token) if x_storageapi_token else None
    if token is None:
        raise HTTPException(401, "send a valid X-StorageApi-Token")
    request.state.token = token  # the audit trail's actor
    return token


Store = Annotated[Storage, Depends(storage)]
Caller = Annotated[Token, Depends(caller)]


def _found(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None


# -- routes ------------------------------------------------------------------------


def _routes(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v2/storage/buckets")
    async def list_buckets(store: Store, _: Caller) -> list[dict[str, Any]]:
        return [_bucket(b) for b in store.buckets.values()]

    @app.post("/v2/storage/buckets", status_code=201)
    async def create_bucket(body: BucketIn, request: Request, store: Store, _: Caller) -> dict[str, Any]:
        bucket: Bucket = _found(store.create_bucket, body.name, body.stage, body.description)
        request.state.audit_target = Target(type="bucket", id=bucket.id, name=bucket.name)
        return _bucket(bucket)

    @app.get("/v2/storage/buckets/{bucket_id}")
    async def bucket_detail(bucket_id: str, store: Store, _: Caller) -> dict[str, Any]:
        return _bucket(_found(store.bucket, bucket_id))

    @app.delete("/v2/storage/buckets/{bucket_id}", status_code=204)
    async def delete_bucket(bucket_id: str, store: Store, _: Caller, force: bool = False) -> Response:
        _found(store.delete_bucket, bucket_id, force=force)
        return Response(status_code=204)

    @app.post("/v2/storage/buckets/{bucket_id}/tables", status_code=201)
    async def create_table(bucket_id: str, body: TableIn, store: Store, _: Caller) -> dict[str, Any]:
        return _table(_found(store.create_table, bucket_id, body.name, body.columns))

    @app.get("/v2/storage/tables")
    async def list_tables(store: Store, _: Caller) -> list[dict[str, Any]]:
        return [_table(t) for t in store.tables.values()]

    @app.get("/v2/storage/tables/{table_id}")
    async def table_detail(table_id: str, store: Store, _: Caller) -> dict[str, Any]:
        return _table(_found(store.table, table_id))

    @app.delete("/v2/storage/tables/{table_id}", status_code=204)
    async def delete_table(table_id: str, store: Store, _: Caller) -> Response:
        _found(store.delete_table, table_id)
        return Response(status_code=204)

    @app.post("/v2/storage/tables/{table_id}/rows")
    async def import_rows(table_id: str, body: RowsIn, store: Store, _: Caller) -> dict[str, int]:
        table: Table = _found(store.table, table_id)
        bad = [i for i, row in enumerate(body.rows) if len(row) != len(table.columns)]
        if bad:
            raise HTTPException(422, f"rows {bad[:10]} do not have {len(table.columns)} columns")
        table.rows.extend(body.rows)
        return {"importedRows": len(body.rows), "rowsCount": len(table.rows)}

    @app.get("/v2/storage/tables/{table_id}/export")
    async def export_table(table_id: str, store: Store, _: Caller, repeat: int = 1) -> StreamingResponse:
        """The table as CSV, streamed row by row (`repeat` copies, to make it large)."""
        table: Table = _found(store.table, table_id)

        async def csv() -> AsyncIterator[bytes]:
            yield (",".join(table.columns) + "\n").encode()
            for _ in range(max(1, min(repeat, 1000))):
                for row in table.rows:
                    yield (",".join(row) + "\n").encode()
                await asyncio.sleep(0)

        return StreamingResponse(csv(), media_type="text/csv")

    @app.post("/v2/storage/tables/{table_id}/snapshots")
    async def snapshot_table(table_id: str, store: Store, _: Caller) -> dict[str, str]:
        _found(store.table, table_id)
        raise RuntimeError("the snapshot backend is not configured")  # an unhandled error: a 500

    @app.get("/v2/storage/tokens")
    async def list_tokens(store: Store, _: Caller) -> list[dict[str, Any]]:
        return [_token(t) for t in store.tokens()]

    @app.post("/v2/storage/tokens", status_code=201)
    async def create_token(body: TokenIn, request: Request, store: Store, _: Caller) -> dict[str, Any]:
        token, secret = store.create_token(body.description)
        request.state.audit_target = Target(type="token", id=token.id, name=token.description)
        return {**_token(token), "token": secret}

    @app.get("/v2/storage/tokens/verify")
    async def verify_token(token: Caller) -> dict[str, Any]:
        return _token(token)


# -- composition root ----------------------------------------------------------------


def _emitter(settings: Settings) -> HttpEmitter:
    if settings.eventlog_token is None:
        raise ValueError("STORAGE_API_EVENTLOG_TOKEN is required while STORAGE_API_AUDIT is on")
    return HttpEmitter(
        settings.eventlog_url,
        settings.eventlog_token.get_secret_value(),
        settings.spool_dir,
        batch_max_events=settings.batch_max_events,
        flush_interval_seconds=settings.flush_interval_seconds,
        queue_max_events=settings.queue_max_events,
        request_timeout_seconds=settings.request_timeout_seconds,
        max_backoff_seconds=settings.max_backoff_seconds,
        close_timeout_seconds=settings.close_timeout_seconds,
    )


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The Storage API, wrapped in eventlog's audit middleware unless `audit` is off."""
    settings = settings or Settings()  # the required fields come from the environment
    emitter = _emitter(settings) if settings.audit else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if emitter is not None:
                await stack.enter_async_context(emitter)  # close() sends or spools what is pending
            yield

    app = FastAPI(title="Storage API (eventlog example)", lifespan=lifespan)
    app.state.storage = Storage(settings.master_token.get_secret_value())
    _routes(app)
    if emitter is None:
        return app
    # Outermost, around FastAPI's own error middleware: the event and the X-Request-ID header
    # cover exactly what the client got, the 500 that middleware writes for an exception included.
    return AuditMiddleware(
        app,
        emitter,
        actor=audit.actor,
        action=audit.action,
        target=audit.target,
        skip={"/healthz"},
        headers=["x-storageapi-token", "x-kbc-runid"],
        trusted_proxies=settings.trusted_proxies,
    )
