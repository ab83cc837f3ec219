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

from eventlog.datadir import DataDirBusy, lock_data_dir
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
    writer_lock = lock_data_dir(settings.data_dir, "eventlog serve")  # noqa: F841 - held until the process ends
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
    key: Path | None = args.public_key
    no_key_reason = "no public key was given"
    if key is None:
        default = public_key_path(settings.signing_key_path)
        key = default if default.exists() else None
        no_key_reason = f"no --public-key, and no {default}"
    report = verify_journal(settings.journal_path, key, no_key_reason=no_key_reason)
    span = f" (seq {report.first_seq}..{report.last_seq})" if report.events else ""
    summary = f"stream {report.stream!r}, {report.events} events{span}, {report.checkpoints} signed checkpoints"
    if not report.ok:
        print(f"FAILED: stream {report.stream!r}: first bad: {report.problems[0]}")
        for problem in report.problems[1:20]:
            print(f"  also: {problem}")
        if len(report.problems) > 20:
            print(f"  ... {len(report.problems) - 20} more")
    elif report.unchecked:
        print(f"INCOMPLETE: {summary}: nothing wrong found, but not everything could be checked")
    else:
        checked = f"; signatures checked with {key}" if report.signatures_checked and report.checkpoints else ""
        print(f"ok: {summary} hold{checked}")
    for line in report.unchecked:
        print(f"  not checked: {line}")
    for line in report.notes:
        print(f"  note: {line}")
    if not report.ok:
        return 1
    # 3: nothing wrong was found, but part of the journal could not be checked (listed above).
    return 3 if report.unchecked else 0


def _cloudtrail_import(args: argparse.Namespace) -> int:
    import asyncio
    from datetime import date

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from eventlog.journal import Journal
    from eventlog.service import stream_name
    from ingest.cloudtrail.checkpoints import CheckpointStore
    from ingest.cloudtrail.digest import load_public_keys
    from ingest.cloudtrail.importer import import_cloudtrail
    from ingest.cloudtrail.mapping import limits_of

    settings = _settings(args, cloudtrail_endpoint_url=args.endpoint_url)
    public_keys = load_public_keys(settings.cloudtrail_digest_public_keys) or None
    since = date.fromisoformat(args.since) if args.since else None
    if not settings.cloudtrail_account_tenants:
        print(
            "eventlog: warning: EVENTLOG_CLOUDTRAIL_ACCOUNT_TENANTS is empty; every record will be skipped",
            file=sys.stderr,
        )
    writer_lock = lock_data_dir(settings.data_dir, "eventlog cloudtrail import")
    s3 = boto3.client("s3", endpoint_url=settings.cloudtrail_endpoint_url)
    limits = limits_of(settings)
    journal = Journal(
        settings.journal_path, stream=stream_name(settings), max_group_events=settings.group_commit_max_events
    )
    checkpoints = CheckpointStore(settings.cloudtrail_path)
    journal.open()
    # As for serve: what lives as long as the command (boto3's models, pydantic) is frozen out of the
    # collector's full passes, which the import's millions of short-lived objects would otherwise trigger.
    gc.collect()
    gc.freeze()
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
                public_keys=public_keys,
                require_digest=settings.cloudtrail_require_digest,
                progress=lambda line: print(line, file=sys.stderr, flush=True),
            )
        )
    except (BotoCoreError, ClientError) as exc:
        print(f"eventlog: error: S3: {exc}; files read so far are checkpointed, run again", file=sys.stderr)
        return 1
    finally:
        gc.unfreeze()  # main() may be called in a process that goes on (tests)
        journal.close()
        checkpoints.close()
        writer_lock.close()
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
        if stats.validation:
            print(
                f"digests:    {stats.digests} valid; log files {stats.validated} validated, "
                f"{stats.unvalidated} unvalidated, {stats.awaiting_digest} awaiting a digest"
            )
        for failure in stats.integrity:
            found = f" (expected {failure.expected}, found {failure.actual})" if failure.kind == "log_hash" else ""
            print(f"INTEGRITY:  {failure.kind}: {failure.key}: {failure.error}{found}")
    # 3: the import ran, but a log file or digest failed validation (reported above; see docs/cloudtrail.md).
    return 3 if stats.integrity else 0


