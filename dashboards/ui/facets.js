// Facet lists (top values of a field) whose values are clicked into the query.

export const FACET_FIELDS = [
  ["action", "Action"],
  ["outcome", "Outcome"],
  ["actor.id", "Actor"],
  ["source", "Source"],
  ["target.type", "Target type"],
];

/** `field:"value"` (or `-field:"value"`) in the query language: a quoted phrase escapes `\` and `"`. */
export function fieldTerm(field, value, { exclude = false } = {}) {
  const quoted = `"${String(value).replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  return `${exclude ? "-" : ""}${field}:${quoted}`;
}

/** The query with `term` added as one more AND-ed condition (not twice). */
export function withTerm(query, term) {
  const q = query.trim();
  if (!q) return term;
  if (q === term || q.startsWith(`${term} `) || q.endsWith(` ${term}`) || q.includes(` ${term} `)) return q;
  // A top-level OR binds looser than juxtaposition: keep the user's query whole.
  return /\bOR\b/.test(q) ? `(${q}) ${term}` : `${q} ${term}`;
}

/**
 * One list per field in `container`.
 * @param {HTMLElement} container
 * @param {{field: string, label: string, values: {value: string, count: number}[]}[]} lists
 * @param {(term: string) => void} onPick
 */
export function renderFacets(container, lists, onPick) {
  container.replaceChildren();
  for (const { field, label, values } of lists) {
    const section = document.createElement("section");
    section.className = "facet";
    const heading = document.createElement("h3");
    heading.id = `facet-${field.replace(/\W/g, "-")}`;
    heading.textContent = label;
    const list = document.createElement("ul");
    list.setAttribute("aria-labelledby", heading.id);
    if (!values.length) {
      const empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = "no values";
      list.append(empty);
    }
    for (const { value, count } of values) {
      const item = document.createElement("li");
      const pick = document.createElement("button");
      pick.type = "button";
      pick.className = "facet-value";
      pick.dataset.field = field;
      pick.dataset.value = value;
      pick.title = `Add ${fieldTerm(field, value)} to the query`;
      const name = document.createElement("span");
      name.className = "facet-name";
      name.textContent = value;
      const number = document.createElement("span");
      number.className = "count";
      number.textContent = String(count);
      pick.append(name, number);
      pick.addEventListener("click", () => onPick(fieldTerm(field, value)));
      const exclude = document.createElement("button");
      exclude.type = "button";
      exclude.className = "facet-exclude";
      exclude.textContent = "−";
      exclude.setAttribute("aria-label", `Exclude ${label} ${value}`);
      exclude.title = `Add ${fieldTerm(field, value, { exclude: true })} to the query`;
      exclude.addEventListener("click", () => onPick(fieldTerm(field, value, { exclude: true })));
      item.append(pick, exclude);
      list.append(item);
    }
    section.append(heading, list);
    container.append(section);
  }
}
