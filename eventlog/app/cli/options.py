"""What every `eventlog` command shares: the data-dir option and Settings built from it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

from eventlog.settings import Settings

# What `add_subparsers` returns; each command group adds its parsers to it.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def command_group(commands: Commands, name: str, *, help: str, description: str) -> Commands:
    """`eventlog <name> ACTION ...`: the group's parser, to which its actions are added."""
    group = commands.add_parser(name, help=help, description=description)
    return group.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")


def command(
    commands: Commands,
    name: str,
    run: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
    data_dir: bool = True,
) -> argparse.ArgumentParser:
    """One command (or a group's action) that `run` carries out; with the data-dir option unless told."""
    parser = commands.add_parser(name, help=help, description=description)
    if data_dir:
        data_dir_option(parser)
    parser.set_defaults(run=run)
    return parser


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings from the environment, with the command's options (those given) on top."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if getattr(args, "data_dir", None) is not None:
        values["data_dir"] = args.data_dir
    return Settings(**values)


def data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data directory (default: $EVENTLOG_DATA_DIR or ./data)",
    )
