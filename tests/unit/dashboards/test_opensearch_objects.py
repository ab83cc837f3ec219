"""dashboards/opensearch/*.ndjson: valid saved objects that name only fields of the index template."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import dashboards
from dashboards.importer import DEFAULT_PREFIX, saved_objects
from eventlog.settings import Settings
from search.opensearch.template import MAPPINGS, alias

FOLDER = Path(dashboards.__file__).parent / "opensearch"
REPO = Path(__file__).resolve().parents[3]
AGGREGATABLE = {"keyword", "ip", "date", "date_nanos", "boolean", "byte", "short", "integer", "long", "float", "double"}
# The newest migration each type knows in OpenSearch Dashboards 2.x: an object that says so is not migrated again.
MIGRATION_VERSIONS = {"index-pattern": "7.6.0", "search": "7.9.3", "visualization": "7.10.0", "dashboard": "7.9.3"}


def _flatten(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Every field path of a mapping with its type; multi-fields (`message.keyword`) count too."""
    fields: dict[str, str] = {}
    for name, spec in properties.items():
        path = prefix + name
        if "properties" in spec:
            fields.update(_flatten(spec["properties"], path + "."))
            continue
        fields[path] = spec["type"]
        for sub, sub_spec in spec.get("fields", {}).items():
            fields[f"{path}.{sub}"] = sub_spec["type"]
    return fields


FIELDS = _flatten(MAPPINGS["properties"])


def _known(field: str) -> bool:
    if field in FIELDS:
        return True
    # A flat_object field is searchable by any path below it (details.job.id).
    return any(FIELDS[p] == "flat_object" and field.startswith(p + ".") for p in FIELDS)


def _lines() -> list[tuple[str, int, str]]:
    files = sorted(FOLDER.glob("*.ndjson"))
    assert files, f"no saved objects in {FOLDER}"
    return [
        (path.name, number, line)
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1)
        if line.strip()
    ]


def _objects() -> list[dict[str, Any]]:
    return [json.loads(line) for _, _, line in _lines()]


def _by_type(kind: str) -> list[dict[str, Any]]:
    return [o for o in _objects() if o["type"] == kind]


def _search_source(obj: dict[str, Any]) -> dict[str, Any]:
    source: dict[str, Any] = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    return source


def _aggs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    aggs: list[dict[str, Any]] = json.loads(obj["attributes"]["visState"])["aggs"]
    return aggs


def _query_fields(query: str) -> list[str]:
    """Field names of a DQL query: every `name:` outside quotes."""
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)
    return re.findall(r"([A-Za-z_@][\w.@-]*)\s*:", unquoted)


def test_every_line_is_one_saved_object() -> None:
    for name, number, line in _lines():
        obj = json.loads(line)
        where = f"{name} line {number}"
        assert isinstance(obj, dict), where
        assert {"id", "type", "attributes", "references"} <= obj.keys(), where
        assert isinstance(obj["references"], list), where
        assert obj.get("migrationVersion") == {obj["type"]: MIGRATION_VERSIONS[obj["type"]]}, where


def test_ids_are_unique() -> None:
    ids = [o["id"] for o in _objects()]
    assert len(ids) == len(set(ids))


def test_there_is_what_the_issue_asked_for() -> None:
    kinds = [o["type"] for o in _objects()]
    assert kinds.count("index-pattern") == 1
    assert kinds.count("dashboard") == 1
    assert {o["id"] for o in _by_type("search")} == {"eventlog-search-failures", "eventlog-search-admin-actions"}
    terms = {a["params"]["field"] for v in _by_type("visualization") for a in _aggs(v) if a["type"] == "terms"}
    assert {"actor.id", "action", "outcome", "actor.ip"} <= terms
    histograms = [a for v in _by_type("visualization") for a in _aggs(v) if a["type"] == "date_histogram"]
    assert [a["params"]["field"] for a in histograms] == ["time"]


def test_every_reference_points_to_an_object_in_the_file() -> None:
    present = {(o["type"], o["id"]) for o in _objects()}
    for obj in _objects():
        for reference in obj["references"]:
            assert (reference["type"], reference["id"]) in present, (obj["id"], reference)


def test_reference_names_match_where_they_are_used() -> None:
    for obj in _objects():
        names = [r["name"] for r in obj["references"]]
        used: list[str] = []
        if obj["type"] in ("search", "visualization"):
            used.append(_search_source(obj)["indexRefName"])
        if obj["type"] == "dashboard":
            used += [p["panelRefName"] for p in json.loads(obj["attributes"]["panelsJSON"])]
        assert sorted(used) == sorted(names), obj["id"]


