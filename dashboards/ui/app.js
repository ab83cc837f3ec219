// The eventlog web UI: sign-in, search, histogram, results with infinite scroll, detail, facets, tail, export.

import { Api, ApiError, LiveTail } from "./api.js";
import { FACET_FIELDS, renderFacets, withTerm } from "./facets.js";
import { Histogram } from "./histogram.js";
import { eventRow, fillDetail } from "./results.js";
import { PRESETS, bounds, formatTime, fromInputValue, toInputValue } from "./timerange.js";

const TOKEN_KEY = "eventlog.token";
const PAGE_SIZE = 50;
const FACET_SIZE = 8;

const $ = (id) => document.getElementById(id);

const ui = {
  signinView: $("signin-view"),
  signinForm: $("signin-form"),
  token: $("token"),
  signinError: $("signin-error"),
  appView: $("app-view"),
  signedIn: $("signed-in"),
  signOut: $("sign-out"),
  searchForm: $("search-form"),
  q: $("q"),
  qError: $("q-error"),
  qErrorMessage: $("q-error-message"),
  qErrorCaret: $("q-error-caret"),
  range: $("range"),
  customRange: $("custom-range"),
  since: $("since"),
  until: $("until"),
  tailToggle: $("tail-toggle"),
  tailStatus: $("tail-status"),
  exportCsv: $("export-csv"),
  exportNdjson: $("export-ndjson"),
  histogramTotal: $("histogram-total"),
  zoomOut: $("zoom-out"),
  facetsBox: $("facets-box"),
  facets: $("facets"),
  results: $("results"),
  resultStatus: $("result-status"),
  rows: $("rows"),
  more: $("more"),
  loadMore: $("load-more"),
  detail: $("detail"),
  detailTitle: $("detail-title"),
  detailClose: $("detail-close"),
  detailError: $("detail-error"),
  detailSummary: $("detail-summary"),
  detailChain: $("detail-chain"),
  detailJson: $("detail-json"),
  detailCopy: $("detail-copy"),
};

const state = {
  /** @type {Api | null} */
  api: null,
  /** @type {LiveTail | null} */
  tail: null,
  q: "",
  /** @type {{preset?: string, since?: Date, until?: Date}} */
  range: { preset: "24h" },
  zoomStack: [],
  // The bounds of the current search, frozen: a cursor is only valid for the very same parameters.
  params: {},
  nextCursor: null,
  loading: false,
  generation: 0,
  controller: null,
  shown: 0,
  lastFocus: null,
  detailId: null,
};

const histogram = new Histogram($("histogram"), (since, until) => zoomTo(since, until));

// -- sign-in ----------------------------------------------------------------------------------------

function showSignIn(message = "") {
  stopTail();
  state.api = null;
  ui.appView.hidden = true;
  ui.signedIn.hidden = true;
  ui.signOut.hidden = true;
  ui.signinView.hidden = false;
  ui.signinError.textContent = message;
  ui.token.value = "";
  ui.token.focus();
}

function makeApi(token) {
  return new Api(token, (error) => {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(`Signed out: ${error.message}`);
  });
}

function showApp() {
  ui.signinView.hidden = true;
  ui.appView.hidden = false;
  ui.signedIn.hidden = false;
  ui.signOut.hidden = false;
  if (window.matchMedia("(max-width: 700px)").matches) ui.facetsBox.open = false;
  readLocation();
  search();
  ui.q.focus();
}

ui.signinForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = ui.token.value.trim();
  if (!token) {
    ui.signinError.textContent = "Paste a token first.";
    return;
  }
  ui.signinError.textContent = "Checking the token…";
  const api = makeApi(token);
  api.onUnauthorized = () => {}; // a refused token is reported here, not by signing out
  try {
    await api.search({ limit: 1 });
  } catch (error) {
    ui.signinError.textContent =
      error instanceof ApiError ? `Not signed in: ${error.message}` : `The server did not answer: ${error.message}`;
    ui.token.select();
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  state.api = makeApi(token);
  ui.token.value = "";
  ui.signinError.textContent = "";
  showApp();
});

ui.signOut.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  ui.rows.replaceChildren();
  closeDetail();
  showSignIn("Signed out.");
});

