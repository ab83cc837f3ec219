"""RFC 5424 syslog messages for audit events, and their framing on a stream (RFC 6587).

One event becomes one message::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID id="" tenant="" action="" outcome="" actor="" ip=""] BOM MSG

- PRI = facility * 8 + severity; the severity comes from the outcome
  (success: 6 informational, unknown: 5 notice, failure: 4 warning).
- TIMESTAMP is the event's `time` (RFC 3339, UTC, microseconds).
- HOSTNAME, APP-NAME, PROCID and MSGID (the action) are printable US-ASCII
  (%d33-126): any other character becomes `_`; they are cut to the RFC's
  lengths (255, 48, 128, 32); an empty one is the NILVALUE `-`.
- One structured-data element carries the event's id, tenant, action,
  outcome, actor (actor.id) and ip (actor.ip); the two last are left out
  when the event has none. `"`, `\\` and `]` in a value are escaped with a
  backslash (RFC 5424 section 6.3.3).
- MSG is the UTF-8 BOM and then the stored event as compact JSON, or the
  plain format: the event's message (else "<action> <outcome>").

No field can break the frame or add an element: header fields are printable
ASCII without spaces, and control characters (C0, DEL, C1, U+2028, U+2029)
in a structured-data value or a plain MSG are written as JSON-style escapes
(`\\n`, `\\r`, `\\t`, `\\u0000`); the JSON MSG escapes them by itself. A
message therefore never holds a line feed, and newline framing is safe.

Size: a message longer than the limit loses the end of its MSG, cut at a
UTF-8 character boundary. If the header and the structured data alone do not
fit, the MSG is left out and each structured-data value is cut to an equal
share of the room left. Either way the message counts as truncated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from eventlog.journal import Entry
from eventlog.model import format_time, parse_time

Body = Literal["json", "plain"]
Framing = Literal["octet-counting", "newline"]

FACILITIES: Mapping[str, int] = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    "ntp": 12,
    "audit": 13,
    "alert": 14,
    "clock": 15,
    **{f"local{n}": 16 + n for n in range(8)},
}

# RFC 5424 severities: 4 warning, 5 notice, 6 informational.
SEVERITY_BY_OUTCOME: Mapping[str, int] = {"success": 6, "unknown": 5, "failure": 4}
DEFAULT_SEVERITY = 5

BOM = b"\xef\xbb\xbf"
NILVALUE = "-"

_NOT_PRINTUSASCII = re.compile(r"[^!-~]")
_SD_SPECIAL = re.compile('["\\\\\\]\x00-\x1f\x7f-\x9f\u2028\u2029]')
_PLAIN_SPECIAL = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029]")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_control(char: str) -> str:
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _escape_sd_char(match: re.Match[str]) -> str:
    char = match.group()
    return "\\" + char if char in '"\\]' else _escape_control(char)


def _escape_plain_char(match: re.Match[str]) -> str:
    char = match.group()
    return "\\\\" if char == "\\" else _escape_control(char)


def header_token(value: str, max_length: int) -> str:
    """A header field: printable US-ASCII only (others become `_`), at most `max_length`, `-` when empty."""
    token = value[:max_length]
    # Fast path: printable ASCII without spaces is the common case (str methods run in C).
    if not (token.isascii() and token.isprintable() and " " not in token):
        token = _NOT_PRINTUSASCII.sub("_", token)
    return token or NILVALUE


def escape_param_value(value: str) -> str:
    """An SD-PARAM value: `"`, `\\` and `]` backslash-escaped, control characters as JSON-style escapes."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value and "]" not in value:
        return value
    return _SD_SPECIAL.sub(_escape_sd_char, value)


def plain_text(value: str) -> str:
    """A plain MSG: backslashes doubled and control characters escaped, as inside a JSON string."""
    return _PLAIN_SPECIAL.sub(_escape_plain_char, value)


def timestamp(value: Any) -> str:
    """RFC 3339 in UTC with microseconds, from the stored `time` (already in that form when eventlog wrote it)."""
    if not isinstance(value, str):
        return NILVALUE
    if _TIMESTAMP.fullmatch(value):
        return value
    try:
        parsed = parse_time(value)
    except ValueError:
        return NILVALUE
    return format_time(parsed)


def cut_utf8(data: bytes, limit: int) -> bytes:
    """The longest prefix of `data` of at most `limit` bytes that ends on a character boundary."""
    if len(data) <= limit:
        return data
    end = max(limit, 0)
    while end > 0 and data[end] & 0xC0 == 0x80:
        end -= 1
    return data[:end]


