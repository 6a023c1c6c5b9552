// The chart above the lanes: task_queue's depth (ready and unacknowledged) and its workers
// over the dashboard's window ending now, each scaling of the pool marked. The dashboard
// sends it all (pool_history.py: readings [at, ready, unacked, consumers], null where not
// known, and the scalings that changed the pool); here only positions are worked out
// (layout, pure, tested under Node) and drawn in SVG (PoolChart).

import { scalingLabel, shownText } from "./words.js";

const SVG = "http://www.w3.org/2000/svg";
export const LEFT = 130, RIGHT = 16, DEPTH_TOP = 48, DEPTH_H = 90, WORKERS_TOP = 168, WORKERS_H = 50;
export const AXIS_Y = WORKERS_TOP + WORKERS_H + 20, HEIGHT = AXIS_Y + 8;
const MIN_SPAN_SECONDS = 60;
const TICK_LABEL_W = 90;  // a clock time at 14 px, "11:08:00 AM": ticks far enough apart for it
const TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300];
// Scalings' labels, in rows above the plot; one that fits no row keeps its line and title only.
export const LABEL_ROWS_Y = [18, 38], LABEL_W = 120;  // "12 → 13 workers" at 14 px bold

// The top of a scale: the first of 1, 2, 5, 10, 20, 50 ... at or above the highest value.
export function scaleTop(values, least) {
  const highest = Math.max(least, ...values.filter(Number.isFinite));
  for (let magnitude = 1; ; magnitude *= 10) {
    const top = [1, 2, 5, 10].map(m => m * magnitude).find(m => m >= highest);
    if (top) return top;
  }
}

// Runs of points with a value (a null breaks the line), as SVG polyline points; `step` draws
// a count that holds until the next reading (the workers).
export function lines(readings, column, x, y, step = false) {
  const runs = [];
  let run = [];
  for (const reading of readings) {
    const value = reading[column];
    if (!Number.isFinite(value)) {
      if (run.length) runs.push(run);
      run = [];
      continue;
    }
    if (step && run.length) run.push([x(reading[0]), run.at(-1)[1]]);
    run.push([x(reading[0]), y(value)]);
  }
  if (run.length) runs.push(run);
  return runs.map(points => points.map(([px, py]) => `${+px.toFixed(1)},${+py.toFixed(1)}`).join(" "));
}

// Where everything goes, for `overTime` (the dashboard's over_time) at moment `now`, `width` px wide.
// The axis runs from the first reading kept (at least MIN_SPAN_SECONDS back, at most the window
// back) to now: a page opened a minute ago uses its whole width for that minute.
export function layout(overTime, now, width) {
  const readings = overTime.readings.filter(r => Array.isArray(r) && Number.isFinite(r[0]));
  const first = readings.length ? readings[0][0] : now;
  const from = Math.max(now - overTime.window, Math.min(first, now - MIN_SPAN_SECONDS));
  const span = now - from, plot = width - LEFT - RIGHT;
  const x = t => LEFT + (Math.min(Math.max(t, from), now) - from) / span * plot;
  const scalings = overTime.scalings.filter(s => Number.isFinite(s?.at) && s.at >= from);
  const depthTop = scaleTop(readings.flatMap(r => [r[1], r[2]]), 4);
  const workersTop = scaleTop(readings.map(r => r[3]), 2);  // the broker's counts: a forged scaling moves no line
  const depthY = v => DEPTH_TOP + DEPTH_H - (v / depthTop) * DEPTH_H;
  const workersY = v => WORKERS_TOP + WORKERS_H - (v / workersTop) * WORKERS_H;
  const step = TICK_STEPS.find(seconds => (seconds / span) * plot >= TICK_LABEL_W + 10) ?? TICK_STEPS.at(-1);
  const ticks = [];
  for (let t = Math.ceil(from / step) * step; t <= now; t += step) {
    ticks.push({ t, x: x(t), labelled: x(t) <= width - RIGHT - TICK_LABEL_W / 2 });  // no label cut at the edge
  }
  // The newest scaling labelled first: of two close together, the later one says what the pool is now.
  // Right of its line in the plot's first half, left of it in the second (not cut at the edge).
  const rows = LABEL_ROWS_Y.map(() => []);
  const marks = scalings.toReversed().map(s => {
    const at = x(s.at), late = at > (LEFT + width) / 2;
    const span = late ? [at - 4 - LABEL_W, at - 4] : [at + 4, at + 4 + LABEL_W];
    const row = rows.findIndex(spans => spans.every(([left, right]) => span[1] <= left || span[0] >= right));
    if (row >= 0) rows[row].push(span);
    return { x: at, row: row >= 0 ? row : null, late, label: scalingLabel(s), why: s.why, before: s.before,
             workers: s.workers };
  }).toReversed();
  return {
    width, ticks, marks,
    depth: { top: depthTop, y: depthY, ready: lines(readings, 1, x, depthY), unacked: lines(readings, 2, x, depthY) },
    workers: { top: workersTop, y: workersY, line: lines(readings, 3, x, workersY, true) },
  };
}

