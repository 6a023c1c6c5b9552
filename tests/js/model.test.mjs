// The dashboard's replay computes what the terminal computes: each golden file
// (tests/golden, written by make_golden.py from producer/analysis.py) holds a
// run's records with the segments and figures the terminal draws and prints;
// model.js's savedRun, given the same records, must find the same.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { savedRun } from "../../dashboard/static/model.js";
import { summaryText } from "../../dashboard/static/words.js";

const GOLDEN = new URL("../golden/", import.meta.url);
const names = readdirSync(GOLDEN).filter(name => name.endsWith(".json")).sort();
const rounded = x => (x === null ? null : Math.round(x * 1e6) / 1e6);
const inOrder = (a, b) => a.started - b.started || a.worker.localeCompare(b.worker, undefined, { numeric: true })
  || (a.message_id < b.message_id ? -1 : a.message_id > b.message_id ? 1 : 0);

function bar(worker, messageId, started, finished, state) {
  return { worker, message_id: messageId, started: rounded(started), finished: rounded(finished), state };
}

// The page draws a task without work as a count in its worker's lane, per second, not as a bar.
function withoutWork(segment) {
  return segment.state === "done" && segment.finished <= segment.started;
}

function perSecond(segments) {
  const counts = {};
  for (const s of segments) {
    const second = Math.floor(s.started);
    counts[s.worker] ??= {};
    counts[s.worker][second] = (counts[s.worker][second] ?? 0) + 1;
  }
  return counts;
}

function golden(name) {
  return JSON.parse(readFileSync(new URL(name, GOLDEN), "utf8"));
}

test("there are golden files to compare with", () => {
  assert.ok(names.length >= 7, `only ${names.length} golden files in tests/golden`);
});

for (const name of names) {
  const expected = golden(name);

  test(`${name}: the replay draws the terminal's bars`, () => {
    const batch = savedRun(expected.run);
    // Rejected tasks are marked on the page; the terminal lists them instead of drawing them.
    // A task done again is drawn twice on the page, once in the terminal (its tally says
    // "done more than once"): the bars of the first "done"s are the terminal's.
    const firstDones = batch.firstDones();
    const drawn = batch.attempts.filter(a => a.state === "cut" || firstDones.includes(a))
      .map(a => bar(a.worker, a.messageId, a.started, a.finished, a.state)).sort(inOrder);
    const bars = expected.segments.filter(s => !withoutWork(s))
      .map(s => bar(s.worker, s.message_id, s.started, s.finished, s.state)).sort(inOrder);
    assert.deepEqual(drawn, bars);
    const counted = Object.fromEntries([...batch.quick].map(([w, seconds]) => [w, Object.fromEntries(seconds)]));
    assert.deepEqual(counted, perSecond(expected.segments.filter(withoutWork)));
  });

  test(`${name}: the replay's figures are the terminal's`, () => {
    const f = savedRun(expected.run).figures();
    const rows = Object.fromEntries([...f.rows].map(([w, r]) => [w, { tasks: r.tasks, busy: rounded(r.busy) }]));
    assert.deepEqual(
      { makespan: rounded(f.makespan), lower_bound: rounded(f.lowerBound), workers: f.workers, per_worker: rows },
      { ...expected.figures, makespan: rounded(expected.figures.makespan),
        lower_bound: rounded(expected.figures.lower_bound) },
    );
  });
}

test("a replay keeps the faults a demo noted, as text, bounded, and only well-formed ones", () => {
  const run = JSON.parse(readFileSync(new URL("crash.json", GOLDEN), "utf8")).run;
  const marks = [
    { at: 101.5, label: "killed consumer-1" },
    { at: "soon", label: "not a time" },
    { at: 102, label: { html: "<b>" } },
    { at: 103, label: "x".repeat(500) },
  ];
  const batch = savedRun({ ...run, marks });
  assert.deepEqual(batch.faults.map(f => f.t), [101.5, 103]);
  assert.equal(batch.faults[0].label, "killed consumer-1");
  assert.equal(batch.faults[1].label.length, 80);
  assert.deepEqual(savedRun({ ...run, marks: undefined }).faults, []);  // a run saved before marks were kept
});

test("a task done twice (its acknowledgement lost with its node) is drawn twice and counted once", () => {
  const batch = savedRun(JSON.parse(readFileSync(new URL("done_twice.json", GOLDEN), "utf8")).run);
  const task1 = batch.attempts.filter(a => a.messageId === "b1.1" && a.state === "done");
  assert.deepEqual(task1.map(a => a.worker), ["consumer-1", "consumer-2"]);
  const f = batch.figures();
  assert.deepEqual([...f.rows].map(([w, r]) => [w, r.tasks]), [["consumer-1", 1], ["consumer-2", 1]]);
  assert.match(summaryText(f), /^2 tasks done · makespan 2\.0 s/);
});
