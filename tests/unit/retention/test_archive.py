"""The archive's pure parts: key layout, manifest round trip, first/last and chain ends of a day."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import orjson
import pytest

from retention.archive import (
    Archive,
    ArchivedObject,
    ArchiveError,
    DaySummary,
    Manifest,
    day_folder,
    encode_tenant,
)

DAY = date(2026, 3, 14)
HASH = "ab" * 32


def _doc(
    event_id: str, time: str, *, stream: str = "node-a", seq: int = 1, tenant: str = "acme", **extra: Any
) -> bytes:
    chain = {"stream": stream, "seq": seq, "prev": f"prev-{seq}", "hash": f"hash-{seq}"}
    return orjson.dumps({"id": event_id, "tenant": tenant, "time": time, "chain": chain, **extra})


def _manifest() -> Manifest:
    return Manifest(
        tenant="acme/eu",
        day=DAY,
        events=3,
        first={"id": "a", "time": "2026-03-14T00:00:00.000000Z"},
        last={"id": "c", "time": "2026-03-14T23:59:59.999999Z"},
        chain_ends={
            "node-a": {
                "first": {"seq": 1, "prev": "0" * 64, "hash": HASH},
                "last": {"seq": 9, "prev": HASH, "hash": HASH},
            }
        },
        objects=(
            ArchivedObject("p/tenant=acme%2Feu/dt=2026-03-14/events-00000.ndjson.gz", "0" * 64, 120, 2),
            ArchivedObject("p/tenant=acme%2Feu/dt=2026-03-14/events-00001.ndjson.gz", "f" * 64, 80, 1),
        ),
        created_at="2026-03-29T02:00:00.000000Z",
    )


# -- keys ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant", "segment"),
    [
        ("acme", "acme"),
        ("Acme-EU_1.prod", "Acme-EU_1.prod"),
        ("acme/eu", "acme%2Feu"),
        ("a b=c", "a%20b%3Dc"),
        ("~%", "%7E%25"),
        ("müller", "m%C3%BCller"),
        ("..", ".."),
    ],
)
def test_tenant_is_percent_encoded_outside_the_safe_characters(tenant: str, segment: str) -> None:
    assert encode_tenant(tenant) == segment


def test_day_folder_is_hive_style() -> None:
    assert day_folder("eventlog-archive", "acme/eu", DAY) == "eventlog-archive/tenant=acme%2Feu/dt=2026-03-14/"
    assert day_folder("/a/b/", "acme", DAY) == "a/b/tenant=acme/dt=2026-03-14/"
    assert day_folder("", "acme", DAY) == "tenant=acme/dt=2026-03-14/"


# -- manifest ------------------------------------------------------------------------------------------------------


def test_manifest_round_trips_through_json() -> None:
    manifest = _manifest()
    data = json.loads(json.dumps(manifest.as_dict()))
    assert data["version"] == 1
    assert data["day"] == "2026-03-14"
    assert Manifest.from_dict(data) == manifest


def test_empty_day_manifest_round_trips() -> None:
    empty = Manifest("acme", DAY, 0, {}, {}, {}, (), "2026-03-29T02:00:00.000000Z")
    assert Manifest.from_dict(json.loads(json.dumps(empty.as_dict()))) == empty


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=2), "version 2"),
        (lambda d: d.update(day="14.3.2026"), "`day`"),
        (lambda d: d.pop("tenant"), "`tenant`"),
        (lambda d: d.update(events=True), "`events`"),
        (lambda d: d.update(events=4), "says 4 events but its objects hold 3"),
        (lambda d: d["objects"][1].update(sha256="xyz"), "`objects[1].sha256`"),
        (lambda d: d["objects"][0].pop("bytes"), "`objects[0].bytes`"),
        (lambda d: d.update(first={"id": "a"}), "`first`"),
        (lambda d: d["chain_ends"]["node-a"]["last"].update(seq="9"), "`chain_ends.node-a.last.seq`"),
        (lambda d: d["chain_ends"]["node-a"].pop("first"), "`chain_ends.node-a.first`"),
    ],
)
def test_manifest_from_dict_names_the_bad_field(change: Any, message: str) -> None:
    data = json.loads(json.dumps(_manifest().as_dict()))
    change(data)
    with pytest.raises(ArchiveError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Manifest.from_dict(data)


# -- first, last and chain ends ------------------------------------------------------------------------------------


def test_summary_orders_by_time_then_id_and_chain_ends_by_seq_whatever_the_input_order() -> None:
    summary = DaySummary("acme", DAY)
    for document in [
        _doc("m", "2026-03-14T12:00:00.000000Z", stream="node-b", seq=7),
        _doc("z", "2026-03-14T00:00:01.000000Z", stream="node-a", seq=5),
        _doc("b", "2026-03-14T23:59:59.999999Z", stream="node-a", seq=3),
        _doc("y", "2026-03-14T00:00:01.000000Z", stream="node-b", seq=9),  # same time as "z": id decides
        _doc("a", "2026-03-14T23:59:59.999999Z", stream="node-a", seq=4),
    ]:
        summary.add(document)
    assert summary.events == 5
    assert summary.first == {"id": "y", "time": "2026-03-14T00:00:01.000000Z"}
    assert summary.last == {"id": "b", "time": "2026-03-14T23:59:59.999999Z"}
    assert summary.chain_ends == {
        "node-a": {
            "first": {"seq": 3, "prev": "prev-3", "hash": "hash-3"},
            "last": {"seq": 5, "prev": "prev-5", "hash": "hash-5"},
        },
        "node-b": {
            "first": {"seq": 7, "prev": "prev-7", "hash": "hash-7"},
            "last": {"seq": 9, "prev": "prev-9", "hash": "hash-9"},
        },
    }


def test_summary_compares_times_as_instants() -> None:
    summary = DaySummary("acme", DAY)
    summary.add(_doc("late", "2026-03-14T10:00:00+00:00"))
    summary.add(_doc("early", "2026-03-14T09:30:00.000000Z"))
    assert summary.first["id"] == "early"
    assert summary.last["id"] == "late"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"not json", "is not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"tenant": "acme"}', "has no id"),
        (b'{\n"id": "x"}', "line break"),
        (_doc("e1", "2026-03-14T10:00:00.000000Z", tenant="other"), "belongs to tenant 'other', not 'acme'"),
        (_doc("e1", "2026-03-15T00:00:00.000000Z"), "not on 2026-03-14"),
        (_doc("e1", "2026-03-14T23:30:00-01:00"), "not on 2026-03-14"),  # 00:30 UTC the next day
        (_doc("e1", "yesterday"), "not RFC 3339"),
        (orjson.dumps({"id": "e1", "tenant": "acme", "time": "2026-03-14T10:00:00Z"}), "no chain link"),
        (
            orjson.dumps(
                {
                    "id": "e1",
                    "tenant": "acme",
                    "time": "2026-03-14T10:00:00Z",
                    "chain": {"stream": "s", "seq": True, "prev": "p", "hash": "h"},
                }
            ),
            "no chain link",
        ),
    ],
)
def test_summary_refuses_documents_of_another_tenant_or_day(document: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DaySummary("acme", DAY).add(document)


def test_write_day_refuses_a_foreign_document_before_touching_s3() -> None:
    # object() has no S3 methods: any call to it would be an AttributeError, not this ArchiveError.
    archive = Archive(object(), "bucket")
    documents = [_doc("e1", "2026-03-14T10:00:00.000000Z"), _doc("e2", "2026-03-14T10:00:00Z", tenant="other")]
    with pytest.raises(ArchiveError, match="document 1 of tenant 'acme' day 2026-03-14: event e2 belongs to tenant"):
        archive.write_day("acme", DAY, documents)


def test_object_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Archive(object(), "bucket", max_object_events=0)
