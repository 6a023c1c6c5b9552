// One board: a lane per worker, a bar per attempt at a task, drawn in SVG as
// the batch stood at moment T. Elements are kept and updated (keyed by
// attempt), so a redraw every frame costs little and tests can watch them.

import { labelColour } from "./colour.js";
import { UNHEARD, stateAt } from "./model.js";
import { barLabel, boardLabel, shownText, summaryText, tableRows, uncertainty } from "./words.js";

const SVG = "http://www.w3.org/2000/svg";
// A cue besides colour for each state (the legend shows the same glyphs).
const GLYPHS = { waiting: "…", running: "▶", done: "✓", cut: "✂", rejected: "✗", unheard: "?" };
let labelColours = null;  // state -> black or white, whichever reads better on the state's colour

function labelFill(state) {
  if (!labelColours) {
    const style = getComputedStyle(document.documentElement);
    labelColours = Object.fromEntries(Object.keys(GLYPHS).map(
      name => [name, labelColour(style.getPropertyValue(`--${name}`).trim() || "#ffffff")]));
  }
  return labelColours[state];
}
const LABEL_W = 185, BUFFER_SLOTS = 5, SLOT_W = 32, BUFFER_W = BUFFER_SLOTS * SLOT_W + 40;
const PLOT_X = LABEL_W + BUFFER_W + 12, LANE_H = 46, BAR_H = 30, AXIS_H = 28, MIN_SPAN = 5, FAULT_LINE_H = 18;

// A round step between ticks that gives at most MAX_TICKS of them, whatever the span: an
// event's times are untrusted (one that said "started": 1 once asked for 1.5 million ticks).
const MAX_TICKS = 12;
export function tickStep(span) {
  const nice = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600].find(s => span / s <= MAX_TICKS);
  if (nice) return nice;
  const magnitude = 10 ** Math.floor(Math.log10(span / MAX_TICKS));
  return [1, 2, 5, 10].map(m => m * magnitude).find(s => span / s <= MAX_TICKS);
}

function svg(name, attributes = {}, parent = null) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (parent) parent.appendChild(element);
  return element;
}

function set(element, attributes) {
  for (const [key, value] of Object.entries(attributes)) {
    if (element.getAttribute(key) !== String(value)) element.setAttribute(key, value);
  }
}

// A table row of text cells (text nodes only: worker names come from the network).
function row(cells, tag = "td") {
  const tr = document.createElement("tr");
  for (const cell of cells) tr.appendChild(document.createElement(tag)).textContent = cell;
  return tr;
}

export class Board {
  constructor(container, title, name) {
    this.wrap = document.createElement("div");
    this.wrap.className = "board-wrap";
    this.wrap.dataset.board = name;
    this.heading = document.createElement("h2");
    this.heading.textContent = title;
    this.root = svg("svg", { class: "board", role: "img", "aria-label": title });
    this.title = title;
    const hatch = svg("pattern", { id: `hatch-${name}`, width: 8, height: 8, patternUnits: "userSpaceOnUse",
                                   patternTransform: "rotate(45)" }, svg("defs", {}, this.root));
    svg("line", { class: "hatch", x1: 0, y1: 0, x2: 0, y2: 8 }, hatch);
    this.hatchId = `hatch-${name}`;
    this.axis = svg("g", { class: "axis" }, this.root);
    this.lanesGroup = svg("g", {}, this.root);
    this.linksGroup = svg("g", {}, this.root);
    this.faultsGroup = svg("g", { class: "faults" }, this.root);  // last: painted over the lanes
    this.summary = document.createElement("div");
    this.summary.className = "summary";
    this.table = document.createElement("table");
    this.table.className = "stats";
    this.wrap.append(this.heading, this.root, this.summary, this.table);
    container.appendChild(this.wrap);
    this.lanes = new Map();  // worker -> { group, bars: Map(attempt id -> g) , ... }
    this.links = new Map();
    this.batchId = null;
  }

  remove() { this.wrap.remove(); }

  // view: { batch, lanes: [worker], workers: Map (marks, attached), T, t0, span }
  draw({ batch, lanes, workers = new Map(), T, t0, span }) {
    if (batch.id !== this.batchId || batch !== this.batch) this.clear(batch);
    const width = Math.max(this.root.clientWidth || 1000, PLOT_X + 200);
    span = Number.isFinite(span) ? span : MIN_SPAN;
    const pxPerSecond = (width - PLOT_X - 24) / Math.max(span, MIN_SPAN);
    const x = t => PLOT_X + Math.max(0, t - t0) * pxPerSecond;
    set(this.root, { viewBox: `0 0 ${width} ${AXIS_H + lanes.length * LANE_H + 4}`,
                     height: AXIS_H + lanes.length * LANE_H + 4 });
    this.drawAxis(width, span, pxPerSecond, T - t0);
    this.drawFaults(batch, x, T, t0, width);
    const y = new Map(lanes.map((w, i) => [w, AXIS_H + i * LANE_H]));
    for (const [worker, lane] of this.lanes) if (!y.has(worker)) { lane.group.remove(); this.lanes.delete(worker); }
    lanes.forEach(worker => this.drawLane(worker, y.get(worker), width, workers.get(worker), x, T, t0));
    this.drawBars(batch, x, T);
    this.drawQuick(batch, x, pxPerSecond, T);
    this.drawLinks(batch, x, y, T);
    this.drawFigures(batch, T);
  }

