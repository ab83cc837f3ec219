"""The 20 search cases, and running them on two stores in this process to compare what each answers.

A spec is a query with times as offsets back from an anchor (the load time: the newest generated
event of tests/trail.py is just before it); `build_cases` makes each concrete, as the events API
would build it from its request. Every case reads the big tenant of the trail. Histograms and facets
carry `until` = the anchor, so events stored after it (a service's self-audit) do not change them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

import orjson

from eventlog.model import format_time, time_to_us
from search.backend import Bucket, EventQuery, FacetValue, Position, Scope, SearchBackend, all_of
from search.query import Node, Not, Range, Term, parse
from tests.trail import BIG_TENANT

PAGE = 100
FACET_SIZE = 10
SCOPE = Scope(BIG_TENANT)
NOT_SELF_AUDIT = Not(Term("source", "eventlog"))

Kind = Literal["list", "histogram", "facets"]


@dataclass(frozen=True)
class Spec:
    """One query; times are offsets back from the anchor."""

    name: str
    kind: Kind
    q: str = ""
    since_ago: timedelta | None = None
    until_ago: timedelta | None = None
    interval: str = ""  # histogram bucket width, sent as `interval`
    field: str = ""  # facet field
    page: int = 1  # the page asked for, reached by following next_cursor

    @property
    def aggregates(self) -> bool:
        return self.kind != "list"


DAY = timedelta(days=1)
SPECS: tuple[Spec, ...] = (
    Spec("latest", "list"),
    Spec("text-word", "list", "denied"),
    Spec("text-phrase", "list", '"quota exceeded"'),
    Spec("text-prefix", "list", "invoic*"),
    Spec("text-3d", "list", '"password reset"', since_ago=3 * DAY),
    Spec("field-action", "list", "action:iam.roles.grant"),
    Spec("field-actor", "list", "actor:u-00042"),
    Spec("field-prefix", "list", "action:storage.*"),
    Spec("range-status", "list", "status:>=500"),
    Spec("range-duration", "list", "request.duration_ms:>5000"),
    Spec("window-1h", "list", since_ago=3 * DAY, until_ago=3 * DAY - timedelta(hours=1)),
    Spec("cidr-v4", "list", "ip:10.20.0.0/16"),
    Spec("cidr-v6", "list", "ip:2001:db8:7::/48"),
    Spec("boolean", "list", "(action:iam.* OR action:auth.*) AND outcome:failure -actor.type:service"),
    Spec("details", "list", "details.region:eu-west-1 method:DELETE"),
    Spec("deep-page-20", "list", "outcome:failure", page=20),
    Spec("histogram-13d", "histogram", since_ago=13 * DAY, until_ago=timedelta(0), interval="6h"),
    Spec("histogram-fail-1d", "histogram", "outcome:failure", since_ago=DAY, until_ago=timedelta(0), interval="30m"),
    Spec("facets-actor-1d", "facets", field="actor.id", since_ago=DAY, until_ago=timedelta(0)),
    Spec("facets-ip-403-7d", "facets", "status:403", field="actor.ip", since_ago=7 * DAY, until_ago=timedelta(0)),
)


@dataclass(frozen=True)
class Case:
    """A spec made concrete at an anchor: the API request and the condition the API hands the backend."""

    spec: Spec
    path: str
    params: dict[str, str]
    since_us: int | None
    until_us: int | None
    where: Node
    after: Position | None = None  # the keyset position of the page asked for (deep pages)

    @property
    def event_query(self) -> EventQuery:
        return EventQuery(where=self.where, order="desc", limit=PAGE, after=self.after)

    @property
    def interval_us(self) -> int:
        number, unit = int(self.spec.interval[:-1]), self.spec.interval[-1]
        return number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit] * 1_000_000

    def describe(self) -> str:
        """The request in a line, times relative to the anchor T."""
        spec = self.spec
        parts = [self.path]
        if spec.q:
            parts.append(f"q={spec.q}")
        if spec.field:
            parts.append(f"field={spec.field}")
        if spec.since_ago is not None:
            parts.append(f"since=T-{_span(spec.since_ago)}")
        if spec.until_ago is not None:
            parts.append("until=T" if not spec.until_ago else f"until=T-{_span(spec.until_ago)}")
        if spec.interval:
            parts.append(f"interval={spec.interval}")
        if spec.page > 1:
            parts.append(f"page {spec.page} of {PAGE} via next_cursor")
        return "  ".join(parts)


def _span(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:g}d" if hours % 24 == 0 else f"{hours:g}h"


def build_cases(anchor: datetime) -> list[Case]:
    cases: list[Case] = []
    for spec in SPECS:
        since = anchor - spec.since_ago if spec.since_ago is not None else None
        until = anchor - spec.until_ago if spec.until_ago is not None else None
        params: dict[str, str] = {}
        if spec.q:
            params["q"] = spec.q
        if since is not None:
            params["since"] = format_time(since)
        if until is not None:
            params["until"] = format_time(until)
        since_us = time_to_us(since) if since is not None else None
        until_us = time_to_us(until) if until is not None else None
        ranges: list[Node] = []
        if since_us is not None:
            ranges.append(Range("time", ">=", since_us))
        if until_us is not None:
            ranges.append(Range("time", "<", until_us))
        if spec.kind == "list":
            path = "/v1/events"
            params["limit"] = str(PAGE)
            where = all_of(parse(spec.q), *ranges)  # as search.api builds it
        elif spec.kind == "histogram":
            path = "/v1/events/histogram"
            params["interval"] = spec.interval
            where = parse(spec.q)  # the API passes since/until to the backend separately
        else:
            path = "/v1/events/facets"
            params["field"] = spec.field
            params["size"] = str(FACET_SIZE)
            where = all_of(parse(spec.q), *ranges)
        cases.append(Case(spec, path, params, since_us, until_us, where))
    return cases


# What a case answers, in a form both backends and the API can be compared on.
Result = tuple[tuple[str | int, ...], ...]


def page_result(documents: Sequence[bytes]) -> Result:
    return tuple((str(d["id"]), str(d["source"])) for d in map(orjson.loads, documents))


def bucket_result(buckets: Sequence[Bucket]) -> Result:
    return tuple((b.start_us, b.count) for b in buckets)


def facet_result(values: Sequence[FacetValue]) -> Result:
    return tuple((v.value, v.count) for v in values)


def api_result(case: Case, body: bytes) -> Result:
    answer = orjson.loads(body)
    if case.spec.kind == "list":
        return tuple((str(e["id"]), str(e["source"])) for e in answer["events"])
    if case.spec.kind == "histogram":
        return tuple(
            (time_to_us(datetime.fromisoformat(b["time"].replace("Z", "+00:00"))), int(b["count"]))
            for b in answer["buckets"]
            if b["count"]
        )
    return tuple((str(v["value"]), int(v["count"])) for v in answer["values"])


def same_events(one: Result, other: Result) -> bool:
    """Same events in the same order, self-audit events (which keep arriving) left out."""
    mine = [r for r in one if r[-1] != "eventlog"]
    theirs = [r for r in other if r[-1] != "eventlog"]
    size = min(len(mine), len(theirs))
    return mine[:size] == theirs[:size] and (size > 0 or len(mine) == len(theirs))


def same_result(case: Case, one: Result, other: Result) -> bool:
    return same_events(one, other) if case.spec.kind == "list" else one == other


# -- a store in this process ----------------------------------------------------------------------


async def ask(backend: SearchBackend, case: Case, where: Node | None = None) -> Result:
    """One case on a store in this process, as the API hands it to the backend (the big tenant's scope)."""
    where = case.where if where is None else where
    spec = case.spec
    if spec.kind == "list":
        page = await backend.search(SCOPE, replace(case.event_query, where=where))
        return page_result(page.documents)
    if spec.kind == "histogram":
        assert case.since_us is not None
        assert case.until_us is not None
        buckets = await backend.histogram(
            SCOPE, where, since_us=case.since_us, until_us=case.until_us, interval_us=case.interval_us
        )
        return bucket_result(buckets)
    return facet_result(await backend.facets(SCOPE, where, field=spec.field, size=FACET_SIZE))


async def walk(backend: SearchBackend, case: Case, where: Node) -> Position | None:
    """The keyset position before the spec's page, following pages like a client does."""
    position = None
    for _ in range(case.spec.page - 1):
        page = await backend.search(SCOPE, EventQuery(where=where, order="desc", limit=PAGE, after=position))
        position = page.last
    return position


@dataclass(frozen=True)
class Comparison:
    """What two stores answered to one case."""

    case: Case
    names: tuple[str, str]
    results: tuple[Result, Result]

    @property
    def same(self) -> bool:
        return self.results[0] == self.results[1]

    def difference(self) -> str:
        """Where the results part, shown with the first three that differ; '' when they are the same."""
        if self.same:
            return ""
        one, other = self.results
        first = next((i for i, pair in enumerate(zip(one, other, strict=False)) if pair[0] != pair[1]), None)
        start = min(len(one), len(other)) if first is None else first
        return (
            f"results differ from #{start}: {self.names[0]} {list(one[start:][:3])} "
            f"vs {self.names[1]} {list(other[start:][:3])}"
        )


async def compare(
    cases: Sequence[Case],
    one: SearchBackend,
    other: SearchBackend,
    names: tuple[str, str] = ("embedded", "OpenSearch"),
    seen: Callable[[Comparison], None] = lambda comparison: None,
) -> list[Comparison]:
    """Every case once on both stores, self-audit events left out; `seen` gets each comparison as it is made.

    A deep page is reached on each store by following its own pages, as a client would.
    """
    comparisons: list[Comparison] = []
    for case in cases:
        where = all_of(case.where, NOT_SELF_AUDIT)
        results = []
        for backend in (one, other):
            probe = replace(case, after=await walk(backend, case, where)) if case.spec.page > 1 else case
            results.append(await ask(backend, probe, where))
        comparison = Comparison(case, names, (results[0], results[1]))
        seen(comparison)
        comparisons.append(comparison)
    return comparisons


def differences(comparisons: Sequence[Comparison]) -> list[str]:
    """One line per case on which the stores disagree."""
    return [f"{c.case.spec.name}: {c.difference()}" for c in comparisons if not c.same]
