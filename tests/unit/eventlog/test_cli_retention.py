"""`eventlog retention run` and `eventlog archive restore` from the command line; --help on every command."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from eventlog.app.cli import build_parser, main
from eventlog.app.service import create_app
from tests.app import Service, bearer, make_settings


def _commands(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[list[str]]:
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, [*path, name])


def test_every_command_and_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = list(_commands(build_parser(), []))
    assert ["retention", "run"] in commands
    assert ["archive", "restore"] in commands
    for argv in commands:
        with pytest.raises(SystemExit) as exited:
            main([*argv, "--help"])
        assert exited.value.code == 0, argv
        assert "usage: eventlog" in capsys.readouterr().out


def test_retention_run_dry_run_then_real_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    old = datetime.now(UTC) - timedelta(days=20)
    seeding = make_settings(data, retention_days=30, retention_interval_hours=0)
    with TestClient(create_app(seeding)) as client:
        service = Service(client, seeding)
        token = service.token("acme", "events:write")
        events = [{"action": "a.b", "time": (old + timedelta(minutes=i)).isoformat()} for i in range(3)]
        events.append({"action": "a.c"})
        assert client.post("/v1/events", json={"events": events}, headers=bearer(token)).status_code == 201
        service.settle()

    argv = ["retention", "run", "--data-dir", str(data)]
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would remove tenant acme day {old.date()}: 3 events" in out
    assert "total: would remove 3 events; 0 failures" in out
    assert main([*argv, "--json"]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["removed_events"] == 3
    assert report["dry_run"] is False
    assert main([*argv, "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["removed_events"] == 0

    with TestClient(create_app(make_settings(data, retention_interval_hours=0))) as client:
        service = Service(client, make_settings(data))
        service.settle()  # the events the CLI appended reach the store through the restarted fan-out
        reader = bearer(service.token("acme", "events:read,admin"))
        found = client.get("/v1/events", params={"q": "action:a.*"}, headers=reader).json()["events"]
        assert [e["action"] for e in found] == ["a.c"]
        (run,) = client.get("/v1/events", params={"q": "action:eventlog.retention.expire"}, headers=reader).json()[
            "events"
        ]
        assert run["details"]["events"] == 3


def test_archive_restore_without_a_bucket_says_what_to_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["archive", "restore", "--tenant", "t", "--day", "2026-11-01", "--data-dir", str(tmp_path)]) == 2
    assert "EVENTLOG_ARCHIVE_BUCKET" in capsys.readouterr().err
