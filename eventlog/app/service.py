"""The composition root: builds every part from one Settings and assembles the FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from opensearchpy import OpenSearch

from eventlog import errors, openapi
from eventlog.access_log import AccessLog
from eventlog.append import receipts_recorded
from eventlog.auth import Authenticator, FailureCounter, FailureLimiter
from eventlog.checkpoints import Checkpointer, load_or_create_key, public_pem
from eventlog.claims import ClaimsUnavailable
from eventlog.context import Context
from eventlog.deadletter_api import router as deadletter_router
from eventlog.fanout import FanOut
from eventlog.journal import Journal
from eventlog.metrics import Metrics
from eventlog.model import Actor, Target, fit_target
from eventlog.ops_api import router as ops_router
from eventlog.settings import Settings
from eventlog.sink import Sink
from eventlog.sinks.syslog import SyslogSink
from eventlog.token_api import router as token_router
from eventlog.tokens import SqliteTokenStore, TokenStore
from eventlog.ui import mount_ui
from ingest.api import router as ingest_router
from ingest.cloudtrail.mapping import limits_of
from ingest.cloudtrail.poll import CloudTrailPoller
from ingest.emitters import JournalEmitter
from ingest.middleware import AuditMiddleware, Call
from retention.api import RetentionParts
from retention.api import router as retention_router
from retention.archive import Archive
from retention.holds import SqliteHoldStore
from retention.lock import Lock, SqliteLock
from retention.policy import Policy
from retention.run import Retention
from retention.scheduler import Scheduler
from search.api import SearchParts
from search.api import router as search_router
from search.backend import SearchBackend
from search.cursor import CursorKey, Cursors, FileCursorKey
from search.keboola import router as keboola_router
from search.opensearch.backend import OpenSearchBackend
from search.opensearch.claims import OpenSearchClaims
from search.opensearch.client import build_client
from search.opensearch.expiry import OpenSearchExpiry
from search.opensearch.failures import OpenSearchFailureCounter
from search.opensearch.holds import OpenSearchHoldStore
from search.opensearch.lock import OpenSearchLock
from search.opensearch.sink import OpenSearchSink
from search.opensearch.streams import Claimant, StreamLease, StreamRegistry, StreamTaken
from search.opensearch.tokens import OpenSearchTokenStore
from search.reads import Reads
from search.retention import ExpiringStore, HoldStore
from search.sqlite.expiry import EmbeddedExpiry
from search.sqlite.store import SqliteStore

log = logging.getLogger(__name__)

SHUTDOWN_DRAIN_SECONDS = 4.0


def stream_name(settings: Settings) -> str:
    return settings.stream or socket.gethostname()[:64] or "node"


def auth_parts(settings: Settings, client: OpenSearch | None) -> tuple[TokenStore, FailureCounter]:
    """Tokens and failed logins: the cluster's when OpenSearch is the store, else this node's."""
    limit, window = settings.auth_failure_limit, settings.auth_failure_window_seconds
    if client is not None:
        prefix = settings.opensearch_index_prefix
        return OpenSearchTokenStore(client, prefix), OpenSearchFailureCounter(client, prefix, limit, window)
    limiter = FailureLimiter(limit, window, max_networks=settings.auth_failure_max_networks)
    return SqliteTokenStore(settings.tokens_path), limiter


@contextlib.contextmanager
def open_tokens(settings: Settings) -> Iterator[TokenStore]:
    """The token store the nodes of these settings use, for a command outside a node (`eventlog tokens`)."""
    if settings.opensearch_url is None:
        store = SqliteTokenStore(settings.tokens_path)
        try:
            yield store
        finally:
            store.close()
        return
    client = build_client(settings.opensearch)
    try:
        yield OpenSearchTokenStore(client, settings.opensearch_index_prefix)
    finally:
        client.close()


def search_store(
    settings: Settings, client: OpenSearch | None = None, reads: Reads | None = None
) -> tuple[SearchBackend, Sink]:
    """OpenSearch when a URL is configured, else the embedded SQLite store; its reads run on `reads`."""
    reads = reads or Reads.from_settings(settings.reads)
    if settings.opensearch_url is None:
        store = SqliteStore(settings.search_path, reads)
        return store, store
    opensearch = settings.opensearch
    client = client or build_client(opensearch)
    sink = OpenSearchSink(
        client,
        opensearch.index_prefix,
        max_bytes=opensearch.bulk_max_bytes,
        shards=opensearch.shards,
        replicas=opensearch.replicas,
        every_copy=settings.ack == "replicated",
    )
    return OpenSearchBackend(client, opensearch.index_prefix, reads), sink


def fan_out(settings: Settings, journal: Journal, store_sink: Sink, metrics: Metrics) -> FanOut:
    """The journal's fan-out to the search store's sink and, when configured, the syslog sink."""
    sinks: list[Sink] = [store_sink]
    if settings.syslog_url is not None:
        sinks.append(SyslogSink.from_settings(settings.syslog, registry=metrics.registry))
    return FanOut(
        journal,
        sinks,
        metrics.sinks,
        batch_events=settings.fanout_batch_events,
        poll_seconds=settings.fanout_poll_seconds,
        max_backoff_seconds=settings.fanout_max_backoff_seconds,
    )


async def drain_journal(settings: Settings, timeout_seconds: float, progress: Callable[[str], None]) -> bool:
    """Deliver what the journal of `settings.data_dir` holds and its sinks lack, without serving (a dead
    node's disk mounted elsewhere); whether every sink caught up within `timeout_seconds`."""
    metrics = Metrics()
    journal = Journal(settings.journal_path, stream=stream_name(settings))
    reads = Reads.from_settings(settings.reads)  # the store's reader: built with its sink, unused here
    journal.open()
    try:
        _, sink = search_store(settings, reads=reads)
        fanout = fan_out(settings, journal, sink, metrics)
        progress(
            f"journal of stream {journal.stream!r}: {journal.last_seq} events; sinks {', '.join(fanout.sink_names)}"
        )
        fanout.start()
        deadline = asyncio.get_running_loop().time() + timeout_seconds
        try:
            while not await fanout.drain(
                timeout_seconds=min(5.0, max(0.0, deadline - asyncio.get_running_loop().time()))
            ):
                behind = {name: fanout.lag(name)[0] for name in fanout.states}
                progress(f"behind: {', '.join(f'{name} {count}' for name, count in behind.items())}")
                if asyncio.get_running_loop().time() >= deadline:
                    return False
        finally:
            await fanout.stop()
        for name, state in fanout.states.items():
            progress(f"{name}: delivered through seq {state.cursor}")
        return True
    finally:
        journal.close()
        reads.close()


def retention_parts(
    settings: Settings,
    journal: Journal | None,
    sinks: Sequence[str],
    clock: Callable[[], datetime] | None = None,
    client: OpenSearch | None = None,
) -> tuple[Retention, HoldStore, Lock]:
    """Retention over the configured store, with its holds and lock (shared by the service and the CLI)."""
    expiry: ExpiringStore
    holds: HoldStore
    lock: Lock
    if settings.opensearch_url is None:
        expiry = EmbeddedExpiry(settings.search_path)
        holds = SqliteHoldStore(settings.holds_path)
        lock = SqliteLock(settings.retention_path)
    else:
        opensearch = settings.opensearch
        client = client or build_client(opensearch)
        prefix = opensearch.index_prefix
        expiry = OpenSearchExpiry(client, prefix, shards=opensearch.shards, replicas=opensearch.replicas)
        holds = OpenSearchHoldStore(client, prefix)
        lock = OpenSearchLock(client, prefix)
    archived, kept = settings.archive, settings.retention
    archive = None
    if archived.bucket is not None:
        import boto3

        s3 = boto3.client("s3", endpoint_url=archived.endpoint_url)
        archive = Archive(s3, archived.bucket, archived.prefix)

    def policy() -> Policy:
        return Policy(
            default_days=kept.days,
            tenant_days=kept.tenant_days,
            holds=tuple(holds.list()),
            archive_tenants=frozenset(archived.tenants),
            archive_all="*" in archived.tenants,
        )

    retention = Retention(
        store=expiry,
        policy=policy,
        archive=archive,
        journal=journal,
        sinks=sinks,
        operator_tenant=settings.bootstrap_tenant,
        clock=clock,
    )
    return retention, holds, lock


def cursor_key(settings: Settings) -> CursorKey:
    """A configured file is shared by the nodes of a cluster and must exist; the data dir's own is created."""
    return FileCursorKey(settings.cursor_key_path, create=settings.cursor_key_file is None)


async def _prune_forever(fanout: FanOut, keep_seconds: float, every_seconds: float = 60.0) -> None:
    while True:
        await asyncio.sleep(every_seconds)
        try:
            dropped = await fanout.prune_journal(keep_seconds)
        except Exception as exc:  # noqa: BLE001 - tried again at the next round
            log.error("journal prune failed", extra={"error": str(exc)})
        else:
            if dropped:
                log.info("journal pruned", extra={"events": dropped})


# Self-audit: endpoints opt in through their auth dependency (`principal(scope, audit_action)`), which
# puts `audit_action` and the caller's `principal` in the request state; `audit_target` is optional.
# Every such call becomes an event of `source: eventlog` in the caller's tenant, the token as the actor.


def _audit_action(call: Call) -> str | None:
    action = call.state.get("audit_action")
    return action if isinstance(action, str) and call.state.get("principal") is not None else None


def _audit_tenant(call: Call) -> str | None:
    principal = call.state.get("principal")
    return getattr(principal, "tenant", None)


def _audit_actor(call: Call) -> Actor | None:
    principal = call.state.get("principal")
    return Actor(type="token", id=principal.token_id) if principal is not None else None


def _audit_target(call: Call) -> Target | None:
    # Fitted, never validated: what an endpoint names (a path parameter, a name from the body) may hold
    # anything, and a Target that failed validation would leave the audit event without one.
    target: dict[str, Any] | None = call.state.get("audit_target")
    return fit_target(target) if target else None


@dataclass(frozen=True, slots=True)
class Node:
    """Every part of one running node, built from Settings; `lifespan` starts and stops them in order."""

    settings: Settings
    journal: Journal
    fanout: FanOut
    store: SearchBackend
    reads: Reads
    tokens: TokenStore
    ctx: Context
    cursors: Cursors
    checkpointer: Checkpointer
    self_audit: JournalEmitter
    poller: CloudTrailPoller | None
    holds: HoldStore
    scheduler: Scheduler
    lease: StreamLease | None  # with OpenSearch: this node's claim on its stream

    @classmethod
    def build(cls, settings: Settings, clock: Callable[[], datetime] | None = None) -> Node:
        """`clock` is the retention run's notion of now (tests move it forward)."""
        metrics = Metrics()
        journal = Journal(
            settings.journal_path,
            stream=stream_name(settings),
            max_group_events=settings.group_commit_max_events,
            observe_commit=metrics.journal.observe_commit,
        )
        # One client (one connection pool) for the search store and retention.
        client = build_client(settings.opensearch) if settings.opensearch_url is not None else None
        reads = Reads.from_settings(settings.reads)
        store, sink = search_store(settings, client, reads)
        fanout = fan_out(settings, journal, sink, metrics)
        journal.subscribe(fanout.notify)
        tokens, limiter = auth_parts(settings, client)
        ctx = Context(
            settings=settings,
            journal=journal,
            tokens=tokens,
            auth=Authenticator(tokens, limiter),
            fanout=fanout,
            metrics=metrics,
            claims=OpenSearchClaims(client, settings.opensearch_index_prefix) if client is not None else None,
        )
        if settings.ack == "replicated":
            timeout = settings.ack_timeout_seconds
            ctx.replicated = lambda seq: fanout.delivered(sink.name, seq, timeout)
        # A queue without a bucket is refused by the poller (its error names the setting), not silently unused.
        wanted = settings.cloudtrail_bucket is not None or settings.cloudtrail_sqs_queue_url is not None
        poller = (
            CloudTrailPoller(
                settings.cloudtrail,
                limits_of(settings.retention, settings.limits),
                settings.cloudtrail_path,
                journal,
                metrics,
            )
            if wanted
            else None
        )
        if poller is not None:
            ctx.readiness["cloudtrail"] = poller
        retention, holds, lock = retention_parts(settings, journal, fanout.sink_names, clock, client)
        scheduler = Scheduler(retention, lock, interval_seconds=settings.retention_interval_hours * 3600)
        ctx.readiness["retention"] = scheduler
        key = load_or_create_key(settings.signing_key_path)
        lease = None
        if client is not None:
            me = Claimant(
                stream=stream_name(settings),  # the journal's own name once it is open (`StreamLease.claim`)
                public_key=public_pem(key),
                data_dir=str(settings.data_dir.resolve()),
            )
            lease = StreamLease(StreamRegistry(client, settings.opensearch_index_prefix), me)
            ctx.readiness["cluster"] = lease
            ctx.blockers["cluster"] = lambda: lease.problem if lease is not None else None
        return cls(
            settings=settings,
            journal=journal,
            fanout=fanout,
            store=store,
            reads=reads,
            tokens=tokens,
            ctx=ctx,
            cursors=Cursors(cursor_key(settings)),
            checkpointer=Checkpointer(journal, key, settings.checkpoint_interval_seconds),
            self_audit=JournalEmitter(journal, source="eventlog"),
            poller=poller,
            holds=holds,
            scheduler=scheduler,
            lease=lease,
        )

    def _background(self) -> list[asyncio.Task[None]]:
        settings = self.settings
        tasks = [asyncio.create_task(self.checkpointer.run(), name="checkpoints")]
        if settings.opensearch_url is not None:
            keep = settings.journal_keep_delivered_hours * 3600
            tasks.append(asyncio.create_task(_prune_forever(self.fanout, keep), name="journal-prune"))
        if self.poller is not None:
            tasks.append(asyncio.create_task(self.poller.run_forever(), name="cloudtrail-poll"))
        if settings.retention_interval_hours > 0:
            tasks.append(asyncio.create_task(self.scheduler.run_forever(), name="retention"))
        if self.lease is not None:
            tasks.append(asyncio.create_task(self.lease.run_forever(), name="stream-lease"))
        return tasks

    @contextlib.asynccontextmanager
    async def lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        """Open the journal, start the fan-out and the background loops; on the way out drain and close."""
        journal = self.journal
        journal.open()
        if self.lease is not None:
            try:
                await self.lease.claim(journal.stream)
            except StreamTaken as exc:
                log.critical("eventlog not started: its stream is taken", extra={"error": str(exc)})
                journal.close()
                raise
        claims = self.ctx.claims
        if claims is not None:
            try:
                await asyncio.to_thread(claims.prepare)
            except ClaimsUnavailable as exc:  # the first claim tries again
                log.error("client-id claims not ready: OpenSearch does not answer", extra={"error": str(exc)})
        await self.self_audit.start()
        self.fanout.start()
        background = self._background()
        log.info("eventlog started", extra={"data_dir": str(self.settings.data_dir), "stream": journal.stream})
        try:
            yield
        finally:
            if self.poller is not None:
                self.poller.stop()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.self_audit.close()
            await receipts_recorded()
            # What is not delivered by then stays in the journal, delivered at the next start or by
            # `eventlog journal drain`.
            await self.fanout.drain(timeout_seconds=SHUTDOWN_DRAIN_SECONDS)
            await self.fanout.stop()
            await self.checkpointer.checkpoint()
            if self.lease is not None:
                await self.lease.release()
            journal.close()
            self.tokens.close()
            self.holds.close()
            self.reads.close()
            log.info("eventlog stopped", extra={"last_seq": journal.last_seq})


ROUTERS = (
    ingest_router,
    search_router,
    keboola_router,
    token_router,
    deadletter_router,
    retention_router,
    ops_router,
)


def create_app(settings: Settings, *, clock: Callable[[], datetime] | None = None) -> FastAPI:
    """The HTTP service of one node; `clock` is the retention run's notion of now (tests move it forward)."""
    node = Node.build(settings, clock)
    app = FastAPI(
        title="eventlog",
        summary="Immutable, tamper-evident audit events: ingest, search, export.",
        version="0.1.0",
        lifespan=node.lifespan,
        docs_url="/docs",
    )
    app.state.ctx = node.ctx
    node.ctx.add(SearchParts(node.store, node.cursors, node.reads))
    node.ctx.add(RetentionParts(node.holds, node.scheduler))
    errors.install(app)
    openapi.install(app)
    for router in ROUTERS:
        app.include_router(router)
    # The web UI ships as package data of `dashboards`; on a filesystem install that is a real directory.
    mount_ui(app, Path(str(files("dashboards") / "ui")))
    app.add_middleware(
        AuditMiddleware,
        emitter=node.self_audit,
        actor=_audit_actor,
        action=_audit_action,
        target=_audit_target,
        tenant=_audit_tenant,
        trusted_proxies=settings.trusted_proxies,
    )
    app.add_middleware(AccessLog, trusted_proxies=settings.trusted_proxies)
    return app