def _cut_escaped(value: str, limit: int) -> str:
    """The escaped value, cut to at most `limit` bytes of UTF-8 without splitting a character or an escape."""
    out: list[str] = []
    size = 0
    for char in value:
        piece = escape_param_value(char)
        length = len(piece.encode("utf-8", "replace"))
        if size + length > limit:
            break
        out.append(piece)
        size += length
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Encoded:
    """One SYSLOG-MSG, without framing, and whether it was cut to the size limit."""

    message: bytes
    truncated: bool


class Oversize(ValueError):
    """The header alone does not fit in the size limit; the event cannot be sent."""


@dataclass(frozen=True, slots=True)
class MessageFormat:
    """Everything that is the same for every message of one sink."""

    facility: int
    hostname: str
    app_name: str
    procid: str
    sd_id: str
    body: Body = "json"

    def __post_init__(self) -> None:
        if not 0 <= self.facility <= 23:
            raise ValueError(f"facility {self.facility} is not between 0 and 23")
        # The constant header fields, made safe once.
        object.__setattr__(self, "hostname", header_token(self.hostname, 255))
        object.__setattr__(self, "app_name", header_token(self.app_name, 48))
        object.__setattr__(self, "procid", header_token(self.procid, 128))
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,20}@[0-9]{1,10}", self.sd_id):
            raise ValueError(f"SD-ID {self.sd_id!r} is not of the form name@<private enterprise number>")

    def encode(self, entry: Entry, max_bytes: int) -> Encoded:
        """The RFC 5424 message of one journal entry, at most `max_bytes` long."""
        document = orjson.loads(entry.document)
        if not isinstance(document, dict):
            raise ValueError("the stored event is not a JSON object")
        outcome = document.get("outcome")
        severity = SEVERITY_BY_OUTCOME.get(outcome, DEFAULT_SEVERITY) if isinstance(outcome, str) else DEFAULT_SEVERITY
        action = _text(document.get("action"))
        header = (
            f"<{self.facility * 8 + severity}>1 {timestamp(document.get('time'))} {self.hostname} "
            f"{self.app_name} {self.procid} {header_token(action, 32)} "
        ).encode("ascii")
        values = _sd_values(entry, document, action)
        sd = self._sd(values)
        if self.body == "json":
            msg = entry.document
        else:
            text = _text(document.get("message")) or f"{action} {_text(outcome)}"
            msg = plain_text(text).encode("utf-8", "replace")
        size = len(header) + len(sd) + 1 + len(BOM) + len(msg)
        if size <= max_bytes:
            return Encoded(b"".join((header, sd, b" ", BOM, msg)), False)
        room = max_bytes - len(header) - len(sd) - 1 - len(BOM)
        if room >= 0:
            return Encoded(b"".join((header, sd, b" ", BOM, cut_utf8(msg, room))), True)
        return Encoded(header + self._sd_cut(values, max_bytes - len(header)), True)

    def _sd(self, values: list[tuple[str, str]]) -> bytes:
        params = "".join(f' {name}="{escape_param_value(value)}"' for name, value in values)
        return f"[{self.sd_id}{params}]".encode("utf-8", "replace")

    def _sd_cut(self, values: list[tuple[str, str]], room: int) -> bytes:
        skeleton = len(self._sd([(name, "") for name, _ in values]))
        share = (room - skeleton) // len(values)
        if share < 1:
            raise Oversize(f"the syslog header and structured data need more than {room} bytes")
        params = "".join(f' {name}="{_cut_escaped(value, share)}"' for name, value in values)
        return f"[{self.sd_id}{params}]".encode("utf-8", "replace")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _sd_values(entry: Entry, document: Mapping[str, Any], action: str) -> list[tuple[str, str]]:
    values = [
        ("id", entry.id),
        ("tenant", entry.tenant),
        ("action", action),
        ("outcome", _text(document.get("outcome"))),
    ]
    actor = document.get("actor")
    if isinstance(actor, dict):
        if actor.get("id") is not None:
            values.append(("actor", _text(actor["id"])))
        if actor.get("ip") is not None:
            values.append(("ip", _text(actor["ip"])))
    return values


def frame(message: bytes, framing: Framing) -> bytes:
    """One message on a stream: `MSG-LEN SP SYSLOG-MSG` (octet counting) or `SYSLOG-MSG LF`."""
    if framing == "octet-counting":
        return b"%d %b" % (len(message), message)
    return message + b"\n"