  clear(batch) {
    for (const lane of this.lanes.values()) lane.group.remove();
    this.lanes.clear();
    this.linksGroup.replaceChildren();
    this.links.clear();
    this.batchId = batch.id;
    this.batch = batch;
    this.root.dataset.batch = batch.id ?? "";
  }

  drawAxis(width, span, pxPerSecond, elapsed) {
    const shown = Math.max(span, MIN_SPAN), step = tickStep(shown);
    const ticks = [];
    for (let s = 0; s <= shown + 1e-9 && ticks.length <= MAX_TICKS; s += step) ticks.push(s);
    this.axis.replaceChildren();
    for (const s of ticks) {
      const at = PLOT_X + s * pxPerSecond;
      svg("line", { x1: at, x2: at, y1: AXIS_H - 6, y2: 4000 }, this.axis);
      svg("text", { x: at, y: AXIS_H - 10 }, this.axis).textContent = `${+s.toFixed(1)} s`;
    }
    const buffer = svg("text", { x: LABEL_W + BUFFER_W / 2, y: AXIS_H - 10 }, this.axis);
    buffer.textContent = "buffer";
    if (elapsed >= 0) {
      const at = PLOT_X + Math.min(elapsed, Math.max(span, MIN_SPAN)) * pxPerSecond;
      svg("line", { class: "now-line", x1: at, x2: at, y1: AXIS_H, y2: 4000 }, this.axis);
    }
  }

  drawFaults(batch, x, T, t0, width) {
    this.faultsGroup.replaceChildren();
    (batch.faults ?? []).forEach((fault, index) => {
      if (fault.t < t0 || fault.t > T) return;
      const at = x(fault.t);
      svg("line", { class: "fault-line", x1: at, x2: at, y1: AXIS_H, y2: 4000 }, this.faultsGroup);
      // Each label a line lower than the last, a line taller than the label (at 14 px, 15 px
      // labels were drawn over each other); in the plot's second half, left of its line.
      const late = at > (PLOT_X + width) / 2;
      const label = svg("text", { class: "fault-label", x: late ? at - 4 : at + 4, y: AXIS_H + 16 + FAULT_LINE_H * index,
                                  "text-anchor": late ? "end" : "start" }, this.faultsGroup);
      label.textContent = shownText(fault.label, 80);
    });
  }

  drawLane(worker, top, width, info, x, T, t0) {
    let lane = this.lanes.get(worker);
    if (!lane) {
      const group = svg("g", { class: "lane", "data-worker": worker }, this.lanesGroup);
      lane = { group, bars: new Map(), aggregates: new Map() };
      lane.bg = svg("rect", { class: "lane-bg", x: 0, y: 2, height: LANE_H - 4 }, group);
      lane.buffer = svg("rect", { class: "buffer-bg", x: LABEL_W, y: 4, width: BUFFER_W - 6, height: LANE_H - 8 }, group);
      lane.name = svg("text", { class: "lane-name", x: 8, y: LANE_H / 2 }, group);
      lane.more = svg("text", { class: "aggregate-count", x: LABEL_W + BUFFER_SLOTS * SLOT_W + 16, y: LANE_H / 2 }, group);
      lane.marks = svg("g", { class: "marks" }, group);
      this.lanes.set(worker, lane);
    }
    const attached = info ? info.attached : true;
    set(lane.group, { transform: `translate(0,${top})`, "data-attached": attached });
    set(lane.bg, { width });
    const name = shownText(worker, 18);
    lane.name.textContent = worker.startsWith(UNHEARD) ? "(not heard from)" : attached ? name : `${name} (left)`;
    lane.marks.replaceChildren();
    for (const mark of info?.marks ?? []) {
      if (mark.t < t0 || mark.t > T) continue;
      const line = svg("line", { class: mark.kind, x1: x(mark.t), x2: x(mark.t), y1: 2, y2: LANE_H - 2 }, lane.marks);
      svg("title", {}, line).textContent = `${shownText(worker)} ${mark.kind === "joined" ? "attached" : "left"}`;
    }
  }

