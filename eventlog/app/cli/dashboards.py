"""`eventlog dashboards import`: load the saved objects into OpenSearch Dashboards."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from eventlog.app.cli.options import Commands, command, command_group
from eventlog.settings import Settings


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


def add_commands(commands: Commands) -> None:
    """Add the dashboards command to the `eventlog` parser."""
    dashboards_commands = command_group(
        commands,
        "dashboards",
        help="OpenSearch Dashboards saved objects",
        description="OpenSearch Dashboards saved objects.",
    )
    ds_import = command(
        dashboards_commands,
        "import",
        _dashboards_import,
        help="load eventlog's index pattern, searches, visualizations and dashboard into Dashboards",
        description="Load eventlog's saved objects (index pattern on the search alias <prefix>-events, saved "
        "searches for failures and admin actions, visualizations, one dashboard) through the saved objects "
        "import API of OpenSearch Dashboards 2.x. Prints what was imported; exit 1 when Dashboards refused "
        "the import or any object, with the object and the reason.",
        data_dir=False,
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
