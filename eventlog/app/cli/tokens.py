"""`eventlog tokens`: create, list and revoke API tokens."""

from __future__ import annotations

import argparse
import sys
from contextlib import AbstractContextManager

import orjson

from eventlog.app.cli.options import Commands, command, command_group, settings_from
from eventlog.tokens import TokenStore, parse_scopes


def _store(args: argparse.Namespace) -> AbstractContextManager[TokenStore]:
    """The store the nodes use: the cluster's with EVENTLOG_OPENSEARCH_URL, else the data dir's tokens.db."""
    from eventlog.app.service import open_tokens  # the whole service: only for the commands that need it

    return open_tokens(settings_from(args))


def _tokens_create(args: argparse.Namespace) -> int:
    with _store(args) as store:
        issued = store.create(
            tenant=args.tenant, scopes=parse_scopes(args.scopes), name=args.name or "", expires_days=args.expires_days
        )
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
    with _store(args) as store:
        tokens = store.list(args.tenant)
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
    with _store(args) as store:
        token = store.revoke(args.id)
    print(f"revoked {token.id} (tenant {token.tenant}) at {token.revoked_at}")
    return 0


def add_commands(commands: Commands) -> None:
    """Add the tokens command to the `eventlog` parser."""
    token_commands = command_group(
        commands, "tokens", help="create, list and revoke API tokens", description="Manage API tokens."
    )
    create = command(
        token_commands,
        "create",
        _tokens_create,
        help="create a token and print its secret once",
        description="Create a token; prints the secret once.",
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

    listing = command(
        token_commands, "list", _tokens_list, help="list tokens (never their secrets)", description="List tokens."
    )
    listing.add_argument("--tenant", default=None, help="only this tenant's tokens")
    listing.add_argument("--json", action="store_true", help="print a JSON array")

    revoke = command(
        token_commands, "revoke", _tokens_revoke, help="revoke a token by id", description="Revoke a token by id."
    )
    revoke.add_argument("id", help="the token id shown by `eventlog tokens list`")
