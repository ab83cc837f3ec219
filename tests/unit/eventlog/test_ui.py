"""The web UI's page at `/` and files under `/ui`: security headers, and the API's 404s left alone."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from eventlog.ui import SECURITY_HEADERS, mount_ui
from tests.app import Service, bearer


def _assert_secured(headers: Mapping[str, str]) -> None:
    csp = headers["content-security-policy"]
    assert csp == SECURITY_HEADERS["Content-Security-Policy"]
    directives = {part.strip().split(" ", 1)[0]: part.strip() for part in csp.split(";")}
    assert directives["default-src"] == "default-src 'self'"
    assert directives["script-src"] == "script-src 'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("x-frame-options") == "DENY"
    assert headers.get("referrer-policy") == "no-referrer"


def test_root_serves_the_page_with_security_headers(service: Service) -> None:
    answer = service.client.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/ui/app.js"></script>' in answer.text
    assert "<script>" not in answer.text  # the CSP forbids inline script: the page must not need any
    assert " style=" not in answer.text
    _assert_secured(answer.headers)


@pytest.mark.parametrize(
    ("path", "media"),
    [("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css"), ("/ui/favicon.svg", "image/svg+xml")],
)
def test_ui_files_carry_their_type_and_the_security_headers(service: Service, path: str, media: str) -> None:
    answer = service.client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(media)  # nosniff: a wrong type would not run
    _assert_secured(answer.headers)


def test_ui_is_not_self_audited(service: Service) -> None:
    token = service.token("acme")
    assert service.client.get("/").status_code == 200
    assert service.client.get("/ui/app.js").status_code == 200
    service.settle()
    events = service.client.get("/v1/events", headers=bearer(token)).json()["events"]
    assert events == []


@pytest.mark.parametrize(
    "path", ["/v1/nothing", "/v9/events", "/ui/nothing.js", "/index.html", "/ui/../pyproject.toml"]
)
def test_unknown_paths_still_answer_the_api_json_404(service: Service, path: str) -> None:
    answer = service.client.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"] == "not_found"


def test_api_answers_do_not_get_the_ui_headers(service: Service) -> None:
    answer = service.client.get("/healthz")
    assert "content-security-policy" not in answer.headers


def test_mount_ui_refuses_a_directory_without_the_page(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"index\.html"):
        mount_ui(FastAPI(), tmp_path)


def test_mount_ui_serves_any_directory(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>x</title>")
    (tmp_path / "app.js").write_text("export {};")
    app = FastAPI()
    mount_ui(app, tmp_path)
    with TestClient(app) as client:
        assert client.get("/").text == "<!doctype html><title>x</title>"
        assert client.get("/ui/app.js").status_code == 200
        assert client.get("/ui/app.js").headers["cache-control"] == "no-cache"
