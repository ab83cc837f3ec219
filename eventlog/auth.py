"""Bearer authentication, scopes, tenant scoping and the failed-login limiter."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from fastapi.exceptions import RequestValidationError

from eventlog.tenant import tenant_problem
from eventlog.tokens import Token, TokenStore


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    tenant: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


class AuthError(Exception):
    """Authentication or authorization refused; carries the HTTP answer."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class FailureLimiter:
    """Counts failed authentications per client address in a sliding window."""

    def __init__(self, limit: int, window_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window = window_seconds
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.get(address)
        if failures is None:
            return deque()
        cutoff = self._clock() - self._window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[address]
        return failures

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None when it is not blocked."""
        failures = self._recent(address)
        if len(failures) < self._limit:
            return None
        return max(1, int(failures[-self._limit] + self._window - self._clock() + 0.999))

    def fail(self, address: str) -> None:
        self._recent(address)
        self._failures.setdefault(address, deque()).append(self._clock())


_WWW = {"WWW-Authenticate": 'Bearer realm="eventlog"'}


class Authenticator:
    def __init__(self, tokens: TokenStore, limiter: FailureLimiter) -> None:
        self._tokens = tokens
        self._limiter = limiter

    def authenticate(self, authorization: str | None, address: str) -> Principal:
        retry = self._limiter.retry_after(address)
        if retry is not None:
            raise AuthError(
                429,
                "too_many_failures",
                f"too many failed authentications from {address}; retry in {retry} s with a valid token",
                {"Retry-After": str(retry)},
            )
        if not authorization:
            self._limiter.fail(address)
            raise AuthError(
                401,
                "missing_token",
                "send `Authorization: Bearer <token>`; create a token with `eventlog tokens create`",
                _WWW,
            )
        scheme, _, credential = authorization.partition(" ")
        token: Token | None = None
        if scheme.lower() == "bearer" and credential.strip():
            token = self._tokens.authenticate(credential.strip())
        if token is None:
            self._limiter.fail(address)
            raise AuthError(
                401,
                "invalid_token",
                "the bearer token is unknown, revoked or expired; ask an admin for a new one",
                _WWW,
            )
        return Principal(token.id, token.tenant, token.scopes)


def require_scope(principal: Principal, scope: str) -> None:
    if not principal.has(scope):
        raise AuthError(
            403,
            "missing_scope",
            f"this token lacks the `{scope}` scope; create one with --scopes {scope}",
        )


def read_tenant(principal: Principal, requested: str | None) -> str:
    """The tenant a read is scoped to: the token's own, or any named one for admins."""
    if requested is None or requested == principal.tenant:
        return principal.tenant
    if "admin" not in principal.scopes:
        raise AuthError(
            403,
            "tenant_forbidden",
            "only an admin token may read another tenant; drop the `tenant` parameter",
        )
    problem = tenant_problem(requested)
    if problem is not None:
        # Answered like any bad query parameter: 400 naming `tenant`.
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "tenant"), "msg": problem, "input": requested}]
        )
    return requested
