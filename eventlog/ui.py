"""Serving the web UI: its page at `/`, its static files under `/ui`, with browser security headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

# The UI loads only its own files and talks only to this origin: no inline script or style, no framing
# (clickjacking), no referrer (queries can hold personal data), no MIME sniffing of the files.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class _UiFiles(StaticFiles):
    """StaticFiles whose every answer carries the security headers (a 404 stays the API's JSON 404)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        # Revalidate at each load: a new release must not run next to a cached older module.
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def mount_ui(app: FastAPI, directory: Path) -> None:
    """Serve `directory/index.html` at `/` and the directory at `/ui`; nothing else, so unknown paths stay 404."""
    index = directory / "index.html"
    if not index.is_file():
        raise RuntimeError(f"the web UI is missing: no {index}; reinstall eventlog with its package data")

    async def page() -> Response:
        return FileResponse(index, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.mount("/ui", _UiFiles(directory=directory), name="ui")
