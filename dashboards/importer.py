"""Load eventlog's saved objects into OpenSearch Dashboards through its saved objects import API.

The objects live in `dashboards/opensearch/*.ndjson`, written for the default index prefix
`eventlog`: every id starts with `eventlog-`, every title with `eventlog: `, and the index
pattern's title is the search alias `eventlog-events`. `saved_objects(prefix)` rewrites all
three for another prefix, so two deployments can share one Dashboards without overwriting
each other's objects.

The API (OpenSearch Dashboards 2.x, `src/core/server/saved_objects/routes/import.ts`):
`POST <url>/api/saved_objects/_import?overwrite=true`, multipart/form-data with the NDJSON in
a part named `file` whose file name ends in `.ndjson`, and an `osd-xsrf` header (any value)
or the request is refused with 400. The answer is `{success, successCount, successResults,
errors}`; each error names the object (`id`, `type`, `meta.title`) and why (`error.type`).
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "DEFAULT_PREFIX",
    "DashboardsImportError",
    "ImportFailure",
    "ImportResult",
    "ca_context",
    "import_saved_objects",
    "saved_objects",
    "to_ndjson",
]

DEFAULT_PREFIX = "eventlog"
# Same rule as Settings.opensearch_index_prefix (dashboards/ imports nothing of eventlog/).
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}\Z")
_ID_PREFIX = f"{DEFAULT_PREFIX}-"
_TITLE_PREFIX = f"{DEFAULT_PREFIX}: "
IMPORT_PATH = "/api/saved_objects/_import"
# Dashboards answers 503 while it starts and waits for OpenSearch; these are worth waiting for.
_NOT_READY = {502, 503, 504}

_HINTS = {
    "conflict": "an object with this id already exists; import without --no-overwrite to replace it",
    "ambiguous_conflict": "several existing objects claim to be this one; delete the duplicates under "
    "Dashboards Management > Saved objects, then import again",
    "missing_references": "it refers to objects that are neither in the file nor in Dashboards; "
    "import the whole file again",
    "unsupported_type": "this Dashboards does not know the type; eventlog's objects need OpenSearch Dashboards 2.x",
    "missing_data_source": "the target workspace has no data source; assign one or import outside the workspace",
}


class DashboardsImportError(RuntimeError):
    """The import could not be done at all; the message says what to fix."""


@dataclass(frozen=True)
class ImportFailure:
    """One object Dashboards refused, and why."""

    id: str
    type: str
    title: str
    reason: str
    hint: str

    def __str__(self) -> str:
        return f'{self.type} {self.id} "{self.title}": {self.reason}; {self.hint}'


@dataclass(frozen=True)
class ImportResult:
    """What Dashboards answered: the objects it stored and the ones it refused."""

    success_count: int
    imported: list[tuple[str, str, str]] = field(default_factory=list)  # (type, id, title)
    failures: list[ImportFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _bundled() -> list[dict[str, Any]]:
    folder = resources.files("dashboards") / "opensearch"
    objects: list[dict[str, Any]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".ndjson"):
            continue
        for number, line in enumerate(entry.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    objects.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DashboardsImportError(f"{entry.name} line {number} is not JSON: {exc}") from exc
    return objects


def _rename_id(value: str, prefix: str) -> str:
    return prefix + "-" + value.removeprefix(_ID_PREFIX) if value.startswith(_ID_PREFIX) else value


def _rename_title(value: str, prefix: str) -> str:
    return prefix + ": " + value.removeprefix(_TITLE_PREFIX) if value.startswith(_TITLE_PREFIX) else value


def saved_objects(prefix: str = DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """The bundled saved objects, rewritten for the index prefix `prefix`."""
    if not _PREFIX.match(prefix):
        raise ValueError(
            f"index prefix {prefix!r} is not valid: lowercase letters, digits, '_' and '-', "
            "starting with a letter or digit, at most 41 characters (as EVENTLOG_OPENSEARCH_INDEX_PREFIX)"
        )
    objects = _bundled()
    if prefix == DEFAULT_PREFIX:
        return objects
    for obj in objects:
        obj["id"] = _rename_id(obj["id"], prefix)
        for reference in obj.get("references", []):
            reference["id"] = _rename_id(reference["id"], prefix)
        attributes = obj["attributes"]
        if obj["type"] == "index-pattern":
            # Mirrors search.opensearch.template.alias(); a test holds the two together.
            attributes["title"] = f"{prefix}-events"
        else:
            attributes["title"] = _rename_title(attributes["title"], prefix)
        if "visState" in attributes:
            state = json.loads(attributes["visState"])
            state["title"] = _rename_title(state.get("title", ""), prefix)
            attributes["visState"] = json.dumps(state, separators=(",", ":"), ensure_ascii=False)
    return objects


def to_ndjson(objects: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n" for obj in objects).encode()


def _failure(error: dict[str, Any]) -> ImportFailure:
    detail = error.get("error") or {}
    kind = str(detail.get("type", "unknown"))
    reason = kind
    if kind == "missing_references":
        missing = ", ".join(f"{r.get('type')}:{r.get('id')}" for r in detail.get("references", []))
        reason = f"missing_references ({missing})"
    elif kind == "unknown":
        reason = f"{detail.get('message', 'unknown error')} (status {detail.get('statusCode', '?')})"
    elif kind == "missing_data_source":
        reason = f"missing_data_source ({detail.get('dataSourceName', '?')})"
    hint = _HINTS.get(kind, "see the Dashboards server log for this object")
    title = (error.get("meta") or {}).get("title") or error.get("title") or ""
    return ImportFailure(str(error.get("id", "?")), str(error.get("type", "?")), str(title), reason, hint)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:300]
    return str(body)[:300]


def _refused(response: httpx.Response, endpoint: str) -> DashboardsImportError:
    status, message = response.status_code, _message(response)
    if status in (401, 403):
        return DashboardsImportError(
            f"Dashboards refused the credentials at {endpoint} ({status}: {message}); pass --username and "
            "--password-env, and check that the user may write saved objects"
        )
    if status == 404:
        return DashboardsImportError(
            f"no saved objects API at {endpoint} (404); check --url, and include the base path if Dashboards "
            "runs under one (server.basePath, e.g. https://host/_dashboards)"
        )
    if status == 413:
        return DashboardsImportError(
            f"Dashboards refused the file as too large (413: {message}); raise savedObjects.maxImportPayloadBytes"
        )
    return DashboardsImportError(f"Dashboards refused the import at {endpoint} ({status}: {message})")


def import_saved_objects(
    url: str,
    ndjson: bytes,
    *,
    username: str | None = None,
    password: str | None = None,
    overwrite: bool = True,
    verify: bool | ssl.SSLContext = True,
    timeout_seconds: float = 30.0,
    wait_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ImportResult:
    """POST the NDJSON to Dashboards' import API and sort its answer into imported and refused objects.

    `wait_seconds`: keep trying this long while Dashboards cannot be reached or answers 5xx "not
    ready" (a stack that starts together). Raises DashboardsImportError when nothing was imported.
    """
    endpoint = url.rstrip("/") + IMPORT_PATH
    auth = httpx.BasicAuth(username, password or "") if username else None
    deadline = time.monotonic() + wait_seconds
    # Dashboards checks only that the header exists; `true` is what its docs use.
    headers = {"osd-xsrf": "true"}
    with httpx.Client(verify=verify, timeout=timeout_seconds, auth=auth, headers=headers) as client:
        while True:
            problem: str
            try:
                response = client.post(
                    endpoint,
                    params={"overwrite": "true" if overwrite else "false"},
                    files={"file": ("eventlog.ndjson", ndjson, "application/ndjson")},
                )
            except httpx.ConnectError as exc:
                if isinstance(exc.__cause__, ssl.SSLError) or "CERTIFICATE" in str(exc).upper():
                    raise DashboardsImportError(
                        f"TLS verification of {endpoint} failed ({exc}); pass --ca-file with the CA that "
                        "signed Dashboards' certificate, or --insecure to skip the check"
                    ) from exc
                problem = f"cannot reach {endpoint}: {exc}"
            except httpx.TimeoutException as exc:
                problem = f"{endpoint} did not answer within {timeout_seconds:g} s ({type(exc).__name__})"
            except httpx.HTTPError as exc:
                raise DashboardsImportError(f"request to {endpoint} failed: {exc}") from exc
            else:
                if response.status_code not in _NOT_READY:
                    break
                problem = f"Dashboards at {endpoint} is not ready ({response.status_code}: {_message(response)})"
            if time.monotonic() >= deadline:
                raise DashboardsImportError(
                    f"{problem}; check that OpenSearch Dashboards runs and --url (scheme, host, port) is right"
                    + ("" if wait_seconds else ", or pass --wait-seconds to wait for it to start")
                )
            sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    if response.status_code != 200:
        raise _refused(response, endpoint)
    try:
        body = response.json()
    except ValueError as exc:
        raise DashboardsImportError(
            f"{endpoint} answered 200 but not JSON; is --url an OpenSearch Dashboards (not OpenSearch itself)?"
        ) from exc
    if not isinstance(body, dict) or "successCount" not in body:
        raise DashboardsImportError(f"{endpoint} answered {str(body)[:200]}, not an import result")
    imported = [
        (str(s.get("type")), str(s.get("id")), str((s.get("meta") or {}).get("title", "")))
        for s in body.get("successResults") or []
    ]
    failures = [_failure(e) for e in body.get("errors") or []]
    return ImportResult(int(body["successCount"]), imported, failures)


def ca_context(ca_file: Path) -> ssl.SSLContext:
    """A TLS context that trusts only `ca_file` (PEM), for a Dashboards with a private CA."""
    return ssl.create_default_context(cafile=str(ca_file))
