"""The retention lock of a cluster (retention/lock.py has the protocol): one document in an OpenSearch index."""

from __future__ import annotations

import time
from typing import Any

from opensearchpy import ConflictError, NotFoundError, OpenSearch

from search.opensearch.system import StateIndex, SystemIndex

LOCKS = SystemIndex.of("locks", keyword=("holder",), double=("expires_at", "completed_at"))


class OpenSearchLock:
    """For a cluster: one document in `<prefix>-locks`, changed only by compare-and-set on its seq_no."""

    def __init__(self, client: OpenSearch, prefix: str, name: str = "retention") -> None:
        self._client = client
        self._state = StateIndex(client, prefix, LOCKS)
        self._index = self._state.name
        self._name = name

    def _get(self) -> dict[str, Any] | None:
        self._state.ready()
        try:
            found: dict[str, Any] = self._client.get(index=self._index, id=self._name)
        except NotFoundError:
            return None
        return found

    def acquire(self, holder: str, ttl_seconds: float) -> bool:
        now = time.time()
        found = self._get()
        body: dict[str, Any] = {"holder": holder, "expires_at": now + ttl_seconds}
        try:
            if found is None:
                self._client.index(
                    index=self._index, id=self._name, body=body, params={"op_type": "create", "refresh": "true"}
                )
                return True
            source = found["_source"]
            if source.get("holder") not in (None, holder) and float(source.get("expires_at", 0)) > now:
                return False
            body["completed_at"] = source.get("completed_at")
            self._client.index(
                index=self._index,
                id=self._name,
                body=body,
                params={"if_seq_no": found["_seq_no"], "if_primary_term": found["_primary_term"], "refresh": "true"},
            )
        except ConflictError:
            return False  # another node won the race
        return True

    def release(self, holder: str, *, completed: bool) -> None:
        found = self._get()
        if found is None or found["_source"].get("holder") != holder:
            return
        completed_at = time.time() if completed else found["_source"].get("completed_at")
        try:
            self._client.index(
                index=self._index,
                id=self._name,
                body={"holder": None, "expires_at": 0, "completed_at": completed_at},
                params={"if_seq_no": found["_seq_no"], "if_primary_term": found["_primary_term"], "refresh": "true"},
            )
        except ConflictError:
            return  # expired and taken over meanwhile: the new holder owns it now

    def last_completed(self) -> float | None:
        found = self._get()
        value = found["_source"].get("completed_at") if found is not None else None
        return float(value) if value is not None else None
