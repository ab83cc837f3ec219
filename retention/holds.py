"""Where legal holds are kept: SQLite next to the journal, or an OpenSearch index every node sees.

The holds are also events: the hold API is self-audited (`eventlog.holds.place` and
`eventlog.holds.release`, the hold as the target); these stores keep the state that
retention consults, because a hold must outlive the events that recorded it.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
import uuid_utils
from opensearchpy import NotFoundError, OpenSearch

from eventlog.model import parse_time
from eventlog.tenant import tenant_problem
from retention.policy import Hold


class HoldNotFound(LookupError):
    """No hold with that id."""


class InvalidHold(ValueError):
    """A hold that cannot be placed as asked; `parameter` names the field at fault."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class HoldStore(Protocol):
    def list(self) -> list[Hold]: ...

    def place(
        self, *, tenant: str, since: datetime | None, until: datetime | None, reason: str, placed_by: str
    ) -> Hold: ...

    def release(self, hold_id: str, *, released_by: str) -> Hold: ...

    def close(self) -> None: ...


def _new(tenant: str, since: datetime | None, until: datetime | None, reason: str, placed_by: str) -> Hold:
    problem = tenant_problem(tenant)
    if problem is not None:
        raise InvalidHold("tenant", problem)
    if since is not None and until is not None and since >= until:
        raise InvalidHold("since", "must lie before `until`")
    return Hold(
        id=str(uuid_utils.uuid7()),
        tenant=tenant,
        since=since,
        until=until,
        reason=reason,
        placed_at=datetime.now(UTC),
        placed_by=placed_by,
    )


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    return parse_time(str(value))


def _from_dict(data: dict[str, Any]) -> Hold:
    placed_at = _time(data["placed_at"])
    assert placed_at is not None
    return Hold(
        id=str(data["id"]),
        tenant=str(data["tenant"]),
        since=_time(data.get("since")),
        until=_time(data.get("until")),
        reason=str(data.get("reason") or ""),
        placed_at=placed_at,
        placed_by=str(data.get("placed_by") or ""),
        released_at=_time(data.get("released_at")),
        released_by=data.get("released_by"),
    )


class SqliteHoldStore:
    """Holds of a single node (the embedded setup), in `holds.db` in the data dir."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS holds (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
        self._lock = threading.Lock()

    def list(self) -> list[Hold]:
        with self._lock:
            rows = self._conn.execute("SELECT body FROM holds ORDER BY id").fetchall()
        return [_from_dict(orjson.loads(row[0])) for row in rows]

    def place(
        self, *, tenant: str, since: datetime | None, until: datetime | None, reason: str, placed_by: str
    ) -> Hold:
        hold = _new(tenant, since, until, reason, placed_by)
        self._write(hold)
        return hold

    def release(self, hold_id: str, *, released_by: str) -> Hold:
        found = next((h for h in self.list() if h.id == hold_id), None)
        if found is None:
            raise HoldNotFound(f"no hold {hold_id!r}; list them with GET /v1/holds")
        if not found.active:
            return found
        released = _released(found, released_by)
        self._write(released)
        return released

    def _write(self, hold: Hold) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO holds (id, body) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                (hold.id, orjson.dumps(hold.as_dict()).decode()),
            )

    def close(self) -> None:
        self._conn.close()


def _released(hold: Hold, released_by: str) -> Hold:
    return Hold(
        id=hold.id,
        tenant=hold.tenant,
        since=hold.since,
        until=hold.until,
        reason=hold.reason,
        placed_at=hold.placed_at,
        placed_by=hold.placed_by,
        released_at=datetime.now(UTC),
        released_by=released_by,
    )


_HOLD_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "keyword"},
        "tenant": {"type": "keyword"},
        "since": {"type": "date"},
        "until": {"type": "date"},
        "reason": {"type": "keyword", "index": False},
        "placed_at": {"type": "date"},
        "placed_by": {"type": "keyword"},
        "released_at": {"type": "date"},
        "released_by": {"type": "keyword"},
    },
}


class OpenSearchHoldStore:
    """Holds shared by every node of a cluster, in the `<prefix>-holds` index (outside the events alias)."""

    def __init__(self, client: OpenSearch, prefix: str) -> None:
        self._client = client
        self._index = f"{prefix}-holds"
        self._ready = False

    def _ensure(self) -> None:
        if self._ready:
            return
        if not self._client.indices.exists(index=self._index):
            self._client.indices.create(
                index=self._index,
                body={"settings": {"number_of_shards": 1}, "mappings": _HOLD_MAPPINGS},
                ignore=[400],  # another node created it first
            )
        self._ready = True

    def list(self) -> list[Hold]:
        self._ensure()
        try:
            answer = self._client.search(
                index=self._index, body={"size": 10_000, "sort": [{"id": "asc"}], "query": {"match_all": {}}}
            )
        except NotFoundError:
            return []
        return [_from_dict(hit["_source"]) for hit in answer["hits"]["hits"]]

    def place(
        self, *, tenant: str, since: datetime | None, until: datetime | None, reason: str, placed_by: str
    ) -> Hold:
        self._ensure()
        hold = _new(tenant, since, until, reason, placed_by)
        self._client.index(index=self._index, id=hold.id, body=hold.as_dict(), params={"refresh": "true"})
        return hold

    def release(self, hold_id: str, *, released_by: str) -> Hold:
        self._ensure()
        try:
            found = _from_dict(self._client.get(index=self._index, id=hold_id)["_source"])
        except NotFoundError:
            raise HoldNotFound(f"no hold {hold_id!r}; list them with GET /v1/holds") from None
        if not found.active:
            return found
        released = _released(found, released_by)
        self._client.index(index=self._index, id=hold_id, body=released.as_dict(), params={"refresh": "true"})
        return released

    def close(self) -> None:
        return None
