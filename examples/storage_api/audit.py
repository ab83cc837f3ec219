"""How the Storage API names its calls in the audit trail: the hooks it gives eventlog's middleware."""

from __future__ import annotations

import functools

from eventlog.model import Actor, Target
from examples.storage_api.store import Token
from ingest.middleware import Call, default_action

# Keboola-style dotted verbs per route; a route not listed gets the middleware's `http.<METHOD> <route>`.
ACTIONS: dict[tuple[str, str], str] = {
    ("GET", "/v2/storage/buckets"): "storage.buckets.list",
    ("POST", "/v2/storage/buckets"): "storage.buckets.create",
    ("GET", "/v2/storage/buckets/{bucket_id}"): "storage.buckets.detail",
    ("DELETE", "/v2/storage/buckets/{bucket_id}"): "storage.buckets.delete",
    ("POST", "/v2/storage/buckets/{bucket_id}/tables"): "storage.tables.create",
    ("GET", "/v2/storage/tables"): "storage.tables.list",
    ("GET", "/v2/storage/tables/{table_id}"): "storage.tables.detail",
    ("DELETE", "/v2/storage/tables/{table_id}"): "storage.tables.delete",
    ("POST", "/v2/storage/tables/{table_id}/rows"): "storage.tables.import",
    ("GET", "/v2/storage/tables/{table_id}/export"): "storage.tables.export",
    ("POST", "/v2/storage/tables/{table_id}/snapshots"): "storage.tables.snapshot",
    ("GET", "/v2/storage/tokens"): "storage.tokens.list",
    ("POST", "/v2/storage/tokens"): "storage.tokens.create",
    ("GET", "/v2/storage/tokens/verify"): "storage.tokens.verify",
}


def action(call: Call) -> str:
    return ACTIONS.get((call.method, call.route or "")) or default_action(call)


def actor(call: Call) -> Actor | None:
    """The Storage API token that made the call (set by the auth dependency); None when it had none."""
    token = call.state.get("token")
    return _token_actor(token) if isinstance(token, Token) else None


@functools.lru_cache(maxsize=1024)
def _token_actor(token: Token) -> Actor:
    # Models are immutable: one per token, not one per call. The middleware adds address and user agent.
    return Actor(type="token", id=token.id, name=token.description)


@functools.lru_cache(maxsize=4096)
def _target(kind: str, target_id: str) -> Target:
    return Target(type=kind, id=target_id)


def target(call: Call) -> Target | None:
    """What an endpoint named (`request.state.audit_target`, e.g. a new bucket), else the table or bucket in the path."""
    named = call.state.get("audit_target")
    if isinstance(named, Target):
        return named
    params: dict[str, str] = call.scope.get("path_params", {})
    if "table_id" in params:
        return _target("table", params["table_id"])
    if "bucket_id" in params:
        return _target("bucket", params["bucket_id"])
    return None
