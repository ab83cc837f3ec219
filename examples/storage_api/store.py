"""The example's data: tokens, buckets and tables, in memory (what a real Storage API keeps in a database)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime


class NotFound(LookupError):
    """No such bucket, table or token."""


class Conflict(ValueError):
    """The thing exists already, or is still in use."""


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    description: str
    created: datetime


@dataclass(slots=True)
class Bucket:
    id: str
    name: str
    stage: str
    description: str
    created: datetime


@dataclass(slots=True)
class Table:
    id: str
    bucket_id: str
    name: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Storage:
    def __init__(self, master_secret: str) -> None:
        self._tokens: dict[str, Token] = {}
        self._next_token = 1
        self.buckets: dict[str, Bucket] = {}
        self.tables: dict[str, Table] = {}
        self._add_token("master", master_secret)

    # -- tokens ----------------------------------------------------------

    def _add_token(self, description: str, secret: str) -> Token:
        token = Token(str(self._next_token), description, datetime.now(UTC))
        self._next_token += 1
        self._tokens[_digest(secret)] = token
        return token

    def create_token(self, description: str) -> tuple[Token, str]:
        secret = f"{self._next_token}-{secrets.token_hex(20)}"
        return self._add_token(description, secret), secret

    def authenticate(self, secret: str) -> Token | None:
        return self._tokens.get(_digest(secret))

    def tokens(self) -> list[Token]:
        return sorted(self._tokens.values(), key=lambda t: int(t.id))

    # -- buckets and tables ------------------------------------------------

    def create_bucket(self, name: str, stage: str, description: str) -> Bucket:
        bucket_id = f"{stage}.c-{name}"
        if bucket_id in self.buckets:
            raise Conflict(f"bucket {bucket_id} already exists")
        bucket = Bucket(bucket_id, name, stage, description, datetime.now(UTC))
        self.buckets[bucket_id] = bucket
        return bucket

    def bucket(self, bucket_id: str) -> Bucket:
        try:
            return self.buckets[bucket_id]
        except KeyError:
            raise NotFound(f"bucket {bucket_id} not found") from None

    def delete_bucket(self, bucket_id: str, *, force: bool) -> None:
        self.bucket(bucket_id)
        inside = [t for t in self.tables.values() if t.bucket_id == bucket_id]
        if inside and not force:
            raise Conflict(f"bucket {bucket_id} still holds {len(inside)} tables; delete them or use force=true")
        for table in inside:
            del self.tables[table.id]
        del self.buckets[bucket_id]

    def create_table(self, bucket_id: str, name: str, columns: list[str]) -> Table:
        self.bucket(bucket_id)
        table_id = f"{bucket_id}.{name}"
        if table_id in self.tables:
            raise Conflict(f"table {table_id} already exists")
        table = Table(table_id, bucket_id, name, columns)
        self.tables[table_id] = table
        return table

    def table(self, table_id: str) -> Table:
        try:
            return self.tables[table_id]
        except KeyError:
            raise NotFound(f"table {table_id} not found") from None

    def delete_table(self, table_id: str) -> None:
        self.table(table_id)
        del self.tables[table_id]