  drawBars(batch, x, T) {
    const waiting = new Map();
    for (const a of batch.attempts) {
      const lane = this.lanes.get(a.worker);
      if (!lane) continue;
      const state = stateAt(a, T);
      let bar = lane.bars.get(a.id);
      if (state === null) { if (bar) { bar.remove(); lane.bars.delete(a.id); } continue; }
      if (!bar) {
        bar = svg("g", { class: "task", "data-task": a.task }, lane.group);
        svg("rect", { height: BAR_H, y: (LANE_H - BAR_H) / 2, rx: 3 }, bar);
        svg("text", { y: LANE_H / 2 }, bar);
        svg("title", {}, bar);
        // Delivered again: hatched, as in the PNG chart.
        if (a.redelivered) {
          const hatch = svg("rect", { class: "redelivered", height: BAR_H, y: (LANE_H - BAR_H) / 2, rx: 3 }, bar);
          hatch.style.fill = `url(#${this.hatchId})`;  // inline: the state's fill rule must not cover it
        }
        lane.bars.set(a.id, bar);
      }
      const [rect, label, title, hatch] = bar.children;
      let left, width;
      if (state === "waiting") {
        const slot = waiting.get(a.worker) ?? 0;
        waiting.set(a.worker, slot + 1);
        left = LABEL_W + 4 + slot * SLOT_W;
        width = SLOT_W - 4;
        set(bar, { visibility: slot < BUFFER_SLOTS ? "visible" : "hidden" });
      } else {
        left = x(a.started);
        width = Math.max(state === "running" ? x(T) - left : x(a.finished) - left, 6);
        set(bar, { visibility: "visible" });
      }
      set(bar, { "data-state": state, "data-redelivered": a.redelivered });
      set(rect, { x: left, width });
      if (hatch) set(hatch, { x: left, width });
      const text = barLabel(GLYPHS[state], a.task, width);
      if (label.textContent !== text) label.textContent = text;
      label.style.fill = labelFill(state);
      set(label, { x: left + width / 2, visibility: text ? "visible" : "hidden" });
      title.textContent = `${shownText(a.text, 60)} — ${shownText(a.worker)}, ${state}${a.redelivered ? ", redelivered" : ""}`;
    }
    for (const [worker, lane] of this.lanes) {
      const extra = (waiting.get(worker) ?? 0) - BUFFER_SLOTS;
      lane.more.textContent = extra > 0 ? `+${extra}` : "";
    }
  }

  drawQuick(batch, x, pxPerSecond, T) {
    for (const [worker, seconds] of batch.quick) {
      const lane = this.lanes.get(worker);
      if (!lane) continue;
      for (const [second, count] of seconds) {
        if (second > T) continue;
        let block = lane.aggregates.get(second);
        if (!block) {
          block = svg("g", { class: "aggregate-block", "data-worker": worker }, lane.group);
          svg("rect", { class: "aggregate", y: (LANE_H - BAR_H) / 2, height: BAR_H }, block);
          svg("text", { class: "aggregate-count", y: LANE_H / 2 }, block);
          lane.aggregates.set(second, block);
        }
        const [rect, label] = block.children;
        const left = x(second), width = Math.max(pxPerSecond - 1, 3);
        set(block, { "data-count": count });
        set(rect, { x: left, width });
        set(label, { x: left + width / 2 });
        label.textContent = width > 30 ? count.toLocaleString() : "";
      }
    }
  }

  drawLinks(batch, x, y, T) {
    for (const [from, to] of batch.links) {
      const key = `${from.id}-${to.id}`;
      const visible = stateAt(from, T) === "cut" && stateAt(to, T) !== null && y.has(from.worker) && y.has(to.worker);
      let path = this.links.get(key);
      if (!visible) { if (path) { path.remove(); this.links.delete(key); } continue; }
      if (!path) {
        path = svg("path", { class: "link", "data-from": from.worker, "data-to": to.worker }, this.linksGroup);
        this.links.set(key, path);
      }
      const x1 = x(from.finished), y1 = y.get(from.worker) + LANE_H / 2;
      const x2 = to.started !== null && to.started <= T ? x(to.started) : x(to.received ?? T);
      const y2 = y.get(to.worker) + LANE_H / 2, middle = (x1 + x2) / 2;
      set(path, { d: `M${x1} ${y1} C ${middle} ${y1}, ${middle} ${y2}, ${x2} ${y2}` });
    }
  }

  retitle(title) {  // the board's heading, and its words' first part from the next drawing on
    if (title === this.title) return;
    this.title = this.heading.textContent = title;
  }

  drawFigures(batch, T) {
    const f = batch.figuresAt(T);
    const label = boardLabel(this.title, f);
    if (this.root.getAttribute("aria-label") !== label) this.root.setAttribute("aria-label", label);
    this.summary.textContent = summaryText(f) + uncertainty(batch.view);
    this.summary.dataset.over = this.over = !!f?.over;
    const [header, ...rows] = tableRows(f);
    const key = JSON.stringify([header, ...rows]);
    if (this.tableKey === key) return;
    this.tableKey = key;
    this.table.replaceChildren(row(header, "th"), ...rows.map(cells => row(cells)));
  }
}
