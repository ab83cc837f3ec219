"""`eventlog cloudtrail import`: read CloudTrail log files from S3 into the journal."""

from __future__ import annotations

import argparse
import gc
import sys

import orjson

from eventlog.app.cli.options import Commands, command, command_group, settings_from
from eventlog.datadir import lock_data_dir


def _cloudtrail_import(args: argparse.Namespace) -> int:
    import asyncio
    from datetime import date

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from eventlog.app.service import stream_name
    from eventlog.journal import Journal
    from ingest.cloudtrail.checkpoints import CheckpointStore
    from ingest.cloudtrail.digest import load_public_keys
    from ingest.cloudtrail.importer import ImportOptions, import_cloudtrail
    from ingest.cloudtrail.mapping import limits_of

    settings = settings_from(args, cloudtrail_endpoint_url=args.endpoint_url)
    public_keys = load_public_keys(settings.cloudtrail_digest_public_keys) or None
    since = date.fromisoformat(args.since) if args.since else None
    if not settings.cloudtrail_account_tenants:
        print(
            "eventlog: warning: EVENTLOG_CLOUDTRAIL_ACCOUNT_TENANTS is empty; every record will be skipped",
            file=sys.stderr,
        )
    writer_lock = lock_data_dir(settings.data_dir, "eventlog cloudtrail import")
    s3 = boto3.client("s3", endpoint_url=settings.cloudtrail_endpoint_url)
    limits = limits_of(settings.retention, settings.limits)
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
                ImportOptions(
                    bucket=args.bucket,
                    prefix=args.prefix,
                    append=journal.append,
                    checkpoints=checkpoints,
                    tenants=settings.cloudtrail_account_tenants,
                    limits=limits,
                    public_keys=public_keys,
                    require_digest=settings.cloudtrail_require_digest,
                    progress=lambda line: print(line, file=sys.stderr, flush=True),
                ),
                since=since,
                reread=args.reread,
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


def add_commands(commands: Commands) -> None:
    """Add the cloudtrail command to the `eventlog` parser."""
    cloudtrail_commands = command_group(
        commands,
        "cloudtrail",
        help="import AWS CloudTrail log files from S3",
        description="Import AWS CloudTrail log files.",
    )
    ct_import = command(
        cloudtrail_commands,
        "import",
        _cloudtrail_import,
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
