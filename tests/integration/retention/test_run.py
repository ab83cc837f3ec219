"""Retention end to end: 20 days of events, retention 14, one tenant archived, one on hold.

It runs on both stores (the embedded SQLite and the real OpenSearch node) with the real
S3 server (moto standalone), moving the retention run's clock instead of waiting days.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from eventlog.app.cli import main
from eventlog.app.service import create_app
from eventlog.verify import verify_journal
from retention.archive import Archive
from tests.app import Service, bearer, make_settings

pytestmark = pytest.mark.s3

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
DAYS = 20
PER_DAY = 4
RETENTION = 14
TENANTS = ("archived", "held", "plain")


def _day(age: int) -> date:
    return TODAY - timedelta(days=age)


@pytest.fixture(params=["sqlite", pytest.param("opensearch", marks=pytest.mark.opensearch)])
def retained(
    request: pytest.FixtureRequest, tmp_path: Path, s3_endpoint_url: str, index_prefix: str
) -> Iterator[tuple[Service, Archive]]:
    """20 days of events written while retention was 30 days; then the service runs with 14."""
    bucket = f"archive-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint_url)
    s3.create_bucket(Bucket=bucket)
    overrides: dict[str, Any] = {
        "retention_interval_hours": 0,
        "archive_bucket": bucket,
        "archive_endpoint_url": s3_endpoint_url,
        "archive_tenants": ["archived"],
    }
    if request.param == "opensearch":
        overrides |= {
            "opensearch_url": request.getfixturevalue("opensearch_url"),
            "opensearch_index_prefix": index_prefix,
        }
    seeding = make_settings(tmp_path / "data", retention_days=30, **overrides)
    with TestClient(create_app(seeding)) as client:
        request.node.seeded = _seed(Service(client, seeding))
    settings = make_settings(tmp_path / "data", retention_days=RETENTION, **overrides)
    with TestClient(create_app(settings, clock=lambda: NOW)) as client:
        yield Service(client, settings), Archive(s3, bucket, settings.archive_prefix)


def _seed(service: Service) -> dict[str, dict[date, set[str]]]:
    """PER_DAY events per tenant and day, ages 0..19 days; answers their ids by tenant and day."""
    ids: dict[str, dict[date, set[str]]] = {t: {} for t in TENANTS}
    for tenant in TENANTS:
        token = service.token(tenant, "events:write")
        events = []
        for age in range(DAYS):
            start = datetime.combine(_day(age), datetime.min.time(), UTC) + timedelta(minutes=1)
            for i in range(PER_DAY):
                event_id = f"{tenant}-{age}-{i}"
                ids[tenant].setdefault(_day(age), set()).add(event_id)
                events.append(
                    {
                        "id": event_id,
                        "time": (start + timedelta(minutes=i)).isoformat(),
                        "action": "storage.tables.read",
                        "outcome": "success",
                        "message": f"day {age} event {i}",
                    }
                )
        answer = service.client.post("/v1/events", json={"events": events}, headers=bearer(token))
        assert answer.status_code == 201, answer.text
    service.settle()
    return ids


def _stored(service: Service, tenant: str) -> dict[str, bytes]:
    """Every event of the tenant the store holds (its own audit events aside), by id."""
    token = service.token(tenant, "events:read")
    answer = service.client.get(
        "/v1/events/export",
        params={"format": "ndjson", "q": "-source:eventlog", "since": (NOW - timedelta(days=40)).isoformat()},
        headers=bearer(token),
    )
    assert answer.status_code == 200, answer.text
    lines = [line for line in answer.content.split(b"\n") if line]
    return {orjson.loads(line)["id"]: line for line in lines}


def _audit(service: Service, tenant: str, action: str) -> list[dict[str, Any]]:
    service.settle()
    token = service.token(tenant, "events:read")
    answer = service.client.get("/v1/events", params={"q": f"action:{action}"}, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


def test_retention_keeps_exactly_what_policy_and_holds_say_and_archives_first(
    retained: tuple[Service, Archive], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    service, archive = retained
    ids: dict[str, dict[date, set[str]]] = request.node.seeded
    before = {t: _stored(service, t) for t in TENANTS}
    assert all(len(before[t]) == DAYS * PER_DAY for t in TENANTS)
    admin = bearer(service.token("ops", "admin"))

    whole = service.client.post("/v1/holds", json={"tenant": "held", "reason": "case 4711"}, headers=admin)
    assert whole.status_code == 201, whole.text
    day16 = datetime.combine(_day(16), datetime.min.time(), UTC)
    ranged = service.client.post(
        "/v1/holds",
        json={
            "tenant": "plain",
            "since": day16.isoformat(),
            "until": (day16 + timedelta(hours=1)).isoformat(),
            "reason": "case 4712",
        },
        headers=admin,
    )
    assert ranged.status_code == 201, ranged.text

    expired_days = {_day(age) for age in range(RETENTION + 1, DAYS)}  # ages 15..19
    dry = service.client.post("/v1/retention/run", params={"dry_run": "true"}, headers=admin)
    assert dry.status_code == 200, dry.text
    planned = {(r["tenant"], r["day"]) for r in dry.json()["removed"]}
    assert planned == {("archived", d.isoformat()) for d in expired_days} | {
        ("plain", d.isoformat()) for d in expired_days - {_day(16)}
    }
    assert {t: _stored(service, t) for t in TENANTS} == before, "a dry run touched the store"
    assert archive.days("archived") == []

    run = service.client.post("/v1/retention/run", headers=admin)
    assert run.status_code == 200, run.text
    report = run.json()
    assert report["failures"] == []
    assert report["removed_events"] == (2 * len(expired_days) - 1) * PER_DAY
    service.settle()

    after = {t: _stored(service, t) for t in TENANTS}

    def kept(tenant: str, extra: set[date] = set()) -> set[str]:  # noqa: B006 - read only
        return {i for d, day_ids in ids[tenant].items() if d not in expired_days or d in extra for i in day_ids}

    assert set(after["archived"]) == kept("archived")
    assert set(after["plain"]) == kept("plain", {_day(16)})
    assert after["held"] == before["held"], "a held event was touched"
    for tenant in TENANTS:  # what stays is byte for byte what was stored
        assert all(after[tenant][i] == before[tenant][i] for i in after[tenant])

    # The archive holds exactly the removed days of the archived tenant, verified, restorable to the same events.
    assert archive.days("archived") == sorted(expired_days)
    for day in expired_days:
        manifest = archive.manifest("archived", day)
        assert manifest is not None
        assert manifest.events == PER_DAY
        archive.verify(manifest)
        restored = {orjson.loads(d)["id"]: orjson.loads(d) for d in archive.read_day("archived", day)}
        assert set(restored) == ids["archived"][day]
        assert all(restored[i] == orjson.loads(before["archived"][i]) for i in restored)
    assert archive.days("plain") == []
    assert archive.days("held") == []

    # Every run is on record: in each tenant it touched, and in the operator's tenant.
    (expire,) = _audit(service, "archived", "eventlog.retention.expire")
    assert expire["details"]["events"] == len(expired_days) * PER_DAY
    assert len(expire["details"]["archived"]) == len(expired_days)
    assert _audit(service, "held", "eventlog.retention.expire") == []
    (summary,) = _audit(service, service.settings.bootstrap_tenant, "eventlog.retention.run")
    assert summary["outcome"] == "success"
    holds = _audit(service, "ops", "eventlog.holds.place")
    assert {h["target"]["name"] for h in holds} == {"held", "plain"}

    if service.settings.opensearch_url is not None:
        _check_indices(service, expired_days)

    # A second run finds nothing more; releasing the hold lets the held tenant's old days go.
    again = service.client.post("/v1/retention/run", headers=admin).json()
    assert again["removed"] == []
    assert again["failures"] == []
    released = service.client.delete(f"/v1/holds/{whole.json()['id']}", headers=admin)
    assert released.status_code == 200
    assert released.json()["released_at"] is not None
    last = service.client.post("/v1/retention/run", headers=admin).json()
    assert {(r["tenant"], r["day"]) for r in last["removed"]} == {("held", d.isoformat()) for d in expired_days}
    service.settle()
    assert set(_stored(service, "held")) == kept("held")
    assert set(_stored(service, "plain")) == kept("plain", {_day(16)})
    assert verify_journal(service.settings.journal_path, None).ok

    # `eventlog archive restore` loads an archived day back into the store for an investigation.
    day = _day(17)
    monkeypatch.setenv("EVENTLOG_ARCHIVE_BUCKET", service.settings.archive_bucket or "")
    monkeypatch.setenv("EVENTLOG_ARCHIVE_ENDPOINT_URL", service.settings.archive_endpoint_url or "")
    if service.settings.opensearch_url is not None:
        monkeypatch.setenv("EVENTLOG_OPENSEARCH_URL", service.settings.opensearch_url)
        monkeypatch.setenv("EVENTLOG_OPENSEARCH_INDEX_PREFIX", service.settings.opensearch_index_prefix)
    code = main(
        [
            "archive",
            "restore",
            "--tenant",
            "archived",
            "--day",
            day.isoformat(),
            "--data-dir",
            str(service.settings.data_dir),
        ]
    )
    assert code == 0
    service.settle()
    back = _stored(service, "archived")
    assert ids["archived"][day] <= set(back)
    assert all(
        back[i] == before["archived"][i] or orjson.loads(back[i]) == orjson.loads(before["archived"][i])
        for i in ids["archived"][day]
    )


def _check_indices(service: Service, expired_days: set[date]) -> None:
    """Whole daily indices went; the held events moved to kept indices; no delete-by-query."""
    url = service.settings.opensearch_url
    prefix = service.settings.opensearch_index_prefix
    names = [row["index"] for row in httpx.get(f"{url}/_cat/indices/{prefix}-*", params={"format": "json"}).json()]
    for day in expired_days:
        stamp = day.strftime("%Y.%m.%d")
        assert f"{prefix}-events-{stamp}" not in names
        assert any(n.startswith(f"{prefix}-kept-{stamp}-") for n in names), names
    aliases = httpx.get(f"{url}/_alias/{prefix}-events").json()
    assert all(n in aliases for n in names if n.startswith(f"{prefix}-kept-"))
