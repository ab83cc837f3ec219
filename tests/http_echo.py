"""A tiny HTTP server standing in for an eventlog node behind HAProxy (tests/integration/test_haproxy.py).

    python -m tests.http_echo --name a --port 18001 --ready-file ready --hits-file hits

- ``GET /readyz`` answers the status code written in ``--ready-file`` (200 when the
  file is missing or empty), as an eventlog node answers 503 when its journal fails;
- ``/drop/<name>`` on the server called ``<name>`` closes the connection without
  answering a byte (a node dying mid-request); on any other server it answers 200;
- every other request answers 200 with JSON: which server, the method, the path and
  the forwarding headers it got.

Every request except /readyz is appended to ``--hits-file`` as ``<name> <method> <path>``,
so a test can count what reached each server.
"""

from __future__ import annotations

import argparse
import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _handler(name: str, ready_file: Path, hits_file: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return None  # the hits file is the record

        def _answer(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path == "/readyz":
                text = ready_file.read_text().strip() if ready_file.exists() else ""
                status = int(text or 200)
                self._answer(status, {"server": name, "status": status})
                return
            with hits_file.open("a") as hits:
                hits.write(f"{name} {self.command} {self.path}\n")
            if self.path == f"/drop/{name}":
                # RST without a response: what a client of a crashed process sees.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.close_connection = True
                self.connection.close()
                return
            self._answer(
                200,
                {
                    "server": name,
                    "method": self.command,
                    "path": self.path,
                    "x_forwarded_for": self.headers.get("X-Forwarded-For"),
                    "forwarded": self.headers.get("Forwarded"),
                },
            )

        do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - the names http.server dispatches to

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # HAProxy resets a health check's connection once it has read the status: no error.
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--hits-file", type=Path, required=True)
    args = parser.parse_args()
    server = QuietServer(("127.0.0.1", args.port), _handler(args.name, args.ready_file, args.hits_file))
    server.serve_forever()


if __name__ == "__main__":
    main()
