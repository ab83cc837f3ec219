// Time ranges (presets and custom, always in UTC) and how times are shown.

export const PRESETS = {
  "15m": 15 * 60 * 1000,
  "1h": 60 * 60 * 1000,
  "24h": 24 * 60 * 60 * 1000,
  "7d": 7 * 24 * 60 * 60 * 1000,
  "14d": 14 * 24 * 60 * 60 * 1000,
};

/**
 * The `since`/`until` parameters of a range, as RFC 3339.
 * A preset has no `until` for the list, so that events arriving meanwhile still page in;
 * the histogram needs an end, and gets "now".
 * @param {{preset?: string, since?: Date, until?: Date}} range
 */
export function bounds(range, { forHistogram = false } = {}) {
  if (range.preset) {
    const now = Date.now();
    return {
      since: new Date(now - PRESETS[range.preset]).toISOString(),
      until: forHistogram ? new Date(now).toISOString() : undefined,
    };
  }
  return { since: range.since?.toISOString(), until: range.until?.toISOString() };
}

/** "2026-11-27 14:03:05.123" in UTC; without milliseconds (or seconds) when asked. */
export function formatTime(value, { millis = false, seconds = true } = {}) {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const iso = date.toISOString(); // 2026-11-27T14:03:05.123Z
  const end = millis ? 23 : seconds ? 19 : 16;
  return `${iso.slice(0, 10)} ${iso.slice(11, end)}`;
}

/** The value of an <input type="datetime-local"> that shows `date` in UTC. */
export function toInputValue(date) {
  return date ? date.toISOString().slice(0, 19) : "";
}

/** The Date of a datetime-local value read as UTC, or undefined when empty or invalid. */
export function fromInputValue(text) {
  if (!text) return undefined;
  const date = new Date(`${text.length === 16 ? `${text}:00` : text}Z`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}
