"""A run: the teardown runs whatever happened, then the RESULT lines, then the exit status."""

from __future__ import annotations

import pytest

from bench.harness.report import Figure
from bench.harness.run import Teardown, add_server_env, benchmark_parser, run_benchmark


def test_results_come_last_and_set_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    def benchmark(teardown: Teardown) -> list[Figure]:
        teardown.add(lambda: print("teardown ran"))
        return [Figure("a", 1, "x", ">=1", True), Figure("b", 3, "ms", "<=2", False)]

    assert run_benchmark("bench/test", benchmark) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2:] == ["RESULT a 1 x target >=1 met", "RESULT b 3 ms target <=2 missed"]
    assert "teardown ran" in lines


def test_server_env_is_pairs_of_name_and_value() -> None:
    parser = benchmark_parser("x", "a benchmark")
    add_server_env(parser, "EVENTLOG_LOG_LEVEL=WARNING")
    args = parser.parse_args(["--server-env", "A=b=c", "--server-env", "EMPTY="])
    assert args.server_env == [("A", "b=c"), ("EMPTY", "")]
    with pytest.raises(SystemExit):
        parser.parse_args(["--server-env", "no-equals"])
