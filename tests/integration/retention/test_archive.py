"""retention.archive against a real S3-compatible server (moto's standalone server) on loopback."""

from __future__ import annotations

import base64
import gzip
import hashlib
import math
import random
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import orjson
import pytest

from eventlog.canonical import canonical_json
from eventlog.chain import GENESIS, StoredLink, body_of, link_hash, walk
from eventlog.model import format_time
from retention.archive import Archive, ArchiveError, Manifest

pytestmark = pytest.mark.s3

TENANT = "acme/eu west"  # '/' and ' ' must be percent-encoded in the keys
FOLDER = "audit/tenant=acme%2Feu%20west/dt=2026-03-14/"
DAY = date(2026, 3, 14)
EVENTS = 3000
PER_OBJECT = 700  # 5 objects: 4 x 700 + 200


def _day_of_events(day: date, count: int, *, first_seq: dict[str, int] | None = None) -> list[bytes]:
    """Stored documents as the journal writes them: two streams, chained, times spread over the day, shuffled."""
    rng = random.Random(f"{day}-{count}")
    seqs = dict(first_seq or {"node-a": 0, "node-b": 0})
    prev = {stream: GENESIS for stream in seqs}
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    documents = []
    for i in range(count):
        stream = "node-a" if i % 3 else "node-b"
        when = start + timedelta(microseconds=rng.randrange(86_400 * 10**6))
        body = {
            "id": f"{day}-{i:05d}",
            "tenant": TENANT,
            "time": format_time(when),
            "received_at": format_time(when + timedelta(milliseconds=3)),
            "action": "storage.tables.create",
            "outcome": rng.choice(["success", "failure"]),
            "actor": {"type": "user", "id": f"user-{i % 17}", "ip": f"10.0.{i % 256}.1"},
            "target": {"type": "table", "id": f"in.c-main.t{i}"},
            "request": {"method": "POST", "path": "/v2/tables", "status": 201, "duration_ms": 12.5},
            "source": "api",
            "message": f"user-{i % 17} created table t{i} – ünïcode",
            "details": {"rows": i, "ratio": i / 7, "tags": ["a", "b"]},
        }
        seqs[stream] += 1
        digest = link_hash(prev[stream], canonical_json(body))
        document = {**body, "chain": {"stream": stream, "seq": seqs[stream], "prev": prev[stream], "hash": digest}}
        prev[stream] = digest
        documents.append(orjson.dumps(document))
    rng.shuffle(documents)
    return documents


def _expected_ends(documents: list[bytes]) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, Any]]]:
    events = [orjson.loads(d) for d in documents]
    by_time = sorted(events, key=lambda e: (e["time"], e["id"]))
    ends: dict[str, dict[str, Any]] = {}
    for stream in {e["chain"]["stream"] for e in events}:
        chained = sorted((e["chain"] for e in events if e["chain"]["stream"] == stream), key=lambda c: c["seq"])
        ends[stream] = {
            end: {k: c[k] for k in ("seq", "prev", "hash")} for end, c in (("first", chained[0]), ("last", chained[-1]))
        }
    first, last = by_time[0], by_time[-1]
    return {"id": first["id"], "time": first["time"]}, {"id": last["id"], "time": last["time"]}, ends


def _rechain(documents: list[bytes]) -> dict[str, int]:
    """Re-compute every event's chain hash from archived bytes with eventlog's own verifier; answers events per stream."""
    links: dict[str, list[StoredLink]] = defaultdict(list)
    for raw in documents:
        document = orjson.loads(raw)
        chain = document["chain"]
        assert link_hash(chain["prev"], canonical_json(body_of(document))) == chain["hash"]
        links[chain["stream"]].append(
            StoredLink(chain["seq"], document["id"], document["tenant"], chain["prev"], chain["hash"], raw)
        )
    for stream, stream_links in links.items():
        stream_links.sort(key=lambda link: link.seq)
        assert list(walk(stream_links, stream=stream, start_prev=stream_links[0].prev)) == []
    return {stream: len(stream_links) for stream, stream_links in links.items()}


class Bucket:
    def __init__(self, endpoint_url: str) -> None:
        self.name = f"archive-{uuid.uuid4().hex[:12]}"
        self.s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1")
        self.s3.create_bucket(Bucket=self.name)

    def archive(self, **options: Any) -> Archive:
        return Archive(self.s3, self.name, "audit", **{"max_object_events": PER_OBJECT, **options})

    def keys(self, prefix: str = "") -> list[str]:
        response = self.s3.list_objects_v2(Bucket=self.name, Prefix=prefix)
        return [item["Key"] for item in response.get("Contents", [])]

    def get(self, key: str) -> dict[str, Any]:
        response: dict[str, Any] = self.s3.get_object(Bucket=self.name, Key=key)
        return response


@pytest.fixture
def bucket(s3_endpoint_url: str) -> Bucket:
    return Bucket(s3_endpoint_url)


