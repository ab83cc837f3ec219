"""The tokens of a cluster, shared by every node: `<prefix>-tokens`, one document per token, hashes only.

A node checks a bearer against the document of its id (a realtime GET, so a token made on another
node works at once) and keeps the answer for at most `cache_seconds`: a revocation or an expiry is
seen by every node within that bound plus one round trip. While OpenSearch does not answer, a node
goes on with its last read of a token it has seen (nothing can be revoked meanwhile); a token it has
never seen is then a TokenStoreUnavailable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opensearchpy import ConflictError, ConnectionTimeout, OpenSearch, TransportError
from opensearchpy import ConnectionError as OpenSearchConnectionError

from eventlog.model import format_time
from eventlog.tokens import (
    Token,
    TokenError,
    TokenStore,
    TokenStoreUnavailable,
    token_from_dict,
)
from search.opensearch.system import STATE_TIMEOUT_SECONDS, StateIndex, SystemIndex

TOKENS = SystemIndex.of(
    "tokens",
    keyword=("id", "tenant", "scopes"),
    stored=("name", "secret_sha256"),
    date=("created_at", "expires_at", "revoked_at"),
)

# How long a node trusts what it read of a token: the bound on how late it sees a revocation.
CACHE_SECONDS = 1.0
# How often `known` may reload every live token, for a network over the failure limit.
KNOWN_RELOAD_SECONDS = 2.0
_PAGE = 1000
# Compare-and-set rounds before a change gives up (each lost race means another node changed the token).
_CAS_ROUNDS = 10

_REVOKE = "if (ctx._source.revoked_at == null) { ctx._source.revoked_at = params.at } else { ctx.op = 'noop' }"


@dataclass(frozen=True, slots=True)
class _Read:
    token: Token | None
    stored: bytes | None
    at: float


class OpenSearchTokenStore(TokenStore):
    """TokenStore on a cluster; errors reaching OpenSearch are TokenStoreUnavailable (nothing stored)."""

    remote = True

    def __init__(
        self,
        client: OpenSearch,
        prefix: str,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._state = StateIndex(client, prefix, TOKENS)
        self._index = self._state.name
        self._cache_seconds = cache_seconds
        self._clock = clock
        super().__init__()
        self._reads: dict[str, _Read] = {}
        self._known_at = float("-inf")

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        try:
            self._state.ready()
            yield
        except (OpenSearchConnectionError, ConnectionTimeout) as exc:
            raise TokenStoreUnavailable(f"OpenSearch did not answer ({exc.__class__.__name__})") from None
        except TransportError as exc:
            if isinstance(exc.status_code, int) and exc.status_code < 500 and exc.status_code != 429:
                raise
            raise TokenStoreUnavailable(f"OpenSearch answered {exc.status_code}") from None

    def save(self, token: Token, stored: bytes) -> None:
        with self._reaching():
            # `wait_for`: the token is in `list` on every node once this returns (GET by id needs no refresh).
            self._client.index(
                index=self._index,
                id=token.id,
                body={**token.as_dict(), "secret_sha256": stored.hex()},
                params={"op_type": "create", "refresh": "wait_for"},
            )

    def list(self, tenant: str | None = None) -> list[Token]:
        query: dict[str, Any] = {"term": {"tenant": tenant}} if tenant is not None else {"match_all": {}}
        hits = self._scan(query, {"excludes": ["secret_sha256"]}, [{"created_at": "asc"}, {"id": "asc"}])
        return [token_from_dict(source) for source in hits]

    def count(self) -> int:
        with self._reaching():
            return int(self._client.count(index=self._index)["count"])

    def mark_revoked(self, token_id: str, stamp: str) -> None:
        with self._reaching():
            # No scripts (a cluster may not run them): compare-and-set, so the first revocation's time stays.
            for _ in range(_CAS_ROUNDS):
                found = self._client.get(index=self._index, id=token_id, ignore=[404])
                if not found.get("found"):
                    raise TokenError(f"no token with id {token_id!r}; `eventlog tokens list` shows the ids")
                if found["_source"].get("revoked_at") is not None:
                    break
                try:
                    self._client.index(
                        index=self._index,
                        id=token_id,
                        body={**found["_source"], "revoked_at": stamp},
                        params={
                            "if_seq_no": found["_seq_no"],
                            "if_primary_term": found["_primary_term"],
                            "refresh": "wait_for",
                        },
                    )
                    break
                except ConflictError:
                    continue
            else:
                raise TokenStoreUnavailable(f"token {token_id} kept changing while being revoked")
        with self._lock:
            self._reads.pop(token_id, None)

    def lookup(self, token_id: str) -> tuple[Token | None, bytes | None]:
        read = self._cached(token_id)
        if read is None:
            try:
                read = self._fetch(token_id)
            except TokenStoreUnavailable:
                # While the cluster does not answer, no token can be revoked either: the last read stands
                # (expiry is still checked against it), so ingest goes on through an OpenSearch outage.
                with self._lock:
                    read = self._reads.get(token_id)
                if read is None:
                    raise
        return read.token, read.stored

    def live_digests(self) -> dict[str, bytes] | None:
        """Every live token, read again at most every KNOWN_RELOAD_SECONDS (and not while unreachable)."""
        with self._lock:
            if self._clock() - self._known_at < KNOWN_RELOAD_SECONDS:
                return None
            self._known_at = self._clock()
        now = format_time(datetime.now(UTC))
        query = {
            "bool": {
                "must_not": [{"exists": {"field": "revoked_at"}}, {"range": {"expires_at": {"lte": now}}}],
            }
        }
        try:
            hits = self._scan(query, ["id", "secret_sha256"], [{"id": "asc"}])
        except TokenStoreUnavailable:
            return None
        return {str(source["id"]): bytes.fromhex(str(source["secret_sha256"])) for source in hits}

    def close(self) -> None:
        return None  # the client belongs to the node

    def _cached(self, token_id: str) -> _Read | None:
        with self._lock:
            read = self._reads.get(token_id)
        if read is None or self._clock() - read.at >= self._cache_seconds:
            return None
        return read

    def _fetch(self, token_id: str) -> _Read:
        """The token's document now (realtime GET), remembered for `cache_seconds`."""
        with self._reaching():
            found = self._client.get(
                index=self._index, id=token_id, ignore=[404], request_timeout=STATE_TIMEOUT_SECONDS
            )
        source = found.get("_source") if found.get("found") else None
        read = _Read(None, None, self._clock())
        if source is not None:
            read = _Read(token_from_dict(source), bytes.fromhex(str(source["secret_sha256"])), read.at)
            with self._lock:
                # Only stored ids are remembered: guesses cannot grow the cache.
                self._reads[token_id] = read
        return read

    def _scan(self, query: dict[str, Any], source: object, sort: Sequence[object]) -> Sequence[dict[str, Any]]:
        """The `_source` of every matching token, in pages (a cluster may hold more than one search answers)."""
        found: list[dict[str, Any]] = []
        after: list[Any] | None = None
        with self._reaching():
            while True:
                body: dict[str, Any] = {"size": _PAGE, "query": query, "sort": sort, "_source": source}
                if after is not None:
                    body["search_after"] = after
                hits = self._client.search(index=self._index, body=body)["hits"]["hits"]
                found.extend(hit["_source"] for hit in hits)
                if len(hits) < _PAGE:
                    return found
                after = hits[-1]["sort"]
