"""`eventlog serve`: run the HTTP service."""

from __future__ import annotations

import argparse
import gc
import os
import sys

from eventlog.app.cli.options import Commands, command, settings_from
from eventlog.datadir import lock_data_dir
from eventlog.settings import Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from eventlog import logs
    from eventlog.app.service import create_app

    settings = settings_from(args, host=args.host, port=args.port)
    logs.configure(settings.log_level)
    writer_lock = lock_data_dir(settings.data_dir, "eventlog serve")  # noqa: F841 - held until the process ends
    bootstrap_admin(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        # With the fan-out's drain (SHUTDOWN_DRAIN_SECONDS) a stop takes under 10 s: a balancer's
        # deadline. Requests still open then (a tail stream) are closed; clients reconnect elsewhere.
        timeout_graceful_shutdown=5,
    )
    # Everything built so far (FastAPI, pydantic, the routes) lives as long as the process:
    # freezing it keeps the collector from rescanning ~100k objects in pauses of 35-75 ms.
    gc.collect()
    gc.freeze()
    uvicorn.Server(config).run()
    return 0


def bootstrap_admin(settings: Settings) -> None:
    """The first start prints an admin token, so a fresh install can be used at once."""
    from eventlog.app.service import open_tokens

    with open_tokens(settings) as store:
        if store.count():
            return
        issued = store.create(
            tenant=settings.bootstrap_tenant,
            scopes=frozenset({"admin", "events:read", "events:write"}),
            name="bootstrap admin",
        )
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


def add_commands(commands: Commands) -> None:
    """Add the serve command to the `eventlog` parser."""
    serve = command(commands, "serve", _serve, help="run the HTTP service", description="Run the HTTP service.")
    serve.add_argument("--host", default=None, help="bind address (default: $EVENTLOG_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default: $EVENTLOG_PORT or 8080)")