@pytest.fixture(scope="module")
def documents() -> list[bytes]:
    return _day_of_events(DAY, EVENTS)


@pytest.fixture
def archived(bucket: Bucket, documents: list[bytes]) -> Manifest:
    return bucket.archive().write_day(TENANT, DAY, iter(documents))


def test_write_day_uploads_gzip_ndjson_objects_and_an_exact_manifest(
    bucket: Bucket, documents: list[bytes], archived: Manifest
) -> None:
    first, last, ends = _expected_ends(documents)
    count = math.ceil(EVENTS / PER_OBJECT)
    assert (archived.tenant, archived.day, archived.events) == (TENANT, DAY, EVENTS)
    assert (archived.first, archived.last, archived.chain_ends) == (first, last, ends)
    assert [o.key for o in archived.objects] == [f"{FOLDER}events-{i:05d}.ndjson.gz" for i in range(count)]
    assert [o.events for o in archived.objects] == [PER_OBJECT] * (count - 1) + [EVENTS - PER_OBJECT * (count - 1)]
    assert datetime.fromisoformat(archived.created_at.replace("Z", "+00:00")).tzinfo is not None
    assert bucket.keys() == [f"{FOLDER}_manifest.json"] + [o.key for o in archived.objects]

    lines: list[bytes] = []
    for obj in archived.objects:
        response = bucket.get(obj.key)
        body = response["Body"].read()
        assert (hashlib.sha256(body).hexdigest(), len(body)) == (obj.sha256, obj.bytes)
        assert response["ContentType"] == "application/gzip"
        assert "ContentEncoding" not in response  # clients must get the gzip bytes, not an unpacked body
        assert response["Metadata"] == {"sha256": obj.sha256, "events": str(obj.events)}
        # The PUT carried the SHA-256 for S3 to check (moto only keeps it; S3 refuses a mismatch).
        attributes = bucket.s3.head_object(Bucket=bucket.name, Key=obj.key, ChecksumMode="ENABLED")
        assert base64.b64decode(attributes["ChecksumSHA256"]).hex() == obj.sha256
        text = gzip.decompress(body)
        assert text.endswith(b"\n")
        lines.extend(text.split(b"\n")[:-1])
    assert lines == documents  # byte for byte, in the order given

    stored = orjson.loads(bucket.get(f"{FOLDER}_manifest.json")["Body"].read())
    assert stored == orjson.loads(orjson.dumps(archived.as_dict()))
    assert bucket.archive().manifest(TENANT, DAY) == archived


def test_read_day_streams_the_same_bytes_in_order_and_the_chain_verifies(
    bucket: Bucket, documents: list[bytes], archived: Manifest
) -> None:
    restored = list(bucket.archive().read_day(TENANT, DAY))
    assert restored == documents
    assert _rechain(restored) == {"node-a": 2000, "node-b": 1000}


def test_spools_past_their_memory_size_give_the_same_archive(
    bucket: Bucket, documents: list[bytes], archived: Manifest
) -> None:
    on_disk = Archive(bucket.s3, bucket.name, "audit-disk", max_object_events=PER_OBJECT, spool_bytes=4096)
    manifest = on_disk.write_day(TENANT, DAY, documents)
    # gzip with mtime 0: the same documents make the same bytes, whether spooled in memory or on disk.
    assert [(o.sha256, o.bytes) for o in manifest.objects] == [(o.sha256, o.bytes) for o in archived.objects]
    assert list(on_disk.read_day(TENANT, DAY)) == documents


def test_days_lists_archived_days_only(bucket: Bucket, archived: Manifest) -> None:
    archive = bucket.archive()
    other = date(2026, 3, 12)
    archive.write_day(TENANT, other, _day_of_events(other, 10))
    # A day whose upload stopped before the manifest: objects but no manifest, so not archived.
    bucket.s3.put_object(
        Bucket=bucket.name, Key="audit/tenant=acme%2Feu%20west/dt=2026-03-13/events-00000.ndjson.gz", Body=b"x"
    )
    archive.write_day("acme", other, iter([]))
    assert archive.days(TENANT) == [other, DAY]
    assert archive.days("acme") == [other]
    assert archive.days("acme/eu") == []
    assert archive.manifest(TENANT, date(2026, 3, 13)) is None


def test_an_empty_day_gets_a_manifest_and_no_objects(bucket: Bucket) -> None:
    archive = bucket.archive()
    manifest = archive.write_day("acme", DAY, [])
    assert (manifest.events, manifest.objects) == (0, ())
    assert (manifest.first, manifest.last, manifest.chain_ends) == ({}, {}, {})
    assert bucket.keys() == ["audit/tenant=acme/dt=2026-03-14/_manifest.json"]
    assert archive.manifest("acme", DAY) == manifest
    assert list(archive.read_day("acme", DAY)) == []
    assert archive.write_day("acme", DAY, []) == manifest


