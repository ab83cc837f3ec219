"""Every benchmark ends with machine-readable RESULT lines built by the harness."""

from __future__ import annotations

import re

import pytest

from bench.harness.report import Figure, print_results
from bench.harness.run import Teardown, run_benchmark

LINE = re.compile(r"^RESULT (\S+) (\S+) (\S+) target (\S+) (met|missed)$")


@pytest.mark.parametrize(
    ("figure", "expected"),
    [
        (
            Figure("ingest_batch100_events_per_s", 19370.4, "events/s", ">=20000", False),
            "RESULT ingest_batch100_events_per_s 19370.4 events/s target >=20000 missed",
        ),
        (
            Figure("opensearch_searchable_p99", 1.2345678, "s", "<=2", True),
            "RESULT opensearch_searchable_p99 1.23457 s target <=2 met",
        ),
    ],
)
def test_line_format(figure: Figure, expected: str) -> None:
    assert figure.line() == expected
    assert LINE.match(figure.line())


def test_results_come_last_and_set_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    def benchmark(teardown: Teardown) -> list[Figure]:
        teardown.add(lambda: print("teardown ran"))
        return [Figure("a", 1, "x", ">=1", True), Figure("b", 3, "ms", "<=2", False)]

    assert run_benchmark("bench/test", benchmark) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2:] == ["RESULT a 1 x target >=1 met", "RESULT b 3 ms target <=2 missed"]
    assert "teardown ran" in lines


def test_all_met_is_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert print_results([Figure("a", 1, "x", ">=1", True)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "RESULT a 1 x target >=1 met"
