"""Every benchmark ends with machine-readable RESULT lines built by the harness."""

from __future__ import annotations

import re

import pytest

from bench.harness.report import Figure, at_least, at_most, print_results

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


def test_all_met_is_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert print_results([Figure("a", 1, "x", ">=1", True)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "RESULT a 1 x target >=1 met"


def test_a_floor_or_a_ceiling_is_met_at_the_target_itself() -> None:
    assert at_least("rate", 20000, "events/s", 20000.0).line() == "RESULT rate 20000 events/s target >=20000 met"
    assert not at_least("rate", 19999.5, "events/s", 20000.0).met
    assert at_most("p99", 2.0, "s", 2.0).line() == "RESULT p99 2 s target <=2 met"
    assert at_most("ratio", 1.31, "ratio", 1.3).line() == "RESULT ratio 1.31 ratio target <=1.3 missed"