def test_writing_the_same_events_again_answers_the_existing_manifest(
    bucket: Bucket, documents: list[bytes], archived: Manifest
) -> None:
    before = {o.key: bucket.get(o.key)["LastModified"] for o in archived.objects}
    again = bucket.archive().write_day(TENANT, DAY, reversed(documents))  # order does not matter
    assert again == archived  # created_at included: nothing was rewritten
    assert {o.key: bucket.get(o.key)["LastModified"] for o in archived.objects} == before


def test_late_events_replace_the_day_and_leftover_objects_go(
    bucket: Bucket, documents: list[bytes], archived: Manifest
) -> None:
    late = _day_of_events(DAY, 5, first_seq={"node-a": 5000, "node-b": 5000})
    manifest = bucket.archive(max_object_events=2000).write_day(TENANT, DAY, documents + late)
    assert manifest.events == EVENTS + 5
    assert manifest.chain_ends["node-b"]["last"]["seq"] == 5002  # late events 0 and 3 are node-b's
    assert bucket.keys() == [
        f"{FOLDER}_manifest.json",
        f"{FOLDER}events-00000.ndjson.gz",
        f"{FOLDER}events-00001.ndjson.gz",
    ]
    assert bucket.archive().manifest(TENANT, DAY) == manifest
    assert list(bucket.archive().read_day(TENANT, DAY)) == documents + late


def test_fewer_events_never_replace_an_archived_day(bucket: Bucket, documents: list[bytes], archived: Manifest) -> None:
    with pytest.raises(ArchiveError, match=f"archived with {EVENTS} events .* only 2999 were given; refusing"):
        bucket.archive().write_day(TENANT, DAY, documents[1:])
    assert bucket.archive().manifest(TENANT, DAY) == archived


def test_a_changed_object_fails_verify_and_read_day_naming_the_key(
    bucket: Bucket, documents: list[bytes], archived: Manifest
) -> None:
    archive = bucket.archive()
    changed = archived.objects[2]
    tampered = gzip.decompress(bucket.get(changed.key)["Body"].read()).replace(b"success", b"failure")
    bucket.s3.put_object(Bucket=bucket.name, Key=changed.key, Body=gzip.compress(tampered))

    with pytest.raises(
        ArchiveError, match=f"s3://{bucket.name}/{changed.key} has SHA-256 .* but the manifest says {changed.sha256}"
    ):
        archive.verify(archived)
    stream = archive.read_day(TENANT, DAY)
    assert [next(stream) for _ in range(2 * PER_OBJECT)] == documents[: 2 * PER_OBJECT]
    with pytest.raises(ArchiveError, match=changed.key):
        next(stream)  # not one line of the changed object is handed out

    # Archiving the day again from the store repairs it.
    repaired = archive.write_day(TENANT, DAY, documents)
    archive.verify(repaired)
    assert list(archive.read_day(TENANT, DAY)) == documents


def test_a_missing_object_fails_verify_and_read_day_naming_the_key(bucket: Bucket, archived: Manifest) -> None:
    archive = bucket.archive()
    gone = archived.objects[-1]
    bucket.s3.delete_object(Bucket=bucket.name, Key=gone.key)
    with pytest.raises(ArchiveError, match=f"s3://{bucket.name}/{gone.key} is missing"):
        archive.verify(archived)
    with pytest.raises(ArchiveError, match=f"{gone.key} is missing"):
        list(archive.read_day(TENANT, DAY))


def test_a_manifest_that_disagrees_with_its_objects_fails_verify(bucket: Bucket, archived: Manifest) -> None:
    data = archived.as_dict()
    data["last"] = data["first"]
    with pytest.raises(ArchiveError, match="does not describe its objects"):
        bucket.archive().verify(Manifest.from_dict(data))


def test_a_damaged_manifest_is_reported_with_its_key(bucket: Bucket, archived: Manifest) -> None:
    bucket.s3.put_object(Bucket=bucket.name, Key=f"{FOLDER}_manifest.json", Body=b"{not json")
    with pytest.raises(ArchiveError, match=f"s3://{bucket.name}/{FOLDER}_manifest.json is not a valid manifest"):
        bucket.archive().manifest(TENANT, DAY)


def test_an_absent_manifest_is_none_and_read_day_says_not_archived(bucket: Bucket) -> None:
    archive = bucket.archive()
    assert archive.manifest(TENANT, DAY) is None
    assert archive.days(TENANT) == []
    with pytest.raises(ArchiveError, match="is not archived"):
        list(archive.read_day(TENANT, DAY))


def test_s3_errors_name_the_bucket_and_the_settings(s3_endpoint_url: str) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint_url, region_name="us-east-1")
    archive = Archive(s3, "no-such-bucket-here")
    with pytest.raises(ArchiveError, match=r"s3://no-such-bucket-here/.*NoSuchBucket.*EVENTLOG_ARCHIVE_"):
        archive.write_day("acme", DAY, [])
