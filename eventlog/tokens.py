"""API tokens: random secrets shown once, stored only as SHA-256 hashes.

`TokenStore` is what the service needs of a token store; `SqliteTokenStore` (one node, `tokens.db`)
is here, the cluster's store is `search/opensearch/tokens.py`. Both issue and check tokens with the
functions of this module, so a token means the same on either.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

from eventlog.model import format_time, parse_time
from eventlog.tenant import tenant_problem

SCOPES = frozenset({"events:write", "events:read", "admin"})
PREFIX = "evl_"
MAX_NAME_CHARS = 256

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    scopes TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
"""


class TokenError(ValueError):
    """A token request that cannot be honoured; the message says why."""


class TokenStoreUnavailable(RuntimeError):
    """The shared token store could not be reached: nothing was stored, nothing can be checked; retry."""


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    name: str
    tenant: str
    scopes: frozenset[str]
    created_at: str
    expires_at: str | None
    revoked_at: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "tenant": self.tenant,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }

    def live(self, now: datetime) -> bool:
        """Neither revoked nor expired at `now`."""
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or parse_time(self.expires_at) > now


@dataclass(frozen=True, slots=True)
class Issued:
    token: Token
    secret: str


def parse_scopes(text: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = scopes - SCOPES
    if not scopes or unknown:
        raise TokenError(
            f"unknown scope(s) {', '.join(sorted(unknown)) or '(none given)'}; choose from {', '.join(sorted(SCOPES))}"
        )
    return scopes


def digest(secret: str) -> bytes:
    """What is stored of a secret."""
    return hashlib.sha256(secret.encode()).digest()


def split_bearer(bearer: str) -> tuple[str, str] | None:
    """The (id, secret) of a well-formed `evl_<id>_<secret>`, else None."""
    if not bearer.startswith(PREFIX):
        return None
    token_id, sep, secret = bearer[len(PREFIX) :].partition("_")
    if not sep or len(token_id) != 16 or not secret:
        return None
    return token_id, secret


# Compared against when an id is unknown, so timing does not reveal ids.
_DUMMY_DIGEST = b"\0" * 32


def matches(secret: str, stored: bytes | None) -> bool:
    """Whether `secret` is the one `stored` is the digest of; constant-time, also when nothing is stored."""
    return hmac.compare_digest(digest(secret), stored or _DUMMY_DIGEST) and stored is not None


def issue(
    *, tenant: str, scopes: frozenset[str], name: str, expires_days: int | None, now: datetime
) -> tuple[Issued, bytes]:
    """A new token after checking what it is asked for, with the digest to store; raises TokenError."""
    problem = tenant_problem(tenant)
    if problem is not None:
        raise TokenError(f"the tenant {problem}")
    # The name is the target name of the token's audit events and a column of `eventlog tokens list`.
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise TokenError(f"the name must be at most {MAX_NAME_CHARS} printable characters")
    if scopes - SCOPES or not scopes:
        raise TokenError(f"scopes must be a non-empty subset of {', '.join(sorted(SCOPES))}")
    if expires_days is not None and expires_days < 1:
        raise TokenError("--expires-days must be at least 1")
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    token = Token(
        id=token_id,
        name=name,
        tenant=tenant,
        scopes=scopes,
        created_at=format_time(now),
        expires_at=format_time(now + timedelta(days=expires_days)) if expires_days else None,
        revoked_at=None,
    )
    return Issued(token, f"{PREFIX}{token_id}_{secret}"), digest(secret)


class TokenStore(ABC):
    """Where tokens live. Methods may block (SQLite, or a round trip to the cluster); `remote` says which.

    The checks are here, once: a store only saves, looks up and lists. Each keeps in memory the
    digests of the tokens it knows to be live, by id, for `known`; only stored tokens enter it, so
    its size is that of the token table, not of the guesses clients send.
    """

    remote: ClassVar[bool] = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, bytes] = {}

    def create(
        self,
        *,
        tenant: str,
        scopes: frozenset[str],
        name: str = "",
        expires_days: int | None = None,
        now: datetime | None = None,
    ) -> Issued:
        """A new token, checked and kept; its secret is in the answer and nowhere else. Raises TokenError."""
        issued, stored = issue(
            tenant=tenant, scopes=scopes, name=name, expires_days=expires_days, now=now or datetime.now(UTC)
        )
        self.save(issued.token, stored)
        self._remember(issued.token.id, stored)
        return issued

    def authenticate(self, bearer: str, now: datetime | None = None) -> Token | None:
        """The live token this secret belongs to, or None. Constant-time on the secret."""
        parts = split_bearer(bearer)
        if parts is None:
            return None
        token_id, secret = parts
        token, stored = self.lookup(token_id)
        if not matches(secret, stored) or token is None:
            return None
        live = token.live(now or datetime.now(UTC))
        self._remember(token_id, stored if live else None)
        return token if live else None

    def known(self, bearer: str) -> bool:
        """Whether this secret is a live token's, from memory only: for callers that must not look every
        guess up. It may lag behind a revocation: it never replaces `authenticate`."""
        parts = split_bearer(bearer)
        if parts is None:
            return False
        token_id, secret = parts
        with self._lock:
            stored = self._known.get(token_id)
        if stored is None:
            reloaded = self.live_digests()
            if reloaded is not None:
                with self._lock:
                    self._known = reloaded
                    stored = reloaded.get(token_id)
        return matches(secret, stored)

    def is_live(self, token_id: str, now: datetime | None = None) -> bool:
        """Whether the token with this id still exists, unrevoked and unexpired."""
        token, _ = self.lookup(token_id)
        return token is not None and token.live(now or datetime.now(UTC))

    def _remember(self, token_id: str, stored: bytes | None) -> None:
        with self._lock:
            if stored is None:
                self._known.pop(token_id, None)
            else:
                self._known[token_id] = stored

    @abstractmethod
    def save(self, token: Token, stored: bytes) -> None:
        """Keep a new token with the digest of its secret."""

    @abstractmethod
    def lookup(self, token_id: str) -> tuple[Token | None, bytes | None]:
        """The token of this id and its secret's digest; (None, None) when there is none."""

    @abstractmethod
    def live_digests(self) -> dict[str, bytes] | None:
        """Every live token's digest by id, when they may have changed since the last call; else None.

        Called by `known` for an id it does not know: each store bounds what that costs a guess.
        """

    @abstractmethod
    def list(self, tenant: str | None = None) -> list[Token]: ...

    @abstractmethod
    def count(self) -> int: ...

    def get(self, token_id: str) -> Token | None:
        return self.lookup(token_id)[0]

    def revoke(self, token_id: str, now: datetime | None = None) -> Token:
        """Revoked from now on (the first revocation's time stays); raises TokenError for an unknown id."""
        self.mark_revoked(token_id, format_time(now or datetime.now(UTC)))
        self._remember(token_id, None)
        token = self.get(token_id)
        assert token is not None
        return token

    @abstractmethod
    def mark_revoked(self, token_id: str, stamp: str) -> None:
        """Set `revoked_at` unless it is set; raises TokenError for an unknown id."""

    @abstractmethod
    def close(self) -> None: ...


