// What a replay and the live board draw besides the bars: the buffers as they were (from the
// records' "received"), the first per-second block of tasks without work in full, the run's
// name and prefetch, bar labels that fit their bar, and a clock that never runs behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Batch, Live, faultsOf, savedRun, stateAt } from "../../dashboard/static/model.js";
import { barLabel, prefetchText, runText } from "../../dashboard/static/words.js";

const golden = name => JSON.parse(readFileSync(new URL(`../golden/${name}.json`, import.meta.url), "utf8"));
const states = (batch, T) => batch.attempts.map(a => stateAt(a, T));

test("a replay at prefetch 0 shows every task waiting in its worker's buffer at the start", () => {
  const batch = savedRun(golden("round_robin").run);
  const first = states(batch, batch.start);
  assert.equal(first.filter(s => s === "running").length, 3);
  assert.equal(first.filter(s => s === "waiting").length, 6);
  assert.deepEqual(prefetchText(batch.prefetch), "prefetch 0 (no limit)");
  assert.equal(runText(batch), "run round_robin (batch b1)");
});

test("a replay at prefetch 1 shows nothing waiting, and a saved run without received none either", () => {
  const fair = savedRun(golden("fair").run);
  for (const T of [100, 101.5, 103, 108]) assert.ok(!states(fair, T).includes("waiting"), T);
  assert.equal(prefetchText(fair.prefetch), "prefetch 1");
  const old = savedRun(golden("crash").run);
  assert.ok(!states(old, old.start).includes("waiting"));
  assert.equal(prefetchText(old.prefetch), "");
});

test("the board starts at the first block's second, so the second block never covers it", () => {
  const batch = new Batch("b");
  batch.apply({ event: "quick", worker: "consumer-1", batch: "b", count: 40, at: 100.7 });
  batch.apply({ event: "quick", worker: "consumer-1", batch: "b", count: 90, at: 101.2 });
  assert.equal(batch.start, 100);
  assert.deepEqual([...batch.quick.get("consumer-1").keys()], [100, 101]);
});

test("the live page knows the run's name, what was sent, and each worker's prefetch", () => {
  const live = new Live();
  live.apply({ event: "sending", batch: "b", name: "node-failure", tasks: 30, at: 100 });
  for (const [worker, prefetch] of [["consumer-1", 1], ["consumer-2", 0]]) {
    live.apply({ event: "attached", worker, at: 99, broker: true });  // the broker's word (lab.consumers)
    live.apply({ event: "attached", worker, prefetch, at: 99 });
  }
  const batch = live.newest();
  assert.equal(runText(batch), "run node-failure (batch b)");
  assert.equal(batch.sent, 30);
  assert.equal(prefetchText(live.prefetchOf(batch, live.lanes(batch))), "prefetch consumer-1 1, consumer-2 0 (no limit)");
  assert.equal(runText(new Live().newest()), "");
});

test("the moment drawn is never before an event already heard (a late clock showed done tasks running)", () => {
  const live = new Live();
  live.apply({ event: "done", worker: "consumer-1", batch: "b", message_id: "b.1", task: "Task 1",
               redelivered: false, started: 100, finished: 103, at: 103 });
  const T = live.now(101, live.newest());  // the server's clock as this page last set it, seconds behind
  assert.equal(T, 103);
  assert.equal(stateAt(live.newest().attempts[0], T), "done");
  live.apply({ event: "quick", worker: "forger", batch: "b", count: 1, at: 95_000_000_000 });
  assert.equal(live.now(101, live.newest()), 161);  // a forged time moves it a minute at most
});

test("a bar's label is its glyph and number if they fit, the number alone, or nothing", () => {
  assert.equal(barLabel("✓", "12", 60), "✓12");
  assert.equal(barLabel("✓", "12", 30), "12");
  assert.equal(barLabel("✓", "123", 24), "");
  assert.equal(barLabel("✓", "1234", 40), "");
});

test("the faults of a live run are those noted since the producer announced it", () => {
  const marks = [{ at: 90, label: "killed rabbitmq" }, { at: 105, label: "killed rabbitmq-2" }, { at: "x", label: "y" }];
  assert.deepEqual(faultsOf(marks, 100), [{ t: 105, label: "killed rabbitmq-2" }]);
});

test("a live batch that missed events (a gap) is drawn from its saved run once saved", () => {
  const live = new Live();
  live.apply({ event: "sending", batch: "b1", name: "node-failure", tasks: 9, at: 99 });
  live.apply({ event: "started", worker: "consumer-1", batch: "b1", message_id: "b1.1", task: "Task 1",
               redelivered: false, started: 100, at: 100 });  // its "done" was lost with the node
  assert.deepEqual(live.batches.get("b1").attempts.map(a => a.state), [null]);
  const run = golden("fair").run;
  live.settle({ ...run, name: "node-failure", sent: 9 });
  const batch = live.batches.get("b1");
  assert.equal(batch.fromRecords, true);
  assert.ok(batch.attempts.every(a => a.state === "done"));
  assert.equal(batch.figuresAt(120).over, true);
  assert.equal(batch.figuresAt(120).tasks, 9);
  assert.equal(live.newest(), batch);
  live.settle({ ...run, batch: "other" });  // not a batch this page saw: nothing
  assert.deepEqual([...live.batches.keys()], ["b1"]);
});

test("the time axis has at most 12 ticks whatever the span (an event's times are untrusted)", async () => {
  const { tickStep } = await import("../../dashboard/static/board.js");
  for (const span of [5, 37, 600, 7200, 86_400, 1.8e9, 1e11]) {
    const step = tickStep(span);
    assert.ok(step > 0 && span / step <= 12, `${span}: step ${step}`);
  }
  assert.equal(tickStep(5), 0.5);
  assert.equal(tickStep(1.8e9), 2e8);
});

test("names from the network are shown clipped, with bidirectional controls neutralised", async () => {
  const { shownText } = await import("../../dashboard/static/words.js");
  assert.equal(shownText("consumer-1"), "consumer-1");
  assert.equal(shownText("w".repeat(255)).length, 40);
  assert.ok(shownText("w".repeat(255)).endsWith("…"));
  assert.equal(shownText("\u202Eevil\u202C\u2066x\u2069"), "\ufffdevil\ufffd\ufffdx\ufffd");
  assert.equal(shownText("a\u001b[2Jb"), "a\ufffd[2Jb");
});
