"""Every setting is described, and docs/configuration.md lists it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from eventlog.settings import SECTIONS, Section, Settings

PAGE = (Path(__file__).parents[3] / "docs" / "configuration.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_setting_is_described_and_documented(name: str) -> None:
    field = Settings.model_fields[name]
    assert field.description, f"{name} needs a description"
    row = next((line for line in PAGE.splitlines() if line.startswith(f"| `EVENTLOG_{name.upper()}` |")), None)
    assert row is not None, (
        f"docs/configuration.md lacks EVENTLOG_{name.upper()}; run python -m eventlog.settings_reference"
    )


def test_environment_is_read_with_prefix_and_unknown_fields_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLOG_RETENTION_DAYS", "30")
    assert Settings().retention_days == 30
    with pytest.raises(ValidationError):
        Settings(retention_dayz=3)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "settings",
    [
        {"retention_tenant_days": {"a\nb": 30}},
        {"retention_tenant_days": {" acme": 30}},
        {"archive_tenants": ["acme", "tab\there"]},
        {"cloudtrail_account_tenants": {"111111111111": "a\u202eb"}},
        {"cloudtrail_account_tenants": {"111111111111": ""}},
        {"bootstrap_tenant": "ops\n"},
    ],
)
def test_tenants_in_settings_follow_the_tenant_rule(settings: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=r"tenant name|at least 1 character"):
        Settings(**settings)  # type: ignore[arg-type]


def test_tenants_in_settings_that_follow_the_rule_are_kept() -> None:
    settings = Settings(
        retention_tenant_days={"acme": 90},
        archive_tenants=["*", "acme eu"],
        cloudtrail_account_tenants={"111111111111": "acme"},
        bootstrap_tenant="ops",
    )
    assert settings.archive_tenants == ["*", "acme eu"]


def test_one_tenants_share_of_the_read_threads_cannot_exceed_them() -> None:
    with pytest.raises(ValidationError, match="read_tenant_concurrent_reads"):
        Settings(read_threads=2, read_tenant_concurrent_reads=3)
    assert Settings(read_threads=2, read_tenant_concurrent_reads=2).read_tenant_concurrent_reads == 2


@pytest.mark.parametrize("kind", SECTIONS, ids=lambda kind: kind.__name__)
def test_a_section_holds_exactly_the_settings_of_its_prefix(kind: type[Section]) -> None:
    # A setting added to Settings under a section's prefix must reach the component that takes the section.
    flat = {name.removeprefix(kind.PREFIX) for name in Settings.model_fields if name.startswith(kind.PREFIX)}
    assert set(kind.model_fields) == flat


def test_a_section_carries_the_values_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLOG_OPENSEARCH_URL", "http://search:9200")
    monkeypatch.setenv("EVENTLOG_OPENSEARCH_SHARDS", "3")
    monkeypatch.setenv("EVENTLOG_CLOUDTRAIL_ACCOUNT_TENANTS", '{"111111111111": "acme"}')
    monkeypatch.setenv("EVENTLOG_READ_THREADS", "4")
    settings = Settings()
    assert (settings.opensearch.url, settings.opensearch.shards) == ("http://search:9200", 3)
    assert settings.cloudtrail.account_tenants == {"111111111111": "acme"}
    assert settings.reads.threads == 4
    assert settings.limits.event_bytes == settings.max_event_bytes


def test_sections_do_not_overlap() -> None:
    prefixes = [kind.PREFIX for kind in SECTIONS]
    assert not [(a, b) for a in prefixes for b in prefixes if a != b and a.startswith(b)]
