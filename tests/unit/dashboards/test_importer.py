"""dashboards/importer.py and `eventlog dashboards import`, against a stand-in of Dashboards' import API.

No real OpenSearch Dashboards runs here (see fake_dashboards.py); the stand-in checks the
request the way Dashboards' route does and answers in its shapes.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dashboards.importer import (
    DEFAULT_PREFIX,
    DashboardsImportError,
    ca_context,
    import_saved_objects,
    saved_objects,
    to_ndjson,
)
from eventlog.app.cli import main
from search.opensearch.template import alias
from tests.syslog_receivers import make_tls_files
from tests.unit.dashboards.fake_dashboards import FakeDashboards


@pytest.fixture
def dashboards() -> Iterator[FakeDashboards]:
    server = FakeDashboards().start()
    try:
        yield server
    finally:
        server.stop()


def _ndjson(prefix: str = DEFAULT_PREFIX) -> bytes:
    return to_ndjson(saved_objects(prefix))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_import_sends_what_the_dashboards_route_wants(dashboards: FakeDashboards) -> None:
    result = import_saved_objects(dashboards.url, _ndjson())

    objects = saved_objects()
    assert result.ok
    assert result.success_count == len(objects) == len(result.imported)
    (request,) = dashboards.requests
    assert request.headers["osd-xsrf"] == "true"
    assert request.query["overwrite"] == ["true"]
    assert request.part_name == "file"
    assert request.filename is not None
    assert request.filename.endswith(".ndjson")
    assert request.objects == objects
    assert set(dashboards.stored) == {(o["type"], o["id"]) for o in objects}


def test_import_again_overwrites(dashboards: FakeDashboards) -> None:
    import_saved_objects(dashboards.url, _ndjson())
    again = import_saved_objects(dashboards.url, _ndjson())
    assert again.ok
    assert again.success_count == len(saved_objects())


def test_no_overwrite_reports_each_existing_object_as_a_conflict(dashboards: FakeDashboards) -> None:
    import_saved_objects(dashboards.url, _ndjson())
    result = import_saved_objects(dashboards.url, _ndjson(), overwrite=False)

    assert dashboards.requests[-1].query["overwrite"] == ["false"]
    assert not result.ok
    assert result.success_count == 0
    dashboard = next(f for f in result.failures if f.type == "dashboard")
    assert dashboard.id == "eventlog-dashboard"
    assert dashboard.title == "eventlog: audit events"
    assert dashboard.reason == "conflict"
    assert "without --no-overwrite" in str(dashboard)


def test_a_missing_reference_names_the_object_and_the_reference(dashboards: FakeDashboards) -> None:
    objects = [o for o in saved_objects() if o["type"] != "index-pattern"]
    result = import_saved_objects(dashboards.url, to_ndjson(objects))

    assert not result.ok
    failure = next(f for f in result.failures if f.id == "eventlog-vis-top-actors")
    assert failure.type == "visualization"
    assert failure.reason == "missing_references (index-pattern:eventlog-index-pattern)"
    assert "import the whole file again" in failure.hint


def test_another_prefix_gets_its_own_alias_ids_and_titles(dashboards: FakeDashboards) -> None:
    import_saved_objects(dashboards.url, _ndjson())
    result = import_saved_objects(dashboards.url, _ndjson("staging"))

    assert result.ok
    pattern = dashboards.stored[("index-pattern", "staging-index-pattern")]
    assert pattern["attributes"]["title"] == alias("staging")
    # The default prefix's objects are still there: the two sets do not overwrite each other.
    assert dashboards.stored[("index-pattern", "eventlog-index-pattern")]["attributes"]["title"] == alias("eventlog")
    staging = [obj for (_, obj_id), obj in dashboards.stored.items() if obj_id.startswith("staging-")]
    assert len(staging) == len(saved_objects())
    for obj in staging:
        assert all(r["id"].startswith("staging-") for r in obj["references"])
        if obj["type"] != "index-pattern":
            assert obj["attributes"]["title"].startswith("staging: ")
        if "visState" in obj["attributes"]:
            assert json.loads(obj["attributes"]["visState"])["title"] == obj["attributes"]["title"]


def test_an_invalid_prefix_is_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="EVENTLOG_OPENSEARCH_INDEX_PREFIX"):
        saved_objects("Not/Valid")


def test_without_the_xsrf_header_dashboards_refuses(dashboards: FakeDashboards) -> None:
    """The stand-in is as strict as Dashboards, so the tests above prove the header is sent."""
    answer = httpx.post(
        dashboards.url + "/api/saved_objects/_import",
        files={"file": ("eventlog.ndjson", _ndjson(), "application/ndjson")},
    )
    assert answer.status_code == 400
    assert answer.json()["message"] == "Request must contain a osd-xsrf header."


def test_wrong_credentials_say_what_to_pass() -> None:
    server = FakeDashboards(credentials=("admin", "s3cret")).start()
    try:
        with pytest.raises(DashboardsImportError, match=r"refused the credentials .*\(401.*--password-env"):
            import_saved_objects(server.url, _ndjson(), username="admin", password="wrong")
        assert import_saved_objects(server.url, _ndjson(), username="admin", password="s3cret").ok
    finally:
        server.stop()


def test_a_wrong_path_points_at_the_base_path() -> None:
    server = FakeDashboards(base_path="/_dashboards").start()
    try:
        root = server.url.removesuffix("/_dashboards")
        with pytest.raises(DashboardsImportError, match=r"no saved objects API .*base path"):
            import_saved_objects(root, _ndjson())
        assert import_saved_objects(server.url, _ndjson()).ok
    finally:
        server.stop()


def test_waits_while_dashboards_is_not_ready() -> None:
    server = FakeDashboards(not_ready_answers=2).start()
    pauses: list[float] = []
    try:
        result = import_saved_objects(server.url, _ndjson(), wait_seconds=30, sleep=pauses.append)
    finally:
        server.stop()
    assert result.ok
    assert len(pauses) == 2


def test_not_ready_without_waiting_suggests_wait_seconds() -> None:
    server = FakeDashboards(not_ready_answers=1).start()
    try:
        with pytest.raises(DashboardsImportError, match=r"not ready \(503.*--wait-seconds"):
            import_saved_objects(server.url, _ndjson())
    finally:
        server.stop()


def test_nothing_listening_names_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(DashboardsImportError, match=rf"cannot reach {url}/api/saved_objects/_import"):
        import_saved_objects(url, _ndjson(), timeout_seconds=2)


def test_tls_needs_the_ca_or_insecure(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)  # a test CA and a certificate for localhost / 127.0.0.1
    server = FakeDashboards(tls=(tls.server_cert, tls.server_key)).start()
    try:
        with pytest.raises(DashboardsImportError, match=r"TLS verification .* --ca-file .* --insecure"):
            import_saved_objects(server.url, _ndjson())
        assert import_saved_objects(server.url, _ndjson(), verify=ca_context(tls.ca_cert)).ok
        assert import_saved_objects(server.url, _ndjson(), verify=False).ok
    finally:
        server.stop()


# -- the command ------------------------------------------------------------------------------------------------


def test_cli_imports_and_prints_each_object(dashboards: FakeDashboards, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dashboards", "import", "--url", dashboards.url])

    out = capsys.readouterr().out
    assert code == 0
    assert f"imported {len(saved_objects())} of {len(saved_objects())} saved objects" in out
    assert "eventlog-vis-top-source-ips" in out
    assert f"open {dashboards.url}/app/dashboards#/view/eventlog-dashboard" in out


def test_cli_prefix_comes_from_the_settings(
    dashboards: FakeDashboards, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENTLOG_OPENSEARCH_INDEX_PREFIX", "prod")
    assert main(["dashboards", "import", "--url", dashboards.url]) == 0
    assert dashboards.stored[("index-pattern", "prod-index-pattern")]["attributes"]["title"] == "prod-events"
    assert "index prefix 'prod'" in capsys.readouterr().out


def test_cli_reports_refused_objects_and_exits_1(
    dashboards: FakeDashboards, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboards", "import", "--url", dashboards.url]) == 0
    capsys.readouterr()
    code = main(["dashboards", "import", "--url", dashboards.url, "--no-overwrite"])

    err = capsys.readouterr().err
    assert code == 1
    assert f"{len(saved_objects())} saved objects were not imported" in err
    assert 'search eventlog-search-failures "eventlog: failures": conflict' in err


def test_cli_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeDashboards(credentials=("admin", "s3cret")).start()
    try:
        monkeypatch.setenv("DASHBOARDS_PASSWORD", "s3cret")
        args = ["dashboards", "import", "--url", server.url, "--username", "admin"]
        assert main([*args, "--password-env", "DASHBOARDS_PASSWORD"]) == 0
        assert main([*args, "--password-env", "NOT_SET_ANYWHERE"]) == 2
    finally:
        server.stop()


def test_cli_ca_file(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    server = FakeDashboards(tls=(tls.server_cert, tls.server_key)).start()
    try:
        assert main(["dashboards", "import", "--url", server.url]) == 1
        assert main(["dashboards", "import", "--url", server.url, "--ca-file", str(tls.ca_cert)]) == 0
        assert main(["dashboards", "import", "--url", server.url, "--insecure"]) == 0
    finally:
        server.stop()


def test_cli_unreachable_dashboards_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dashboards", "import", "--url", f"http://127.0.0.1:{_free_port()}"])
    assert code == 1
    assert "eventlog: error: cannot reach" in capsys.readouterr().err


def test_cli_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["dashboards", "import", "--help"])
    text = capsys.readouterr().out
    for option in ("--url", "--prefix", "--username", "--password-env", "--no-overwrite", "--ca-file", "--insecure"):
        assert option in text
