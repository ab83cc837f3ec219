"""RFC 5424 messages and their framing: input event -> exact bytes."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog.journal import Entry
from eventlog.sinks.syslog_message import (
    BOM,
    MessageFormat,
    Oversize,
    cut_utf8,
    escape_param_value,
    frame,
    header_token,
    plain_text,
    timestamp,
)

FORMAT = MessageFormat(facility=16, hostname="host.example", app_name="eventlog", procid="4242", sd_id="eventlog@32473")
PLAIN = MessageFormat(
    facility=16, hostname="host.example", app_name="eventlog", procid="4242", sd_id="eventlog@32473", body="plain"
)
HEAD = "1 2026-11-27T10:00:00.123456Z host.example eventlog 4242"


def _event(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "e1",
        "tenant": "acme",
        "time": "2026-11-27T10:00:00.123456Z",
        "action": "storage.tables.create",
        "outcome": "success",
        "actor": {"id": "u-42", "ip": "10.0.0.7"},
        "message": "Created table sales",
    }
    event.update(fields)
    return event


def _entry(event: dict[str, Any]) -> Entry:
    return Entry(7, event["id"], event["tenant"], orjson.dumps(event), 0.0)


def _sd(**params: str) -> str:
    """The SD element of `_event()` with `params` changed or added (in the order the sink writes them)."""
    every = {"id": "e1", "tenant": "acme", "action": "storage.tables.create", "outcome": "success", **params}
    return "[eventlog@32473" + "".join(f' {k}="{v}"' for k, v in every.items()) + "]"


SD = _sd(actor="u-42", ip="10.0.0.7")

# (name, event, the message up to MSG as text)
JSON_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("success", _event(), f"<134>{HEAD} storage.tables.create {SD}"),
    (
        "failure is a warning",
        _event(outcome="failure"),
        f"<132>{HEAD} storage.tables.create " + SD.replace("success", "failure"),
    ),
    (
        "unknown is a notice",
        _event(outcome="unknown"),
        f"<133>{HEAD} storage.tables.create " + SD.replace("success", "unknown"),
    ),
    (
        "no actor: no actor or ip param",
        _event(actor={}),
        f"<134>{HEAD} storage.tables.create " + _sd(outcome="success"),
    ),
    (
        "actor without ip",
        _event(actor={"id": "svc-billing", "type": "service"}),
        f"<134>{HEAD} storage.tables.create " + _sd(actor="svc-billing"),
    ),
    (
        "quotes, backslash and bracket are escaped",
        _event(tenant='a"b\\c]d'),
        f"<134>{HEAD} storage.tables.create " + _sd(tenant='a\\"b\\\\c\\]d', actor="u-42", ip="10.0.0.7"),
    ),
    (
        "a fake SD element stays inside the value",
        _event(actor={"id": 'x"] [fake@1 admin="yes'}),
        f"<134>{HEAD} storage.tables.create " + _sd(actor='x\\"\\] [fake@1 admin=\\"yes'),
    ),
    (
        "control characters become JSON-style escapes",
        _event(actor={"id": "a\nb\rc\td\x00e\x7ff\u2028g\x85"}),
        f"<134>{HEAD} storage.tables.create " + _sd(actor="a\\nb\\rc\\td\\u0000e\\u007ff\\u2028g\\u0085"),
    ),
    (
        "unicode is kept as UTF-8",
        _event(tenant="Zürich 東京", actor={"id": "José", "ip": "2001:db8::1"}),
        f"<134>{HEAD} storage.tables.create " + _sd(tenant="Zürich 東京", actor="José", ip="2001:db8::1"),
    ),
    (
        "MSGID: printable ASCII only, at most 32",
        _event(action="ação de teste.with.a.very.long.dotted.name"),
        f"<134>{HEAD} a__o_de_teste.with.a.very.long.d "
        + _sd(action="ação de teste.with.a.very.long.dotted.name", actor="u-42", ip="10.0.0.7"),
    ),
    (
        "a time with an offset is written in UTC",
        _event(time="2026-11-27T11:00:00+01:00"),
        f"<134>1 2026-11-27T10:00:00.000000Z host.example eventlog 4242 storage.tables.create {SD}",
    ),
    (
        "a time that is not one is the NILVALUE",
        _event(time="yesterday"),
        f"<134>1 - host.example eventlog 4242 storage.tables.create {SD}",
    ),
]


@pytest.mark.parametrize(("event", "head"), [(e, h) for _, e, h in JSON_CASES], ids=[n for n, _, _ in JSON_CASES])
def test_json_message(event: dict[str, Any], head: str) -> None:
    entry = _entry(event)
    encoded = FORMAT.encode(entry, 8192)
    assert encoded.message == head.encode() + b" " + BOM + entry.document
    assert not encoded.truncated
    assert b"\n" not in encoded.message


def test_json_message_escapes_newlines_of_the_event() -> None:
    entry = _entry(_event(message="line one\nline two\r\n", details={"k": "a\nb"}))
    message = FORMAT.encode(entry, 8192).message
    assert b"\n" not in message
    assert b"\r" not in message
    assert orjson.loads(message.split(BOM, 1)[1]) == orjson.loads(entry.document)


# (name, event, MSG after the BOM)
PLAIN_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("the message", _event(), "Created table sales"),
    (
        "newlines and backslashes escaped",
        _event(message='line 1\nline 2\r\tC:\\dir "q"'),
        'line 1\\nline 2\\r\\tC:\\\\dir "q"',
    ),
    ("no message: action and outcome", _event(message=""), "storage.tables.create success"),
    ("unicode kept", _event(message="Grüße, 東京 ✓"), "Grüße, 東京 ✓"),
]


@pytest.mark.parametrize(("event", "msg"), [(e, m) for _, e, m in PLAIN_CASES], ids=[n for n, _, _ in PLAIN_CASES])
def test_plain_message(event: dict[str, Any], msg: str) -> None:
    encoded = PLAIN.encode(_entry(event), 8192)
    assert encoded.message == f"<134>{HEAD} storage.tables.create {SD} ".encode() + BOM + msg.encode()


@pytest.mark.parametrize(
    ("message", "framing", "framed"),
    [
        (b"<134>1 - - - - - -", "octet-counting", b"18 <134>1 - - - - - -"),
        (b"<134>1 - - - - - -", "newline", b"<134>1 - - - - - -\n"),
        ("<134>1 - - - - - - \ufeffü".encode(), "octet-counting", "24 <134>1 - - - - - - \ufeffü".encode()),
    ],
    ids=["octet counting", "newline", "octet counting counts bytes"],
)
def test_frame(message: bytes, framing: Any, framed: bytes) -> None:
    assert frame(message, framing) == framed


def test_long_msg_is_cut_at_a_character_boundary() -> None:
    entry = _entry(_event(message="ü" * 40))
    head = f"<134>{HEAD} storage.tables.create {SD} ".encode() + BOM
    # Room for 11 bytes of MSG: 5 whole "ü" (2 bytes each), not half of the sixth.
    encoded = PLAIN.encode(entry, len(head) + 11)
    assert encoded.message == head + "ü".encode() * 5
    assert encoded.truncated


def test_msg_cut_to_nothing_keeps_header_sd_and_bom() -> None:
    entry = _entry(_event())
    head = f"<134>{HEAD} storage.tables.create {SD} ".encode() + BOM
    assert FORMAT.encode(entry, len(head)).message == head


def test_sd_values_share_the_room_when_header_and_sd_do_not_fit() -> None:
    entry = _entry(_event(tenant="t" * 300, actor={"id": '"' * 300}))
    encoded = FORMAT.encode(entry, 480)
    message = encoded.message.decode()
    assert encoded.truncated
    assert len(encoded.message) <= 480
    assert BOM not in encoded.message
    header = f"<134>{HEAD} storage.tables.create "
    assert message.startswith(header + '[eventlog@32473 id="e1" tenant="ttt')
    # 5 params; skeleton '[eventlog@32473 id="" tenant="" action="" outcome="" actor=""]' is 63 bytes.
    share = (480 - len(header) - 63) // 5
    assert f'tenant="{"t" * share}"' in message
    # An escape is never split: an even number of backslash-quote pairs fit.
    assert f'actor="{chr(92) + chr(34)}' * 1 in message
    assert message.endswith(f' actor="{(chr(92) + chr(34)) * (share // 2)}"]')


def test_header_alone_too_long_is_oversize() -> None:
    wide = MessageFormat(facility=16, hostname="h" * 255, app_name="a" * 48, procid="p" * 128, sd_id="eventlog@32473")
    with pytest.raises(Oversize):
        wide.encode(_entry(_event()), 480)


@pytest.mark.parametrize(
    ("value", "length", "token"),
    [
        ("host.example", 255, "host.example"),
        ("my host", 255, "my_host"),
        ("", 255, "-"),
        ("héllo\nworld", 255, "h_llo_world"),
        ("a" * 40, 32, "a" * 32),
    ],
)
def test_header_token(value: str, length: int, token: str) -> None:
    assert header_token(value, length) == token


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain", "plain"),
        ('"', '\\"'),
        ("\\", "\\\\"),
        ("]", "\\]"),
        ("[", "["),
        ("=", "="),
        ("\n", "\\n"),
        ("\x1b", "\\u001b"),
    ],
)
def test_escape_param_value(value: str, escaped: str) -> None:
    assert escape_param_value(value) == escaped


@pytest.mark.parametrize(
    ("value", "text"),
    [("a\\b", "a\\\\b"), ("a\nb", "a\\nb"), ('"]', '"]'), ("\u2029", "\\u2029")],
)
def test_plain_text(value: str, text: str) -> None:
    assert plain_text(value) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-27T10:00:00.123456Z", "2026-11-27T10:00:00.123456Z"),
        ("2026-11-27T10:00:00Z", "2026-11-27T10:00:00.000000Z"),
        ("2026-11-27T10:00:00.5-02:00", "2026-11-27T12:00:00.500000Z"),
        ("not a time", "-"),
        ("2026-11-27T10:00:00.123456Z\n", "-"),  # never a line feed in the header
        (None, "-"),
    ],
)
def test_timestamp(value: Any, expected: str) -> None:
    assert timestamp(value) == expected


@pytest.mark.parametrize(
    ("data", "limit", "cut"),
    [(b"abc", 5, b"abc"), (b"abc", 2, b"ab"), ("aü".encode(), 2, b"a"), ("€".encode(), 2, b""), (b"abc", 0, b"")],
)
def test_cut_utf8(data: bytes, limit: int, cut: bytes) -> None:
    assert cut_utf8(data, limit) == cut


# -- any text, parsed back by a strict reading of RFC 5424 ------------------------------------------------------

_HEADER = re.compile(rb"^<(\d{1,3})>1 (\S+) ([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32}) ")


def _parse_sd(data: bytes) -> tuple[str, dict[str, str], bytes]:
    """One SD element: its id, params (unescaped as RFC 5424 section 6.3.3 says) and the rest."""
    text = data.decode("utf-8")
    assert text.startswith("[")
    match = re.match(r'\[([^ =\]"]{1,32})', text)
    assert match is not None
    sd_id, pos, params = match.group(1), match.end(), {}
    while text[pos] == " ":
        name_end = text.index('="', pos)
        name, pos = text[pos + 1 : name_end], name_end + 2
        value: list[str] = []
        while text[pos] != '"':
            if text[pos] == "\\" and text[pos + 1] in '"\\]':
                value.append(text[pos + 1])
                pos += 2
            else:
                assert text[pos] != "]", "an unescaped ] inside a value"
                value.append(text[pos])
                pos += 1
        params[name] = "".join(value)
        pos += 1
    assert text[pos] == "]"
    return sd_id, params, text[pos + 1 :].encode("utf-8")


def _as_read(value: str) -> str:
    short = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return "".join(
        short.get(c, f"\\u{ord(c):04x}") if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" else c
        for c in value
    )


@settings(max_examples=300, deadline=None)
@given(
    tenant=st.text(min_size=1, max_size=40),
    actor=st.text(max_size=40),
    action=st.text(min_size=1, max_size=60),
    message=st.text(max_size=80),
    body=st.sampled_from(["json", "plain"]),
)
def test_no_text_breaks_the_frame_or_adds_an_element(
    tenant: str, actor: str, action: str, message: str, body: str
) -> None:
    fmt = PLAIN if body == "plain" else FORMAT
    entry = _entry(_event(tenant=tenant, actor={"id": actor}, action=action, message=message))
    encoded = fmt.encode(entry, 100_000)
    assert b"\n" not in encoded.message
    assert b"\r" not in encoded.message
    assert b"\x00" not in encoded.message
    header = _HEADER.match(encoded.message)
    assert header is not None
    sd_id, params, rest = _parse_sd(encoded.message[header.end() :])
    assert sd_id == "eventlog@32473"
    assert list(params) == ["id", "tenant", "action", "outcome", "actor"]
    # What a receiver reads back: the value, with control characters as their escapes.
    assert params["tenant"] == _as_read(tenant)
    assert params["actor"] == _as_read(actor)
    assert rest.startswith(b" " + BOM)
    if body == "json":
        assert orjson.loads(rest[4:]) == orjson.loads(entry.document)
