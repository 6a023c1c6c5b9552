// What the page says in words: the figures of a batch (so far, or final as the terminal
// prints them), the prefetch in force, the run's name, and which bar labels fit their bar.
// Pure functions, tested under Node (tests/js/).

// Text from the network as the page shows it: bidirectional controls (which reversed a
// forged name) and control characters neutralised, at most `max` characters (a 255-character
// name overflowed its lane).
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
export function shownText(text, max = 40) {
  const chars = [...String(text ?? "").replace(UNSAFE, "\ufffd")];
  return chars.length > max ? `${chars.slice(0, max - 1).join("")}…` : chars.join("");
}

const seconds = s => `${s.toFixed(1)} s`;
const tasks = n => `${n.toLocaleString()} ${n === 1 ? "task" : "tasks"}`;

// f: a batch's figures as the dashboard computed them (lab/figures.py), or null before any
// came. While the batch runs every figure is "so far", running tasks counted busy until then.
function workerRows(f) {
  return Object.entries(f.per_worker ?? {}).sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }));
}

export function summaryText(f) {
  if (!f) return "Waiting for the dashboard's figures of this batch.";
  const soFar = f.over ? "" : " so far";
  const done = `${tasks(f.tasks)} done${soFar}${f.running ? `, ${f.running} running` : ""}`;
  if (f.makespan === null) {
    return f.tasks === 0 ? "No task done yet in this batch." : `${done} (tasks with no work, counted per second)`;
  }
  const ratio = Number.isFinite(f.ratio) ? ` (${f.ratio.toFixed(2)}× the bound${soFar})` : "";  // a run saved without one: none
  return `${done} · makespan${soFar} ${seconds(f.makespan)}` +
    ` · lower bound${soFar} max(total/${f.workers}, longest) ${seconds(f.lower_bound)}${ratio}`;
}

// Said after the figures of a live batch the dashboard heard only part of (it lost its broker
// node meanwhile): until send.sh --wait saves the run, and its records say it all.
export function uncertainty(view) {
  return view?.missed && !view.from_records ? " · events were missed while the dashboard lost its node: uncertain" : "";
}

// The per-worker table: a header and a row of text cells per worker.
export function tableRows(f) {
  const soFar = f?.over ? "" : " so far";
  const rows = f ? workerRows(f).map(([w, r]) => [
    shownText(w, 24), `${r.tasks.toLocaleString()}${r.running ? ` + ${r.running} running` : ""}`, r.busy.toFixed(1)]) : [];
  return [["worker", `tasks${soFar}`, `busy s${soFar}`], ...rows];
}

export function boardLabel(title, f) {
  if (!f) return `${title}: no figures yet`;
  const state = f.over ? "batch over" : "batch running";
  return `${title}: ${state}, ${tasks(f.tasks)} done${f.over ? "" : " so far"}, ` +
    `${f.running} running, ${workerRows(f).length} workers`;
}

// prefetch: Map(worker -> its prefetch). One value for all, or each worker's.
export function prefetchText(prefetch) {
  const say = n => (n === 0 ? "0 (no limit)" : String(n));
  const values = new Set(prefetch.values());
  if (!values.size) return "";
  if (values.size === 1) return `prefetch ${say([...values][0])}`;
  return `prefetch ${[...prefetch].map(([w, n]) => `${shownText(w, 24)} ${say(n)}`).join(", ")}`;
}

export function runText(batch) {
  if (batch.id === undefined || batch.id === null) return "";
  const id = shownText(batch.id);
  return batch.name ? `run ${shownText(batch.name)} (batch ${id})` : `batch ${id}`;
}

// A bar's label: its glyph and task number if they fit the bar, else the number alone, else
// nothing. Widths for the 15 px bold label, a little generous: labels must never run together.
const DIGIT_PX = 9.5, OTHER_PX = 14, GLYPH_PX = 16, PADDING_PX = 6;
export function barLabel(glyph, task, width) {
  const number = String(task);
  const text = [...number].reduce((px, c) => px + (c >= "0" && c <= "9" ? DIGIT_PX : OTHER_PX), PADDING_PX);
  if (GLYPH_PX + text <= width) return `${glyph}${number}`;
  if (text <= width) return number;
  return "";
}

// A scaling of the pool, as the autoscaler said it (a `scaled` event): "2 → 4 workers".
export function scalingLabel(scaling) {
  const count = n => (Number.isInteger(n) ? n.toLocaleString() : "?");
  return `${count(scaling.before)} → ${count(scaling.workers)} ${scaling.workers === 1 ? "worker" : "workers"}`;
}

// The chart of task_queue and its workers, in words (its accessible name): the latest
// reading and the latest scaling, as the dashboard sent them.
export function poolLabel(overTime, clock) {
  const minutes = overTime.window / 60;
  const last = overTime.readings.findLast(r => Number.isFinite(r?.[1]));
  const say = n => (Number.isFinite(n) ? n.toLocaleString() : "?");
  const workers = last?.[3] === 1 ? "worker" : "workers";
  const now = last ? `now ${say(last[1])} ready, ${say(last[2])} unacknowledged, ${say(last[3])} ${workers}`
    : "no reading yet";
  const scaling = overTime.scalings.at(-1);
  const scaled = scaling ? `; last scaled ${scalingLabel(scaling)} at ${clock(scaling.at)}` : "; no scaling";
  return `task_queue and its workers over up to the last ${minutes.toLocaleString()} minutes: ${now}${scaled}`;
}
