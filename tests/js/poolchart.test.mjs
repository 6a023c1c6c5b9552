// The chart of task_queue and its workers (issue 35): where its lines and marks go, from what the
// dashboard sends (pool_history.py's over_time). It computes positions only: every value drawn
// is one the dashboard sent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEPTH_H, DEPTH_TOP, LABEL_W, LEFT, RIGHT, WORKERS_H, WORKERS_TOP, layout, lines, scaleTop }
  from "../../dashboard/static/poolchart.js";
import { poolLabel, scalingLabel } from "../../dashboard/static/words.js";

const NOW = 1_700_000_300, WIDTH = 1000 + LEFT + RIGHT;  // 1000 px of plot: 300 s, 10/3 px a second
const px = seconds => LEFT + (seconds / 300) * 1000;  // seconds since the window's start
const points = text => text.split(" ").map(pair => pair.split(",").map(Number));

function overTime(readings, scalings = []) {
  return { window: 300, readings, scalings };
}

test("the depth's two series and the workers' go where their times and values say", () => {
  const readings = [[NOW - 300, 0, 0, 1], [NOW - 150, 15, 5, 4], [NOW, 0, 0, 1]];
  const chart = layout(overTime(readings), NOW, WIDTH);
  assert.equal(chart.depth.top, 20);  // 15 messages at most: a scale to 20
  assert.equal(chart.workers.top, 5);  // 4 workers at most: to 5
  const bottom = DEPTH_TOP + DEPTH_H;
  assert.deepEqual(chart.depth.ready.map(points), [[[px(0), bottom], [px(150), bottom - 15 / 20 * DEPTH_H],
                                                    [px(300), bottom]]]);  // fmt: skip
  assert.deepEqual(chart.depth.unacked.map(points)[0][1], [px(150), bottom - 5 / 20 * DEPTH_H]);
  // The workers hold their count until the next reading: a step.
  const low = WORKERS_TOP + WORKERS_H - WORKERS_H / 5, high = WORKERS_TOP + WORKERS_H - 4 / 5 * WORKERS_H;
  assert.deepEqual(chart.workers.line.map(points), [[[px(0), low], [px(150), low], [px(150), high],
                                                     [px(300), high], [px(300), low]]]);  // fmt: skip
});

test("a reading not known (null) breaks its line, and nothing is drawn across it", () => {
  const readings = [[NOW - 30, 4, null, 2], [NOW - 29, 4, null, 2], [NOW - 20, null, null, null],
                    [NOW - 10, 3, 1, 3], [NOW, 2, 1, 3]];  // fmt: skip
  const chart = layout(overTime(readings), NOW, WIDTH);
  assert.equal(chart.depth.ready.length, 2);
  assert.equal(chart.depth.unacked.length, 1);
  assert.equal(chart.workers.line.length, 2);
  assert.deepEqual(lines([[1, null], [2, null]], 1, t => t, v => v), []);
});

test("each scaling is marked where it happened, labelled from its event, its why kept for the title", () => {
  const scalings = [{ at: NOW - 121, before: 6, workers: 1, why: "down" },
                    { at: NOW - 120, before: 1, workers: 4, why: "up at once: ceil(15 / 4) = 4" },
                    { at: NOW - 119, before: 4, workers: 6, why: "up at once" },
                    { at: NOW - 30, before: 6, workers: 1, why: "down <b>not markup</b>" }];  // fmt: skip
  const chart = layout(overTime([[NOW - 300, 0, 0, 1], [NOW, 0, 0, 1]], scalings), NOW, WIDTH);
  // The newest first: each label in the first row it fits beside the others; none fits the oldest.
  assert.deepEqual(chart.marks.map(m => [m.x, m.label, m.row]), [
    [px(179), "6 → 1 worker", null],  // its line and title only
    [px(180), "1 → 4 workers", 1],
    [px(181), "4 → 6 workers", 0],
    [px(270), "6 → 1 worker", 0],
  ]);
  assert.ok(px(270) - px(181) >= LABEL_W + 4 && px(181) - px(180) < LABEL_W);
  assert.ok(chart.marks.every(m => m.late));  // in the plot's second half: each label left of its line
  assert.equal(chart.marks[3].why, "down <b>not markup</b>");
  assert.equal(chart.workers.top, 2);  // the scale is the broker's readings': a scaling (forged, say) moves no line
});