// -- the search -------------------------------------------------------------------------------------

function readLocation() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  state.q = params.get("q") || "";
  const since = params.get("since") ? new Date(params.get("since")) : undefined;
  const until = params.get("until") ? new Date(params.get("until")) : undefined;
  const preset = params.get("range");
  if (since || until) state.range = { since, until };
  else if (preset && PRESETS[preset]) state.range = { preset };
  ui.q.value = state.q;
  showRange();
}

function writeLocation() {
  const params = new URLSearchParams();
  if (state.q) params.set("q", state.q);
  if (state.range.preset) params.set("range", state.range.preset);
  if (state.range.since) params.set("since", state.range.since.toISOString());
  if (state.range.until) params.set("until", state.range.until.toISOString());
  // replaceState: the query can hold personal data; it stays in the fragment, never sent to a server.
  window.history.replaceState(null, "", `#${params}`);
}

function showRange() {
  const custom = !state.range.preset;
  ui.range.value = custom ? "custom" : state.range.preset;
  ui.customRange.hidden = !custom;
  if (custom) {
    ui.since.value = toInputValue(state.range.since);
    ui.until.value = toInputValue(state.range.until);
  }
  ui.zoomOut.hidden = state.zoomStack.length === 0;
}

function clearQueryError() {
  ui.qError.hidden = true;
  ui.q.removeAttribute("aria-invalid");
  ui.qErrorMessage.textContent = "";
  ui.qErrorCaret.textContent = "";
}

function showQueryError(error) {
  ui.qErrorMessage.textContent = error.message;
  const position = error.errors.find((e) => e.parameter === "q")?.position;
  ui.qErrorCaret.textContent = Number.isInteger(position) ? `${state.q}\n${" ".repeat(position)}^` : "";
  ui.qError.hidden = false;
  ui.q.setAttribute("aria-invalid", "true");
}

function setStatus(text) {
  ui.resultStatus.textContent = text;
}

function countText() {
  // The histogram's total ends at the moment of the search; the list also takes what arrived after.
  const more = state.nextCursor ? ", scroll for more" : "";
  return `${state.shown} event${state.shown === 1 ? "" : "s"} shown${more}`;
}

async function search() {
  if (!state.api) return;
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const generation = ++state.generation;
  const signal = controller.signal;
  const api = state.api;
  clearQueryError();
  writeLocation();
  closeDetail({ restoreFocus: false });
  state.params = { q: state.q, ...bounds(state.range) };
  const histogramParams = { q: state.q, ...bounds(state.range, { forHistogram: true }) };
  if (state.params.since) histogramParams.since = state.params.since;
  state.nextCursor = null;
  state.shown = 0;
  state.loading = true;
  ui.loadMore.hidden = true;
  ui.results.setAttribute("aria-busy", "true");
  setStatus("Searching…");
  if (state.tail?.running) startTail();

  const current = () => generation === state.generation;
  api
    .histogram(histogramParams, { signal })
    .then((data) => {
      if (!current()) return;
      histogram.show(data);
      ui.histogramTotal.textContent = `${data.total} event${data.total === 1 ? "" : "s"}, ${data.interval} per bar`;
      if (!state.loading) setStatus(countText());
    })
    .catch(() => {}); // the list reports the error
  Promise.all(
    FACET_FIELDS.map(([field, label]) =>
      api.facets({ ...state.params, field, size: FACET_SIZE }, { signal }).then((data) => ({ field, label, values: data.values })),
    ),
  )
    .then((lists) => current() && renderFacets(ui.facets, lists, pickFacet))
    .catch(() => {});

  try {
    const page = await api.search({ ...state.params, limit: PAGE_SIZE }, { signal });
    if (!current()) return;
    ui.rows.replaceChildren();
    appendPage(page);
  } catch (error) {
    if (!current() || signal.aborted) return;
    ui.rows.replaceChildren();
    ui.facets.replaceChildren();
    histogram.show({ buckets: [], interval_seconds: 1 });
    ui.histogramTotal.textContent = "";
    if (error instanceof ApiError && error.status === 400) {
      showQueryError(error);
      setStatus("No results: fix the query or the time range.");
    } else {
      setStatus(`Search failed: ${error.message}`);
    }
  } finally {
    if (current()) {
      state.loading = false;
      ui.results.removeAttribute("aria-busy");
    }
  }
  if (current()) fillViewport();
}

