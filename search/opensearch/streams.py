"""Which node writes which hash-chain stream: `<prefix>-streams`, one document per stream.

A stream belongs to one signing key (the data dir of one node) for good, and is live on one process
at a time: a node claims its stream when it starts and renews the claim while it runs. A second
process with the same stream name is refused, with a message that says which node holds it. The
document also publishes the stream's public key, so the checkpoints can be checked off the node.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from opensearchpy import ConflictError, OpenSearch, OpenSearchException

from search.opensearch.system import StateIndex, SystemIndex

log = logging.getLogger(__name__)

STREAMS = SystemIndex.of(
    "streams",
    keyword=("stream", "instance", "host"),
    stored=("public_key", "data_dir"),
    long=("pid",),
    double=("claimed_at", "expires_at"),
)

# A claim lives this long unless renewed; a node renews it every third of it.
LEASE_SECONDS = 15.0
_CAS_ROUNDS = 10


class StreamTaken(RuntimeError):
    """Another node writes this stream; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class Claimant:
    """This process, as a claim names it."""

    stream: str
    public_key: str  # PEM of the node's checkpoint signing key
    data_dir: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)


class StreamRegistry:
    """The claims of a cluster's streams; errors reaching OpenSearch propagate (OpenSearchException)."""

    def __init__(self, client: OpenSearch, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._state = StateIndex(client, prefix, STREAMS)
        self._index = self._state.name
        self._clock = clock

    def claim(self, me: Claimant, lease_seconds: float = LEASE_SECONDS) -> None:
        """Take or renew `me.stream` for `lease_seconds`; StreamTaken when another node holds it."""
        self._state.ready()
        for _ in range(_CAS_ROUNDS):
            found = self._client.get(index=self._index, id=me.stream, ignore=[404])
            now = self._clock()
            if found.get("found"):
                refusal = _refusal(me, found["_source"], now)
                if refusal is not None:
                    raise StreamTaken(refusal)
                params: dict[str, Any] = {"if_seq_no": found["_seq_no"], "if_primary_term": found["_primary_term"]}
                claimed_at = (
                    found["_source"].get("claimed_at") if found["_source"].get("instance") == me.instance else now
                )
            else:
                params, claimed_at = {"op_type": "create"}, now
            body = {
                "stream": me.stream,
                "public_key": me.public_key,
                "instance": me.instance,
                "host": me.host,
                "data_dir": me.data_dir,
                "pid": me.pid,
                "claimed_at": claimed_at,
                "expires_at": now + lease_seconds,
            }
            try:
                self._client.index(index=self._index, id=me.stream, body=body, params={**params, "refresh": "true"})
            except ConflictError:
                continue  # another process claimed it between the read and the write: read again
            return
        raise StreamTaken(f"stream {me.stream!r} kept changing while being claimed; is another node starting?")

    def release(self, me: Claimant) -> None:
        """Let the claim lapse now (a clean stop); the stream stays bound to this node's key."""
        self._state.ready()
        found = self._client.get(index=self._index, id=me.stream, ignore=[404])
        if not found.get("found") or found["_source"].get("instance") != me.instance:
            return
        try:
            self._client.index(
                index=self._index,
                id=me.stream,
                body={**found["_source"], "expires_at": 0.0},
                params={"if_seq_no": found["_seq_no"], "if_primary_term": found["_primary_term"], "refresh": "true"},
            )
        except ConflictError:
            return  # taken over meanwhile

    def public_keys(self) -> dict[str, str]:
        """Every stream's public key (PEM), by stream name."""
        self._state.ready()
        answer = self._client.search(
            index=self._index, body={"size": 10_000, "_source": ["stream", "public_key"], "sort": [{"stream": "asc"}]}
        )
        return {hit["_source"]["stream"]: hit["_source"]["public_key"] for hit in answer["hits"]["hits"]}


def _refusal(me: Claimant, held: dict[str, Any], now: float) -> str | None:
    """Why `me` may not take the stream `held` describes, or None."""
    if held.get("public_key") != me.public_key:
        return (
            f"stream {me.stream!r} belongs to another node's signing key (host {held.get('host')}, data dir "
            f"{held.get('data_dir')}): its events and checkpoints are chained and signed with that key. "
            "Give this node a stream of its own: set EVENTLOG_STREAM to a name no other node uses"
        )
    if held.get("instance") == me.instance or float(held.get("expires_at") or 0) <= now:
        return None
    # The same key elsewhere: a copy of this data dir. Here, on the same path, the data dir's lock
    # guarantees the holder is gone (a restart after a crash).
    if held.get("host") == me.host and held.get("data_dir") == me.data_dir:
        return None
    return (
        f"stream {me.stream!r} is live on host {held.get('host')} (pid {held.get('pid')}, data dir "
        f"{held.get('data_dir')}), with this node's signing key: two copies of one data dir must not run at "
        f"once. Stop the other one, or wait {float(held['expires_at']) - now:.0f} s if it is gone"
    )


class StreamLease:
    """Keeps this node's claim on its stream while it runs; a part of /readyz under "cluster"."""

    def __init__(self, registry: StreamRegistry, me: Claimant, lease_seconds: float = LEASE_SECONDS) -> None:
        self._registry = registry
        self._me = me
        self._lease = lease_seconds
        self._problem: str | None = "the stream is not claimed yet"
        self._renewed_at: float | None = None
        self._taken = False

    @property
    def problem(self) -> str | None:
        """Why the node should not take traffic, or None.

        A node that never claimed its stream (OpenSearch did not answer at start), or lost it to another,
        should not; one whose renewal fails because OpenSearch is down goes on: every node sees the same
        outage, and the journal takes events without OpenSearch.
        """
        if self._taken or self._renewed_at is None:
            return self._problem
        return None

    async def claim(self, stream: str) -> None:
        """At start, the journal's stream: StreamTaken stops the node, an unreachable cluster does not."""
        self._me = replace(self._me, stream=stream)
        try:
            await asyncio.to_thread(self._registry.claim, self._me, self._lease)
        except OpenSearchException as exc:
            self._problem = f"OpenSearch does not answer ({exc.__class__.__name__}); the stream's claim is retried"
            log.error(
                "stream not claimed: OpenSearch does not answer", extra={"stream": self._me.stream, "error": repr(exc)}
            )
            return
        self._renewed(time.monotonic())

    async def run_forever(self) -> None:
        """Renew every third of the lease; a claim another node took meanwhile takes this node out."""
        while True:
            await asyncio.sleep(self._lease / 3 if self._problem is None else 1.0)
            try:
                await asyncio.to_thread(self._registry.claim, self._me, self._lease)
            except StreamTaken as exc:
                self._problem, self._taken = str(exc), True
                log.critical("stream claimed by another node", extra={"stream": self._me.stream, "error": str(exc)})
            except OpenSearchException as exc:
                self._problem = f"OpenSearch does not answer ({exc.__class__.__name__}); the stream's claim is retried"
                log.error("stream claim not renewed", extra={"stream": self._me.stream, "error": repr(exc)})
            else:
                self._renewed(time.monotonic())

    async def release(self) -> None:
        try:
            await asyncio.to_thread(self._registry.release, self._me)
        except OpenSearchException as exc:  # it lapses by itself
            log.warning("stream claim not released", extra={"stream": self._me.stream, "error": repr(exc)})

    def _renewed(self, at: float) -> None:
        if self._problem is not None:
            log.info("stream claimed", extra={"stream": self._me.stream})
        self._problem, self._renewed_at, self._taken = None, at, False

    def summary(self) -> dict[str, Any]:
        if self._problem is None:
            return {"state": "ok"}
        return {"state": "unavailable" if self.problem is not None else "retrying"}

    def status(self) -> dict[str, Any]:
        ago = None if self._renewed_at is None else round(time.monotonic() - self._renewed_at, 1)
        return {**self.summary(), "stream": self._me.stream, "problem": self._problem, "renewed_seconds_ago": ago}
