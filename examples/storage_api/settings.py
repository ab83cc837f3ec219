"""The example's one settings object, read from the environment (prefix ``STORAGE_API_``) by the app factory."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STORAGE_API_", extra="forbid", frozen=True)

    master_token: SecretStr = Field(description="The Storage API token that may do everything (`X-StorageApi-Token`).")
    audit: bool = Field(True, description="Mount eventlog's audit middleware; false serves the bare app (benchmarks).")
    eventlog_url: str = Field("http://127.0.0.1:8080", description="Base URL of the eventlog that receives the events.")
    eventlog_token: SecretStr | None = Field(
        None, description="eventlog token with the `events:write` scope; required when `audit` is on."
    )
    spool_dir: Path = Field(
        Path("spool"), description="Directory of the disk spool for events eventlog cannot take yet."
    )
    flush_interval_seconds: float = Field(0.2, gt=0, description="Longest an event waits in memory for its batch.")
    batch_max_events: int = Field(500, ge=1, le=1000, description="Most events in one request to eventlog.")
    queue_max_events: int = Field(10_000, ge=1000, description="Events held in memory; beyond, they go to the spool.")
    max_backoff_seconds: float = Field(30.0, gt=0, description="Longest wait between two retries of the spool.")
    request_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one request to eventlog.")
    close_timeout_seconds: float = Field(10.0, gt=0, description="How long shutdown tries to send before spooling.")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Proxies (addresses or CIDRs) whose X-Forwarded-For is believed; JSON list."
    )
