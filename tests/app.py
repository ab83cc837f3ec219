"""A real eventlog app on a temporary data dir, driven in-process, and tokens for it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from eventlog.settings import Settings
from eventlog.tokens import TokenStore, parse_scopes


@dataclass
class Service:
    client: TestClient
    settings: Settings

    def token(self, tenant: str, scopes: str = "events:write,events:read", name: str = "") -> str:
        """A new token in the app's own store (tokens.db, or the cluster's index with OpenSearch)."""
        store: TokenStore = self.client.app.state.ctx.tokens  # type: ignore[attr-defined]
        return store.create(tenant=tenant, scopes=parse_scopes(scopes), name=name).secret

    @cached_property
    def admin(self) -> str:
        """An admin token of the operators' tenant, made at first use."""
        return self.token("ops", "admin")

    def readiness(self) -> dict[str, Any]:
        """/readyz with its detail, as an admin token sees it (any status: 503 has the same body)."""
        body: dict[str, Any] = self.client.get("/readyz", headers=bearer(self.admin)).json()
        return body

    def settle(self, timeout_seconds: float = 10.0) -> None:
        """Wait until the fan-out has delivered every committed event to the search store."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            sinks = self.client.get("/readyz").json()["sinks"]
            if all(s["lag_events"] == 0 for s in sinks.values()):
                self._refresh()
                return
            time.sleep(0.01)
        raise AssertionError(f"search store did not catch up within {timeout_seconds} s: {sinks}")

    def _refresh(self) -> None:
        """OpenSearch shows new documents after a refresh (1 s); tests ask for it at once."""
        url = self.settings.opensearch_url
        if url is not None:
            alias = f"{self.settings.opensearch_index_prefix}-events"
            answer = httpx.post(f"{url}/{alias}/_refresh", params={"ignore_unavailable": "true"})
            assert answer.status_code == 200, answer.text


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return Settings(data_dir=data_dir, fanout_poll_seconds=0.05, **overrides)  # type: ignore[arg-type]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
