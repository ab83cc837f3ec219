// The histogram of matching events over time, as SVG bars that can be brushed (mouse, touch or keys) to zoom.

import { formatTime } from "./timerange.js";

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 120;
const AXIS = 18;

function node(name, attributes = {}) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

export class Histogram {
  /**
   * @param {SVGSVGElement} svg
   * @param {(since: Date, until: Date) => void} onZoom called with the brushed range
   */
  constructor(svg, onZoom) {
    this.svg = svg;
    this.onZoom = onZoom;
    this.buckets = [];
    this.widthMs = 0;
    this.anchor = null; // bucket index where a brush started
    this.focus = 0; // keyboard: the bucket under the cursor
    this.selection = null; // [first, last] bucket indexes
    svg.addEventListener("pointerdown", (e) => this.pointerDown(e));
    svg.addEventListener("pointermove", (e) => this.pointerMove(e));
    svg.addEventListener("pointerup", (e) => this.pointerUp(e));
    svg.addEventListener("pointercancel", () => this.clearSelection());
    svg.addEventListener("keydown", (e) => this.keyDown(e));
    svg.addEventListener("focus", () => this.draw());
    svg.addEventListener("blur", () => this.draw());
    new ResizeObserver(() => this.draw()).observe(svg);
  }

  /** @param {{buckets: {time: string, count: number}[], interval_seconds: number}} data */
  show(data) {
    this.buckets = data.buckets.map((b) => ({ start: new Date(b.time), count: b.count }));
    this.widthMs = data.interval_seconds * 1000;
    this.focus = Math.min(this.focus, Math.max(0, this.buckets.length - 1));
    this.selection = null;
    this.anchor = null;
    this.draw();
  }

  bucketAt(clientX) {
    const box = this.svg.getBoundingClientRect();
    const ratio = (clientX - box.left) / Math.max(1, box.width);
    return Math.max(0, Math.min(this.buckets.length - 1, Math.floor(ratio * this.buckets.length)));
  }

  pointerDown(event) {
    if (!this.buckets.length || event.button !== 0) return;
    this.svg.setPointerCapture(event.pointerId);
    this.anchor = this.bucketAt(event.clientX);
    this.selection = [this.anchor, this.anchor];
    this.draw();
  }

  pointerMove(event) {
    if (this.anchor === null) return;
    const at = this.bucketAt(event.clientX);
    this.selection = [Math.min(this.anchor, at), Math.max(this.anchor, at)];
    this.draw();
  }

  pointerUp(event) {
    if (this.anchor === null) return;
    this.pointerMove(event);
    this.anchor = null;
    this.apply();
  }

  keyDown(event) {
    const last = this.buckets.length - 1;
    if (last < 0) return;
    const step = { ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity }[event.key];
    if (step !== undefined) {
      event.preventDefault();
      const from = this.focus;
      this.focus = Math.max(0, Math.min(last, from + step));
      // Shift extends the selection from where it started, as in a text field.
      if (event.shiftKey) {
        const start = this.selection ? (this.selection[0] === from ? this.selection[1] : this.selection[0]) : from;
        this.selection = [Math.min(start, this.focus), Math.max(start, this.focus)];
      } else {
        this.selection = null;
      }
      this.draw();
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      if (!this.selection) this.selection = [this.focus, this.focus];
      this.apply();
    } else if (event.key === "Escape" && this.selection) {
      event.stopPropagation();
      this.clearSelection();
    }
  }

  clearSelection() {
    this.anchor = null;
    this.selection = null;
    this.draw();
  }

  apply() {
    const [first, last] = this.selection;
    const since = this.buckets[first].start;
    const until = new Date(this.buckets[last].start.getTime() + this.widthMs);
    this.selection = null;
    this.onZoom(since, until);
  }

  draw() {
    const svg = this.svg;
    const width = Math.max(1, Math.round(svg.clientWidth || svg.getBoundingClientRect().width));
    svg.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    svg.replaceChildren();
    const n = this.buckets.length;
    if (!n) return;
    const plot = HEIGHT - AXIS;
    const barWidth = width / n;
    const max = Math.max(1, ...this.buckets.map((b) => b.count));
    const focused = document.activeElement === svg;
    this.buckets.forEach((bucket, i) => {
      const h = bucket.count ? Math.max(2, (bucket.count / max) * (plot - 4)) : 0;
      const inSelection = this.selection && i >= this.selection[0] && i <= this.selection[1];
      const rect = node("rect", {
        x: i * barWidth + (barWidth > 4 ? 0.5 : 0),
        y: plot - h,
        width: Math.max(0.5, barWidth - (barWidth > 4 ? 1 : 0)),
        height: h,
        class: inSelection ? "bar selected" : "bar",
      });
      const title = node("title");
      title.textContent = `${formatTime(bucket.start)}: ${bucket.count} event${bucket.count === 1 ? "" : "s"}`;
      rect.append(title);
      svg.append(rect);
    });
    if (this.selection) {
      const [a, b] = this.selection;
      svg.append(node("rect", { x: a * barWidth, y: 0, width: (b - a + 1) * barWidth, height: plot, class: "brush" }));
    }
    if (focused) {
      svg.append(node("rect", { x: this.focus * barWidth, y: 0, width: barWidth, height: plot, class: "cursor" }));
    }
    svg.append(node("line", { x1: 0, y1: plot + 0.5, x2: width, y2: plot + 0.5, class: "axis" }));
    // Three labels fit even a phone; more would collide.
    const ticks = n >= 3 ? [0, Math.floor(n / 2), n - 1] : [0];
    for (const i of ticks) {
      const anchor = i === 0 ? "start" : i === n - 1 ? "end" : "middle";
      const x = i === 0 ? 0 : i === n - 1 ? width : (i + 0.5) * barWidth;
      const label = node("text", { x, y: HEIGHT - 4, "text-anchor": anchor, class: "tick" });
      label.textContent = formatTime(this.buckets[i].start, { seconds: this.widthMs < 60000 });
      svg.append(label);
    }
    const total = this.buckets.reduce((sum, b) => sum + b.count, 0);
    const at = this.buckets[this.focus];
    svg.setAttribute(
      "aria-label",
      `Histogram: ${total} events from ${formatTime(this.buckets[0].start)} in ${n} bars. ` +
        "Arrow keys move, Shift+arrows select, Enter zooms into the selection." +
        (focused ? ` Bar at ${formatTime(at.start)}: ${at.count} events.` : ""),
    );
  }
}
