"""The API's error answers for what no route handles: unknown paths and methods."""

from __future__ import annotations

import pytest

from tests.app import Service


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/events", "GET, POST"),
        ("PUT", "/v1/events", "GET, POST"),
        ("PATCH", "/v1/tokens", "GET, POST"),
        ("PUT", "/v1/tokens/abc", "DELETE"),
        ("DELETE", "/v2/storage/events", "GET, POST"),
        ("POST", "/v2/storage/events/1", "GET"),
        ("POST", "/healthz", "GET"),
        ("OPTIONS", "/v1/holds", "GET, POST"),
        ("POST", "/", "GET"),
    ],
)
def test_405_allows_every_method_of_the_path(service: Service, method: str, path: str, allow: str) -> None:
    answer = service.client.request(method, path)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allow
    body = answer.json()
    assert body["error"] == "method_not_allowed"
    assert method in body["message"]
    assert allow.replace(", ", " or ") in body["message"]


def test_405_of_the_ui_files_keeps_their_allow(service: Service) -> None:
    answer = service.client.request("DELETE", "/ui/app.js")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD"


def test_unknown_path_is_a_json_404(service: Service) -> None:
    answer = service.client.get("/v9/nothing")
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"