def _dashboards_import(args: argparse.Namespace) -> int:
    import getpass
    import ssl

    from dashboards.importer import DashboardsImportError, ca_context, import_saved_objects, saved_objects, to_ndjson

    prefix: str = args.prefix or Settings().opensearch_index_prefix
    password: str | None = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            print(f"eventlog: error: --password-env {args.password_env}: that variable is not set", file=sys.stderr)
            return 2
    elif args.username:
        if not sys.stdin.isatty():
            print("eventlog: error: --username without --password-env needs a terminal to ask", file=sys.stderr)
            return 2
        password = getpass.getpass(f"Dashboards password for {args.username}: ")
    verify: bool | ssl.SSLContext = False if args.insecure else (ca_context(args.ca_file) if args.ca_file else True)
    objects = saved_objects(prefix)
    try:
        result = import_saved_objects(
            args.url,
            to_ndjson(objects),
            username=args.username,
            password=password,
            overwrite=not args.no_overwrite,
            verify=verify,
            wait_seconds=args.wait_seconds,
        )
    except DashboardsImportError as exc:
        print(f"eventlog: error: {exc}", file=sys.stderr)
        return 1
    print(f"imported {result.success_count} of {len(objects)} saved objects into {args.url} (index prefix {prefix!r})")
    for kind, object_id, title in result.imported:
        print(f"  {kind:<14}{object_id:<40}{title}")
    if result.ok:
        dashboard = next(o["id"] for o in objects if o["type"] == "dashboard")
        print(f"open {args.url.rstrip('/')}/app/dashboards#/view/{dashboard}")
        return 0
    print(f"eventlog: error: {len(result.failures)} saved objects were not imported:", file=sys.stderr)
    for failure in result.failures:
        print(f"  {failure}", file=sys.stderr)
    return 1


def _retention_run(args: argparse.Namespace) -> int:
    import asyncio

    from eventlog.journal import Journal
    from eventlog.service import retention_parts, stream_name

    settings = _settings(args)
    writer_lock = lock_data_dir(settings.data_dir, "eventlog retention run")
    sinks = ["sqlite" if settings.opensearch_url is None else "opensearch"]
    if settings.syslog_url is not None:
        sinks.append("syslog")
    journal = Journal(settings.journal_path, stream=stream_name(settings))
    journal.open()
    retention, holds, _ = retention_parts(settings, journal, sinks)
    try:
        report = asyncio.run(retention.run(dry_run=args.dry_run))
    finally:
        journal.close()
        holds.close()
        writer_lock.close()
    if args.json:
        sys.stdout.write(orjson.dumps(report.as_dict()).decode() + "\n")
        return 0 if report.ok else 1
    verb = "would remove" if args.dry_run else "removed"
    print(f"retention {'(dry run) ' if args.dry_run else ''}as of {report.today}:")
    for item in report.removed:
        where = f" in {item.location}" if item.location else ""
        print(f"  {verb} tenant {item.tenant} day {item.day}: {item.events} events{where}")
    for entry in report.archived:
        print(
            f"  {'would archive' if args.dry_run else 'archived'} tenant {entry['tenant']} day {entry['day']}: {entry['events']} events"
        )
    for item in report.held:
        print(f"  kept (legal hold) tenant {item.tenant} day {item.day}: {item.events} events")
    if report.journal is not None:
        j = report.journal
        print(
            f"  journal: {verb} {j.events} delivered events, {j.dead_letters} dead letters, {j.checkpoints} checkpoints"
        )
    for failure in report.failures:
        print(f"  FAILED: {failure}")
    print(f"total: {verb} {sum(i.events for i in report.removed)} events; {len(report.failures)} failures")
    return 0 if report.ok else 1


