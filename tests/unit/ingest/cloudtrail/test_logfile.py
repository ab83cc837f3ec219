"""Reading one CloudTrail log file: its records streamed, malformed files named, the C parser and the Python one,
the hash of the content."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from typing import Any

import pytest

from ingest.cloudtrail.logfile import LogFile, MalformedFile, iter_records
from tests.unit.ingest.cloudtrail.test_mapping import TRAILSCRAPER, _records


def _gz(data: bytes) -> io.BytesIO:
    return io.BytesIO(gzip.compress(data))


def test_iter_records_streams_a_log_file() -> None:
    records = list(iter_records(_gz(TRAILSCRAPER.read_bytes())))
    assert [r["eventID"] for r in records] == [r["eventID"] for r in _records(TRAILSCRAPER.name)]
    big = list(iter_records(_gz(b'{"Records": [{"n": 123456789012345678901234, "f": 1.5}]}')))
    assert big == [{"n": 123456789012345678901234, "f": 1.5}]
    assert list(iter_records(_gz(b'{"Records": []}'))) == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(io.BytesIO(b"not gzip at all"), "gzip", id="bad-gzip"),
        pytest.param(io.BytesIO(gzip.compress(b'{"Records": [{"a": 1}]}')[:-12]), "gzip", id="truncated-gzip"),
        pytest.param(_gz(b'{"Records": [{"a": 1}, {"b": '), "JSON", id="bad-json"),
        pytest.param(_gz(b'{"awsAccountId": "1", "logFiles": []}'), "Records", id="digest-no-records"),
    ],
)
def test_iter_records_refuses_malformed_files(body: io.BytesIO, problem: str) -> None:
    with pytest.raises(MalformedFile, match=problem):
        list(iter_records(body))


# -- reading: the C parser, the Python one for what it cannot hold, the hash of the content -----------------------


def _content(records: list[dict[str, Any]]) -> bytes:
    return json.dumps({"Records": records}).encode()  # orjson refuses integers beyond 64 bits


def test_a_number_the_c_parser_refuses_restarts_the_file_with_the_python_one() -> None:
    records: list[dict[str, Any]] = [{"eventID": str(i), "n": i, "f": i + 0.5} for i in range(3000)]
    records[2500]["n"] = 2**80  # beyond 64 bits: yajl2_c stops there
    body = gzip.compress(_content(records))
    opened: list[int] = []

    def open_body() -> io.BytesIO:
        opened.append(1)
        return io.BytesIO(body)

    log = LogFile(open_body)
    assert list(iter_records(log)) == records  # each record once, in order
    assert len(opened) == 2
    assert log.sha256() == hashlib.sha256(_content(records)).hexdigest()
    # A double beyond range is no number either parser takes: the file is reported, as before.
    with pytest.raises(MalformedFile, match="JSON"):
        list(iter_records(io.BytesIO(gzip.compress(b'{"Records": [{"a": 1}, {"f": 1.5e400}]}'))))


def test_records_in_another_key_order_and_several_gzip_members() -> None:
    content = b'{"other": {"Records": [1]}, "Records": [{"a": 1}, {"b": 2}]}'
    body = gzip.compress(content[:20]) + gzip.compress(content[20:])
    log = LogFile.of(io.BytesIO(body))
    assert list(iter_records(log)) == [{"a": 1}, {"b": 2}]
    assert log.sha256() == hashlib.sha256(content).hexdigest()


def test_the_hash_of_a_file_that_is_not_gzip_is_none() -> None:
    log = LogFile.of(io.BytesIO(b"not gzip"))
    with pytest.raises(MalformedFile, match="gzip"):
        list(iter_records(log))
    assert log.sha256() is None
