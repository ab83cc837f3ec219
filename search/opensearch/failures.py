"""Failed authentications counted across a cluster: `<prefix>-auth-failures`, one document per client network.

The same rule as the one-node limiter (eventlog/auth.py): `limit` failures within `window_seconds`
from one network, wherever they land. A failure is one scripted upsert that answers the new state;
a check reads the network's document, or reuses this node's last read of it for `cache_seconds`.
Times are wall-clock seconds, which every node shares. While OpenSearch does not answer, the node
counts alone (in memory), so the limit still holds for what reaches it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from opensearchpy import ConflictError, OpenSearch, OpenSearchException

from eventlog.auth import FailureLimiter, client_network, retry_after_seconds
from eventlog.tokens import TokenStoreUnavailable
from search.opensearch.system import STATE_TIMEOUT_SECONDS, StateIndex, SystemIndex, delete_matching

log = logging.getLogger(__name__)

FAILURES = SystemIndex.of("auth-failures", double=("times", "last"))

CACHE_SECONDS = 1.0

_CAS_ROUNDS = 10  # compare-and-set rounds: each lost one means another node counted a failure meanwhile


class OpenSearchFailureCounter:
    """FailureCounter for a cluster; while the cluster does not answer, it counts on this node only."""

    def __init__(
        self,
        client: OpenSearch,
        prefix: str,
        limit: int,
        window_seconds: float,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._state = StateIndex(client, prefix, FAILURES)
        self._index = self._state.name
        self._limit = limit
        self._window = window_seconds
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, list[float]]] = {}  # network -> (read at, failure times)
        self._purged_at = clock()
        self._alone = FailureLimiter(limit, window_seconds, clock)

    def retry_after(self, address: str) -> int | None:
        try:
            times = self._times(client_network(address))
        except TokenStoreUnavailable:
            return self._alone.retry_after(address)
        return retry_after_seconds(times, self._limit, self._window, self._clock())

    def fail(self, address: str) -> bool:
        network = client_network(address)
        now = self._clock()
        over_here = self._alone.fail(address)
        try:
            self._state.ready()
            times = self._add(network, now)
        except (OpenSearchException, TokenStoreUnavailable) as exc:
            log.warning("failed authentication counted on this node only", extra={"error": repr(exc)})
            return over_here
        with self._lock:
            self._seen[network] = (time.monotonic(), times)
        self._purge(now)
        return len(times) - 1 >= self._limit

    def _add(self, network: str, now: float) -> list[float]:
        """Add one failure by compare-and-set (no scripts: a cluster may not run them); the times after it.

        Keeps the newest `limit` + 1 inside the window: one more than the limit tells whether it was
        reached before this failure. `last` lets old documents be purged by a query.
        """
        for _ in range(_CAS_ROUNDS):
            found = self._client.get(index=self._index, id=network, ignore=[404], request_timeout=STATE_TIMEOUT_SECONDS)
            before = [float(t) for t in found["_source"]["times"]] if found.get("found") else []
            recent = [t for t in before if t > now - self._window]
            times = [*recent[-self._limit :], now]
            body = {"times": times, "last": now}
            if found.get("found"):
                params = {"if_seq_no": found["_seq_no"], "if_primary_term": found["_primary_term"]}
            else:
                params = {"op_type": "create"}
            try:
                self._client.index(
                    index=self._index, id=network, body=body, params=params, request_timeout=STATE_TIMEOUT_SECONDS
                )
            except ConflictError:
                continue
            return times
        raise TokenStoreUnavailable("failed authentications from one network kept changing while being counted")

    def _times(self, network: str) -> Sequence[float]:
        with self._lock:
            seen = self._seen.get(network)
        if seen is not None and time.monotonic() - seen[0] < self._cache_seconds:
            return seen[1]
        try:
            self._state.ready()
            found = self._client.get(index=self._index, id=network, ignore=[404], request_timeout=STATE_TIMEOUT_SECONDS)
            times = [float(t) for t in found.get("_source", {}).get("times", [])] if found.get("found") else []
        except OpenSearchException as exc:
            raise TokenStoreUnavailable(f"could not read failed authentications ({exc.__class__.__name__})") from exc
        with self._lock:
            if times:
                self._seen[network] = (time.monotonic(), times)
            else:
                self._seen.pop(network, None)
        return times

    def _purge(self, now: float) -> None:
        """Now and then, drop the documents of networks whose last failure left the window."""
        if now - self._purged_at < self._window:
            return
        self._purged_at = now
        try:
            delete_matching(self._client, self._index, {"range": {"last": {"lte": now - self._window}}})
        except OpenSearchException as exc:  # the next purge takes them
            log.warning("old failed-authentication records not purged", extra={"error": repr(exc)})
        with self._lock:
            cutoff = time.monotonic() - self._cache_seconds
            self._seen = {k: v for k, v in self._seen.items() if v[0] > cutoff}
