// The live board shows the figures the dashboard sends for each batch (lab/figures.py computes
// them, so far while the batch runs, final once it is over), as words, unchanged.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Live } from "../../dashboard/static/model.js";
import { boardLabel, summaryText, tableRows } from "../../dashboard/static/words.js";

const SO_FAR = {
  makespan: 4, lower_bound: 4, ratio: 1, workers: 2, tasks: 1, rejected: 0, running: 2, over: false,
  per_worker: { "consumer-10": { tasks: 0, busy: 2, running: 1 }, "consumer-2": { tasks: 1, busy: 4, running: 1 },
                "consumer-1": { tasks: 0, busy: 4, running: 1 } },
};

test("a batch's figures so far are shown as the dashboard sent them, workers in natural order", () => {
  const live = new Live();
  live.shown({ type: "batch", batch: "b", name: "demo", figures: SO_FAR, faults: [], from_records: false });
  const f = live.batches.get("b").figuresAt(104);
  const rows = tableRows(f);
  assert.deepEqual(rows[0], ["worker", "tasks so far", "busy s so far"]);
  assert.deepEqual(rows.slice(1).map(row => row[0]), ["consumer-1", "consumer-2", "consumer-10"]);
  assert.deepEqual(rows[1], ["consumer-1", "0 + 1 running", "4.0"]);
  assert.match(summaryText(f), /^1 task done so far, 2 running · makespan so far 4\.0 s · lower bound so far max\(total\/2, longest\) 4\.0 s \(1\.00× the bound so far\)$/);
  assert.equal(boardLabel("Live", f), "Live: batch running, 1 task done so far, 2 running, 3 workers");
  assert.equal(live.batches.get("b").name, "demo");
});

test("once over the figures are final: no 'so far'", () => {
  const live = new Live();
  live.shown({ type: "batch", batch: "b", figures: { ...SO_FAR, over: true, running: 0 }, faults: [] });
  const f = live.batches.get("b").figuresAt(200);
  assert.doesNotMatch(summaryText(f) + tableRows(f)[0].join(" "), /so far/);
});

test("before the dashboard sent any figures the board says it waits for them", () => {
  const live = new Live();
  live.apply({ event: "started", worker: "consumer-1", batch: "b", message_id: "b.1", task: "T", redelivered: false,
               started: 100, at: 100 });
  const f = live.batches.get("b").figuresAt(101);
  assert.equal(f, null);
  assert.match(summaryText(f), /^Waiting for the dashboard's figures/);
  assert.deepEqual(tableRows(f), [["worker", "tasks so far", "busy s so far"]]);
});

test("the faults the dashboard sends for a batch are kept as text, bounded", () => {
  const live = new Live();
  live.shown({ type: "batch", batch: "b", figures: SO_FAR, faults: [{ at: 101, label: "killed consumer-1" },
                                                                    { at: "x", label: 3 }] });
  assert.deepEqual(live.batches.get("b").faults, [{ t: 101, label: "killed consumer-1" }]);
});
