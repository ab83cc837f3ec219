"""The command line contract: --help everywhere, tokens --json, verify exit codes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from eventlog.app.cli import main
from eventlog.canonical import canonical_json
from eventlog.checkpoints import Checkpointer, load_or_create_key
from eventlog.journal import Journal, Prepared
from tests.app import Service, bearer


@pytest.mark.parametrize(
    "argv",
    [[], ["serve"], ["tokens"], ["tokens", "create"], ["tokens", "list"], ["tokens", "revoke"], ["verify"]],
)
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    assert "usage: eventlog" in capsys.readouterr().out


def test_tokens_create_json_prints_only_id_and_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "tokens",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "events:write,events:read",
            "--json",
            "--data-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert set(orjson.loads(out)) == {"id", "secret"}
    assert out.count("\n") == 1


def test_tokens_list_and_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            "tokens",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "admin",
            "--name",
            "ops",
            "--json",
            "--data-dir",
            str(tmp_path),
        ]
    )
    token_id = orjson.loads(capsys.readouterr().out)["id"]
    assert main(["tokens", "list", "--data-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert token_id in listing
    assert "active" in listing
    assert main(["tokens", "revoke", token_id, "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"revoked {token_id}")
    main(["tokens", "list", "--json", "--data-dir", str(tmp_path)])
    assert orjson.loads(capsys.readouterr().out)[0]["revoked_at"] is not None


def test_bad_scope_exits_2_with_a_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokens", "create", "--tenant", "a", "--scopes", "root", "--data-dir", str(tmp_path)]) == 2
    assert "choose from" in capsys.readouterr().err


def test_verify_exit_codes_on_a_real_service_journal(
    tmp_path: Path, service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    token = service.token("acme")
    receipts = service.client.post(
        "/v1/events", json={"events": [{"action": "a.b", "message": str(i)} for i in range(20)]}, headers=bearer(token)
    ).json()["receipts"]
    data_dir = str(service.settings.data_dir)
    assert main(["verify", "--data-dir", data_dir]) == 0
    assert capsys.readouterr().out.startswith("ok:")

    conn = sqlite3.connect(service.settings.journal_path)
    conn.execute('UPDATE events SET document = replace(document, \'"message":"7"\', \'"message":"8"\')')
    conn.commit()
    conn.close()
    assert main(["verify", "--data-dir", data_dir]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out
    assert f"id={receipts[7]['id']}" in out.splitlines()[0]


def test_verify_without_journal_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--data-dir", str(tmp_path / "none")]) == 2
    assert "--data-dir" in capsys.readouterr().err


async def _signed_journal(data_dir: Path, events: int = 4) -> None:
    journal = Journal(data_dir / "journal.db", stream="node-a")
    journal.open()
    try:
        for i in range(1, events + 1):
            body = {"id": f"e{i}", "tenant": "t", "message": str(i)}
            await journal.append("t", [Prepared(f"e{i}", body, canonical_json(body), False)])
        await Checkpointer(journal, load_or_create_key(data_dir / "signing.key"), 300).checkpoint()
    finally:
        journal.close()


def test_verify_help_documents_every_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for status in (
        "0 everything was checked and holds",
        "1 a problem was found",
        "2 verify could not run",
        "3 nothing",
    ):
        assert status in text


async def test_verify_a_missing_public_key_is_an_error_that_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _signed_journal(tmp_path)
    assert main(["verify", "--data-dir", str(tmp_path), "--public-key", str(tmp_path / "pinned.pub")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "pinned.pub: no such file; pass --public-key with a copy of the node's signing.pub" in captured.err


async def test_verify_without_a_public_key_says_signatures_were_not_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _signed_journal(tmp_path)
    (tmp_path / "signing.pub").unlink()
    assert main(["verify", "--data-dir", str(tmp_path)]) == 3
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("INCOMPLETE: stream 'node-a', 4 events (seq 1..4), 1 signed checkpoints")
    assert lines[1].startswith(f"  not checked: signatures: not checked (no --public-key, and no {tmp_path}")


async def test_verify_a_cut_tail_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await _signed_journal(tmp_path)
    assert main(["verify", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("ok: stream 'node-a', 4 events (seq 1..4), 1 signed checkpoints hold")
    conn = sqlite3.connect(tmp_path / "journal.db")
    conn.execute("DELETE FROM events WHERE seq = 4")
    conn.commit()
    conn.close()
    assert main(["verify", "--data-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "FAILED: stream 'node-a': first bad: events seq 4..4 are gone from the end of the journal "
        "(it recorded seq 4 as its head)",
        "  also: checkpoint seq=4: signs an event past the journal's end (its last event is seq 3)",
        "  note: events seq 1..3: no signed checkpoint covers them; their chain holds, but no signature vouches "
        "for them yet",
    ]


def test_bootstrap_token_goes_to_a_private_file_without_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eventlog.app.cli.serve import bootstrap_admin
    from eventlog.settings import Settings
    from eventlog.tokens import SqliteTokenStore

    settings = Settings(data_dir=tmp_path)
    bootstrap_admin(settings)
    err = capsys.readouterr().err
    path = tmp_path / "bootstrap-admin-token"
    secret = path.read_text().strip()
    assert secret.startswith("evl_")
    assert secret not in err
    assert path.stat().st_mode & 0o777 == 0o600
    store = SqliteTokenStore(settings.tokens_path)
    try:
        token = store.authenticate(secret)
        assert token is not None
        assert "admin" in token.scopes
    finally:
        store.close()
    bootstrap_admin(settings)  # a second start creates nothing
    assert path.read_text().strip() == secret