def _archive_restore(args: argparse.Namespace) -> int:
    import asyncio
    from datetime import date

    import boto3

    from eventlog.journal import Entry
    from eventlog.service import search_store
    from retention.archive import Archive, ArchiveError

    settings = _settings(args)
    if settings.archive_bucket is None:
        print(
            "eventlog: error: set EVENTLOG_ARCHIVE_BUCKET (and EVENTLOG_ARCHIVE_ENDPOINT_URL for a non-AWS S3)",
            file=sys.stderr,
        )
        return 2
    day = date.fromisoformat(args.day)
    archive = Archive(
        boto3.client("s3", endpoint_url=settings.archive_endpoint_url), settings.archive_bucket, settings.archive_prefix
    )
    _, sink = search_store(settings)

    async def restore() -> tuple[int, int]:
        restored = rejected = 0
        batch: list[Entry] = []

        async def flush() -> None:
            nonlocal restored, rejected
            refused = await sink.deliver(batch)
            for item in refused:
                print(f"refused: seq {item.seq}: {item.reason}", file=sys.stderr)
            rejected += len(refused)
            restored += len(batch) - len(refused)
            print(f"restored {restored} events", file=sys.stderr, flush=True)
            batch.clear()

        for document in archive.read_day(args.tenant, day):
            event = orjson.loads(document)
            batch.append(Entry(int(event["chain"]["seq"]), event["id"], event["tenant"], document, 0.0))
            if len(batch) >= 1000:
                await flush()
        if batch:
            await flush()
        await sink.close()
        return restored, rejected

    try:
        restored, rejected = asyncio.run(restore())
    except ArchiveError as exc:
        print(f"eventlog: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"restored {restored} events of tenant {args.tenant} day {day} into the {sink.name} store ({rejected} refused)"
    )
    print(
        "They are past retention: the next retention run removes them again unless a legal hold covers them "
        "(POST /v1/holds).",
        file=sys.stderr,
    )
    return 0 if rejected == 0 else 1


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
        description="Walk the journal's hash chain, check every signed checkpoint's hash against the stored event "
        "and its signature, and hold the journal against its own records of its head, its last purge and its "
        "newest checkpoint (a cut tail, a prefix deleted outside retention, deleted checkpoints). "
        "The first line says ok:, INCOMPLETE: or FAILED: (with the first problem); then 'also:' lines for "
        "further problems, 'not checked:' lines for what could not be checked, and 'note:' lines (events newer "
        "than the newest checkpoint, which the node signs every EVENTLOG_CHECKPOINT_INTERVAL_SECONDS and at "
        "shutdown). Exit status: 0 everything was checked and holds; 1 a problem was found; 2 verify could not "
        "run (no journal, or a --public-key that is missing or not an Ed25519 public key); 3 nothing wrong was "
        "found, but something could not be checked (no public key, so signatures were not checked; a journal "
        "last written by an older eventlog).",
    )
    _data_dir_option(verify)
    verify.add_argument(
        "--public-key",
        type=Path,
        default=None,
        help="Ed25519 public key (PEM) to check checkpoints with; it must exist "
        "(default: signing.pub in the data dir, if there; pin your own copy for real assurance)",
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
        "malformed files are reported and skipped. With EVENTLOG_CLOUDTRAIL_DIGEST_PUBLIC_KEYS, digest files are "
        "verified and log files checked against them; exit status 3 when one fails. "
        "Progress goes to stderr, the summary to stdout. "
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

    retention = commands.add_parser(
        "retention", help="expire events past retention", description="Expire events past retention."
    )
    retention_commands = retention.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    run = retention_commands.add_parser(
        "run",
        help="archive and remove what is past retention now",
        description="Apply the retention policy once to the configured store (EVENTLOG_RETENTION_DAYS, "
        "EVENTLOG_RETENTION_TENANT_DAYS, legal holds), the journal's delivered events, dead letters and old "
        "checkpoints; tenant-days of EVENTLOG_ARCHIVE_TENANTS are archived to S3 and verified first. Prints what "
        "went (or, with --dry-run, what would go). Exit 0 when every step worked, 1 otherwise. It opens the journal "
        "itself: while `eventlog serve` runs on the data dir, use POST /v1/retention/run instead.",
    )
    run.add_argument("--dry-run", action="store_true", help="only print what would be archived and removed")
    run.add_argument("--json", action="store_true", help="print the report as one JSON object")
    _data_dir_option(run)
    run.set_defaults(run=_retention_run)

    archive = commands.add_parser(
        "archive", help="read back archived days", description="Work with the S3 archive of expired events."
    )
    archive_commands = archive.add_subparsers(dest="archive_command", required=True, metavar="ACTION")
    restore = archive_commands.add_parser(
        "restore",
        help="load an archived day of a tenant back into the search store",
        description="Verify the archive of one tenant and UTC day (SHA-256 of every object against its manifest) "
        "and load its events into the configured search store (SQLite or OpenSearch), for an investigation. "
        "Place a legal hold first (POST /v1/holds) or the next retention run removes them again.",
    )
    restore.add_argument("--tenant", required=True, help="tenant of the archived events")
    restore.add_argument("--day", required=True, help="UTC day, YYYY-MM-DD")
    _data_dir_option(restore)
    restore.set_defaults(run=_archive_restore)

    dashboards = commands.add_parser(
        "dashboards", help="OpenSearch Dashboards saved objects", description="OpenSearch Dashboards saved objects."
    )
    dashboards_commands = dashboards.add_subparsers(dest="dashboards_command", required=True, metavar="ACTION")
    ds_import = dashboards_commands.add_parser(
        "import",
        help="load eventlog's index pattern, searches, visualizations and dashboard into Dashboards",
        description="Load eventlog's saved objects (index pattern on the search alias <prefix>-events, saved "
        "searches for failures and admin actions, visualizations, one dashboard) through the saved objects "
        "import API of OpenSearch Dashboards 2.x. Prints what was imported; exit 1 when Dashboards refused "
        "the import or any object, with the object and the reason.",
    )
    ds_import.add_argument("--url", required=True, help="Dashboards base URL, with its base path if any")
    ds_import.add_argument(
        "--prefix",
        default=None,
        help="index prefix the objects are for (default: $EVENTLOG_OPENSEARCH_INDEX_PREFIX or eventlog)",
    )
    ds_import.add_argument("--username", default=None, help="basic-auth user (default: no authentication)")
    ds_import.add_argument(
        "--password-env",
        default=None,
        metavar="VAR",
        help="environment variable holding the password (default: ask on the terminal when --username is given)",
    )
    ds_import.add_argument(
        "--no-overwrite", action="store_true", help="keep objects that already exist (they are reported as conflicts)"
    )
    ds_import.add_argument(
        "--ca-file", type=Path, default=None, help="CA bundle (PEM) that signs Dashboards' certificate"
    )
    ds_import.add_argument("--insecure", action="store_true", help="do not verify Dashboards' TLS certificate")
    ds_import.add_argument(
        "--wait-seconds",
        type=float,
        default=0.0,
        help="keep trying this long while Dashboards is unreachable or starting (default: 0, try once)",
    )
    ds_import.set_defaults(run=_dashboards_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except (TokenError, FileNotFoundError, ValueError, DataDirBusy) as exc:
        print(f"eventlog: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