function appendPage(page) {
  const fragment = document.createDocumentFragment();
  for (const event of page.events) {
    if (ui.rows.querySelector(`tr[data-id="${CSS.escape(event.id)}"]`)) continue; // already shown by live tail
    fragment.append(eventRow(event));
    state.shown += 1;
  }
  ui.rows.append(fragment);
  state.nextCursor = page.next_cursor;
  ui.loadMore.hidden = !state.nextCursor;
  setStatus(state.shown ? countText() : "No events match the query in this time range.");
}

async function loadMore() {
  if (!state.api || state.loading || !state.nextCursor) return;
  const generation = state.generation;
  state.loading = true;
  setStatus(`${countText()}; loading more…`);
  try {
    const page = await state.api.search(
      { ...state.params, limit: PAGE_SIZE, cursor: state.nextCursor },
      { signal: state.controller?.signal },
    );
    if (generation !== state.generation) return;
    appendPage(page);
  } catch (error) {
    if (generation === state.generation && !(error.name === "AbortError")) setStatus(`Loading more failed: ${error.message}`);
  } finally {
    if (generation === state.generation) state.loading = false;
  }
  if (generation === state.generation) fillViewport();
}

/** Loads pages until the sentinel leaves the viewport: a tall screen may show a whole page at once. */
function fillViewport() {
  if (!state.nextCursor || ui.appView.hidden) return;
  const box = ui.more.getBoundingClientRect();
  if (box.top < window.innerHeight + 300) loadMore();
}

new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && loadMore(), {
  rootMargin: "0px 0px 300px 0px",
}).observe(ui.more);
ui.loadMore.addEventListener("click", () => loadMore());

ui.searchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  state.q = ui.q.value.trim();
  if (ui.range.value === "custom") readCustomRange();
  search();
});

function readCustomRange() {
  state.range = { since: fromInputValue(ui.since.value), until: fromInputValue(ui.until.value) };
}

ui.range.addEventListener("change", () => {
  state.q = ui.q.value.trim();
  if (ui.range.value === "custom") {
    // Start the custom range from what was shown, so that it only needs adjusting.
    const { since, until } = bounds(state.range, { forHistogram: true });
    state.range = { since: since ? new Date(since) : undefined, until: until ? new Date(until) : undefined };
    showRange();
    ui.since.focus();
  } else {
    state.range = { preset: ui.range.value };
    state.zoomStack = [];
    showRange();
  }
  search();
});

for (const input of [ui.since, ui.until]) {
  input.addEventListener("change", () => {
    state.q = ui.q.value.trim();
    readCustomRange();
    search();
  });
}

function zoomTo(since, until) {
  state.zoomStack.push(state.range);
  state.range = { since, until };
  state.q = ui.q.value.trim();
  showRange();
  search();
}

ui.zoomOut.addEventListener("click", () => {
  state.range = state.zoomStack.pop() || { preset: "24h" };
  showRange();
  search();
  if (ui.zoomOut.hidden) $("histogram").focus();
});

function pickFacet(term) {
  state.q = withTerm(ui.q.value, term);
  ui.q.value = state.q;
  search();
}

// -- detail -----------------------------------------------------------------------------------------

async function openDetail(row) {
  const id = row.dataset.id;
  state.lastFocus = row;
  state.detailId = id;
  for (const r of ui.rows.querySelectorAll("tr[aria-current]")) r.removeAttribute("aria-current");
  row.setAttribute("aria-current", "true");
  ui.detail.hidden = false;
  document.body.classList.add("detail-open");
  ui.detailTitle.textContent = "Event";
  ui.detailError.textContent = "";
  ui.detailSummary.replaceChildren();
  ui.detailChain.replaceChildren();
  ui.detailJson.textContent = "Loading…";
  ui.detailClose.focus();
  try {
    const event = await state.api.event(id);
    if (state.detailId !== id) return;
    ui.detailTitle.textContent = `${event.action} · ${formatTime(event.time)}`;
    fillDetail({ summary: ui.detailSummary, chain: ui.detailChain, json: ui.detailJson }, event);
  } catch (error) {
    if (state.detailId !== id) return;
    ui.detailJson.textContent = "";
    ui.detailError.textContent = `Could not load the event: ${error.message}`;
  }
}

