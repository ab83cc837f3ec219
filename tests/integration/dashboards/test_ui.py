"""The web UI in Debian's headless Chromium (Playwright) against a real `eventlog serve`.

Each test has a tenant of its own, so it sees exactly the events it seeded (and the UI's own
self-audit events, which the queries below leave out). Screenshots go to test-artifacts/ui/.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, ViewportSize, expect, sync_playwright

from tests.integration.server import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "ui"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
PAGE_SIZE = 50  # app.js PAGE_SIZE


class Eventlog:
    """The running server, an admin token to make one tenant per test, and seeding helpers."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.url = server.url
        self.admin = server.create_token("ui-admin", "admin")

    def tenant(self) -> tuple[str, str]:
        """A fresh tenant and a token that reads and writes it."""
        tenant = f"ui-{uuid.uuid4().hex[:10]}"
        answer = httpx.post(
            f"{self.url}/v1/tokens",
            json={"tenant": tenant, "scopes": ["events:read", "events:write"]},
            headers=_bearer(self.admin),
        )
        assert answer.status_code == 201, answer.text
        secret: str = answer.json()["secret"]
        return tenant, secret

    def post(self, token: str, events: list[dict[str, Any]]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(events), 500):
            answer = httpx.post(
                f"{self.url}/v1/events", json={"events": events[start : start + 500]}, headers=_bearer(token)
            )
            assert answer.status_code == 201, answer.text
            ids += [receipt["id"] for receipt in answer.json()["receipts"]]
        return ids

    def seed(self, token: str, events: list[dict[str, Any]]) -> list[str]:
        """Post the events and wait until the search store has them all."""
        ids = self.post(token, events)
        self.settle()
        return ids

    def settle(self, timeout_seconds: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            sinks = httpx.get(f"{self.url}/readyz").json()["sinks"]
            if all(sink["lag_events"] == 0 for sink in sinks.values()):
                return
            time.sleep(0.05)
        raise AssertionError(f"the search store did not catch up within {timeout_seconds} s: {sinks}")

    def get(self, token: str, path: str, **params: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, headers=_bearer(token))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _event(action: str, n: int, *, outcome: str = "success", at: datetime | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "action": action,
        "outcome": outcome,
        "actor": {"type": "user", "id": f"u-{n % 3}", "name": f"User {n % 3}", "ip": f"10.0.{n // 250}.{n % 250}"},
        "target": {"type": "table", "id": f"in.c-main.t{n}"},
        "source": "api",
        "message": f"Event number {n} of {action}",
        "details": {"n": n},
    }
    if at is not None:
        event["time"] = at.isoformat().replace("+00:00", "Z")
    return event


@pytest.fixture(scope="module")
def eventlog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Eventlog]:
    with ServerProcess(tmp_path_factory.mktemp("ui") / "data") as server:
        yield Eventlog(server)


@pytest.fixture(scope="module")
def _chromium() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"no {CHROMIUM} for the `browser` tests: install Debian's Chromium with `apt-get install chromium` "
            "(scripts/provision.sh does); `playwright install` cannot download its own browser here",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(request: pytest.FixtureRequest, _chromium: Browser) -> Iterator[Page]:
    """A fresh browser context (its own session storage) at desktop size; fails on any script error or CSP refusal."""
    if request.node.get_closest_marker("browser") is None:
        pytest.fail("a test that drives Chromium must be marked @pytest.mark.browser", pytrace=False)
    context = _chromium.new_context(viewport=DESKTOP, accept_downloads=True, timezone_id="Europe/Prague")
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            problems.append(f"CSP: {message.text}")

    page.on("console", console)
    try:
        yield page
    finally:
        context.close()
    assert problems == []


def _shot(page: Page, name: str, *, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)


def _sign_in(page: Page, eventlog: Eventlog, token: str) -> None:
    page.goto(f"{eventlog.url}/")
    page.get_by_label("API token").fill(token)
    page.locator("#signin-form").get_by_role("button", name="Sign in").click()
    expect(page.locator("#app-view")).to_be_visible()
    _settled(page)


def _settled(page: Page) -> None:
    """The search in flight (if any) has answered: rows, or an error, are on the page."""
    expect(page.locator("#results")).not_to_have_attribute("aria-busy", "true")


