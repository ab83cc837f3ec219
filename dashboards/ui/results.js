// Rows of the results table (cards on a phone) and the event detail panel's content.

import { formatTime } from "./timerange.js";

export const COLUMNS = ["Time", "Actor", "Action", "Target", "Outcome", "IP", "Message"];

function cell(label, text, title) {
  const td = document.createElement("td");
  td.dataset.label = label;
  td.textContent = text ?? "";
  if (title) td.title = title;
  return td;
}

/** One focusable row; Enter or a click opens its detail (wired by the caller). */
export function eventRow(event) {
  const actor = event.actor || {};
  const target = event.target || {};
  const tr = document.createElement("tr");
  tr.tabIndex = 0;
  tr.dataset.id = event.id;
  const outcome = cell("Outcome", "");
  const badge = document.createElement("span");
  badge.className = `outcome outcome-${event.outcome}`;
  badge.textContent = event.outcome;
  outcome.append(badge);
  tr.append(
    cell("Time", formatTime(event.time, { millis: true }), event.time),
    cell("Actor", actor.name || actor.id, [actor.type, actor.id].filter(Boolean).join(" ")),
    cell("Action", event.action),
    cell("Target", target.name || target.id, [target.type, target.id].filter(Boolean).join(" ")),
    outcome,
    cell("IP", actor.ip, actor.ip),
    cell("Message", event.message, event.message),
  );
  tr.setAttribute("aria-label", `${event.action} by ${actor.name || actor.id || "unknown actor"}, ${event.outcome}`);
  return tr;
}

function pair(list, term, value, { code = false } = {}) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  if (code) {
    const c = document.createElement("code");
    c.textContent = value ?? "—";
    dd.append(c);
  } else {
    dd.textContent = value ?? "—";
  }
  list.append(dt, dd);
}

/** The summary, the chain link and the whole JSON of one stored event. */
export function fillDetail({ summary, chain, json }, event) {
  summary.replaceChildren();
  const actor = event.actor || {};
  const target = event.target || {};
  pair(summary, "Time", event.time);
  pair(summary, "Received", event.received_at);
  pair(summary, "Action", event.action, { code: true });
  pair(summary, "Outcome", event.outcome);
  pair(summary, "Actor", [actor.type, actor.id, actor.name && `(${actor.name})`].filter(Boolean).join(" ") || null);
  pair(summary, "IP", actor.ip);
  pair(summary, "Target", [target.type, target.id, target.name && `(${target.name})`].filter(Boolean).join(" ") || null);
  pair(summary, "Source", event.source);
  pair(summary, "Message", event.message);
  pair(summary, "ID", event.id, { code: true });
  chain.replaceChildren();
  const link = event.chain || {};
  pair(chain, "Stream", link.stream, { code: true });
  pair(chain, "Sequence", link.seq === undefined ? null : String(link.seq), { code: true });
  pair(chain, "Previous hash", link.prev, { code: true });
  pair(chain, "Hash", link.hash, { code: true });
  json.textContent = JSON.stringify(event, null, 2);
}
