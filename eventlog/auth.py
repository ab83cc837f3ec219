"""Bearer authentication, scopes, tenant scoping and the failed-login limiter."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry, Counter

from eventlog.tenant import tenant_problem
from eventlog.tokens import Token, TokenStore, TokenStoreUnavailable


@dataclass(frozen=True, slots=True)
class AuthMetrics:
    """Refused authentications, by reason."""

    failures: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> AuthMetrics:
        return cls(
            failures=Counter("eventlog_auth_failures", "Refused authentications.", ["reason"], registry=registry)
        )


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    tenant: str
    scopes: frozenset[str]
    token_name: str = ""

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


def client_network(address: str) -> str:
    """The unit the limiter counts: an IPv4 address, an IPv6 /64 (what one site or host is given).

    One host can pick any of the 2**64 addresses of its /64, so counting single IPv6 addresses would
    count nothing. Anything that is not an IP address (a test client's name) is its own key.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def retry_after_seconds(times: Sequence[float], limit: int, window_seconds: float, now: float) -> int | None:
    """Seconds until a network with these failure times (oldest first) is under `limit` again; None if it is."""
    recent = [t for t in times if t > now - window_seconds]
    if len(recent) < limit:
        return None
    return max(1, int(recent[-limit] + window_seconds - now + 0.999))


class FailureCounter(Protocol):
    """Failed authentications per client network within a window: this node's, or the cluster's."""

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address`'s network may fail again, or None when it is not over the limit."""
        ...

    def fail(self, address: str) -> bool:
        """Count one failure; True when the network was over the limit already before it."""
        ...


class FailureLimiter:
    """Counts failed authentications per client network in a sliding window, for at most `max_networks`.

    When the table is full, the network whose last failure is oldest is forgotten first.
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_networks: int = 100_000,
    ) -> None:
        self._limit = limit
        self._window = window_seconds
        self._max = max_networks
        self._clock = clock
        # By network, in the order of their last failure (oldest first); the limit-th newest failure is
        # all `retry_after` needs, and one more tells whether the limit was reached before a failure.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def _recent(self, network: str) -> deque[float]:
        failures = self._failures.get(network)
        if failures is None:
            return deque(maxlen=self._limit + 1)
        cutoff = self._clock() - self._window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[network]
        return failures

    def retry_after(self, address: str) -> int | None:
        return retry_after_seconds(self._recent(client_network(address)), self._limit, self._window, self._clock())

    def fail(self, address: str) -> bool:
        network = client_network(address)
        failures = self._recent(network)
        over = len(failures) >= self._limit
        failures.append(self._clock())
        self._failures[network] = failures
        self._failures.move_to_end(network)
        cutoff = self._clock() - self._window
        while self._failures:
            oldest, times = next(iter(self._failures.items()))
            if len(self._failures) <= self._max and times[-1] > cutoff:
                break
            del self._failures[oldest]
        return over


_WWW = {"WWW-Authenticate": 'Bearer realm="eventlog"'}


class Authenticator:
    """Checks bearer tokens; the failure limit holds back failing credentials only.

    Over the limit, a network's requests still pass with a token the store knows to be live: one client
    with a wrong token must not lock out the others behind the same NAT or proxy. Any other credential
    is then refused with 429 before it is looked up.
    """

    def __init__(self, tokens: TokenStore, limiter: FailureCounter) -> None:
        self._tokens = tokens
        self._limiter = limiter
        # A cluster's stores answer over the network: checked in a worker thread, off the event loop.
        self._offload = tokens.remote

    async def authenticate(self, authorization: str | None, address: str) -> Principal:
        if self._offload:
            return await asyncio.to_thread(self.check, authorization, address)
        return self.check(authorization, address)

    def check(self, authorization: str | None, address: str) -> Principal:
        """`authenticate`, blocking: the store's lookups run in the calling thread."""
        try:
            return self._check(authorization, address)
        except TokenStoreUnavailable as exc:
            raise AuthError(
                503,
                "auth_unavailable",
                f"tokens cannot be checked right now: {exc}; nothing was done, retry",
                {"Retry-After": "1"},
            ) from None

    def _check(self, authorization: str | None, address: str) -> Principal:
        scheme, _, rest = (authorization or "").partition(" ")
        credential = rest.strip() if scheme.lower() == "bearer" else ""
        retry = self._limiter.retry_after(address)
        if retry is not None and not (credential and self._tokens.known(credential)):
            self._limiter.fail(address)
            raise self._refused(address)
        if not authorization:
            if self._limiter.fail(address):
                raise self._refused(address)
            raise AuthError(
                401,
                "missing_token",
                "send `Authorization: Bearer <token>`; create a token with `eventlog tokens create`",
                _WWW,
            )
        token: Token | None = self._tokens.authenticate(credential) if credential else None
        if token is None:
            # Another node's failures may not have been seen yet: the count this one adds to decides.
            if self._limiter.fail(address) or retry is not None:
                raise self._refused(address)
            raise AuthError(
                401,
                "invalid_token",
                "the bearer token is unknown, revoked or expired; ask an admin for a new one",
                _WWW,
            )
        return Principal(token.id, token.tenant, token.scopes, token.name)

    def still_valid(self, principal: Principal) -> bool:
        """Whether the token `principal` authenticated with is still live (a query: call it off the loop)."""
        return self._tokens.is_live(principal.token_id)

    def _refused(self, address: str) -> AuthError:
        """The 429 of a failing credential over the limit (counted by the caller: guessing on keeps the block)."""
        retry = self._limiter.retry_after(address) or 1
        return AuthError(
            429,
            "too_many_failures",
            f"too many failed authentications from {client_network(address)}; until they age out only tokens"
            " this server already knows to be valid are accepted from there. Check the token this client sends"
            f" (is it unknown, revoked or expired?), then retry after {retry} s (the Retry-After header)",
            {"Retry-After": str(retry)},
        )


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
