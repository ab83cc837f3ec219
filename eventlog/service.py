"""The composition root: builds every part from one Settings and assembles the FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

from fastapi import FastAPI

from eventlog import errors
from eventlog.access_log import AccessLog
from eventlog.auth import Authenticator, FailureLimiter
from eventlog.checkpoints import Checkpointer, load_or_create_key
from eventlog.context import Context
from eventlog.fanout import FanOut
from eventlog.journal import Journal
from eventlog.metrics import Metrics
from eventlog.ops_api import router as ops_router
from eventlog.self_audit import SelfAudit
from eventlog.settings import Settings
from eventlog.token_api import router as token_router
from eventlog.tokens import TokenStore
from ingest.api import router as ingest_router
from search.api import router as search_router
from search.sqlite_store import SqliteStore

log = logging.getLogger(__name__)


def stream_name(settings: Settings) -> str:
    return settings.stream or socket.gethostname()[:64] or "node"


def create_app(settings: Settings) -> FastAPI:
    metrics = Metrics()
    journal = Journal(
        settings.journal_path,
        stream=stream_name(settings),
        max_group_events=settings.group_commit_max_events,
        observe_commit=metrics.observe_commit,
    )
    store = SqliteStore(settings.search_path)
    fanout = FanOut(
        journal,
        [store],
        metrics,
        batch_events=settings.fanout_batch_events,
        poll_seconds=settings.fanout_poll_seconds,
        max_backoff_seconds=settings.fanout_max_backoff_seconds,
    )
    journal.subscribe(fanout.notify)
    tokens = TokenStore(settings.tokens_path)
    auth = Authenticator(tokens, FailureLimiter(settings.auth_failure_limit, settings.auth_failure_window_seconds))
    key = load_or_create_key(settings.signing_key_path)
    checkpointer = Checkpointer(journal, key, settings.checkpoint_interval_seconds)
    ctx = Context(settings=settings, journal=journal, tokens=tokens, auth=auth, fanout=fanout, metrics=metrics)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        journal.open()
        fanout.start()
        ticker = asyncio.create_task(checkpointer.run(), name="checkpoints")
        log.info("eventlog started", extra={"data_dir": str(settings.data_dir), "stream": journal.stream})
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await fanout.drain(timeout_seconds=5.0)
            await fanout.stop()
            await checkpointer.checkpoint()
            journal.close()
            tokens.close()
            log.info("eventlog stopped", extra={"last_seq": journal.last_seq})

    app = FastAPI(
        title="eventlog",
        summary="Immutable, tamper-evident audit events: ingest, search, export.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
    )
    app.state.ctx = ctx
    app.state.backend = store
    errors.install(app)
    app.include_router(ingest_router)
    app.include_router(search_router)
    app.include_router(token_router)
    app.include_router(ops_router)
    app.add_middleware(SelfAudit, journal=journal)
    app.add_middleware(AccessLog, trusted_proxies=settings.trusted_proxies)
    return app
