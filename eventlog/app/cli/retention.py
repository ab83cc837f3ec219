"""`eventlog retention run` and `eventlog archive restore`: expire, archive and read back."""

from __future__ import annotations

import argparse
import sys

import orjson

from eventlog.app.cli.options import Commands, command, command_group, settings_from
from eventlog.datadir import lock_data_dir


def _retention_run(args: argparse.Namespace) -> int:
    import asyncio

    from eventlog.app.service import retention_parts, stream_name
    from eventlog.journal import Journal

    settings = settings_from(args)
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

    from eventlog.app.service import search_store
    from eventlog.journal import Entry
    from retention.archive import Archive, ArchiveError

    settings = settings_from(args)
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


def add_commands(commands: Commands) -> None:
    """Add the retention, archive commands to the `eventlog` parser."""
    retention_commands = command_group(
        commands, "retention", help="expire events past retention", description="Expire events past retention."
    )
    run = command(
        retention_commands,
        "run",
        _retention_run,
        help="archive and remove what is past retention now",
        description="Apply the retention policy once to the configured store (EVENTLOG_RETENTION_DAYS, "
        "EVENTLOG_RETENTION_TENANT_DAYS, legal holds), the journal's delivered events, dead letters and old "
        "checkpoints; tenant-days of EVENTLOG_ARCHIVE_TENANTS are archived to S3 and verified first. Prints what "
        "went (or, with --dry-run, what would go). Exit 0 when every step worked, 1 otherwise. It opens the journal "
        "itself: while `eventlog serve` runs on the data dir, use POST /v1/retention/run instead.",
    )
    run.add_argument("--dry-run", action="store_true", help="only print what would be archived and removed")
    run.add_argument("--json", action="store_true", help="print the report as one JSON object")

    archive_commands = command_group(
        commands, "archive", help="read back archived days", description="Work with the S3 archive of expired events."
    )
    restore = command(
        archive_commands,
        "restore",
        _archive_restore,
        help="load an archived day of a tenant back into the search store",
        description="Verify the archive of one tenant and UTC day (SHA-256 of every object against its manifest) "
        "and load its events into the configured search store (SQLite or OpenSearch), for an investigation. "
        "Place a legal hold first (POST /v1/holds) or the next retention run removes them again.",
    )
    restore.add_argument("--tenant", required=True, help="tenant of the archived events")
    restore.add_argument("--day", required=True, help="UTC day, YYYY-MM-DD")
