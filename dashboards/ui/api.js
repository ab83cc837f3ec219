// The eventlog API as the UI uses it: every call carries the bearer token; errors keep the server's JSON.

import { readSse } from "./sse.js";

export class ApiError extends Error {
  /** @param {number} status @param {{error?: string, message?: string, errors?: object[]}} body */
  constructor(status, body) {
    super(body.message || `the server answered ${status}`);
    this.status = status;
    this.code = body.error || "http_error";
    this.errors = body.errors || [];
  }
}

/** Drops empty parameters so that the server applies its defaults. */
function url(path, params = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

async function failure(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // A proxy's HTML error page: the status alone must do.
  }
  return new ApiError(response.status, body);
}

export class Api {
  /** @param {string} token @param {(error: ApiError) => void} onUnauthorized */
  constructor(token, onUnauthorized) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  /** The checked Response of a GET; throws ApiError on any status but 2xx. */
  async fetch(path, params = {}, { signal, headers = {} } = {}) {
    const response = await fetch(url(path, params), {
      headers: { Authorization: `Bearer ${this.token}`, Accept: "application/json", ...headers },
      signal,
      cache: "no-store",
      credentials: "omit",
    });
    if (!response.ok) {
      const error = await failure(response);
      if (error.status === 401) this.onUnauthorized(error);
      throw error;
    }
    return response;
  }

  async json(path, params, options) {
    return (await this.fetch(path, params, options)).json();
  }

  search(params, options) {
    return this.json("/v1/events", params, options);
  }

  histogram(params, options) {
    return this.json("/v1/events/histogram", params, options);
  }

  facets(params, options) {
    return this.json("/v1/events/facets", params, options);
  }

  event(id, options) {
    return this.json(`/v1/events/${encodeURIComponent(id)}`, {}, options);
  }

  /** The export as a Blob and the file name the server chose. */
  async export(params, options) {
    const response = await this.fetch("/v1/events/export", params, options);
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename="([^"]+)"/.exec(disposition);
    return { blob: await response.blob(), filename: match ? match[1] : `eventlog.${params.format}` };
  }
}

/**
 * Live tail over fetch (EventSource cannot send the Authorization header).
 * Reconnects after the server's `retry` delay, resuming with Last-Event-ID; a 4xx ends it.
 */
export class LiveTail {
  /** @param {Api} api @param {(event: object) => void} onEvent @param {(state: string, detail?: string) => void} onState */
  constructor(api, onEvent, onState) {
    this.api = api;
    this.onEvent = onEvent;
    this.onState = onState;
    this.controller = null;
  }

  get running() {
    return this.controller !== null;
  }

  start(q) {
    this.stop();
    const controller = new AbortController();
    this.controller = controller;
    this.run(q, controller.signal);
  }

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
  }

  async run(q, signal) {
    let lastId = null;
    let retryMs = 2000;
    while (!signal.aborted) {
      this.onState("connecting");
      try {
        const headers = lastId ? { "Last-Event-ID": lastId } : {};
        const response = await this.api.fetch("/v1/events/tail", { q }, { signal, headers });
        let live = false;
        for await (const message of readSse(response.body)) {
          // eventlog's first frame (retry + comment) comes once the stream has taken its position in the
          // journal: from then on no new event can be missed. The headers alone do not promise that.
          if (!live) {
            live = true;
            this.onState("live");
          }
          if (message.retry !== undefined) retryMs = message.retry;
          if (message.id !== undefined) lastId = message.id;
          if (message.event === "event") this.onEvent(JSON.parse(message.data));
        }
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof ApiError && error.status < 500 && error.status !== 429) {
          this.onState("failed", error.message);
          this.controller = null;
          return;
        }
      }
      if (signal.aborted) return;
      this.onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }
}
