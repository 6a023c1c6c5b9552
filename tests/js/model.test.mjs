// The dashboard's replay draws what the dashboard serves: each golden file (tests/golden,
// written by make_golden.py with lab/figures.py) holds a run as send.sh --wait saves it, with
// its segments and figures; model.js's savedRun draws those segments as bars and words.js
// shows those figures. The page computes no figure of its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { savedRun } from "../../dashboard/static/model.js";
import { summaryText, tableRows } from "../../dashboard/static/words.js";

const GOLDEN = new URL("../golden/", import.meta.url);
const names = readdirSync(GOLDEN).filter(name => name.endsWith(".json")).sort();
const inOrder = (a, b) => a.started - b.started || a.worker.localeCompare(b.worker, undefined, { numeric: true })
  || (a.message_id < b.message_id ? -1 : a.message_id > b.message_id ? 1 : 0);

function bar(worker, messageId, started, finished, state) {
  return { worker, message_id: messageId, started, finished, state };
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
  assert.ok(names.length >= 10, `only ${names.length} golden files in tests/golden`);
});

for (const name of names) {
  const expected = golden(name);

  test(`${name}: the replay draws the terminal's bars`, () => {
    const batch = savedRun(expected.run);
    const drawn = batch.attempts.filter(a => a.state !== "rejected")
      .map(a => bar(a.worker, a.messageId, a.started, a.finished, a.state)).sort(inOrder);
    const bars = expected.segments.filter(s => !withoutWork(s))
      .map(s => bar(s.worker, s.message_id, s.started, s.finished, s.state)).sort(inOrder);
    assert.deepEqual(drawn, bars);
    const counted = Object.fromEntries([...batch.quick].map(([w, seconds]) => [w, Object.fromEntries(seconds)]));
    assert.deepEqual(counted, perSecond(expected.segments.filter(withoutWork)));
  });

  test(`${name}: at its end the replay shows the terminal's figures, final`, () => {
    const batch = savedRun(expected.run);
    const f = batch.figuresAt(batch.end);
    const figures = expected.figures;
    assert.equal(f.over, true);
    const text = summaryText(f);
    assert.doesNotMatch(text + tableRows(f)[0].join(" "), /so far/);
    if (figures.makespan !== null) {
      assert.match(text, new RegExp(`^${figures.tasks} tasks? done · makespan ${figures.makespan.toFixed(1)} s`));
      assert.match(text, new RegExp(`max\\(total/${figures.workers}, longest\\) ${figures.lower_bound.toFixed(1)} s`));
      if (figures.ratio !== null) assert.ok(text.endsWith(` (${figures.ratio.toFixed(2)}× the bound)`), text);
    }
    const rows = tableRows(f).slice(1).map(([worker, tasks, busy]) => [worker, Number(tasks), Number(busy)]);
    assert.deepEqual(rows, Object.entries(figures.per_worker).map(([w, r]) => [w, r.tasks, Number(r.busy.toFixed(1))]));
  });
}

// The three cases where the page once computed other figures than the terminal (issue 31).
test("a task rejected before the first task done is no part of the page's makespan", () => {
  const batch = savedRun(golden("rejected_first.json").run);
  assert.match(summaryText(batch.figuresAt(batch.end)), /^1 task done · makespan 1\.5 s/);
});

test("a task with no work done twice is counted once on the page", () => {
  const batch = savedRun(golden("quick_done_twice.json").run);
  assert.match(summaryText(batch.figuresAt(batch.end)), /^2 tasks done · makespan 1\.5 s/);
  assert.deepEqual([...batch.quick.values()].map(seconds => [...seconds.values()]), [[1]]);
});

test("a task with no work done before the first task with work starts begins the page's makespan", () => {
  const batch = savedRun(golden("quick_first.json").run);
  assert.match(summaryText(batch.figuresAt(batch.end)), /^2 tasks done · makespan 3\.0 s/);
});

test("a replay keeps the faults a demo noted, as text, bounded, and only well-formed ones", () => {
  const run = golden("crash.json").run;
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

test("a task done twice (its acknowledgement lost with its node) is drawn once, as the terminal draws it", () => {
  const batch = savedRun(golden("done_twice.json").run);
  const task1 = batch.attempts.filter(a => a.messageId === "b1.1" && a.state === "done");
  assert.deepEqual(task1.map(a => a.worker), ["consumer-1"]);
  assert.match(summaryText(batch.figuresAt(batch.end)), /^2 tasks done · makespan 2\.0 s/);
});

test("mid-replay the figures are the dashboard's so far, the step reached", () => {
  const run = golden("fair.json").run;
  const steps = [{ at: 103, tasks: 4, running: 2, over: false, makespan: 3, lower_bound: 2, workers: 3,
                   per_worker: { "consumer-1": { tasks: 2, busy: 3, running: 1 } } }];
  const batch = savedRun({ ...run, steps });
  assert.equal(batch.figuresAt(102), null);
  assert.match(summaryText(batch.figuresAt(104)), /^4 tasks done so far, 2 running · makespan so far 3\.0 s/);
  assert.match(summaryText(batch.figuresAt(batch.end)), /^9 tasks done · makespan 10\.0 s/);
});
