// The figures mid-batch are so far and count the tasks running as busy; once the batch is
// over they are the final ones and equal the terminal's (tests/golden, from analysis.py).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { Live, savedRun } from "../../dashboard/static/model.js";
import { boardLabel, summaryText, tableRows } from "../../dashboard/static/words.js";

const GOLDEN = new URL("../golden/", import.meta.url);
const rounded = x => (x === null ? null : Math.round(x * 1e6) / 1e6);

function event(kind, n, worker, fields) {
  return { event: kind, worker, batch: "b", message_id: `b.${n}`, task: `Task ${n}`, redelivered: false, ...fields };
}

// consumer-1 on a task of 10 s from 100; consumer-2 did a task of 1 s from 100, then one from 101.
function live() {
  const model = new Live();
  model.apply({ event: "sending", batch: "b", name: "demo", tasks: 3, at: 99.5 });
  for (const e of [
    event("started", 1, "consumer-1", { started: 100, at: 100 }),
    event("started", 2, "consumer-2", { started: 100, at: 100 }),
    event("done", 2, "consumer-2", { started: 100, finished: 101, at: 101 }),
    event("started", 3, "consumer-2", { started: 101, at: 101 }),
  ]) model.apply(e);
  return model;
}

test("a worker on its first long task shows its running time as busy, so far", () => {
  const f = live().batches.get("b").figures(104);
  assert.equal(f.over, false);
  assert.deepEqual(f.rows.get("consumer-1"), { tasks: 0, running: 1, busy: 4 });
  assert.deepEqual(f.rows.get("consumer-2"), { tasks: 1, running: 1, busy: 4 });
  assert.equal(f.makespan, 4);  // from the first start to now
  assert.equal(f.lowerBound, 4);  // max(8 / 2, the longest so far: 4)
  const rows = tableRows(f);
  assert.deepEqual(rows[0], ["worker", "tasks so far", "busy s so far"]);
  assert.deepEqual(rows[1], ["consumer-1", "0 + 1 running", "4.0"]);
  assert.match(summaryText(f), /^1 task done so far, 2 running · makespan so far 4\.0 s · lower bound so far .* \(1\.00× the bound so far\)$/);
  assert.match(boardLabel("Live", f), /^Live: batch running, 1 task done so far, 2 running, 2 workers$/);
});

test("between two tasks a batch whose producer said how many it sent is not over", () => {
  const model = live();
  model.apply(event("done", 1, "consumer-1", { started: 100, finished: 110, at: 110 }));
  model.apply(event("done", 3, "consumer-2", { started: 101, finished: 102, at: 102 }));
  assert.equal(model.batches.get("b").figures(111).over, true);  // all three done
  const two = new Live();
  two.apply({ event: "sending", batch: "c", name: "demo", tasks: 2, at: 99 });
  two.apply({ ...event("done", 1, "consumer-1", { started: 100, finished: 101, at: 101 }), batch: "c", message_id: "c.1" });
  assert.equal(two.batches.get("c").figures(102).over, false);  // task 2 not yet given out
});

for (const name of readdirSync(GOLDEN).filter(n => n.endsWith(".json")).sort()) {
  const expected = JSON.parse(readFileSync(new URL(name, GOLDEN), "utf8"));

  test(`${name}: at its last moment the figures are final and the terminal's; before it, so far`, () => {
    const batch = savedRun(expected.run);
    const f = batch.figures(batch.end);
    assert.equal(f.over, true);
    assert.equal(rounded(f.makespan), rounded(expected.figures.makespan));
    assert.equal(rounded(f.lowerBound), rounded(expected.figures.lower_bound));
    const busy = Object.fromEntries([...f.rows].map(([w, r]) => [w, rounded(r.busy)]));
    assert.deepEqual(busy, Object.fromEntries(Object.entries(expected.figures.per_worker)
      .map(([w, r]) => [w, rounded(r.busy)])));
    assert.doesNotMatch(summaryText(f) + tableRows(f)[0].join(" "), /so far/);
    if (batch.attempts.length) {
      const before = batch.figures(batch.end - 0.5);
      assert.equal(before.over, false);
      assert.match(summaryText(before), /so far/);
    }
  });
}