function closeDetail({ restoreFocus = true } = {}) {
  if (ui.detail.hidden) return;
  ui.detail.hidden = true;
  document.body.classList.remove("detail-open");
  state.detailId = null;
  for (const r of ui.rows.querySelectorAll("tr[aria-current]")) r.removeAttribute("aria-current");
  if (restoreFocus && state.lastFocus?.isConnected) state.lastFocus.focus();
}

ui.detailClose.addEventListener("click", () => closeDetail());
ui.detailCopy.addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(ui.detailJson.textContent);
    ui.detailCopy.textContent = "Copied";
  } catch {
    ui.detailCopy.textContent = "Copy failed";
  }
  setTimeout(() => (ui.detailCopy.textContent = "Copy JSON"), 1500);
});

ui.rows.addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-id]");
  if (row) openDetail(row);
});

ui.rows.addEventListener("keydown", (event) => {
  const row = event.target.closest("tr[data-id]");
  if (!row || event.target !== row) return;
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    openDetail(row);
  } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const next = event.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling;
    if (next) next.focus();
    else if (event.key === "ArrowDown") loadMore();
  }
});

// -- live tail --------------------------------------------------------------------------------------

const TAIL_STATES = {
  connecting: "Live tail: connecting…",
  live: "Live tail: on, new events matching the query appear at the top",
  reconnecting: "Live tail: connection lost, reconnecting…",
};

function startTail() {
  if (!state.tail) {
    state.tail = new LiveTail(state.api, addLiveEvent, (name, detail) => {
      if (name === "failed") {
        ui.tailStatus.textContent = `Live tail stopped: ${detail}`;
        ui.tailToggle.setAttribute("aria-pressed", "false");
        return;
      }
      ui.tailStatus.textContent = TAIL_STATES[name] || "";
    });
  }
  state.tail.api = state.api;
  state.tail.start(state.q);
  ui.tailToggle.setAttribute("aria-pressed", "true");
}

function stopTail() {
  state.tail?.stop();
  ui.tailToggle.setAttribute("aria-pressed", "false");
  ui.tailStatus.textContent = "";
}

function addLiveEvent(event) {
  if (ui.rows.querySelector(`tr[data-id="${CSS.escape(event.id)}"]`)) return;
  const row = eventRow(event);
  row.classList.add("live");
  ui.rows.prepend(row);
  state.shown += 1;
  setStatus(countText());
}

ui.tailToggle.addEventListener("click", () => {
  if (ui.tailToggle.getAttribute("aria-pressed") === "true") stopTail();
  else {
    state.q = ui.q.value.trim();
    startTail();
  }
});

// -- export -----------------------------------------------------------------------------------------

async function exportAs(format, button) {
  if (!state.api) return;
  button.disabled = true;
  setStatus(`Exporting ${format.toUpperCase()}…`);
  try {
    const { blob, filename } = await state.api.export({ ...state.params, format });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = filename;
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    setStatus(`${countText()}; exported ${filename}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 400) showQueryError(error);
    setStatus(`Export failed: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

ui.exportCsv.addEventListener("click", () => exportAs("csv", ui.exportCsv));
ui.exportNdjson.addEventListener("click", () => exportAs("ndjson", ui.exportNdjson));

// -- keys -------------------------------------------------------------------------------------------

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

document.addEventListener("keydown", (event) => {
  if (ui.appView.hidden) return;
  if (event.key === "/" && !typing(event.target) && !event.ctrlKey && !event.metaKey && !event.altKey) {
    event.preventDefault();
    ui.q.focus();
    ui.q.select();
  } else if (event.key === "Escape" && !ui.detail.hidden) {
    event.preventDefault();
    closeDetail();
  }
});

// -- start ------------------------------------------------------------------------------------------

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  state.api = makeApi(saved);
  showApp();
} else {
  showSignIn();
}
