"""EventIn and its parts: strict JSON types, RFC 3339 times, details limits, targets fitted for self-audit."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv4Address
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from eventlog.model import Actor, EventIn, RequestInfo, Target, details_problem, error_path, fit_target

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
CONTEXT = {"now": NOW, "retention_days": 14, "max_future_seconds": 300, "max_details_depth": 8}

# Every field of EventIn and its parts, with JSON values of a wrong type for it: none may be converted.
WRONG_TYPES: dict[type[BaseModel], dict[str, list[Any]]] = {
    EventIn: {
        "id": [1, True, ["x"]],
        "time": [1_795_000_000, 1_795_000_000.5, "1795000000", True, "2026-11-27", "2026-11-27T14:00Z"],
        "action": [1, True, ["a.b"]],
        "outcome": [1, True, ["success"]],
        "actor": ["u1", 1, []],
        "target": ["t1", 1, []],
        "request": ["GET", 1, []],
        "source": [1, True],
        "message": [1, True, {"text": "x"}],
        "details": ["x", 1, []],
    },
    Actor: {
        "type": [1, True],
        "id": [1, 1.5],
        "name": [1, False],
        "ip": [False, True, 167_772_167, 1.5, ["10.0.0.7"], "167772167"],
        "user_agent": [1, True],
    },
    Target: {"type": [1, True], "id": [1, 2.5], "name": [1, False]},
    RequestInfo: {
        "method": [1, True],
        "path": [1, True],
        "route": [1, True],
        "query": [1, {"a": "b"}],
        "status": ["201", True, 201.5, 201.0],
        "duration_ms": ["12", True, "12.5"],
        "request_id": [1, True],
        "bytes_in": ["10", True, 1.5],
        "bytes_out": [False, "0", 0.0],
    },
}
_PART = {EventIn: (), Actor: ("actor",), Target: ("target",), RequestInfo: ("request",)}


def _validate(event: dict[str, Any]) -> EventIn:
    """As the ingest API validates: the parsed JSON of the body, in Python mode."""
    return EventIn.model_validate(orjson.loads(orjson.dumps(event)), context=CONTEXT)


def _placed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"action": "a.b"}
    if len(path) == 1:
        event[path[0]] = value
    else:
        event[path[0]] = {path[1]: value}
    return event


def test_the_table_names_every_field_of_every_part() -> None:
    for model, fields in WRONG_TYPES.items():
        assert set(fields) == set(model.model_fields), model.__name__


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ((*_PART[model], name), value)
        for model, fields in WRONG_TYPES.items()
        for name, values in fields.items()
        for value in values
    ],
)
def test_a_value_of_the_wrong_json_type_is_refused_at_its_field(path: tuple[str, ...], value: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        _validate(_placed(path, value))
    assert [error_path(e) for e in refused.value.errors()] == [path]


@pytest.mark.parametrize(
    ("path", "value", "stored"),
    [
        (("actor", "ip"), "10.0.0.7", IPv4Address("10.0.0.7")),
        (("request", "status"), 201, 201),
        (("request", "duration_ms"), 12, 12.0),
        (("request", "duration_ms"), 12.5, 12.5),
        (("request", "bytes_out"), 0, 0),
        (("time",), "2026-11-27T15:00:00+01:00", datetime(2026, 11, 27, 14, tzinfo=UTC)),
        (("time",), "2026-11-27 14:00:00.250z", datetime(2026, 11, 27, 14, 0, 0, 250_000, tzinfo=UTC)),
    ],
)
def test_values_of_the_right_type_are_kept(path: tuple[str, ...], value: Any, stored: Any) -> None:
    event = _validate(_placed(path, value))
    part: Any = event
    for name in path:
        part = getattr(part, name)
    assert part == stored


@pytest.mark.parametrize(
    ("time", "phrase"),
    [
        ("2026-11-27T14:00:00", "UTC offset"),
        ("2026-11-27T25:00:00Z", "not a valid time"),
        ("0001-01-01T00:00:00+01:00", "years 1 to 9999"),
        ("9999-12-31T23:59:59-01:00", "years 1 to 9999"),
        ("2026-11-27T14:00:00Z ", "not an RFC 3339 time"),
        ("２０２６-11-27T14:00:00Z", "not an RFC 3339 time"),
    ],
)
def test_times_that_are_not_rfc_3339_in_range_are_refused_saying_why(time: str, phrase: str) -> None:
    with pytest.raises(ValidationError) as refused:
        _validate({"action": "a.b", "time": time})
    (error,) = refused.value.errors()
    assert error["loc"] == ("time",)
    assert phrase in error["msg"]


def test_code_builds_events_from_python_values() -> None:
    actor = Actor(id="u1", ip="192.0.2.1")
    assert actor.ip == IPv4Address("192.0.2.1")
    event = EventIn(action="a.b", time=datetime(2026, 11, 27, 14, tzinfo=UTC), actor=actor)
    assert EventIn.model_validate(event.model_dump(), context=CONTEXT) == event
    assert EventIn.model_validate_json(event.model_dump_json(), context=CONTEXT) == event


# -- details ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("details", "path", "phrase"),
    [
        ({"a": {"k" * 257: 1}}, ("a", "k" * 257), "257 characters; at most 256 per key"),
        ({"list": [1, {"k" * 300: 1}]}, ("list", 1, "k" * 300), "at most 256 per key"),
        ({"a": [{"b": "x" * 4097}]}, ("a", 0, "b"), "at most 4096 per value"),
        ({"a": [1, 2, -(2**53)]}, ("a", 2), "as a string"),
        ({"a": {1: "x"}}, ("a", "1"), "not a string"),
        (
            {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}},
            ("a", "b", "c", "d", "e", "f", "g", "h"),
            "8 levels",
        ),
    ],
)
def test_details_problem_names_the_path_of_the_key_or_value(
    details: dict[str, Any], path: tuple[str | int, ...], phrase: str
) -> None:
    found = details_problem(details)
    assert found is not None
    assert found[0] == path
    assert phrase in found[1]


def test_details_within_the_limits_pass() -> None:
    assert details_problem({"k" * 256: {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}, "s": "x" * 4096}) is None
    assert details_problem({"k" * 20: 1}, max_key_chars=20) is None
    assert details_problem({"k" * 21: 1}, max_key_chars=20) is not None


def test_details_nested_far_beyond_python_recursion_are_looked_at_without_recursing() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = {"a": deep}
    found = details_problem({"x": deep})
    assert found is not None
    assert found[0] == ("x",) + ("a",) * 7  # details is level 1, x level 2


def test_a_details_error_carries_its_path_for_the_pointer() -> None:
    with pytest.raises(ValidationError) as refused:
        EventIn.model_validate({"action": "a.b", "details": {"a": {"k" * 300: 1}}}, context=CONTEXT)
    (error,) = refused.value.errors()
    assert error_path(error) == ("details", "a", "k" * 300)
    assert error["msg"] == "is a key of 300 characters; at most 256 per key"


def test_the_key_limit_comes_from_the_context() -> None:
    event = {"action": "a.b", "details": {"k" * 300: 1}}
    EventIn.model_validate(event, context={**CONTEXT, "max_details_key_chars": 300})
    with pytest.raises(ValidationError):
        EventIn.model_validate(event, context={**CONTEXT, "max_details_key_chars": 299})


# -- targets of self-audit -------------------------------------------------------------------------------------


def test_fit_target_keeps_whatever_it_is_given_within_targets_limits() -> None:
    target = fit_target({"type": "hold", "id": "a\nb\x00c", "name": "x" * 600, "other": "dropped"})
    assert target == Target(type="hold", id="a\ufffdb\ufffdc", name="x" * 512)
    assert Target.model_validate(target.model_dump()) == target
    assert fit_target({"type": "token", "id": 42, "name": ""}) == Target(type="token", id="42")
    assert fit_target({"type": "t" * 300, "id": None}) == Target(type="t" * 256)
