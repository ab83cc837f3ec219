"""A stand-in for OpenSearch Dashboards' saved objects import API on a loopback port.

OpenSearch Dashboards is a Node application published neither on PyPI nor on Maven Central,
so the importer's tests talk to this server instead. It checks a request the way Dashboards
2.x does (`src/core/server/http/lifecycle_handlers.ts`, `saved_objects/routes/import.ts`,
`saved_objects/import/*.ts`) and answers in its shapes:

- POST without an `osd-xsrf` (or `osd-version`) header: 400 "Request must contain a osd-xsrf header.";
- `overwrite` / `createNewCopies` must be booleans, not both true;
- the body must be multipart/form-data with a part named `file` whose file name ends in `.ndjson`;
- every non-blank line must be JSON; the export summary line (`exportedCount`) is skipped;
- the same type:id twice: 400 "Non-unique import objects detected";
- unknown types: `unsupported_type`; references to index patterns or searches that are neither in
  the file nor stored: `missing_references`; existing objects without overwrite: `conflict`.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
import os.path
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

IMPORT_PATH = "/api/saved_objects/_import"
# The saved object types of a stock OpenSearch Dashboards 2.x, as far as an import can hold them.
KNOWN_TYPES = {
    "index-pattern",
    "search",
    "visualization",
    "dashboard",
    "config",
    "query",
    "url",
    "augment-vis",
    "visualization-visbuilder",
}
VALIDATED_REFERENCE_TYPES = {"index-pattern", "search"}  # import/validate_references.ts


@dataclass
class Received:
    """One import request as the server saw it."""

    headers: dict[str, str]
    query: dict[str, list[str]]
    part_name: str | None = None
    filename: str | None = None
    objects: list[dict[str, Any]] = field(default_factory=list)


class FakeDashboards:
    """Threaded HTTP server; `url` is its base URL, `stored` what imports saved so far."""

    def __init__(
        self,
        *,
        credentials: tuple[str, str] | None = None,
        not_ready_answers: int = 0,
        base_path: str = "",
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.credentials = credentials
        self.not_ready_answers = not_ready_answers
        self.base_path = base_path
        self.stored: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._scheme = "http"
        if tls is not None:  # (certificate, key), PEM
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        # A short poll interval: stop() waits for it.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}{self.base_path}"

    def start(self) -> FakeDashboards:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest's output clean

            def do_POST(self) -> None:
                status, body = fake.handle(self)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def handle(self, request: BaseHTTPRequestHandler) -> tuple[int, dict[str, Any]]:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length)
        split = urlsplit(request.path)
        if split.path != self.base_path + IMPORT_PATH:
            return 404, {"statusCode": 404, "error": "Not Found", "message": "Not Found"}
        if self.credentials is not None:
            user, password = self.credentials
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                return 401, {"statusCode": 401, "error": "Unauthorized", "message": "Authentication required"}
        with self._lock:
            if self.not_ready_answers > 0:
                self.not_ready_answers -= 1
                return 503, {
                    "statusCode": 503,
                    "error": "Service Unavailable",
                    "message": "OpenSearch Dashboards server is not ready yet",
                }
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = parse_qs(split.query, keep_blank_values=True)
        received = Received(headers, query)
        with self._lock:
            self.requests.append(received)
        if "osd-xsrf" not in headers and "osd-version" not in headers:
            return 400, _bad("Request must contain a osd-xsrf header.")
        flags: dict[str, bool] = {}
        for name in ("overwrite", "createNewCopies"):
            values = query.get(name, ["false"])
            if values[-1] not in ("true", "false"):
                return 400, _bad(f"[request query.{name}]: expected value of type [boolean] but got [string]")
            flags[name] = values[-1] == "true"
        if flags["overwrite"] and flags["createNewCopies"]:
            return 400, _bad("[request query]: cannot use [overwrite] with [createNewCopies]")
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return 415, {"statusCode": 415, "error": "Unsupported Media Type", "message": "Unsupported Media Type"}
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        file_part = None
        for part in message.iter_parts():
            received.part_name = part.get_param("name", header="content-disposition")  # type: ignore[assignment]
            if received.part_name == "file":
                file_part = part
                break
        if file_part is None:
            return 400, _bad("[request body.file]: expected value of type [Stream] but got [undefined]")
        received.filename = file_part.get_filename()
        extension = os.path.splitext(received.filename or "")[1].lower()
        if extension != ".ndjson":
            return 400, _bad(f"Invalid file extension {extension}")
        payload = file_part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        objects: list[dict[str, Any]] = []
        for line in payload.decode().split("\n"):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                return 400, _bad(f"Unexpected token in JSON: {exc}")
            if isinstance(obj, dict) and "exportedCount" in obj:
                continue
            objects.append(obj)
        received.objects = objects
        keys = [f"{o.get('type')}:{o.get('id')}" for o in objects]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            return 400, _bad(f"Non-unique import objects detected: [{','.join(repeated)}]")
        return 200, self._import(objects, overwrite=flags["overwrite"])

    def _import(self, objects: list[dict[str, Any]], *, overwrite: bool) -> dict[str, Any]:
        errors: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        in_file = {(o["type"], o["id"]) for o in objects}
        with self._lock:
            for obj in objects:
                key = (obj["type"], obj["id"])
                title = obj.get("attributes", {}).get("title")
                meta = {"title": title}
                if obj["type"] not in KNOWN_TYPES:
                    errors.append({**_who(obj), "meta": meta, "error": {"type": "unsupported_type"}})
                    continue
                missing = [
                    {"type": r["type"], "id": r["id"]}
                    for r in obj.get("references", [])
                    if r["type"] in VALIDATED_REFERENCE_TYPES
                    and (r["type"], r["id"]) not in in_file
                    and (r["type"], r["id"]) not in self.stored
                ]
                if missing:
                    error = {"type": "missing_references", "references": missing}
                    errors.append({**_who(obj), "meta": meta, "error": error})
                    continue
                existed = key in self.stored
                if existed and not overwrite:
                    errors.append({**_who(obj), "meta": meta, "error": {"type": "conflict"}})
                    continue
                self.stored[key] = obj
                result = {**_who(obj), "meta": meta}
                if existed:
                    result["overwrite"] = True
                results.append(result)
        answer: dict[str, Any] = {"successCount": len(results), "success": not errors}
        if results:
            answer["successResults"] = results
        if errors:
            answer["errors"] = errors
        return answer


def _who(obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": obj["id"], "type": obj["type"], "title": obj.get("attributes", {}).get("title")}


def _bad(message: str) -> dict[str, Any]:
    return {"statusCode": 400, "error": "Bad Request", "message": message}
