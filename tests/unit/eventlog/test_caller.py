"""The request id and client address are resolved once, for the access log and the audit middleware alike."""

from __future__ import annotations

import pytest

from eventlog.caller import ClientAddress, request_id_of


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (b"req-1.a:b_C", True),
        (b"x" * 128, True),
        (b"x" * 129, False),
        (b"-\n", False),  # `$` would match before a final newline; the whole value must be safe
        (b"abc\r\nInjected: 1", False),
        (b"a b", False),
        (b"", False),
    ],
)
def test_only_a_safe_request_id_is_kept(sent: bytes, kept: bool) -> None:
    resolved = request_id_of([(b"host", b"x"), (b"x-request-id", sent)])
    assert (resolved == sent.decode("latin-1")) is kept
    assert resolved.isascii()
    assert "\n" not in resolved


def test_without_a_request_id_a_new_one_is_made_each_time() -> None:
    assert request_id_of([]) != request_id_of([])


def test_forwarded_headers_count_only_from_a_trusted_proxy() -> None:
    client = ClientAddress(["10.0.0.0/8"])
    assert client("203.0.113.9", None, "198.51.100.7") == "203.0.113.9"
    assert client("10.0.0.2", None, "198.51.100.7, 10.0.0.3") == "198.51.100.7"
    assert client("10.0.0.2", "for=198.51.100.8", "198.51.100.7") == "198.51.100.8"
