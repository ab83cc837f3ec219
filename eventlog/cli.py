"""The `eventlog` command: serve, tokens, verify, cloudtrail import. Its output is a contract scripts rely on."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from eventlog.settings import Settings
from eventlog.tokens import TokenError, TokenStore, parse_scopes


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if getattr(args, "data_dir", None) is not None:
        values["data_dir"] = args.data_dir
    return Settings(**values)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from eventlog import logs
    from eventlog.service import create_app

    settings = _settings(args, host=args.host, port=args.port)
    logs.configure(settings.log_level)
    _bootstrap_admin(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    # Everything built so far (FastAPI, pydantic, the routes) lives as long as the process:
    # freezing it keeps the collector from rescanning ~100k objects in pauses of 35-75 ms.
    gc.collect()
    gc.freeze()
    uvicorn.Server(config).run()
    return 0


def _bootstrap_admin(settings: Settings) -> None:
    """The first start prints an admin token, so a fresh install can be used at once."""
    store = TokenStore(settings.tokens_path)
    try:
        if store.count():
            return
        issued = store.create(
            tenant=settings.bootstrap_tenant,
            scopes=frozenset({"admin", "events:read", "events:write"}),
            name="bootstrap admin",
        )
    finally:
        store.close()
    if sys.stderr.isatty():
        print(
            f"\nBootstrap admin token for tenant {settings.bootstrap_tenant!r} (shown once, keep it safe):\n\n"
            f"    {issued.secret}\n\n"
            "Create narrower tokens with `eventlog tokens create --tenant T --scopes events:write`.\n",
            file=sys.stderr,
            flush=True,
        )
        return
    # Without a terminal, stderr usually ends up in a log collector: keep the secret out of it.
    path = settings.data_dir / "bootstrap-admin-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(issued.secret + "\n")
    print(
        f"Bootstrap admin token for tenant {settings.bootstrap_tenant!r} written to {path} (mode 0600); "
        "read it, then delete the file.",
        file=sys.stderr,
        flush=True,
    )


def _tokens_create(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = TokenStore(settings.tokens_path)
    try:
        issued = store.create(
            tenant=args.tenant, scopes=parse_scopes(args.scopes), name=args.name or "", expires_days=args.expires_days
        )
    finally:
        store.close()
    if args.json:
        sys.stdout.write(orjson.dumps({"id": issued.token.id, "secret": issued.secret}).decode() + "\n")
    else:
        token = issued.token
        print(f"id:      {token.id}")
        print(f"tenant:  {token.tenant}")
        print(f"scopes:  {','.join(sorted(token.scopes))}")
        print(f"expires: {token.expires_at or 'never'}")
        print(f"secret:  {issued.secret}")
        print("The secret is shown only now; eventlog keeps its SHA-256 hash.", file=sys.stderr)
    return 0


def _tokens_list(args: argparse.Namespace) -> int:
    store = TokenStore(_settings(args).tokens_path)
    try:
        tokens = store.list(args.tenant)
    finally:
        store.close()
    if args.json:
        sys.stdout.write(orjson.dumps([t.as_dict() for t in tokens]).decode() + "\n")
        return 0
    print(f"{'ID':<18}{'TENANT':<20}{'SCOPES':<36}{'EXPIRES':<30}{'STATE':<9}NAME")
    for t in tokens:
        state = "revoked" if t.revoked_at else "active"
        print(
            f"{t.id:<18}{t.tenant:<20}{','.join(sorted(t.scopes)):<36}{t.expires_at or 'never':<30}{state:<9}{t.name}"
        )
    return 0


def _tokens_revoke(args: argparse.Namespace) -> int:
    store = TokenStore(_settings(args).tokens_path)
    try:
        token = store.revoke(args.id)
    finally:
        store.close()
    print(f"revoked {token.id} (tenant {token.tenant}) at {token.revoked_at}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from eventlog.checkpoints import public_key_path
    from eventlog.verify import verify_journal

    settings = _settings(args)
    key = args.public_key or public_key_path(settings.signing_key_path)
    report = verify_journal(settings.journal_path, key if key.exists() else None)
    if report.ok:
        print(f"ok: stream {report.stream!r}, {report.events} events, {report.checkpoints} signed checkpoints hold")
        return 0
    print(f"FAILED: stream {report.stream!r}: first bad: {report.problems[0]}")
    for problem in report.problems[1:20]:
        print(f"  also: {problem}")
    if len(report.problems) > 20:
        print(f"  ... {len(report.problems) - 20} more")
    return 1


def _cloudtrail_import(args: argparse.Namespace) -> int:
    import asyncio
    from datetime import date

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from eventlog.journal import Journal
    from eventlog.service import stream_name
    from ingest.cloudtrail import CheckpointStore, Limits, import_cloudtrail

    settings = _settings(args, cloudtrail_endpoint_url=args.endpoint_url)
    since = date.fromisoformat(args.since) if args.since else None
    if not settings.cloudtrail_account_tenants:
        print(
            "eventlog: warning: EVENTLOG_CLOUDTRAIL_ACCOUNT_TENANTS is empty; every record will be skipped",
            file=sys.stderr,
        )
    s3 = boto3.client("s3", endpoint_url=settings.cloudtrail_endpoint_url)
    limits = Limits(
        retention_days=settings.retention_days,
        max_future_seconds=settings.max_future_seconds,
        max_details_depth=settings.max_details_depth,
        max_event_bytes=settings.max_event_bytes,
    )
    journal = Journal(
        settings.journal_path, stream=stream_name(settings), max_group_events=settings.group_commit_max_events
    )
    checkpoints = CheckpointStore(settings.cloudtrail_path)
    journal.open()
    try:
        stats = asyncio.run(
            import_cloudtrail(
                s3,
                bucket=args.bucket,
                prefix=args.prefix,
                append=journal.append,
                checkpoints=checkpoints,
                tenants=settings.cloudtrail_account_tenants,
                limits=limits,
                since=since,
                reread=args.reread,
                progress=lambda line: print(line, file=sys.stderr, flush=True),
            )
        )
    except (BotoCoreError, ClientError) as exc:
        print(f"eventlog: error: S3: {exc}; files read so far are checkpointed, run again", file=sys.stderr)
        return 1
    finally:
        journal.close()
        checkpoints.close()
    if args.json:
        sys.stdout.write(orjson.dumps(stats.as_dict()).decode() + "\n")
    else:
        skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(stats.skipped.items())) or "none"
        print(f"files:      {stats.files} ({len(stats.malformed)} malformed)")
        print(f"records:    {stats.records}")
        print(f"imported:   {stats.imported}")
        print(f"duplicates: {stats.duplicates}")
        print(f"skipped:    {skipped}")
        for key, error in stats.malformed:
            print(f"malformed:  {key}: {error}")
    return 0


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data directory (default: $EVENTLOG_DATA_DIR or ./data)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventlog", description="eventlog: an immutable, tamper-evident audit log service."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service", description="Run the HTTP service.")
    serve.add_argument("--host", default=None, help="bind address (default: $EVENTLOG_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default: $EVENTLOG_PORT or 8080)")
    _data_dir_option(serve)
    serve.set_defaults(run=_serve)

    tokens = commands.add_parser("tokens", help="create, list and revoke API tokens", description="Manage API tokens.")
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    create = token_commands.add_parser(
        "create", help="create a token and print its secret once", description="Create a token; prints the secret once."
    )
    create.add_argument("--tenant", required=True, help="tenant every event and read of this token belongs to")
    create.add_argument(
        "--scopes",
        required=True,
        help="comma-separated: events:write, events:read, admin (e.g. events:write,events:read)",
    )
    create.add_argument("--name", default=None, help="a label to recognise the token by")
    create.add_argument("--expires-days", type=int, default=None, help="expire after N days (default: never)")
    create.add_argument("--json", action="store_true", help='print only {"id": ..., "secret": ...} on stdout')
    _data_dir_option(create)
    create.set_defaults(run=_tokens_create)

    listing = token_commands.add_parser("list", help="list tokens (never their secrets)", description="List tokens.")
    listing.add_argument("--tenant", default=None, help="only this tenant's tokens")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    _data_dir_option(listing)
    listing.set_defaults(run=_tokens_list)

    revoke = token_commands.add_parser("revoke", help="revoke a token by id", description="Revoke a token by id.")
    revoke.add_argument("id", help="the token id shown by `eventlog tokens list`")
    _data_dir_option(revoke)
    revoke.set_defaults(run=_tokens_revoke)

    verify = commands.add_parser(
        "verify",
        help="check the hash chain and signed checkpoints",
        description="Walk the journal's hash chain and check every signed checkpoint. "
        "Exit 0 when it holds; 1 and the first bad event otherwise.",
    )
    _data_dir_option(verify)
    verify.add_argument(
        "--public-key",
        type=Path,
        default=None,
        help="Ed25519 public key (PEM) to check checkpoints with "
        "(default: signing.pub in the data dir; pin your own copy for real assurance)",
    )
    verify.set_defaults(run=_verify)

    cloudtrail = commands.add_parser(
        "cloudtrail", help="import AWS CloudTrail log files from S3", description="Import AWS CloudTrail log files."
    )
    cloudtrail_commands = cloudtrail.add_subparsers(dest="cloudtrail_command", required=True, metavar="ACTION")
    ct_import = cloudtrail_commands.add_parser(
        "import",
        help="read new CloudTrail log files under a bucket/prefix into the journal",
        description="Read the CloudTrail log files under s3://BUCKET/PREFIX/AWSLogs/ (organization trails too) "
        "that earlier runs did not read, map each record to an event (source cloudtrail) and append it to the "
        "journal of the data dir, in the tenant EVENTLOG_CLOUDTRAIL_ACCOUNT_TENANTS maps its account to. "
        "Records of unmapped accounts and records older than the retention window are counted and skipped; "
        "malformed files are reported and skipped. Progress goes to stderr, the summary to stdout. "
        "It opens the journal itself: run it only while no `eventlog serve` uses the same data dir.",
    )
    ct_import.add_argument("--bucket", required=True, help="S3 bucket the trail delivers to")
    ct_import.add_argument("--prefix", default="", help="key prefix of the trail (the part before AWSLogs/)")
    ct_import.add_argument(
        "--since", default=None, help="YYYY-MM-DD: skip files delivered before this day (UTC), whatever the checkpoint"
    )
    ct_import.add_argument(
        "--reread", action="store_true", help="ignore the checkpoint and read every file again (events stored once)"
    )
    ct_import.add_argument(
        "--endpoint-url", default=None, help="S3 endpoint (default: $EVENTLOG_CLOUDTRAIL_ENDPOINT_URL or AWS)"
    )
    ct_import.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    _data_dir_option(ct_import)
    ct_import.set_defaults(run=_cloudtrail_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except (TokenError, FileNotFoundError, ValueError) as exc:
        print(f"eventlog: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