def _search(page: Page, q: str) -> None:
    page.get_by_label("Query", exact=True).fill(q)
    page.get_by_label("Query", exact=True).press("Enter")
    _settled(page)


def _row_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("#rows tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    return ids


def test_sign_in_keeps_the_token_in_session_storage_only(page: Page, eventlog: Eventlog) -> None:
    _, token = eventlog.tenant()
    page.goto(f"{eventlog.url}/")
    page.get_by_label("API token").fill("evl_not-a-real-token")
    page.get_by_label("API token").press("Enter")
    expect(page.locator("#signin-error")).to_contain_text("Not signed in")
    expect(page.locator("#app-view")).to_be_hidden()
    _sign_in(page, eventlog, token)
    assert page.evaluate("sessionStorage.getItem('eventlog.token')") == token
    assert page.evaluate("localStorage.length") == 0
    assert token not in page.url
    # A reload in the same tab stays signed in; signing out forgets the token.
    page.reload()
    expect(page.locator("#app-view")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#signin-view")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('eventlog.token')") is None


def test_search_shows_exactly_the_matching_rows(page: Page, eventlog: Eventlog) -> None:
    _, token = eventlog.tenant()
    events = [_event("storage.tables.create", n) for n in range(4)]
    events += [_event("storage.tables.delete", n, outcome="failure") for n in range(4, 7)]
    events += [_event("storage.buckets.create", 7)]
    ids = eventlog.seed(token, events)
    _sign_in(page, eventlog, token)

    _search(page, "action:storage.tables.delete")
    expect(page.locator("#rows tr")).to_have_count(3)
    assert sorted(_row_ids(page)) == sorted(ids[4:7])
    first = page.locator("#rows tr").first
    expect(first.locator('td[data-label="Action"]')).to_have_text("storage.tables.delete")
    expect(first.locator('td[data-label="Outcome"]')).to_have_text("failure")
    expect(first.locator('td[data-label="Target"]')).to_have_text("in.c-main.t6")  # newest first
    expect(first.locator('td[data-label="IP"]')).to_have_text("10.0.0.6")
    expect(first.locator('td[data-label="Message"]')).to_have_text("Event number 6 of storage.tables.delete")

    _search(page, 'source:api "number 3" OR action:storage.buckets.*')
    expect(page.locator("#rows tr")).to_have_count(2)
    assert sorted(_row_ids(page)) == sorted([ids[3], ids[7]])
    assert "q=source" in page.url  # the query is kept in the fragment, for reloads and links

    _search(page, "source:api")
    expect(page.locator("#rows tr")).to_have_count(8)
    expect(page.locator("#histogram rect.bar")).not_to_have_count(0)
    expect(page.locator("#histogram-total")).to_contain_text("8 events")
    _shot(page, "desktop-1280.png")


def test_infinite_scroll_loads_the_next_cursor_page(page: Page, eventlog: Eventlog) -> None:
    _, token = eventlog.tenant()
    count = 2 * PAGE_SIZE + 20
    ids = eventlog.seed(token, [_event("bulk.item", n) for n in range(count)])
    _sign_in(page, eventlog, token)
    _search(page, "action:bulk.item")
    expect(page.locator("#rows tr")).to_have_count(PAGE_SIZE)
    page.locator("#more").scroll_into_view_if_needed()
    expect(page.locator("#rows tr")).to_have_count(2 * PAGE_SIZE)
    page.locator("#more").scroll_into_view_if_needed()
    expect(page.locator("#rows tr")).to_have_count(count)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    shown = _row_ids(page)
    assert len(set(shown)) == count
    assert shown == list(reversed(ids))  # newest first, no page twice, none skipped


def test_detail_shows_the_whole_json_and_the_chain_link_and_esc_closes_it(page: Page, eventlog: Eventlog) -> None:
    _, token = eventlog.tenant()
    ids = eventlog.seed(token, [_event("storage.tables.create", n) for n in range(3)])
    stored = eventlog.get(token, f"/v1/events/{ids[1]}").json()
    _sign_in(page, eventlog, token)
    _search(page, "action:storage.tables.create")
    row = page.locator(f'#rows tr[data-id="{ids[1]}"]')
    row.click()
    detail = page.get_by_role("dialog")
    expect(detail).to_be_visible()
    expect(detail.locator("#detail-title")).to_contain_text("storage.tables.create")
    expect(page.locator("#detail-json")).to_contain_text(ids[1])
    assert json.loads(page.locator("#detail-json").inner_text()) == stored
    chain = page.locator("#detail-chain")
    expect(chain).to_contain_text(stored["chain"]["hash"])
    expect(chain).to_contain_text(stored["chain"]["prev"])
    expect(chain).to_contain_text(str(stored["chain"]["seq"]))
    expect(chain).to_contain_text(stored["chain"]["stream"])
    expect(page.locator("#detail-close")).to_be_focused()
    _shot(page, "detail-1280.png")
    page.keyboard.press("Escape")
    expect(detail).to_be_hidden()
    expect(row).to_be_focused()


def test_syntax_error_shows_the_servers_400_message_next_to_the_box(page: Page, eventlog: Eventlog) -> None:
    _, token = eventlog.tenant()
    eventlog.seed(token, [_event("storage.tables.create", 0)])
    bad = "action:(create OR"
    answer = eventlog.get(token, "/v1/events", q=bad)
    assert answer.status_code == 400
    message = answer.json()["message"]
    _sign_in(page, eventlog, token)
    _search(page, bad)
    error = page.locator("#q-error")
    expect(error).to_be_visible()
    expect(page.locator("#q-error-message")).to_have_text(message)
    expect(page.locator("#q-error-caret")).to_have_text(f"{bad}\n{' ' * answer.json()['errors'][0]['position']}^")
    expect(page.get_by_label("Query", exact=True)).to_have_attribute("aria-invalid", "true")
    assert error.get_attribute("role") == "alert"
    expect(page.locator("#rows tr")).to_have_count(0)
    _shot(page, "syntax-error-1280.png")

    unknown = eventlog.get(token, "/v1/events", q="colour:red").json()["message"]
    _search(page, "colour:red")
    expect(page.locator("#q-error-message")).to_have_text(unknown)

    _search(page, "action:storage.tables.create")
    expect(error).to_be_hidden()
    expect(page.locator("#rows tr")).to_have_count(1)


def test_live_tail_shows_an_event_posted_after_it_was_turned_on(page: Page, eventlog: Eventlog) -> None:
    _, token = eventlog.tenant()
    old = eventlog.seed(token, [_event("deploy.start", 0)])
    _sign_in(page, eventlog, token)
    _search(page, "action:deploy.*")
    expect(page.locator("#rows tr")).to_have_count(1)
    toggle = page.get_by_role("button", name="Live tail")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#tail-status")).to_contain_text("Live tail: on")

    ignored, fresh = eventlog.post(token, [_event("storage.tables.create", 1), _event("deploy.finish", 2)])
    top = page.locator("#rows tr").first
    expect(top).to_have_attribute("data-id", fresh, timeout=5_000)
    expect(top).to_have_class("live")
    expect(top.locator('td[data-label="Action"]')).to_have_text("deploy.finish")
    assert set(_row_ids(page)) == {fresh, old[0]}  # the non-matching event did not come in
    assert ignored not in _row_ids(page)
    _shot(page, "live-tail-1280.png")

    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false")
    eventlog.post(token, [_event("deploy.rollback", 3)])
    time.sleep(1.0)  # long enough for a tail that is still connected to show it (it takes milliseconds)
    expect(page.locator("#rows tr")).to_have_count(2)


def test_live_tail_reconnects_with_last_event_id(page: Page, eventlog: Eventlog) -> None:
    _, token = eventlog.tenant()
    # An hour old: outside the 15 minutes the list shows, so only a tail that resumes from seq 0 brings it.
    [old] = eventlog.seed(token, [_event("deploy.old", 0, at=datetime.now(UTC) - timedelta(hours=1))])
    seen: list[dict[str, str]] = []
    fake = {**_event("deploy.fake", 1), "id": "fake-1", "time": "2026-01-01T00:00:00Z"}

    def tail(route: Route) -> None:
        seen.append(route.request.headers)
        if len(seen) == 1:
            # A stream that gives one event with id 0 and then drops: the UI must reconnect with Last-Event-ID: 0.
            body = f"retry: 100\n\nid: 0\nevent: event\ndata: {json.dumps(fake)}\n\n"
            route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)
        else:
            route.continue_()

    page.route("**/v1/events/tail*", tail)
    _sign_in(page, eventlog, token)
    page.get_by_label("Time range").select_option("15m")
    _search(page, "action:deploy.*")
    expect(page.locator("#rows tr")).to_have_count(0)
    page.get_by_role("button", name="Live tail").click()
    expect(page.locator('#rows tr[data-id="fake-1"]')).to_be_visible()
    expect(page.locator(f'#rows tr[data-id="{old}"]')).to_be_visible()
    assert "last-event-id" not in seen[0]
    assert seen[1]["last-event-id"] == "0"
    assert seen[1]["authorization"] == f"Bearer {token}"


def test_export_downloads_csv_and_ndjson_of_the_current_query(page: Page, eventlog: Eventlog, tmp_path: Path) -> None:
    tenant, token = eventlog.tenant()
    events = [_event("storage.tables.create", n) for n in range(3)]
    events += [_event("storage.tables.delete", n, outcome="failure") for n in range(3, 8)]
    events.append(_event("=HYPERLINK(1)", 8, outcome="failure"))
    ids = eventlog.seed(token, events)
    failures = set(ids[3:])
    _sign_in(page, eventlog, token)
    _search(page, "outcome:failure source:api")
    expect(page.locator("#rows tr")).to_have_count(len(failures))

    with page.expect_download() as csv_download:
        page.get_by_role("button", name="Export CSV").click()
    download = csv_download.value
    assert download.suggested_filename.startswith(f"eventlog-{tenant}-")
    assert download.suggested_filename.endswith(".csv")
    csv_path = tmp_path / download.suggested_filename
    download.save_as(csv_path)
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
    assert {row["id"] for row in rows} == failures
    assert {row["outcome"] for row in rows} == {"failure"}
    assert "'=HYPERLINK(1)" in {row["action"] for row in rows}  # the server's formula guard survived

    with page.expect_download() as ndjson_download:
        page.get_by_role("button", name="Export NDJSON").click()
    download = ndjson_download.value
    assert download.suggested_filename.endswith(".ndjson")
    ndjson_path = tmp_path / download.suggested_filename
    download.save_as(ndjson_path)
    documents = [json.loads(line) for line in ndjson_path.read_text(encoding="utf-8").splitlines() if line]
    assert {d["id"] for d in documents} == failures
    assert all(d["tenant"] == tenant and d["outcome"] == "failure" and "chain" in d for d in documents)
    expect(page.locator("#result-status")).to_contain_text("exported")


def test_facet_click_narrows_the_query(page: Page, eventlog: Eventlog) -> None:
    _, token = eventlog.tenant()
    events = [_event("storage.tables.create", n) for n in range(5)]
    events += [_event("storage.tables.delete", n, outcome="failure") for n in range(5, 7)]
    ids = eventlog.seed(token, events)
    _sign_in(page, eventlog, token)
    _search(page, "source:api")
    expect(page.locator("#rows tr")).to_have_count(7)
    outcome = page.locator('.facet-value[data-field="outcome"][data-value="failure"]')
    expect(outcome).to_contain_text("2")
    outcome.click()
    _settled(page)
    expect(page.get_by_label("Query", exact=True)).to_have_value('source:api outcome:"failure"')
    expect(page.locator("#rows tr")).to_have_count(2)
    assert sorted(_row_ids(page)) == sorted(ids[5:])
    # The facets now count within the narrowed query; excluding a value adds a negated term.
    expect(page.locator('.facet-value[data-field="actor.id"]')).to_have_count(2)
    page.get_by_role("button", name="Exclude Actor u-2").click()
    _settled(page)
    expect(page.get_by_label("Query", exact=True)).to_have_value('source:api outcome:"failure" -actor.id:"u-2"')
    expect(page.locator("#rows tr")).to_have_count(1)
    assert _row_ids(page) == [ids[6]]


def test_keyboard_flow(page: Page, eventlog: Eventlog) -> None:
    _, token = eventlog.tenant()
    ids = eventlog.seed(token, [_event("kbd.press", n) for n in range(3)])
    _sign_in(page, eventlog, token)
    page.locator("body").click(position={"x": 5, "y": 200})  # focus off the query box
    page.keyboard.press("/")
    query = page.get_by_label("Query", exact=True)
    expect(query).to_be_focused()
    page.keyboard.type("action:kbd.press")
    page.keyboard.press("Enter")
    _settled(page)
    expect(page.locator("#rows tr")).to_have_count(3)
    # Tab walks every control in order and reaches the first row.
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('#rows tr')"):
            break
    else:
        pytest.fail("Tab never reached a result row")
    assert page.evaluate("document.activeElement.dataset.id") == ids[2]
    page.keyboard.press("ArrowDown")
    expect(page.locator(f'#rows tr[data-id="{ids[1]}"]')).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.locator("#detail-json")).to_contain_text(ids[1])
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(page.locator(f'#rows tr[data-id="{ids[1]}"]')).to_be_focused()
    # Every control has a label (an accessible name).
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('#app-view input, #app-view select, #app-view button')]
              .filter(e => !e.hidden && !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                           && !e.textContent.trim())
              .map(e => e.outerHTML)"""
    )
    assert unnamed == []


def test_histogram_brush_zooms_into_the_brushed_range(page: Page, eventlog: Eventlog) -> None:
    _, token = eventlog.tenant()
    # The last 24 hours have 30-minute bars from the epoch on: each group lies inside one of them.
    now = datetime.now(UTC)
    early_bar = now - timedelta(hours=20, minutes=now.minute % 30, seconds=now.second, microseconds=now.microsecond)
    early = [_event("zoom.early", n, at=early_bar + timedelta(minutes=10 + n)) for n in range(3)]
    late = [_event("zoom.late", n, at=early_bar + timedelta(hours=18, minutes=10 + n)) for n in range(2)]
    ids = eventlog.seed(token, early + late)
    _sign_in(page, eventlog, token)
    _search(page, "action:zoom.*")
    expect(page.locator("#rows tr")).to_have_count(5)
    bars = page.locator("#histogram rect.bar")
    expect(bars).not_to_have_count(0)
    heights = bars.evaluate_all("bars => bars.map(b => Number(b.getAttribute('height')))")
    filled = [i for i, h in enumerate(heights) if h > 0]
    assert len(filled) == 2, heights  # 18 h apart: two separate bars
    box = page.locator("#histogram").bounding_box()
    assert box is not None
    bar_width = box["width"] / len(heights)
    # Drag from one bar before the early one to one bar after it.
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + (filled[0] - 0.5) * bar_width, y)
    page.mouse.down()
    page.mouse.move(box["x"] + (filled[0] + 1.5) * bar_width, y, steps=5)
    page.mouse.up()
    _settled(page)
    expect(page.get_by_label("Time range")).to_have_value("custom")
    expect(page.locator("#rows tr")).to_have_count(3)
    assert sorted(_row_ids(page)) == sorted(ids[:3])
    assert page.get_by_label("From (UTC)").input_value() != ""
    page.get_by_role("button", name="Undo zoom").click()
    _settled(page)
    expect(page.get_by_label("Time range")).to_have_value("24h")
    expect(page.locator("#rows tr")).to_have_count(5)


def test_phone_width_shows_cards_without_horizontal_scroll(page: Page, eventlog: Eventlog) -> None:
    _, token = eventlog.tenant()
    long_message = _event("storage.tables.create", 1)
    long_message["message"] = "A very long message without breaks " + "x" * 300
    long_message["target"]["id"] = "in.c-main." + "y" * 120
    eventlog.seed(token, [_event("storage.tables.create", 0), long_message])
    page.set_viewport_size(PHONE)
    _sign_in(page, eventlog, token)
    _search(page, "action:storage.tables.create")
    expect(page.locator("#rows tr")).to_have_count(2)

    def overflow() -> int:
        width: int = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        return width

    assert overflow() <= 0
    head = page.locator("#results-table thead").bounding_box()
    assert head is not None
    assert head["width"] <= 1  # the column heads became each card's labels
    assert page.evaluate("getComputedStyle(document.querySelector('#rows tr')).display") == "block"
    assert page.evaluate("getComputedStyle(document.querySelector('#rows td'), '::before').content") == '"Time"'
    _shot(page, "phone-390.png")
    page.locator("#syntax-help summary").click()
    assert overflow() <= 0
    page.locator("#syntax-help summary").click()
    page.get_by_label("Time range").select_option("custom")
    _settled(page)
    assert overflow() <= 0
    page.locator("#rows tr").first.click()
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.locator("#detail-json")).to_contain_text("storage.tables.create")
    assert overflow() <= 0
    _shot(page, "phone-390-detail.png")
