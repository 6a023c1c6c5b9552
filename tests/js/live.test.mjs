// The live model keeps every batch: events of overlapping batches arrive
// interleaved, and each goes to its own batch (issue 17: a late event of the
// first batch used to replace the second, and its bars were lost).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Live } from "../../dashboard/static/model.js";

// The events a worker sends for one task with work: received, started, done.
function task(batch, n, worker, started, seconds) {
  const base = { worker, batch, message_id: `${batch}.${n}`, task: `Task ${n}`, redelivered: false };
  return [
    { ...base, event: "received", at: started - 0.5 },
    { ...base, event: "started", started, at: started },
    { ...base, event: "done", started, finished: started + seconds, at: started + seconds },
  ];
}

function byTime(events) {
  return events.sort((a, b) => a.at - b.at);
}

function tasksDone(batch) {
  return batch.attempts.filter(a => a.state === "done").map(a => a.messageId).sort();
}

test("two overlapping batches keep all their tasks, whatever order their events come in", () => {
  // send.sh 3 --heavy 3:4; send.sh 6, three workers at prefetch 1: task a.3 ends after batch b began.
  const first = [...task("a", 1, "consumer-1", 100, 1), ...task("a", 2, "consumer-2", 100, 1),
                 ...task("a", 3, "consumer-3", 100, 4)];
  const second = [...task("b", 1, "consumer-1", 101.5, 1), ...task("b", 2, "consumer-2", 101.5, 1),
                  ...task("b", 3, "consumer-1", 102.5, 1), ...task("b", 4, "consumer-2", 102.5, 1),
                  ...task("b", 5, "consumer-1", 103.5, 1), ...task("b", 6, "consumer-3", 104.5, 1)];
  const live = new Live();
  for (const event of byTime([...first, ...second])) live.apply(event);

  assert.deepEqual([...live.batches.keys()], ["a", "b"]);
  assert.deepEqual(tasksDone(live.batches.get("a")), ["a.1", "a.2", "a.3"]);
  assert.deepEqual(tasksDone(live.batches.get("b")), ["b.1", "b.2", "b.3", "b.4", "b.5", "b.6"]);
  assert.equal(live.newest().id, "b");
  assert.deepEqual(live.lanes(live.batches.get("a")), ["consumer-1", "consumer-2", "consumer-3"]);
});

test("tasks without work of two batches sent back to back are all drawn", () => {
  const live = new Live();
  for (let tick = 0; tick < 100; tick += 1) {
    for (const batch of ["first", "second"]) {
      live.apply({ event: "quick", worker: `consumer-${(tick % 3) + 1}`, batch, count: 150, at: 200 + tick / 10 });
    }
  }
  const drawn = id => [...live.batches.get(id).quick.values()].flatMap(s => [...s.values()]).reduce((a, b) => a + b);
  assert.equal(drawn("first"), 15000);
  assert.equal(drawn("second"), 15000);
});

test("a worker that goes hands back what it held in every batch", () => {
  const live = new Live();
  const [receivedA, startedA] = task("a", 1, "consumer-1", 100, 5);
  const [receivedB] = task("b", 1, "consumer-1", 101, 1);
  for (const event of [receivedA, startedA, receivedB]) live.apply(event);
  live.apply({ event: "gone", worker: "consumer-1", at: 102 });
  for (const id of ["a", "b"]) {
    assert.deepEqual(live.batches.get(id).attempts.map(a => [a.state, a.finished]), [["cut", 102]]);
  }
  assert.equal(live.workers.get("consumer-1").attached, false);
});

test("an attempt lost with its worker's connection ends where the worker started its next task", () => {
  // consumer-1's node was killed during task 21; it reconnected, did task 22, then said task 21 was cut.
  const live = new Live();
  const [, started21] = task("a", 21, "consumer-1", 100, 10);
  const [received22, started22, done22] = task("a", 22, "consumer-1", 104, 2);
  const cut21 = { ...started21, event: "cut", reason: "its delivery was lost with the channel", at: 107 };
  for (const event of [started21, received22, started22, done22, cut21]) live.apply(event);
  const [attempt21, attempt22] = live.batches.get("a").attempts;
  assert.deepEqual([attempt21.state, attempt21.started, attempt21.finished], ["cut", 100, 104]);
  assert.deepEqual([attempt22.state, attempt22.finished], ["done", 106]);
});