_COLUMNS = "id, name, tenant, scopes, created_at, expires_at, revoked_at"


class SqliteTokenStore(TokenStore):
    """The tokens of one node, in `tokens.db`."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.executescript(SCHEMA)
        self._known_version = -1
        self._known = self._read_live()

    def _read_live(self) -> dict[str, bytes]:
        """The live tokens' digests; the caller holds the lock, or is the constructor."""
        # Read first: a change committed meanwhile makes the next `data_version` differ, and load again.
        self._known_version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        now = datetime.now(UTC)
        rows = self._conn.execute("SELECT id, secret_sha256, expires_at FROM tokens WHERE revoked_at IS NULL")
        return {row[0]: bytes(row[1]) for row in rows if row[2] is None or parse_time(row[2]) > now}

    def live_digests(self) -> dict[str, bytes] | None:
        """Read again only when another process (`eventlog tokens create`) changed the table: a guess costs
        a `PRAGMA data_version` at most."""
        with self._lock:
            if self._conn.execute("PRAGMA data_version").fetchone()[0] == self._known_version:
                return None
            return self._read_live()

    def close(self) -> None:
        self._conn.close()

    def save(self, token: Token, stored: bytes) -> None:
        scopes = ",".join(sorted(token.scopes))
        with self._lock:
            self._conn.execute(
                f"INSERT INTO tokens ({_COLUMNS}, secret_sha256) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                (token.id, token.name, token.tenant, scopes, token.created_at, token.expires_at, stored),
            )

    def list(self, tenant: str | None = None) -> list[Token]:
        sql = f"SELECT {_COLUMNS} FROM tokens"
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant = ?"
            params = (tenant,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created_at, id", params).fetchall()
        return [_row_to_token(row) for row in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM tokens").fetchone()[0])

    def lookup(self, token_id: str) -> tuple[Token | None, bytes | None]:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS}, secret_sha256 FROM tokens WHERE id = ?", (token_id,)
            ).fetchone()
        return (_row_to_token(row[:7]), bytes(row[7])) if row else (None, None)

    def mark_revoked(self, token_id: str, stamp: str) -> None:
        with self._lock:
            cur = self._conn.execute(
                "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (stamp, token_id)
            )
        if cur.rowcount == 0:
            raise TokenError(f"no token with id {token_id!r}; `eventlog tokens list` shows the ids")


def _row_to_token(row: tuple[str, str, str, str, str, str | None, str | None]) -> Token:
    return Token(row[0], row[1], row[2], frozenset(row[3].split(",")), row[4], row[5], row[6])


def token_from_dict(data: dict[str, object]) -> Token:
    """The inverse of `Token.as_dict` (what a shared store keeps)."""
    scopes = data.get("scopes") or []
    assert isinstance(scopes, list)

    def text(key: str) -> str | None:
        value = data.get(key)
        return None if value is None else str(value)

    return Token(
        id=str(data["id"]),
        name=str(data.get("name") or ""),
        tenant=str(data["tenant"]),
        scopes=frozenset(str(s) for s in scopes),
        created_at=str(data["created_at"]),
        expires_at=text("expires_at"),
        revoked_at=text("revoked_at"),
    )
