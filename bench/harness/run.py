"""One benchmark run: its error, the teardown that undoes its setup whatever failed, its exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from bench.harness.report import Figure, print_results


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why and what to do."""


class Teardown:
    """What undoes a run's setup (node, indices, work dir), run newest first at the end.

    A step that fails is printed and the others still run: a benchmark must not leave a node or indices
    behind because one step of the cleanup failed.
    """

    def __init__(self, program: str) -> None:
        self._program = program
        self._steps: list[Callable[[], None]] = []

    def add(self, step: Callable[[], None]) -> None:
        self._steps.append(step)

    def run(self) -> None:
        for step in reversed(self._steps):
            try:
                step()
            except Exception as exc:  # clean up as much as possible
                print(f"{self._program}: cleanup: {exc!r}", file=sys.stderr)
        self._steps.clear()


def run_benchmark(
    program: str,
    benchmark: Callable[[Teardown], Sequence[Figure]],
    errors: tuple[type[Exception], ...] = (RuntimeError,),
) -> int:
    """The exit status of one run: 0 every target met, 2 a target missed, 1 an error (printed).

    `benchmark` answers its figures and adds to the teardown what it set up; the teardown runs
    whatever happened, and the RESULT lines come after it. RuntimeError covers BenchError, the
    server's and the node's.
    """
    teardown = Teardown(program)
    try:
        figures = benchmark(teardown)
    except errors as exc:
        print(f"\n{program}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        teardown.run()
    return print_results(figures)


def _name_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE")
    return name, value


def add_server_env(parser: argparse.ArgumentParser, example: str) -> None:
    """`--server-env NAME=VALUE` (repeatable): extra environment of `eventlog serve`, as (name, value) pairs."""
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        type=_name_value,
        metavar="NAME=VALUE",
        help=f"extra environment of eventlog serve, e.g. {example} (repeatable)",
    )


def add_seed(parser: argparse.ArgumentParser) -> None:
    """`--seed N`: the same seed makes the same events."""
    parser.add_argument("--seed", type=int, default=1, help="seed of the event generator (default: 1)")


def benchmark_parser(name: str, description: str, epilog: str = "") -> argparse.ArgumentParser:
    """The parser of `python -m bench.<name>`; its epilog ends with what the exit status says."""
    status = "Exit status: 0 all targets met, 2 a target missed, 1 error."
    return argparse.ArgumentParser(
        prog=f"python -m bench.{name}", description=description, epilog=f"{epilog} {status}".lstrip()
    )