test("what a page holds is bounded whatever arrives: lanes, workers, batches, bars", async () => {
  const { MAX_BARS, MAX_BATCHES, MAX_LANES, MAX_WORKERS } = await import("../../dashboard/static/model.js");
  const live = new Live();
  live.apply({ event: "attached", worker: "consumer-1", prefetch: 1, at: 99, broker: true });
  for (let n = 0; n < 5000; n += 1) live.apply({ event: "attached", worker: `forged-${n}`, prefetch: 1, at: 100 });
  for (const event of task("real", 1, "consumer-1", 100, 1)) live.apply(event);
  for (let n = 0; n < 100; n += 1) {
    live.apply({ event: "started", worker: `forged-${n}`, batch: `forged-${n}`, message_id: `forged-${n}.1`,
                 task: "x", redelivered: false, started: 101, at: 101 });
  }
  live.current = "real";
  assert.ok(live.workers.size <= MAX_WORKERS);
  assert.ok(live.workers.has("consumer-1"));  // the worker the broker saw stays
  assert.ok(live.batches.size <= MAX_BATCHES);
  assert.ok(live.batches.has("real"));  // the current batch stays
  // Names that only say they attached get no lane: the real batch's board is its worker's.
  assert.deepEqual(live.lanes(live.currentBatch(), 1), ["consumer-1"]);
  const forged = live.batch("forged-0");
  for (let n = 0; n < 100; n += 1) {
    forged.apply({ event: "started", worker: `forged-${n}`, batch: "forged-0", message_id: `forged-0.${n}`,
                   task: "x", redelivered: false, started: 101, at: 101 });
  }
  assert.equal(live.lanes(forged).length, MAX_LANES);  // a board of a hundred workers: bounded
  assert.ok(live.lanesLeftOut > 0);
  const big = live.batch("big");
  for (let n = 0; n < MAX_BARS + 10; n += 1) {
    big.apply({ event: "started", worker: "consumer-1", batch: "big", message_id: `big.${n}`, task: "x",
                redelivered: false, started: 200 + n, at: 200 + n });
  }
  assert.equal(big.attempts.length, MAX_BARS);
  assert.equal(big.notDrawn, 10);
});

test("a consumer the broker counts but no event named yet gets a lane of its own", async () => {
  const { UNHEARD } = await import("../../dashboard/static/model.js");
  const live = new Live();
  live.apply({ event: "attached", worker: "consumer-2", prefetch: 1, at: 100, broker: true });
  // 3 consumers of task_queue: two attached before the dashboard listened.
  assert.deepEqual(live.lanes(live.currentBatch(), 3), ["consumer-2", `${UNHEARD}1`, `${UNHEARD}2`]);
  for (const event of task("a", 1, "consumer-1", 100, 1)) live.apply(event);  // one speaks: it is named
  assert.deepEqual(live.lanes(live.currentBatch(), 3), ["consumer-1", "consumer-2", `${UNHEARD}1`]);
  assert.deepEqual(live.lanes(live.currentBatch(), 0), ["consumer-1", "consumer-2"]);
});

test("an attempt whose end went unheard while the dashboard lost its node is drawn unheard, not cut short", () => {
  // consumer-1 did task 1 (100 to 102) while the dashboard heard nothing (101 to 103), then task 2.
  const live = new Live();
  live.gaps = [{ from: 101, to: 103 }];
  const [, started1] = task("a", 1, "consumer-1", 100, 2);
  const [, started2] = task("a", 2, "consumer-1", 104, 1);
  for (const event of [started1, started2]) live.apply(event);
  const [first] = live.batches.get("a").attempts;
  assert.deepEqual([first.state, first.finished], ["unheard", 104]);
  // Without a gap, the worker moving on means the attempt was cut short (its "cut" comes later).
  const heard = new Live();
  for (const event of [started1, started2]) heard.apply(event);
  assert.equal(heard.batches.get("a").attempts[0].state, "cut");
  // Its "done" heard late: done after all.
  live.apply(task("a", 1, "consumer-1", 100, 2)[2]);
  assert.equal(live.batches.get("a").attempts[0].state, "done");
});

test("the figures of a batch the dashboard heard only part of say so until its run is saved", async () => {
  const { uncertainty } = await import("../../dashboard/static/words.js");
  assert.match(uncertainty({ missed: true, from_records: false }), /events were missed .*: uncertain/);
  assert.equal(uncertainty({ missed: true, from_records: true }), "");
  assert.equal(uncertainty({ missed: false }), "");
  assert.equal(uncertainty(undefined), "");
});