function svg(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  parent.appendChild(element);
  return element;
}

function text(parent, attributes, words) {
  svg("text", attributes, parent).textContent = words;  // a text node: the why comes from the network
}

export class PoolChart {
  constructor(root) {
    this.root = root;
  }

  // Redrawn whole at each reading (once a second): a few hundred points.
  draw(overTime, now, clock) {
    const width = Math.max(this.root.clientWidth || 1000, LEFT + RIGHT + 300);
    const { ticks, marks, depth, workers } = layout(overTime, now, width);
    this.root.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    this.root.setAttribute("height", HEIGHT);
    const drawn = document.createDocumentFragment();
    const g = svg("g", { class: "axis" }, drawn);
    for (const tick of ticks) {
      svg("line", { x1: tick.x, x2: tick.x, y1: DEPTH_TOP, y2: AXIS_Y - 14 }, g);
      if (tick.labelled) text(g, { x: tick.x, y: AXIS_Y }, clock(tick.t));
    }
    const bands = [["messages", depth.top, depth.y, DEPTH_TOP], ["workers", workers.top, workers.y, WORKERS_TOP]];
    for (const [name, top, y, band] of bands) {
      text(g, { class: "band-name", x: 8, y: band + 14 }, name);
      for (const value of [0, top]) {
        svg("line", { class: "scale", x1: LEFT - 6, x2: width - RIGHT, y1: y(value), y2: y(value) }, g);
        text(g, { class: "scale-value", x: LEFT - 10, y: y(value) + 5 }, value.toLocaleString());
      }
    }
    const series = (name, runs) => runs.forEach(points => svg("polyline", { class: `series ${name}`,
                                                                            "data-series": name, points }, drawn));
    series("ready", depth.ready);
    series("unacked", depth.unacked);
    series("workers", workers.line);
    for (const mark of marks) {
      const group = svg("g", { class: "scaling", "data-before": mark.before, "data-workers": mark.workers }, drawn);
      svg("title", {}, group).textContent = `${mark.label}: ${shownText(mark.why, 300)}`;
      const top = mark.row === null ? DEPTH_TOP - 4 : LABEL_ROWS_Y[mark.row] - 14;  // up to its label
      for (const name of ["scaling-line", "scaling-hover"]) {  // the second, wide and unpainted, for the pointer
        svg("line", { class: name, x1: mark.x, x2: mark.x, y1: top, y2: WORKERS_TOP + WORKERS_H }, group);
      }
      if (mark.row !== null) {
        text(group, { class: "scaling-label", x: mark.late ? mark.x - 4 : mark.x + 4, y: LABEL_ROWS_Y[mark.row],
                      "text-anchor": mark.late ? "end" : "start" }, mark.label);
      }
    }
    this.root.replaceChildren(drawn);
  }
}