def test_index_pattern_is_the_search_alias_with_its_time_field() -> None:
    (pattern,) = _by_type("index-pattern")
    assert pattern["attributes"]["title"] == alias(DEFAULT_PREFIX)
    assert Settings.model_fields["opensearch_index_prefix"].default == DEFAULT_PREFIX
    assert FIELDS[pattern["attributes"]["timeFieldName"]] in ("date", "date_nanos")
    assert pattern["attributes"]["timeFieldName"] == "time"


def test_every_field_named_is_in_the_index_template() -> None:
    named: list[tuple[str, str]] = []
    for obj in _objects():
        attributes = obj["attributes"]
        if obj["type"] == "index-pattern":
            named.append((obj["id"], attributes["timeFieldName"]))
            named += [(obj["id"], f["value"]) for f in json.loads(attributes.get("sourceFilters", "[]"))]
        if obj["type"] in ("search", "visualization"):
            named += [(obj["id"], f) for f in _query_fields(_search_source(obj)["query"]["query"])]
        if obj["type"] == "search":
            named += [(obj["id"], c) for c in attributes["columns"]]
            named += [(obj["id"], field) for field, _ in attributes["sort"]]
        if obj["type"] == "visualization":
            named += [(obj["id"], a["params"]["field"]) for a in _aggs(obj) if "field" in a.get("params", {})]
    assert len(named) > 20
    unknown = [(obj_id, f) for obj_id, f in named if not _known(f)]
    assert not unknown, f"fields not in search/opensearch/template.py MAPPINGS: {unknown}"


def test_aggregated_fields_are_aggregatable() -> None:
    for vis in _by_type("visualization"):
        for agg in _aggs(vis):
            field = agg.get("params", {}).get("field")
            if field is not None:
                assert FIELDS.get(field) in AGGREGATABLE, (vis["id"], field, FIELDS.get(field))


def test_saved_search_queries() -> None:
    queries = {o["id"]: _search_source(o)["query"] for o in _by_type("search")}
    assert all(q["language"] == "kuery" for q in queries.values())
    assert queries["eventlog-search-failures"]["query"] == "outcome:failure"
    assert _query_fields(queries["eventlog-search-admin-actions"]["query"]) == ["source", "action"]


def test_admin_query_keeps_every_admin_action_and_drops_every_read() -> None:
    """The admin search excludes eventlog.events.* and eventlog.keboola.*: hold that to the audited actions."""
    query = _search_source(next(o for o in _by_type("search") if o["id"] == "eventlog-search-admin-actions"))
    excluded = re.findall(r"(eventlog\.[\w.]+)\.\*", query["query"]["query"])
    assert excluded == ["eventlog.events", "eventlog.keboola"]
    audited: dict[str, str] = {}
    for path in (
        p for package in ("eventlog", "ingest", "search", "retention") for p in (REPO / package).rglob("*.py")
    ):
        for scope, action in re.findall(r'principal\(\s*"([\w:]+)",\s*"(eventlog\.[\w.]+)"', path.read_text()):
            audited[action] = scope
    assert any(scope == "admin" for scope in audited.values()), audited
    for action, scope in audited.items():
        dropped = any(action.startswith(prefix + ".") for prefix in excluded)
        assert dropped == (scope != "admin"), (action, scope)


def test_dashboard_panels_fit_the_grid_without_overlapping() -> None:
    (dashboard,) = _by_type("dashboard")
    cells: set[tuple[int, int]] = set()
    for panel in json.loads(dashboard["attributes"]["panelsJSON"]):
        grid = panel["gridData"]
        assert grid["x"] + grid["w"] <= 48, panel
        area = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & area, panel
        cells |= area


def test_names_follow_the_prefix_convention_the_importer_rewrites() -> None:
    for obj in _objects():
        assert obj["id"].startswith(f"{DEFAULT_PREFIX}-"), obj["id"]
        if obj["type"] != "index-pattern":
            assert obj["attributes"]["title"].startswith(f"{DEFAULT_PREFIX}: "), obj["id"]
        if "visState" in obj["attributes"]:
            assert json.loads(obj["attributes"]["visState"])["title"] == obj["attributes"]["title"]


@pytest.mark.parametrize("prefix", [DEFAULT_PREFIX, "t0a1b2c3", "prod_eu-1"])
def test_rewritten_objects_match_that_prefix_alias(prefix: str) -> None:
    objects = saved_objects(prefix)
    (pattern,) = (o for o in objects if o["type"] == "index-pattern")
    assert pattern["attributes"]["title"] == alias(prefix)
    ids = {o["id"] for o in objects}
    assert all(i.startswith(f"{prefix}-") for i in ids)
    assert all(r["id"] in ids for o in objects for r in o["references"])
    assert len(objects) == len(_objects())