test("nothing is drawn outside the window: a mark before it is left out, a time after now is at its edge", () => {
  const scalings = [{ at: NOW - 301, before: 1, workers: 2, why: "" }, { at: NOW + 50, before: 2, workers: 3, why: "" }];
  const chart = layout(overTime([[NOW - 400, 1, 1, 1], [NOW + 50, 1, 1, 1]], scalings), NOW, WIDTH);
  assert.deepEqual(chart.marks.map(m => m.x), [px(300)]);
  assert.deepEqual(points(chart.depth.ready[0]).map(([x]) => x), [px(0), px(300)]);
});

test("the axis starts at the first reading kept: a page a minute old uses the whole width for it", () => {
  const readings = [[NOW - 90, 0, 0, 1], [NOW - 45, 8, 0, 2], [NOW, 0, 0, 1]];
  const chart = layout(overTime(readings, [{ at: NOW - 100, before: 2, workers: 1, why: "" }]), NOW, WIDTH);
  assert.deepEqual(points(chart.depth.ready[0]).map(([x]) => x), [LEFT, LEFT + 500, WIDTH - RIGHT]);
  assert.deepEqual(chart.marks, []);  // before the first reading: off the axis
  const young = layout(overTime([[NOW - 3, 0, 0, 1], [NOW, 0, 0, 1]]), NOW, WIDTH);  // at least a minute
  assert.deepEqual(points(young.workers.line[0]).map(([x]) => x), [LEFT + 950, LEFT + 1000, WIDTH - RIGHT]);
});

test("the time axis has a tick on each round time, far enough apart for their labels", () => {
  const chart = layout(overTime([[NOW - 300, 0, 0, 1]]), NOW, WIDTH);
  assert.ok(chart.ticks.length >= 5 && chart.ticks.length <= 12, `${chart.ticks.length} ticks`);
  const step = chart.ticks[1].t - chart.ticks[0].t;
  assert.ok(chart.ticks[1].x - chart.ticks[0].x >= 90, `${chart.ticks[1].x - chart.ticks[0].x} px apart`);
  for (const tick of chart.ticks) {
    assert.equal(tick.t % step, 0);
    assert.ok(tick.x >= LEFT && tick.x <= WIDTH - RIGHT);
    assert.equal(tick.labelled, tick.x <= WIDTH - RIGHT - 45);  // a label centred on it fits the chart
  }
  assert.equal(chart.ticks.at(-1).t, NOW - NOW % (chart.ticks[1].t - chart.ticks[0].t));
});

test("a scale's top is the first of 1, 2, 5, 10, 20, 50... at or above every value", () => {
  assert.equal(scaleTop([], 4), 5);
  assert.equal(scaleTop([48, null, 3], 4), 50);
  assert.equal(scaleTop([100], 2), 100);
  assert.equal(scaleTop([101, NaN], 2), 200);
});

test("the chart says in words the latest reading and the latest scaling, as sent", () => {
  const clock = t => `@${t}`;
  assert.equal(poolLabel(overTime([]), clock), "task_queue and its workers over up to the last 5 minutes: no reading yet; no scaling");
  const sent = overTime([[NOW - 1, 12, 3, 4], [NOW, null, null, null]], [{ at: NOW - 5, before: 1, workers: 4, why: "up" }]);
  assert.equal(poolLabel(sent, clock), "task_queue and its workers over up to the last 5 minutes: "
    + `now 12 ready, 3 unacknowledged, 4 workers; last scaled 1 → 4 workers at @${NOW - 5}`);
  assert.equal(scalingLabel({ before: 2, workers: 1 }), "2 → 1 worker");
});
