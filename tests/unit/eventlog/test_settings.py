"""Every setting is described, and README's configuration table lists it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from eventlog.settings import Settings

README = (Path(__file__).parents[3] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_setting_is_described_and_documented(name: str) -> None:
    field = Settings.model_fields[name]
    assert field.description, f"{name} needs a description"
    row = next((line for line in README.splitlines() if line.startswith(f"| `EVENTLOG_{name.upper()}` |")), None)
    assert row is not None, f"README's configuration table lacks EVENTLOG_{name.upper()}"
    assert field.description in row


def test_environment_is_read_with_prefix_and_unknown_fields_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLOG_RETENTION_DAYS", "30")
    assert Settings().retention_days == 30
    with pytest.raises(ValidationError):
        Settings(retention_dayz=3)  # type: ignore[call-arg]


def test_one_tenants_share_of_the_read_threads_cannot_exceed_them() -> None:
    with pytest.raises(ValidationError, match="read_tenant_concurrent_reads"):
        Settings(read_threads=2, read_tenant_concurrent_reads=3)
    assert Settings(read_threads=2, read_tenant_concurrent_reads=2).read_tenant_concurrent_reads == 2
